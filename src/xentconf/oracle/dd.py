r"""Double-double ("dd") arithmetic on numpy float64 arrays, with a-priori error bounds.

A dd number is an unevaluated sum ``hi + lo`` of two float64 with ``|lo| <= ulp(hi)/2``
(a *normalized* dd; every dd this module returns is one). Everything here is vectorized
over float64 arrays (numpy broadcasting); the only Python loops run over polynomial
coefficients, tree levels or blocks of elements, never over elements. The module imports
numpy and the standard library only: the constants (ln 2, the ``2**(j/64)`` and
``log(r_j)`` tables, the Taylor coefficients) are computed at import time with exact
integer / :class:`fractions.Fraction` arithmetic and rounded to dd once.

Notation: ``u = 2**-53`` (unit roundoff of float64), ``u2 = u**2 = 2**-106``. Every bound
below assumes IEEE-754 binary64 round-to-nearest-even with no extended precision and no
FMA contraction (what numpy's float64 ufuncs do).

Error-free transformations
--------------------------
``two_sum(a, b) -> (s, e)``  Knuth's 2Sum: ``s = RN(a+b)``, ``s + e == a + b`` exactly
    for all finite ``a, b`` whose sum does not overflow (underflow is harmless: a sum that
    lands in the subnormal range is exact).
``fast_two_sum(a, b)``  Dekker's Fast2Sum: the same when ``|a| >= |b|`` (or ``a == 0``).
``two_prod(a, b) -> (p, e)``  ``p = RN(a*b)``, ``p + e == a*b`` exactly. numpy has no FMA,
    so this is Dekker's product with Veltkamp splitting (splitter ``2**27 + 1``; the halves
    have 26 bits each, so the partial products are exact). An operand above ``2**996``
    (where ``(2**27+1) * a`` would overflow) is pre-scaled by ``2**-28`` and the exact
    partial results scaled back, so the valid range is: finite ``a, b`` with
    ``|a*b| < 2**1023`` and either ``a*b == 0`` or ``|a*b| >= 2**-968`` (below that the
    error term underflows and is no longer exact). Everything the engine feeds it (values
    of exp in ``[0, 1]``, logs up to ``~1e4``, integers ``k < 2**24`` times constants) is
    far inside this range.

dd arithmetic (Joldes, Muller, Popescu, "Tight and rigorous error bounds for basic building
blocks of double-word arithmetic", ACM TOMS 44(2), 2017 -- "JMP"; the proofs were
formalized in Coq, and some bounds tightened, by Muller and Rideau, ACM TOMS 48(1), 2022)
-----------------------------------------------------------------------------------------
All relative to the exact result of the exact dd operands; inputs must be normalized dd.

=============  ======================  ==============================  =================
function       JMP algorithm           relative error bound            constant
=============  ======================  ==============================  =================
``dd_add_d``   DWPlusFP (Alg. 4)       ``2 u2 / (1 + 2u) < 2 u2``      ``ADD_D_REL``
``dd_add``     AccurateDWPlusDW (6)    ``3 u2 / (1 - 4u)``             ``ADD_REL``
``dd_mul_d``   DWTimesFP1 (Alg. 7)     ``1.5 u2 + 4 u**3``             ``MUL_D_REL``
``dd_mul``     DWTimesDW1 (Alg. 10)    ``7 u2``                        ``MUL_REL``
``dd_div``     DWDivDW2 (Alg. 17)      ``15 u2 + 56 u**3``             ``DIV_REL``
=============  ======================  ==============================  =================

(``dd_sub`` is ``dd_add`` with a negated operand.) The constants are these bounds rounded
*up* to a float. Additions and subtractions stay within their bounds under underflow
(sums that underflow are exact). JMP's product and quotient bounds assume that no
product underflows; the public ``dd_mul``, ``dd_mul_d`` and ``dd_div`` therefore scale
their operands to ``[0.5, 1)`` (exactly, with ``frexp``/``ldexp``) and scale the result
back, so they take any finite operands, and only a result below ``2**-968`` (whose low
word then lands on the subnormal grid) carries an extra absolute error ``<= 2**-1074``.
The private kernels used inside exp/log skip the scaling: there every product is shown
below to stay above ``2**-968`` or to be negligible as a whole.

Sum
---
``dd_sum(hi, lo, axis) -> (shi, slo, err)``: a pairwise tree of ``dd_add`` (depth
``D = ceil(log2 n)``, odd levels padded with an exact zero). Each node returns
``(a + b)(1 + d)`` with ``|d| <= ADD_REL``; unrolling the tree, every input is multiplied
by at most ``D`` such factors, so ``|sum - exact| <= ((1+ADD_REL)**D - 1) * sum|x_i|
<= D*ADD_REL / (1 - D*ADD_REL) * sum|x_i|`` (Higham's ``gamma_D``). ``err`` is that
bound with ``sum|x_i| <= (1 + u) sum|hi_i|`` and ``sum|hi_i|`` taken from a float64 sum of
non-negative terms (every path has at most ``n - 1`` roundings, so the exact value is at
most the computed one divided by ``1 - (n-1)u``), rounded up.

exp
---
``dd_exp(x[, xlo]) -> (hi, lo, err)`` and ``dd_exp_parts(x[, xlo]) -> (mhi, mlo, e)``
for a float64 (or normalized dd) argument. ``dd_exp_parts`` returns ``exp(x)`` as
``(mhi + mlo) * 2**e`` with ``mhi in [0.99, 2)`` and ``e`` an int64, for ``|x| <= 2**17``
(no underflow, no overflow; ``-inf`` gives ``(0, 0, 0)``), with relative error at most
``EXP_REL = 2**-102``. ``dd_exp`` scales that by ``2**e`` with ``np.ldexp`` (exact in the
normal range, one rounding to the ``2**-1074`` grid per word in the subnormal range) and
returns an *absolute* bound ``err >= |hi + lo - exp(x)|`` per element:
``err = EXP_REL (1 + 2**-48) |hi| + 2**-1072`` (the constant covers the two roundings of
``ldexp`` to the subnormal grid and the underflow of the product, ``3 * 2**-1075``, with a
margin). For ``x < EXP_UNDERFLOW_X = -786`` it returns ``hi = lo = 0`` with
``err = EXP_UNDERFLOW_ERR = 2**-1074``, the smallest positive float64 (the true value is
below ``exp(-786) < 2**-1133``, so it rounds to +0 in every format); for ``x > 709.79``
(overflow) ``hi = inf`` and ``err = inf``; ``exp(-inf) = 0`` and ``exp(inf) = inf`` with
``err = 0``; ``exp(0) = 1`` exactly.

A dd cannot hold a value below ``2**-969`` to more than the ``2**-1074`` grid, so to
decide the rounding of results in (or near) the subnormal range, use ``dd_exp_parts``
(purely relative error, any exponent) and round ``(mhi + mlo) * 2**e`` directly.

Algorithm. ``k = rint(x * 64/ln2)``, ``|k| < 2**24``; ``C = ln2/64`` is split as
``C1 + C2 + C3 + C4`` with ``C1, C2, C3`` of 29 significant bits (so ``k*Ci`` is exact)
and ``C4 = RN(rest)`` (``|C - sum| <= u |C4| < 2**-147``); ``k*C4`` is taken exactly with
``two_prod``. ``r = x - k*C`` is accumulated with three exact ``two_sum`` and five
``dd_add_d`` whose partial sums are all below ``RB = 0.00542`` (``|r| <= (ln2/64)(1/2 +
2**-27) + 2**-37 < RB``): reduction error ``eta <= 5 * 2u2 * RB + 2**24 * 2**-147
< 0.06 u2``. Then ``exp(x) = 2**q * T_j * exp(r)`` with ``k = 64q + j``, ``T_j =
2**(j/64)`` (a dd, relative error ``<= u2``), and ``E = expm1(r) ~ r * S1(r)``,
``S1 = sum_{i=1..10} r**(i-1)/i!`` by Horner: the terms ``i >= 7`` (``< 2**-57.5``) in
float64, ``i <= 6`` in dd. Result ``M = T_j + T_j*E`` (one ``dd_mul``, one ``dd_add``).

Bound. ``|E| <= e**RB - 1 < 0.005435``. Truncation of the Taylor series:
``|r|**10/11! * e**RB <= 44.8 u2`` on ``S1``. Evaluation error of ``S1``: at most
``2u2`` from the last ``dd_add_d`` (``+ 1``), plus ``|r| * (...) < 0.1 u2`` from the
inner steps and the float64 tail, ``< 4 u2`` in all. So the absolute error of ``E`` is
``|r| * (44.8 + 4 + 7 * 1.003) u2 < 0.31 u2`` (the ``7u2`` is the ``dd_mul`` by ``r``),
and ``M / (T_j(1+E))`` is within
``u2 (1 [table] + 3.0001 [dd_add] + (0.31 + 7 * 0.00544) / 0.9945 [E, T*E] + 0.06
[reduction]) < 4.5 u2`` of 1. Below ``|r| < 2**-200`` the series is replaced by
``E = r`` (error ``< r**2 < 2**-200 |r|``), which keeps every product away from underflow
except ``T*E`` whose whole magnitude is then below ``2**-198``. Guaranteed:
``EXP_REL = 2**-102 = 16 u2`` (a factor 3.5 above the derivation).

log1p / log
-----------
``dd_log1p(t[, tlo]) -> (hi, lo, err)`` for a dd ``t > -1`` (the engine passes
``t >= 0``, ``t`` up to the float64 maximum), and ``dd_log(a[, alo])`` for a dd
``a > 0``: relative error at most ``LOG_REL = 2**-101``, returned as the absolute bound
``err = LOG_REL (1 + 2**-48) |hi| + 2**-1074`` (``err = 0`` when the result is an exact
0). Specials: ``log1p(0) = 0``, ``log1p(-1) = -inf``, ``log1p(inf) = inf`` (``err = 0``),
``t < -1`` or NaN gives NaN; ``log(0) = -inf``. If the argument is itself known only to
within ``delta``, add ``delta / (1 + t - delta)`` (resp. ``delta / (a - delta)``).

Algorithm. Write ``a = 1 + t`` (or ``a``) as ``2**q * m`` with ``m in [1/sqrt2, sqrt2)``
(from ``frexp`` of a float64 approximation of ``a``), ``j = rint(128 m) in [91, 181]``,
``r_j = RN(128/j)`` (a float64) and ``v = r_j m - 1``. ``1 + t`` is never rounded:
``v`` is the exact sum of ``two_sum(r_j 2**-q, -1)``, ``two_prod(r_j, thi 2**-q)`` and
``two_prod(r_j, tlo 2**-q)``, rounded to dd by two ``dd_add`` (relative error
``<= 6u2 + 6u**3/|v|``; exact when ``q = 0, j = 128``, where ``v = t``), and
``|v| <= 0.5/91 (1 + 2**-40) < VB = 0.0055``. Then
``log a = q ln2 - log r_j + log1p(v)``, with ``log1p(v) = v + v**2 S'(v)``,
``S' = sum_{i=0..12} (-1)**(i+1) v**i/(i+2)`` by Horner (``i >= 7`` in float64), two
``dd_mul`` and one ``dd_add``; ``log r_j`` is a dd table (error ``<= u2 |log r_j|``) and
``q ln2`` a ``dd_mul_d`` of a dd ``ln2`` by the integer ``q``. Below ``|v| < 2**-200``
``log1p(v)`` is replaced by ``v`` (error ``< 2**-200 |v|``).

Bound. ``log1p(v)``: truncation ``|v|**15/15/(1-|v|) <= 0.13 u2 |v|``, evaluation of
``S'`` ``< 3 u2`` absolute (``S' ~ -1/2``), the two ``dd_mul`` ``14 u2`` relative on
``v**2 S'`` (``|v**2 S'| <= 0.0028 |v|``), the final ``dd_add`` ``3 u2``: relative error
``E_L <= 3.2 u2``. Combining, with ``Y = log a``:

(a) ``q = 0, j = 128``: ``Y = log1p(v)``: ``E_L + 3u2`` (dd_log) or ``E_L`` (log1p)
    ``< 6.2 u2``.
(b) ``q = 0, j != 128``: ``|Y| >= log(128.5/128) > 0.0039``, so ``|log r_j| <= 2.01|Y|``,
    ``|v| <= 1.01 |Y|``: ``3 [final add] + 2.01 [table] + 1.006 * 3.2 [E_L]
    + 1.015 * 6 [v] < 14.5 u2``.
(c) ``q != 0``: ``|Y| >= log sqrt2 > 0.3465``, ``|q ln2| <= 2|Y|``: ``3 + 3 * 1.017
    [q ln2 - log r_j] + 2.5 * 2 [q ln2] + 1.02 [table] + 0.017 (3.2 + 6) < 12.3 u2``.

Guaranteed: ``LOG_REL = 2**-101 = 32 u2`` (a factor 2.2 above the derivation).

Conversion: :func:`to_fraction` turns dd arrays into exact :class:`fractions.Fraction`
values (an object array), for tests and for handing elements to an exact tier.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = [
    "ADD_D_REL",
    "ADD_REL",
    "DIV_REL",
    "EXP_REL",
    "EXP_UNDERFLOW_ERR",
    "EXP_UNDERFLOW_X",
    "LN2_HI",
    "LN2_LO",
    "LOG_REL",
    "MUL_D_REL",
    "MUL_REL",
    "U",
    "dd_add",
    "dd_add_d",
    "dd_div",
    "dd_exp",
    "dd_exp_parts",
    "dd_log",
    "dd_log1p",
    "dd_mul",
    "dd_mul_d",
    "dd_normalize",
    "dd_sub",
    "dd_sum",
    "dd_sum_bound",
    "fast_two_sum",
    "split",
    "to_fraction",
    "two_prod",
    "two_sum",
]

# ============================================================================ constants

U = 2.0**-53  #: unit roundoff of float64
_U2 = 2.0**-106

#: Relative error bounds of the dd operations (JMP 2017), rounded up.
ADD_D_REL = 2.0 * _U2  # DWPlusFP: 2u^2/(1+2u)
ADD_REL = 3.0 * _U2 * (1.0 + 2.0**-50)  # AccurateDWPlusDW: 3u^2/(1-4u) = 3u^2(1+4u+...)
MUL_D_REL = 1.5 * _U2 * (1.0 + 2.0**-50)  # DWTimesFP1: 1.5u^2 + 4u^3
MUL_REL = 7.0 * _U2  # DWTimesDW1: 7u^2
DIV_REL = 15.0 * _U2 * (1.0 + 2.0**-50)  # DWDivDW2: 15u^2 + 56u^3

#: Guaranteed relative error of dd_exp_parts (and of dd_exp above the subnormal range).
EXP_REL = 2.0**-102
#: Guaranteed relative error of dd_log and dd_log1p.
LOG_REL = 2.0**-101
# What the derivations in the module docstring give (the guarantees above have margin).
_EXP_REL_DERIVED = 4.5 * _U2
_LOG_REL_DERIVED = 14.5 * _U2

#: dd_exp returns 0 below this argument, with absolute error bound EXP_UNDERFLOW_ERR.
EXP_UNDERFLOW_X = -786.0
EXP_UNDERFLOW_ERR = 2.0**-1074  # smallest positive float64; exp(x) < exp(-786) < 2**-1133
_EXP_OVERFLOW_X = 709.79  # > log(max float64) = 709.7827...; above: inf
_EXP_PARTS_MAX = 2.0**17  # |x| limit of dd_exp_parts (|k| < 2**24)
_EXP_TINY_ABS = 2.0**-1072  # ldexp roundings to the subnormal grid, product underflow
_ERR_SLACK = 1.0 + 2.0**-48  # turns a relative bound on the exact value into one on |hi|
_SERIES_CUT = 2.0**-200  # below: expm1(r) -> r, log1p(v) -> v

_SPLITTER = 134217729.0  # 2**27 + 1
_SPLIT_MAX = 2.0**996
_BLOCK = 8192  # elements per block in the transcendental functions (cache-sized)


# ------------------------------------------------------------- exact constant generation

_G = 360  # bits of the fixed-point constants (errors < 2**-340, negligible next to u2)


def _fx_ln2() -> int:
    """floor-ish of ln2 * 2**_G (error < 2**-(_G-10)): sum_{k>=1} 1/(k 2**k)."""
    g = _G + 16
    s, k = 0, 1
    while True:
        term = (1 << g) // (k << k)
        if term == 0:
            break
        s += term
        k += 1
    return s >> 16


def _fx_log(x: Fraction) -> int:
    """log(x) * 2**_G for a rational x in [0.5, 2], error < 2**-(_G-12): 2 atanh(s)."""
    g = _G + 16
    s = (x - 1) / (x + 1)  # |s| <= 1/3
    p = (s.numerator << g) // s.denominator
    p2 = (p * p) >> g
    total, power, i = 0, p, 0
    while power != 0 and power != -1:
        total += power // (2 * i + 1)
        power = (power * p2) >> g
        i += 1
    return (2 * total) >> 16


def _fx_exp2_table(n: int) -> list[int]:
    """``2**(j/2**n) * 2**_G`` for ``j < 2**n`` (error < 2**-(_G-12)): ``n`` nested
    integer square roots give ``2**(1/2**n)``, then fixed-point powers."""
    g = _G + 16
    base = 2 << g
    for _ in range(n):
        base = math.isqrt(base << g)  # error < 2 units of 2**-g
    out = [1 << g]
    for _ in range(1, 1 << n):
        out.append((out[-1] * base) >> g)  # error grows by < 5 units per step
    return [x >> 16 for x in out]


def _dd_of(x: Fraction) -> tuple[float, float]:
    """Nearest-then-nearest dd of a rational: hi = RN(x), lo = RN(x - hi)."""
    hi = float(x)  # Fraction -> float is correctly rounded
    return hi, float(x - Fraction(hi))


def _round_bits(x: Fraction, bits: int) -> Fraction:
    """x rounded to `bits` significant bits."""
    e = math.floor(math.log2(abs(x)))
    if Fraction(2) ** e > abs(x):
        e -= 1
    elif Fraction(2) ** (e + 1) <= abs(x):
        e += 1
    scale = Fraction(2) ** (bits - 1 - e)
    return Fraction(round(x * scale)) / scale


_LN2_Q = Fraction(_fx_ln2(), 1 << _G)
LN2_HI, LN2_LO = _dd_of(_LN2_Q)

# exp: reduction by C = ln2/64
_C_Q = _LN2_Q / 64
_C1_Q = _round_bits(_C_Q, 29)
_C2_Q = _round_bits(_C_Q - _C1_Q, 29)
_C3_Q = _round_bits(_C_Q - _C1_Q - _C2_Q, 29)
_C1, _C2, _C3 = float(_C1_Q), float(_C2_Q), float(_C3_Q)
_C4 = float(_C_Q - _C1_Q - _C2_Q - _C3_Q)
_EXP_INV = float(1 / _C_Q)  # 64/ln2 rounded; only used to choose k

_EXP_T = [_dd_of(Fraction(x, 1 << _G)) for x in _fx_exp2_table(6)]
_EXP_T_HI = np.array([t[0] for t in _EXP_T])
_EXP_T_LO = np.array([t[1] for t in _EXP_T])

#: 1/i! as dd, i = 0..10
_EXP_C = [_dd_of(Fraction(1, math.factorial(i))) for i in range(11)]

# log: r_j = RN(128/j) for j in [91, 181]; log(r_j) as dd (index j directly)
_LOG_J0, _LOG_J1 = 91, 181
_LOG_R = np.ones(_LOG_J1 + 1)
_LOG_LR_HI = np.zeros(_LOG_J1 + 1)
_LOG_LR_LO = np.zeros(_LOG_J1 + 1)
for _j in range(_LOG_J0, _LOG_J1 + 1):
    _r = 128.0 / _j  # correctly rounded division
    _LOG_R[_j] = _r
    if _j != 128:
        _LOG_LR_HI[_j], _LOG_LR_LO[_j] = _dd_of(Fraction(_fx_log(Fraction(_r)), 1 << _G))
del _j, _r
_SQRT_HALF = 0.7071067811865476  # RN(1/sqrt(2)): frexp mantissas below it are doubled

#: s_i = (-1)**(i+1) / (i+2) as dd, i = 0..12: log1p(v) = v + v**2 sum_i s_i v**i
_LOG_S = [_dd_of(Fraction((-1) ** (i + 1), i + 2)) for i in range(13)]


# ============================================================================ helpers


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _lo_or_zero(hi: np.ndarray, lo) -> np.ndarray:
    return np.zeros_like(hi) if lo is None else _f64(lo)


# ============================================================= error-free transformations


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a, b):
    s = a + b
    return s, b - (s - a)


def _split(a):
    """Veltkamp split of |a| <= 2**996 into two 26-bit halves, hi + lo == a."""
    g = _SPLITTER * a
    hi = g - (g - a)
    return hi, a - hi


def _two_prod_s(a, ah, al, b, bh, bl):
    """Dekker's product with the operands already split."""
    p = a * b
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _two_prod(a, b):
    """Dekker's product, |a|, |b| <= 2**996 (no pre-scaling)."""
    ah, al = _split(a)
    bh, bl = _split(b)
    return _two_prod_s(a, ah, al, b, bh, bl)


def two_sum(a, b):
    """Knuth's 2Sum: ``(s, e)`` with ``s = fl(a + b)`` and ``s + e == a + b`` exactly."""
    return _two_sum(_f64(a), _f64(b))


def fast_two_sum(a, b):
    """Dekker's Fast2Sum: as :func:`two_sum`, valid when ``|a| >= |b|`` (or ``a == 0``)."""
    return _fast_two_sum(_f64(a), _f64(b))


def split(a):
    """Veltkamp split ``a == hi + lo`` with ``hi``, ``lo`` of at most 26 significant bits.

    Operands above ``2**996`` in magnitude (where ``(2**27+1) * a`` would overflow) are
    split after an exact scaling by ``2**-28``. Valid for ``|a| < (2 - 2**-26) * 2**1023``:
    above that ``hi`` rounds to ``2**1024`` (:func:`two_prod` never scales back the halves,
    so it has no such limit).
    """
    a = _f64(a)
    big = np.abs(a) > _SPLIT_MAX
    if not big.any():
        return _split(a)
    s = np.where(big, 2.0**-28, 1.0)
    hi, lo = _split(a * s)
    return hi / s, lo / s


def two_prod(a, b):
    """Exact product ``(p, e)``: ``p = fl(a*b)``, ``p + e == a*b`` (Dekker, no FMA).

    Exact for finite ``a, b`` with ``|a*b| < 2**1023`` and ``a*b == 0`` or
    ``|a*b| >= 2**-968``. Operands above ``2**996`` are pre-scaled by ``2**-28`` so that
    Veltkamp's split cannot overflow.
    """
    a, b = _f64(a), _f64(b)
    big_a = np.abs(a) > _SPLIT_MAX
    big_b = np.abs(b) > _SPLIT_MAX
    if not (big_a.any() or big_b.any()):
        return _two_prod(a, b)
    sa = np.where(big_a, 2.0**-28, 1.0)
    sb = np.where(big_b, 2.0**-28, 1.0)
    p, e = _two_prod(a * sa, b * sb)  # the product of the scaled operands, exactly
    back = 1.0 / (sa * sb)  # 1, 2**28 or 2**56, exact
    return p * back, e * back


# ============================================================================ dd arithmetic


def _dd_add_d(ah, al, b):
    """DWPlusFP (JMP Alg. 4): relative error <= 2u^2."""
    sh, sl = _two_sum(ah, b)
    return _fast_two_sum(sh, al + sl)


def _dd_add(ah, al, bh, bl):
    """AccurateDWPlusDW (JMP Alg. 6): relative error <= 3u^2/(1-4u)."""
    sh, sl = _two_sum(ah, bh)
    th, tl = _two_sum(al, bl)
    vh, vl = _fast_two_sum(sh, sl + th)
    return _fast_two_sum(vh, tl + vl)


def _dd_mul_d(ah, al, b):
    """DWTimesFP1 (JMP Alg. 7): relative error <= 1.5u^2 + 4u^3."""
    ch, cl1 = _two_prod(ah, b)
    th, tl1 = _fast_two_sum(ch, al * b)
    return _fast_two_sum(th, tl1 + cl1)


def _dd_mul_s(ah, al, ahh, ahl, bh, bl):
    """DWTimesDW1 (JMP Alg. 10), ``ah`` already split into ``ahh + ahl``: <= 7u^2."""
    bhh, bhl = _split(bh)
    ch, cl1 = _two_prod_s(ah, ahh, ahl, bh, bhh, bhl)
    cl3 = cl1 + (ah * bl + al * bh)
    return _fast_two_sum(ch, cl3)


def _dd_mul(ah, al, bh, bl):
    """DWTimesDW1 (JMP Alg. 10): relative error <= 7u^2."""
    ahh, ahl = _split(ah)
    return _dd_mul_s(ah, al, ahh, ahl, bh, bl)


def _dd_div(ah, al, bh, bl):
    """DWDivDW2 (JMP Alg. 17) with DWTimesFP1: relative error <= 15u^2 + 56u^3."""
    th = ah / bh
    rh, rl = _dd_mul_d(bh, bl, th)
    d = (ah - rh) + (al - rl)
    return _fast_two_sum(th, d / bh)


def dd_normalize(hi, lo):
    """Exact renormalization: the normalized dd with value ``hi + lo`` (a 2Sum)."""
    return _two_sum(_f64(hi), _f64(lo))


def dd_add_d(ahi, alo, b):
    """``(ahi + alo) + b`` for a dd and a float64; relative error <= ``ADD_D_REL``."""
    return _dd_add_d(_f64(ahi), _f64(alo), _f64(b))


def dd_add(ahi, alo, bhi, blo):
    """``a + b`` for two dd; relative error <= ``ADD_REL`` (= 3u^2/(1-4u), rounded up)."""
    return _dd_add(_f64(ahi), _f64(alo), _f64(bhi), _f64(blo))


def dd_sub(ahi, alo, bhi, blo):
    """``a - b`` for two dd; relative error <= ``ADD_REL``."""
    return _dd_add(_f64(ahi), _f64(alo), -_f64(bhi), -_f64(blo))


def _unit(hi, lo):
    """(hi, lo) = (h, l) * 2**e with h in [0.5, 1) (exact unless lo underflows)."""
    f, e = np.frexp(hi)
    return f, np.ldexp(lo, -e), e


def _rescale(zh, zl, e):
    """(zh, zl) * 2**e, renormalized (exact unless the result leaves the normal range)."""
    return _two_sum(np.ldexp(zh, e), np.ldexp(zl, e))


def dd_mul_d(ahi, alo, b):
    """``(ahi + alo) * b`` for a dd and a float64; relative error <= ``MUL_D_REL``.

    The operands are scaled to ``[0.5, 1)`` and the result scaled back, so any finite
    operands are accepted; a result below ``2**-968`` gets an extra absolute error of at
    most ``2**-1074`` (the low word's rounding to the subnormal grid).
    """
    ah, al, ea = _unit(_f64(ahi), _f64(alo))
    bh, eb = np.frexp(_f64(b))
    with np.errstate(over="ignore", invalid="ignore"):
        return _rescale(*_dd_mul_d(ah, al, bh), ea + eb)


def dd_mul(ahi, alo, bhi, blo):
    """``a * b`` for two dd; relative error <= ``MUL_REL`` (= 7u^2). Operand range and
    underflow as :func:`dd_mul_d`."""
    ah, al, ea = _unit(_f64(ahi), _f64(alo))
    bh, bl, eb = _unit(_f64(bhi), _f64(blo))
    with np.errstate(over="ignore", invalid="ignore"):
        return _rescale(*_dd_mul(ah, al, bh, bl), ea + eb)


def dd_div(ahi, alo, bhi, blo):
    """``a / b`` for two dd; relative error <= ``DIV_REL`` (= 15u^2 + 56u^3, rounded up).
    Operand range and underflow as :func:`dd_mul_d`."""
    ah, al, ea = _unit(_f64(ahi), _f64(alo))
    bh, bl, eb = _unit(_f64(bhi), _f64(blo))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _rescale(*_dd_div(ah, al, bh, bl), ea - eb)


# ============================================================================ sum


def dd_sum_bound(n: int) -> float:
    """Factor ``F`` with ``|dd_sum - exact| <= F * fl(sum |hi_i|)`` for ``n`` terms.

    ``gamma_D = D*ADD_REL/(1 - D*ADD_REL)`` with ``D = ceil(log2 n)``, times ``(1 + u)``
    (``sum|x_i| <= (1+u) sum|hi_i|``), divided by ``1 - (n-1)u`` (the float64 sum of
    ``n`` non-negative terms is at least that fraction of the exact one), times
    ``1 + 2**-40`` for the few roundings in computing ``F`` and ``F * sum``.
    """
    if n <= 1:
        return 0.0
    if (n - 1) * U >= 0.5:
        return math.inf
    depth = (n - 1).bit_length()  # ceil(log2 n)
    g = depth * ADD_REL / (1.0 - depth * ADD_REL)
    return g * (1.0 + U) / (1.0 - (n - 1) * U) * (1.0 + 2.0**-40)


def dd_sum(hi, lo=None, axis: int = -1):
    """Sum of dd values along ``axis``: ``(shi, slo, err)`` with ``|shi + slo - exact| <=
    err`` (see :func:`dd_sum_bound`). The inputs are renormalized (exactly) first."""
    hi = _f64(hi)
    lo = _lo_or_zero(hi, lo)
    hi, lo = np.broadcast_arrays(hi, lo)
    hi, lo = _two_sum(np.moveaxis(hi, axis, -1), np.moveaxis(lo, axis, -1))
    n = hi.shape[-1]
    abs_sum = np.sum(np.abs(hi), axis=-1)
    if n == 0:
        z = np.zeros(hi.shape[:-1])
        return z, z.copy(), z.copy()
    while hi.shape[-1] > 1:
        if hi.shape[-1] % 2:
            pad = np.zeros(hi.shape[:-1] + (1,))
            hi = np.concatenate([hi, pad], axis=-1)
            lo = np.concatenate([lo, pad], axis=-1)
        hi, lo = _dd_add(hi[..., 0::2], lo[..., 0::2], hi[..., 1::2], lo[..., 1::2])
    err = abs_sum * dd_sum_bound(n)
    return hi[..., 0], lo[..., 0], err


# ============================================================================ blocks


def _blockwise(fn, *arrays):
    """Apply ``fn`` (1-D arrays in, tuple of 1-D arrays out) block by block."""
    n = arrays[0].size
    if n <= _BLOCK:
        return fn(*arrays)
    outs = None
    for start in range(0, n, _BLOCK):
        sl = slice(start, start + _BLOCK)
        res = fn(*(a[sl] for a in arrays))
        if outs is None:
            outs = [np.empty(n, dtype=r.dtype) for r in res]
        for o, r in zip(outs, res):
            o[sl] = r
    return tuple(outs)


def _prepare(hi, lo):
    """Broadcast, flatten and (exactly) renormalize a dd argument: (shape, hi, lo)."""
    hi = _f64(hi)
    if lo is None:
        return hi.shape, hi.ravel(), np.zeros(hi.size)
    hi, lo = np.broadcast_arrays(hi, _f64(lo))
    shape = hi.shape
    hi, lo = hi.ravel(), lo.ravel()
    with np.errstate(invalid="ignore", over="ignore"):
        s, e = _two_sum(hi, lo)
        fin = np.isfinite(s) & np.isfinite(e)
        return shape, np.where(fin, s, hi + lo), np.where(fin, e, 0.0)


# ============================================================================ exp


def _exp_core(xh, xl):
    """``exp(xh + xl) = (mh + ml) * 2**q`` for finite ``|xh| <= 2**17``; see module doc."""
    k = np.rint((xh + xl) * _EXP_INV)
    # r = x - k*C, C = C1 + C2 + C3 + C4: the k*Ci (i < 4) are exact, and so are the 2Sums
    s, e1 = _two_sum(xh, k * -_C1)
    s, e2 = _two_sum(s, k * -_C2)
    rh, rl = _two_sum(s, k * -_C3)
    p4, e4 = _two_prod(k, -_C4)
    for y in (e2, e1, xl, p4, e4):
        rh, rl = _dd_add_d(rh, rl, y)
    # S1 = sum_{i=1..10} r**(i-1)/i!: terms i >= 7 in float64, then dd Horner
    t = _EXP_C[10][0]
    for i in (9, 8, 7):
        t = _EXP_C[i][0] + rh * t
    sh, sl = _dd_mul_d(rh, rl, t)
    rhh, rhl = _split(rh)
    for i in (6, 5, 4, 3, 2, 1):
        if i < 6:
            sh, sl = _dd_mul_s(rh, rl, rhh, rhl, sh, sl)
        ch, cl = _EXP_C[i]
        sh, sl = _dd_add(sh, sl, ch, cl) if cl else _dd_add_d(sh, sl, ch)
    eh, el = _dd_mul_s(rh, rl, rhh, rhl, sh, sl)  # E = expm1(r)
    tiny = np.abs(rh) < _SERIES_CUT
    eh = np.where(tiny, rh, eh)
    el = np.where(tiny, rl, el)
    j = np.mod(k, 64.0)
    q = ((k - j) * (1.0 / 64.0)).astype(np.int64)
    ji = j.astype(np.intp)
    th, tl = _EXP_T_HI[ji], _EXP_T_LO[ji]
    ph, pl = _dd_mul(th, tl, eh, el)
    mh, ml = _dd_add(th, tl, ph, pl)
    return mh, ml, q


def dd_exp_parts(x, xlo=None):
    """``exp(x) = (mhi + mlo) * 2**e``, relative error <= ``EXP_REL``, for ``|x| <= 2**17``.

    ``x`` is a float64 array (or the high words of a dd with low words ``xlo``). ``mhi``
    lies in ``[0.99, 2)`` and ``e`` is an int64 array. ``x = -inf`` gives ``(0, 0, 0)``,
    NaN gives NaN mantissas; a finite ``|x| > 2**17`` or ``x = +inf`` raises ValueError.
    No underflow or overflow can occur: the engine can take exact ratios/sums of
    mantissas and apply the power of two (or round to a target format) itself.
    """
    shape, xh, xl = _prepare(x, xlo)
    if np.any((np.abs(xh) > _EXP_PARTS_MAX) & (xh != -np.inf)):
        raise ValueError("dd_exp_parts: needs |x| <= 2**17 (or x = -inf)")
    ninf = xh == -np.inf
    nan = np.isnan(xh)
    bad = ninf | nan
    xs = np.where(bad, 0.0, xh)
    xls = np.where(bad, 0.0, xl)
    with np.errstate(all="ignore"):
        mh, ml, q = _blockwise(_exp_core, xs, xls)
    mh = np.where(ninf, 0.0, np.where(nan, np.nan, mh))
    ml = np.where(ninf, 0.0, np.where(nan, np.nan, ml))
    q = np.where(bad, 0, q)
    return mh.reshape(shape), ml.reshape(shape), q.reshape(shape)


def dd_exp(x, xlo=None):
    """``exp(x)`` as a dd ``(hi, lo, err)`` with ``|hi + lo - exp(x)| <= err``.

    ``x`` is float64 (or a dd with low words ``xlo``), mainly ``x <= 0``. See the module
    docstring for the bound: ``err = EXP_REL (1+2**-48) |hi| + 2**-1072``; below
    ``EXP_UNDERFLOW_X`` the result is ``0`` with ``err = EXP_UNDERFLOW_ERR``; overflow
    gives ``hi = inf``, ``err = inf``; ``exp(-inf) = 0`` exactly.
    """
    shape, xh, xl = _prepare(x, xlo)
    nan = np.isnan(xh)
    under = xh < EXP_UNDERFLOW_X
    over = xh > _EXP_OVERFLOW_X
    bad = nan | under | over
    xs = np.where(bad, 0.0, xh)
    xls = np.where(bad, 0.0, xl)
    with np.errstate(all="ignore"):
        mh, ml, q = _blockwise(_exp_core, xs, xls)
        hi = np.ldexp(mh, q)
        lo = np.ldexp(ml, q)
        big = np.isinf(hi)
        hi, lo = _two_sum(hi, lo)  # exact; renormalizes after subnormal roundings
        err = np.abs(hi) * (EXP_REL * _ERR_SLACK) + _EXP_TINY_ABS
    over = over | big
    hi = np.where(over, np.inf, np.where(under, 0.0, hi))
    lo = np.where(over | under, 0.0, lo)
    err = np.where(over, np.inf, np.where(under, EXP_UNDERFLOW_ERR, err))
    err = np.where(np.isinf(xh), 0.0, err)  # exp(-inf) = 0 and exp(inf) = inf exactly
    hi = np.where(nan, np.nan, hi)
    lo = np.where(nan, np.nan, lo)
    err = np.where(nan, np.nan, err)
    return hi.reshape(shape), lo.reshape(shape), err.reshape(shape)


# ============================================================================ log


def _log1p_small(vh, vl):
    """``log1p(v)`` for ``|v| <= 0.0055`` as a dd: ``v + v**2 S'(v)``; see module doc."""
    t = _LOG_S[12][0]
    for i in (11, 10, 9, 8, 7):
        t = _LOG_S[i][0] + vh * t
    sh, sl = _dd_mul_d(vh, vl, t)
    vhh, vhl = _split(vh)
    for i in (6, 5, 4, 3, 2, 1, 0):
        if i < 6:
            sh, sl = _dd_mul_s(vh, vl, vhh, vhl, sh, sl)
        ch, cl = _LOG_S[i]
        sh, sl = _dd_add(sh, sl, ch, cl) if cl else _dd_add_d(sh, sl, ch)
    wh, wl = _dd_mul_s(vh, vl, vhh, vhl, sh, sl)
    wh, wl = _dd_mul_s(vh, vl, vhh, vhl, wh, wl)
    lh, ll = _dd_add(vh, vl, wh, wl)
    tiny = np.abs(vh) < _SERIES_CUT
    return np.where(tiny, vh, lh), np.where(tiny, vl, ll)


def _log_core(c0, th, tl, approx):
    """``log(c0 + th + tl)`` (``c0`` is 0 or 1) for a positive finite value whose float64
    approximation ``approx`` has relative error <= 2**-50; see the module docstring."""
    f, e = np.frexp(approx)
    low = f < _SQRT_HALF
    m = np.where(low, 2.0 * f, f)
    q = np.where(low, e - 1, e)
    j = np.rint(m * 128.0).astype(np.intp)
    r = _LOG_R[j]
    # v = r * 2**-q * (c0 + th + tl) - 1, as an exact sum of 2Sum / 2Prod pairs
    p1, p2 = _two_sum(r * np.ldexp(c0, -q), -1.0)
    b1, b2 = _two_prod(r, np.ldexp(th, -q))
    c1, c2 = _two_prod(r, np.ldexp(tl, -q))
    vh, vl = _dd_add(p1, p2, b1, b2)
    vh, vl = _dd_add(vh, vl, c1, c2)
    lh, ll = _log1p_small(vh, vl)
    kh, kl = _dd_mul_d(LN2_HI, LN2_LO, q.astype(np.float64))
    kh, kl = _dd_add(kh, kl, -_LOG_LR_HI[j], -_LOG_LR_LO[j])
    return _dd_add(kh, kl, lh, ll)


def _log_err(hi):
    err = np.abs(hi) * (LOG_REL * _ERR_SLACK) + 2.0**-1074
    return np.where(hi == 0, 0.0, err)


def dd_log1p(t, tlo=None):
    """``log(1 + t)`` for a dd ``t > -1`` as ``(hi, lo, err)``, ``|hi + lo - log1p(t)| <=
    err = LOG_REL (1+2**-48) |hi| + 2**-1074`` (0 for an exact 0). ``1 + t`` is never
    rounded, so tiny ``t`` keep full relative accuracy (``log1p(1e-300) ~ 1e-300``)."""
    shape, th, tl = _prepare(t, tlo)
    nan = np.isnan(th) | (th < -1.0) | ((th == -1.0) & (tl < 0))
    minus1 = (th == -1.0) & (tl == 0)
    pinf = th == np.inf
    zero = th == 0
    bad = nan | minus1 | pinf | zero
    ths = np.where(bad, 1.0, th)
    tls = np.where(bad, 0.0, tl)
    with np.errstate(all="ignore"):
        # th in [-1, -0.5]: 1 + th is exact (Sterbenz), so log1p(t) = log(dd(1 + th, tl))
        near = ths <= -0.5
        s, e = _two_sum(1.0, ths)
        ah, al = _two_sum(1.0 + ths, tls)
        c0 = np.where(near, 0.0, 1.0)
        xh = np.where(near, ah, ths)
        xl = np.where(near, al, tls)
        approx = np.where(near, ah, s + (e + tls))
        hi, lo = _blockwise(_log_core, c0, xh, xl, approx)
    hi = np.where(zero, th, hi)
    lo = np.where(zero, 0.0, lo)
    hi = np.where(pinf, np.inf, np.where(minus1, -np.inf, hi))
    lo = np.where(pinf | minus1, 0.0, lo)
    err = _log_err(hi)
    err = np.where(pinf | minus1, 0.0, err)
    hi, lo, err = (np.where(nan, np.nan, a) for a in (hi, lo, err))
    return hi.reshape(shape), lo.reshape(shape), err.reshape(shape)


def dd_log(a, alo=None):
    """``log(a)`` for a dd ``a > 0`` as ``(hi, lo, err)``; bound as :func:`dd_log1p`.
    ``log(0) = -inf``, ``log(inf) = inf`` (``err = 0``), negative or NaN gives NaN."""
    shape, ah, al = _prepare(a, alo)
    nan = np.isnan(ah) | (ah < 0)
    zero = ah == 0
    pinf = ah == np.inf
    bad = nan | zero | pinf
    ahs = np.where(bad, 1.0, ah)
    als = np.where(bad, 0.0, al)
    with np.errstate(all="ignore"):
        hi, lo = _blockwise(_log_core, np.zeros_like(ahs), ahs, als, ahs)
    hi = np.where(pinf, np.inf, np.where(zero, -np.inf, hi))
    lo = np.where(pinf | zero, 0.0, lo)
    err = np.where(pinf | zero, 0.0, _log_err(hi))
    hi, lo, err = (np.where(nan, np.nan, x) for x in (hi, lo, err))
    return hi.reshape(shape), lo.reshape(shape), err.reshape(shape)


# ============================================================================ conversion


def _frac2(h: float, l: float):
    if math.isfinite(h) and math.isfinite(l):
        return Fraction(h) + Fraction(l)
    return h + l


_FRAC2 = np.frompyfunc(_frac2, 2, 1)


def to_fraction(hi, lo=None):
    """Exact value(s) of dd ``hi + lo`` as :class:`~fractions.Fraction` (an object array
    with the broadcast shape; a non-finite element stays a float). Python-level loop:
    meant for tests and for the few elements handed to an exact tier."""
    hi = _f64(hi)
    return _FRAC2(hi, _lo_or_zero(hi, lo))

"""The engine's own float64 exponential of non-positive arguments, and its ``log1p`` on
``[0, 1]`` and on ``[0, ∞)`` (below), in plain numpy.

``np.exp`` is a libm or SIMD routine whose last bits depend on the build; the engine's
compiled path (:mod:`xentconf.oracle.accel`) must give the very same values, so both paths
evaluate this fixed sequence of float64 operations (``+ − ×`` only, each rounded once, no
fused multiply-add) for ``d ≤ 0`` (``−inf`` allowed, no NaN):

1. ``dd = max(d, −800)``: below −800 the result is 0 either way (``e^−800 < 2^−1154``).
2. ``kf = (dd·INV_LN2 + SH) − SH`` with ``SH = 1.5·2^52``: an integer (the sum lies in
   ``[2^52, 2^53)`` where the spacing is 1), ``|kf| ≤ 1155``, ``|dd/ln2 − kf| ≤ 1/2 + 3e-13``.
3. ``r = (dd − kf·LN2_HI) − kf·LN2_LO``. ``LN2_HI`` has 42 significant bits, so ``kf·LN2_HI``
   is exact (≤ 53 bits) and so is ``dd − kf·LN2_HI`` (Sterbenz: for ``kf ≠ 0`` the two are
   within a factor 2 of each other). ``|ln2 − LN2_HI − LN2_LO| < 2^-102``. Hence
   ``|r| ≤ R = 0.34658`` and ``|r − (dd − kf·ln2)| ≤ u·|r| + 1155·(u·2^-44 + 2^-102)``.
4. ``Q(r) = Σ_{i=0}^{11} c_{i+2} r^i`` with ``c_k = fl(1/k!)`` by Estrin's scheme:
   ``a_j = c_{2j+2} + c_{2j+3}·r``, ``r2 = r·r``, ``b_j = a_{2j} + a_{2j+1}·r2``,
   ``r4 = r2·r2``, ``q = (b0 + b1·r4) + b2·(r4·r4)``; then ``p = 1 + (r + r2·q)``.
5. ``e = (p · 2^k1) · 2^k2`` with ``k1 = kf >> 1``, ``k2 = kf − k1`` (both ≥ −578, so the
   powers of two are normal numbers, built from their bits). Both products are exact
   unless the result is subnormal; then the second one rounds once, by ≤ 2^-1075.

Error bound (``u = 2^-53``; every bound below is first order, the ``O(u²)`` terms are far
inside the rounding up to ``EXP_REL``):

* truncation: ``Σ_{k≥14} R^k/k! ≤ 4.3e-18``, ≤ 0.054u relative (``e^r ≥ e^-R = 0.707``);
  coefficient rounding: ``Σ |c_k − 1/k!| R^k ≤ 0.004u``.
* ``Q``: a term ``c_{i+2} r^i`` passes through ``n_i = 4, 5, …, 11, 11, 12, 13, 14``
  roundings (``i = 0..11``: counted along the scheme, powers of ``r`` included), so
  ``|q − Q| ≤ Σ n_i·u·|c_{i+2}| R^i ≤ 2.32u``, i.e. ≤ 5.2u relative (``Q ≥ 0.4469`` on
  ``[−R, R]``).
* ``t2 = r2·q``: ≤ 7.2u relative; ``w = r + t2``: ``|t2| ≤ 0.184·|w|`` on ``[−R, R]``, so
  ``|ŵ − w| ≤ u|w| + 7.2u·0.184|w| ≤ 2.33u·|w|``.
* ``p = 1 + ŵ``: ``|p̂ − e^r| ≤ u·e^r + 2.33u·|w| + 4.3e-18 + 0.004u``, and
  ``|w|/e^r = |1 − e^-r| ≤ 0.4143``: ≤ 2.03u relative.
* the reduction error of step 3 changes ``e^r`` by ≤ 0.347u relative.

Total: ``|e − e^d| ≤ 2.4u·e^d + 2^-1075`` (the last term only for subnormal results and
for ``d < −745``, where ``e^d < 2^-1075``). ``EXP_REL = 3u`` is claimed, with room;
the engine's bounds use ``C_FN = 4u ≥ EXP_REL``. ``d = 0`` gives exactly 1.
Tests hold this bound against mpmath on many points, the extremes included.

``log1p_unit(e)`` for float64 ``e`` in ``[0, 1]`` (the C = 2 loss's ``log1p(e^−|d|)``;
``np.log1p`` is a SIMD routine that a compiled loop cannot call, and calling it between
two compiled kernels cost each block two hand-overs of Python's lock), by this fixed
sequence (``+ − × ÷``, each rounded once, no fused multiply-add):

1. ``big = e ≥ 1/2``; ``f = (e − 1)·½`` if big, else ``e``. Exact: ``e − 1`` by Sterbenz,
   the halving by a power of two (``f ≥ −¼`` is a multiple of ``2^-54``). Then
   ``log1p(e) = ln 2 + log1p(f)`` if big, else ``log1p(f)``, with ``f ∈ [−¼, ½)``.
2. ``s = f / (2 + f)`` (two roundings: ``|ŝ − s| ≤ 2u·|s|``), ``|s| ≤ 0.2``;
   ``z = ŝ·ŝ`` (``≤ 5u`` relative), ``z ≤ 0.04``.
3. ``H = A1 + z·(A2 + z·(… + z·A11))`` (Horner) with ``A_k = fl(2/(2k + 1))``,
   ``R = z·H``. Since ``2 atanh s = log1p(f)`` and ``2s = f − s·f``:
   ``log1p(f) = f − s·(f − R∞)`` with ``R∞ = Σ_{k≥1} 2z^k/(2k + 1)``.
4. ``t = f − R``, ``c = ŝ·t``, ``l = f − c``; the result is ``l`` (``big`` false) or
   ``LN2_F64 + (l + LN2_TAIL)`` with ``LN2_F64 = fl(ln 2)``, ``LN2_TAIL = fl(ln 2 −
   LN2_F64)`` (``|ln 2 − LN2_F64 − LN2_TAIL| < 2^-110``).

Error bound (first order, as above):

* truncation: the tail of ``R∞`` past ``k = 11`` is ``≤ 2z^12/25/(1 − z)``; times
  ``|s| ≤ f/2`` against ``log1p(f) ≥ 0.81f`` that is ≤ 0.008u relative.
* ``H``: each Horner step adds ``z·H_{j+1} ≤ (z/(1 − z))·H_j ≤ 0.042·H_j``, so its
  rounding errors stay ``≤ 1.09u·H``; ``z``'s ``5u`` moves ``H`` by ``≤ 0.23u·H``; the
  rounded ``A_k`` by ``≤ u·H``. ``R = z·H``: ``≤ 5u + 2.32u + u = 8.32u`` relative.
* not big (``0 ≤ f < ½``): ``R ≤ (2z/3)/(1 − z) ≤ 0.174f² ≤ 0.087f`` (``z ≤ f²/4``),
  so ``t = f − R ≥ 0.913f`` is within ``u·t + 8.32u·R ≤ 1.79u·t``; ``c`` within
  ``2u + 1.79u + u = 4.79u`` relative; ``c = f − log1p(f) ≤ 0.233·log1p(f)`` (at
  ``f → ½``; the ratio grows with ``f``), so ``l`` is within
  ``u + 0.233·4.79u + 0.008u ≤ 2.13u`` relative.
* big (``−¼ ≤ f ≤ 0``): ``R ≤ 0.0556|f|``, ``|t| = |f| + R``: ``t`` within ``1.47u``,
  ``c`` within ``4.47u``, ``c ≤ 0.131|l|`` (at ``f = −¼``; no cancellation, ``l`` and
  ``−c`` have one sign): ``l`` within ``1.59u·|l|``. Then ``l + LN2_TAIL`` adds
  ``u·|l|``, the last sum ``u·y`` (``y = log1p(e) ∈ [0.405, ln 2]``), and
  ``|l|/y ≤ 0.2877/0.4055 = 0.71``: ``≤ u + 0.71·2.59u ≤ 2.84u`` relative.

Tiny ``e`` (``s``, ``c`` subnormal or 0) leaves ``l = f = e`` up to ``e²/2``, far inside.
``LOG1P_REL = 3u`` is claimed (≥ 2.84u derived); the engine's bounds use
``C_FN = 4u ≥ LOG1P_REL``. ``log1p_unit(0) = 0`` and ``log1p_unit(1) = fl(ln 2)``.
Tests hold this bound against mpmath on many points, the ends and the switch included.

``log1p_pos(t)`` for float64 ``t ≥ 0`` (a row's ``log1p(Σ_{j≠k} e_j)``, ``t ≤ C − 1``): the
value of ``log1p_unit(t)`` for ``t ≤ 1``, else by this fixed sequence:

1. ``s = t + 1``, ``err = 1 − (s − t)``: ``s + err = 1 + t`` exactly (Fast2Sum, ``t ≥ 1``).
2. ``s = 2^k·g`` with ``g ∈ [1, 2)`` (from the bits: exact, ``k ≥ 1``); if ``g ≥ 3/2``,
   ``g = g·½`` and ``k = k + 1``. So ``g ∈ [¾, 3/2)`` and ``f = g − 1 ∈ [−¼, ½)`` is exact
   (Sterbenz).
3. ``l`` from ``f`` by steps 2–4 of ``log1p_unit`` (its ``l``, before any ``ln 2``).
4. ``y = k·LN2_HI + ((l + err/s) + k·LN2_LO)``; ``k·LN2_HI`` is exact (42 + 11 bits).

Error bound: ``log1p(t) = k ln 2 + log1p(f) + log1p(err/s)`` with ``|err/s| ≤ u``, so
``err/s`` (one rounding) is within ``O(u²)``; ``|ln 2 − LN2_HI − LN2_LO| < 2^-102`` and
``k·LN2_LO ≤ 2^11·5.5e-14`` add ``≤ 2^-91`` and its rounding. With ``l`` within
``2.13u·|l|`` (above), the two inner sums ``u·|l|`` each and the last one ``u·y``:
``|ŷ − y| ≤ u·y + 4.13u·|l|``. Here ``|l|/y ≤ 0.369`` (``k = 1``: ``f ≥ 0``,
``l/(ln 2 + l) ≤ 0.405/1.099``; ``k ≥ 2``: ``|l| ≤ 0.405``, ``y ≥ 2 ln 2 − 0.288``), so
``≤ 2.53u`` relative, under ``LOG1P_REL``. ``+inf`` gives ``+inf``.
"""

from __future__ import annotations

import numpy as np

U = 2.0 ** -53
# The engine's summation order, shared by its numpy path and the compiled kernel:
LANES = 8  # width of the chunks the engine sums as vectors
SEG = 1024  # elements per segment of the kernel: a power of two times LANES
EXP_REL = 3 * U  # relative error bound of exp_nonpos (derived above)
EXP_ABS = 2.0 ** -1074  # absolute slack (≥ the 2**-1075 derived; that one is not a float64)
CLAMP = -800.0
SH = 6755399441055744.0  # 1.5 · 2**52
INV_LN2 = float.fromhex("0x1.71547652b82fep+0")
LN2_HI = float.fromhex("0x1.62e42fefa3800p-1")  # ln 2 to 42 significant bits
LN2_LO = float.fromhex("0x1.ef35793c76730p-45")  # ln 2 − LN2_HI, rounded
# fl(1/k!) for k = 2..13
C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13 = (
    0.5, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040, 1 / 40320, 1 / 362880, 1 / 3628800,
    1 / 39916800, 1 / 479001600, 1 / 6227020800)


LOG1P_REL = 3 * U  # relative error bound of log1p_unit (derived above)
LN2_F64 = float.fromhex("0x1.62e42fefa39efp-1")  # ln 2 rounded
LN2_TAIL = float.fromhex("0x1.abc9e3b39803fp-56")  # ln 2 − LN2_F64, rounded
# fl(2/(2k + 1)) for k = 1..11: log1p(f) = 2 atanh(f/(2 + f)) in powers of z = s²
A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11 = (2 / (2 * k + 1) for k in range(1, 12))


CHUNK = 8192  # elements per pass: the ~10 temporaries stay in the L2 cache


def exp_nonpos(d: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``exp(d)`` for float64 ``d ≤ 0`` (``−inf`` allowed; no NaN), by the fixed sequence of
    operations above: within ``EXP_REL`` relative plus ``EXP_ABS`` absolute, and bit for
    bit the values of the compiled path. Evaluated in chunks of ``CHUNK`` elements with
    reused temporaries (about 30 numpy passes each, all in cache). ``out`` (a C-contiguous
    float64 array of ``d``'s shape, ``d`` itself allowed) receives the result."""
    d = np.ascontiguousarray(d, dtype=np.float64)
    flat = d.reshape(-1)
    res = np.empty_like(d) if out is None else out
    out = res.reshape(-1)  # a view: C-contiguous
    n = flat.size
    size = min(n, CHUNK)
    f = [np.empty(size) for _ in range(7)]
    ki, k1 = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        m = hi - lo
        dd, kf, r, r2, t, b1, b2 = (a[:m] for a in f)
        _exp_chunk(flat[lo:hi], out[lo:hi], dd, kf, r, r2, t, b1, b2, ki[:m], k1[:m])
    return res


def _exp_chunk(d, b0, dd, kf, r, r2, t, b1, b2, k, k1) -> None:
    """One chunk of :func:`exp_nonpos` into ``b0`` (may be ``d``: read first, then free;
    every other argument is scratch)."""
    np.maximum(d, CLAMP, out=dd)
    np.multiply(dd, INV_LN2, out=kf)
    kf += SH
    kf -= SH
    np.multiply(kf, LN2_HI, out=r)
    np.subtract(dd, r, out=r)
    np.multiply(kf, LN2_LO, out=t)
    r -= t  # r = (dd − kf·LN2_HI) − kf·LN2_LO
    np.multiply(r, r, out=r2)

    def lin(c0, c1, out):  # c0 + c1·r
        np.multiply(r, c1, out=out)
        out += c0
        return out

    # Estrin: b_j = a_{2j} + a_{2j+1}·r2 with a_j = c_{2j+2} + c_{2j+3}·r
    lin(C2, C3, b0)
    b0 += np.multiply(lin(C4, C5, t), r2, out=t)
    lin(C6, C7, b1)
    b1 += np.multiply(lin(C8, C9, t), r2, out=t)
    lin(C10, C11, b2)
    b2 += np.multiply(lin(C12, C13, t), r2, out=t)
    r4 = np.multiply(r2, r2, out=t)
    b1 *= r4
    b0 += b1  # b0 + b1·r4
    np.multiply(r4, r4, out=r4)  # r8
    b2 *= r4
    b0 += b2  # q
    b0 *= r2
    b0 += r  # w = r + r2·q
    b0 += 1.0  # p
    k[...] = kf  # an integer already: exact
    np.right_shift(k, 1, out=k1)
    k -= k1
    k1 += 1023
    k1 <<= 52
    k += 1023
    k <<= 52
    b0 *= k1.view(np.float64)  # 2**k1
    b0 *= k.view(np.float64)  # 2**(kf − k1)


def log1p_unit(e: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``log1p(e)`` for float64 ``e`` in ``[0, 1]``, by the fixed sequence of operations of
    the module's docstring: within ``LOG1P_REL`` relative, and bit for bit the values of
    the compiled path (``_kernels._log1p_unit``). In chunks of ``CHUNK`` elements with
    reused temporaries; ``out`` (C-contiguous float64 of ``e``'s shape, ``e`` itself
    allowed) receives the result."""
    e = np.ascontiguousarray(e, dtype=np.float64)
    flat = e.reshape(-1)
    res = np.empty_like(e) if out is None else out
    out = res.reshape(-1)
    n = flat.size
    size = min(n, CHUNK)
    f, s, z, h = (np.empty(size) for _ in range(4))
    big = np.empty(size, dtype=bool)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        m = hi - lo
        _log1p_chunk(flat[lo:hi], out[lo:hi], f[:m], s[:m], z[:m], h[:m], big[:m])
    return res


def log1p_pos(t: np.ndarray) -> np.ndarray:
    """``log1p(t)`` for float64 ``t ≥ 0`` (``+inf`` allowed), by the fixed sequence of
    operations of the module's docstring: ``log1p_unit(t)`` for ``t ≤ 1``; within
    ``LOG1P_REL`` relative, and bit for bit the values of the compiled path
    (``_kernels._log1p_pos``)."""
    t = np.ascontiguousarray(t, dtype=np.float64)
    y = log1p_unit(np.minimum(t, 1.0))
    big = t > 1.0
    if big.any():
        y[big] = _log1p_above_one(t[big])
    return y


def _log1p_above_one(t: np.ndarray) -> np.ndarray:
    """:func:`log1p_pos` for ``t > 1`` (steps 1–4 of its sequence)."""
    with np.errstate(all="ignore"):
        s = t + 1.0
        err = 1.0 - (s - t)
        g, k = np.frexp(s)  # s = g·2^k, g in [½, 1): the bits' g·2 and k − 1, exactly
        g = g * 2.0
        kf = (k - 1).astype(np.float64)
        hi = g >= 1.5
        g = np.where(hi, g * 0.5, g)
        kf = np.where(hi, kf + 1.0, kf)
        f = g - 1.0
        lf = np.empty_like(f)
        _log1p_reduced(f, lf, *(np.empty_like(f) for _ in range(3)))
        y = kf * LN2_HI + ((lf + err / s) + kf * LN2_LO)
        return np.where(t == np.inf, np.inf, y)


def _log1p_chunk(e, y, f, s, z, h, big) -> None:
    """One chunk of :func:`log1p_unit` into ``y`` (may be ``e``: read first)."""
    np.greater_equal(e, 0.5, out=big)
    np.subtract(e, 1.0, out=f)
    f *= 0.5
    np.copyto(f, e, where=~big)  # f = (e − 1)·½ where big, else e
    _log1p_reduced(f, y, s, z, h)  # l
    np.add(y, LN2_TAIL, out=h)
    h += LN2_F64  # LN2_F64 + (l + LN2_TAIL)
    np.copyto(y, h, where=big)


def _log1p_reduced(f, y, s, z, h) -> None:
    """Steps 2–4 of :func:`log1p_unit` for ``f ∈ [−¼, ½)``: ``log1p(f)`` as ``l``, into
    ``y`` (``s``, ``z``, ``h``: scratch)."""
    np.add(f, 2.0, out=s)
    np.divide(f, s, out=s)  # s = f / (2 + f)
    np.multiply(s, s, out=z)
    h.fill(A11)
    for a in (A10, A9, A8, A7, A6, A5, A4, A3, A2, A1):  # Horner
        h *= z
        h += a
    h *= z  # R
    np.subtract(f, h, out=h)  # t = f − R
    h *= s  # c
    np.subtract(f, h, out=y)  # l = f − c

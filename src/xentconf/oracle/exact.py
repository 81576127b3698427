"""The exact tier: exact real values of the loss formulas, and their correct rounding.

Every output element of every API is one of three exact forms over exact rational inputs
(float inputs are exact binary rationals):

``Const``     an exact rational, or NaN / ±inf;
``LinLog``    ``r + Σ_k c_k · log(X_k)`` with rationals ``r, c_k`` and ``X_k`` either a
              softmax partition ``s = Σ_j exp(d_j)`` (``d = z − max z``) or a positive
              rational — every loss, and every reduction of losses, has this shape;
``SoftAff``   ``r + c · (p_j − [minus_one])`` with ``p = softmax(z)`` — every backprop and
              gradient element of the logits path.

Terms with the same ``X`` are merged when a form is built, so a value that is exactly
rational (a loss of a single-class row, a weighted difference of two identical rows, the
sum of ``[1, −1]``-weighted copies) is recognised as such and rounded exactly, rather than
left to a precision race that could never end on a rounding midpoint. What remains is
transcendental (Lindemann–Weierstrass for ``log s`` and ``p_j`` with non-tied rows; Baker
for logs of rationals), hence never a dyadic rounding boundary, so Ziv's strategy ends.

Evaluation is mid-radius ("ball") arithmetic on mpmath's low-level ``mpf`` tuples at a
working precision ``prec``: each ball ``(m, r)`` encloses the exact value. The only
assumption is that mpmath's ``mpf_exp``/``mpf_log`` in round-to-nearest mode are within
one ulp of the working precision (they work with guard bits and are far better); every
other step is exact or a correctly rounded ``+ × ÷``. :func:`certify` raises ``prec``
until both ends of the ball round to the same value of the target format (Ziv), then
returns that value: one rounding, straight to the format.

No mpmath context is used at all, let alone the global ``mpmath.mp``: only the
``mpmath.libmp`` functions, which take the precision and rounding mode as arguments, so
nothing a caller does to mpmath's global precision can change an answer.
"""

from __future__ import annotations

import math
from fractions import Fraction

from mpmath.libmp import (
    fone,
    from_float,
    from_int,
    from_man_exp,
    from_rational,
    fzero,
    mpf_abs,
    mpf_add,
    mpf_cmp,
    mpf_div,
    mpf_exp,
    mpf_log,
    mpf_mul,
    mpf_neg,
    mpf_sub,
    round_ceiling,
    round_floor,
    round_nearest,
    to_str,
)

from .formats import Format, float_text, round_fraction, round_mpf

__all__ = [
    "Const",
    "LinLog",
    "LogRat",
    "OracleUncertain",
    "Partition",
    "SoftAff",
    "certify",
    "decimal_string",
    "frac",
]

MAX_PREC = 1 << 15  # Ziv gives up past this working precision (never reached in practice)


class OracleUncertain(ArithmeticError):
    """The exact tier could not decide a rounding within ``MAX_PREC`` bits."""


NAN = math.nan
INF = math.inf


def frac(x) -> Fraction | float:
    """Exact rational of a finite float/int (a Fraction), or the special float itself."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    x = float(x)
    if math.isfinite(x):
        return Fraction(x)
    return x


def _mpf_of_fraction(q: Fraction, prec: int, rnd=round_nearest) -> tuple:
    num, den = q.numerator, q.denominator
    if den & (den - 1) == 0:
        return from_man_exp(num, 1 - den.bit_length())  # exact
    return from_rational(num, den, prec, rnd)


def _is_exact_dyadic(q: Fraction) -> bool:
    return q.denominator & (q.denominator - 1) == 0


def _mag(t: tuple) -> int:
    """floor(log2|t|) + 1 for a non-zero finite mpf (an upper bound of its binary magnitude)."""
    return t[2] + t[3]


def _ulp_bound(t: tuple, prec: int) -> tuple:
    """An mpf upper bound of |t| * 2**(1-prec) (one ulp at precision prec)."""
    if t[1] == 0:
        return fzero
    return from_man_exp(1, _mag(t) - prec + 1)


def _pow2(k: int, mult: int = 1) -> tuple:
    """The mpf mult * 2**k (exact; never underflows, unlike a Python float)."""
    return from_man_exp(mult, k)


def _rel_rad(mid: tuple, rel: tuple) -> tuple:
    """An upper bound of |mid| * rel."""
    return mpf_mul(mpf_abs(mid), rel, 64, round_ceiling)


def _rad_add(*rs: tuple) -> tuple:
    acc = fzero
    for r in rs:
        acc = mpf_add(acc, r, 64, round_ceiling)
    return acc


class Ball:
    """An enclosure ``[mid - rad, mid + rad]`` of an exact real, in mpf tuples."""

    __slots__ = ("mid", "rad")

    def __init__(self, mid: tuple, rad: tuple = fzero):
        self.mid = mid
        self.rad = rad

    def ends(self) -> tuple[tuple, tuple]:
        """The exact ends ``mid ∓ rad`` (rad is a 64-bit bound, so this stays small)."""
        if self.rad == fzero:
            return self.mid, self.mid
        return mpf_sub(self.mid, self.rad, 0), mpf_add(self.mid, self.rad, 0)

    def scaled(self, c: Fraction, prec: int) -> Ball:
        """The ball times an exact rational."""
        if c == 1:
            return self
        cm = _mpf_of_fraction(c, prec)
        c_rad = fzero if _is_exact_dyadic(c) else _ulp_bound(cm, prec)
        mid = mpf_mul(self.mid, cm, prec, round_nearest)
        rad = _rad_add(
            mpf_mul(self.rad, mpf_abs(cm), 64, round_ceiling),
            mpf_mul(mpf_add(mpf_abs(self.mid), self.rad, 64, round_ceiling), c_rad, 64,
                    round_ceiling),
            _ulp_bound(mid, prec),
        )
        return Ball(mid, rad)


def _ball_sum(balls: list[Ball], prec: int) -> Ball:
    mid = fzero
    rads = []
    for b in balls:
        mid = mpf_add(mid, b.mid, prec, round_nearest)
        rads.append(b.rad)
        rads.append(_ulp_bound(mid, prec))
    return Ball(mid, _rad_add(*rads))



_GAP_LIMIT = 1 << 12  # beyond this many binades below r, T only matters through its sign


def _r_plus_t_ends(r: Fraction, t: Ball, prec: int) -> tuple[tuple, tuple]:
    """Ends of an enclosure of ``r + T`` for an exact rational ``r`` and a ball ``T``.

    ``T`` (the transcendental part) is enclosed to relative accuracy by its ball; ``r`` is
    added exactly when dyadic, so ``r + T`` is decided even when ``r`` is a rounding
    midpoint and ``T`` lies thousands of binades below it (a loss ``|d_y| + log1p(t)``
    with ``t = e^-28000``). When ``T`` is astronomically small against ``r`` only its sign
    matters: it is replaced by a stand-in of the same sign below every rounding boundary
    that ``r`` can be near, which leaves every rounding of ``r + T`` unchanged.
    """
    t_lo, t_hi = t.ends()
    if r == 0:
        return t_lo, t_hi
    num, den = r.numerator, r.denominator
    t_mag = max(_mag(v) for v in (t_lo, t_hi)) if (t_lo[1] or t_hi[1]) else None
    r_mag = num.bit_length() - den.bit_length() + 1
    if den & (den - 1) == 0:
        rm = from_man_exp(num, 1 - den.bit_length())
        if t_mag is None:
            return rm, rm
        if r_mag - t_mag > _GAP_LIMIT and (t_lo[0] == t_hi[0]) and t_lo[1] and t_hi[1]:
            e_st = min(rm[2], r_mag - 1200) - 4
            if t_mag < e_st:
                st = from_man_exp(-1 if t_lo[0] else 1, e_st - 1)
                v = mpf_add(rm, st, 0)
                return v, v
        return mpf_add(rm, t_lo, 0), mpf_add(rm, t_hi, 0)
    bits = prec + 64
    if t_mag is not None and r_mag - t_mag > 0:
        bits += min(r_mag - t_mag, _GAP_LIMIT)
    r_lo = from_rational(num, den, bits, round_floor)
    r_hi = from_rational(num, den, bits, round_ceiling)
    return (mpf_add(r_lo, t_lo, bits, round_floor), mpf_add(r_hi, t_hi, bits, round_ceiling))


# --------------------------------------------------------------------------- log args


class Partition:
    """A softmax row: ``d_j = z_j − max z`` (exact), ``s = Σ_j exp(d_j)``.

    ``d`` holds exact mpf tuples, ``None`` for a −inf logit (it contributes exp = 0);
    at least one entry is exactly zero (a maximum). Rows containing NaN or +inf, or only
    −inf, never become partitions: their outputs are NaN by TF's rules.
    """

    __slots__ = ("d", "k", "key", "degenerate", "n_finite", "n_max", "_cache")

    def __init__(self, d: list):
        self.d = d
        self.k = next(j for j, v in enumerate(d) if v is not None and v == fzero)
        finite = [v for v in d if v is not None]
        self.n_finite = len(finite)
        self.n_max = sum(1 for v in finite if v == fzero)  # tied maxima
        self.key = ("s", tuple(sorted(finite)))
        # all finite entries tied: p_j = 1/n exactly (rational), s = n
        self.degenerate = all(v == fzero for v in finite)
        self._cache: dict[int, tuple] = {}

    def _at(self, prec: int) -> tuple:
        """(e_j, t, log_s ball) at working precision prec, cached.

        e_j = exp(d_j) rounded to nearest (relative error ≤ 2**(1-prec), exact for d_j = 0
        and −inf); t = Σ_{j≠k} e_j with relative error ≤ (C + 3)·2**-prec; log s = log1p(t).
        """
        hit = self._cache.get(prec)
        if hit is not None:
            return hit
        wp = prec + 8
        e = [
            fzero if v is None else (fone if v == fzero else mpf_exp(v, wp, round_nearest))
            for v in self.d
        ]
        tau = fzero  # Σ e_j over the non-maximal entries
        for j, ej in enumerate(e):
            if self.d[j] is not None and self.d[j] != fzero:
                tau = mpf_add(tau, ej, wp, round_nearest)
        t = mpf_add(from_int(self.n_max - 1), tau, wp, round_nearest)  # Σ_{j≠k} e_j
        rel_t = _pow2(-wp, len(e) + 3)  # relative error bound of t (and of tau)
        if t == fzero:
            log_s = Ball(fzero)
        else:
            tm = _mag(t)
            if tm < -wp - 4:
                # log1p(t) = t(1 - t/2 + ...): relative error below 2**(tm) + rel_t
                mid = t
                rel = _rad_add(rel_t, _pow2(tm + 1))
            else:
                s_exact = mpf_add(fone, t, 0)  # exact: at most wp - tm + 2 bits
                mid = mpf_log(s_exact, wp + max(0, -tm) + 8, round_nearest)
                # d log(1+t) = dt/(1+t); |dt| ≤ rel_t·t and t/((1+t) log(1+t)) ≤ 1
                rel = _rad_add(rel_t, _pow2(1 - wp))
            log_s = Ball(mid, _rel_rad(mid, rel))
        out = (e, t, rel_t, log_s, wp, tau)
        self._cache[prec] = out
        return out

    def log_ball(self, prec: int) -> Ball:
        return self._at(prec)[3]

    def p_ball(self, j: int, prec: int, anchored: bool) -> Ball:
        """Ball of ``p_j``, or of ``p_j − 1/n`` for a maximal ``j`` (``anchored``).

        For one of ``n`` tied maxima ``p_j = 1/(n + τ)`` with ``τ`` the sum over the other
        entries, so ``p_j − 1/n = −τ/(n·s)``: computed this way it keeps its relative
        accuracy even when ``τ`` is ``e^-1e30`` (no cancellation against ``1/n``).
        """
        e, t, rel_t, _log_s, wp, tau = self._at(prec)
        s = mpf_add(fone, t, wp, round_nearest)
        rel_s = _rad_add(rel_t, _pow2(-wp))
        if anchored:
            if tau == fzero:
                return Ball(fzero)
            num = mpf_neg(tau)
            den = mpf_mul(s, from_int(self.n_max), wp, round_nearest)
            rel = _rad_add(rel_t, rel_s, _pow2(2 - wp))
            mid = mpf_div(num, den, wp, round_nearest)
            return Ball(mid, _rel_rad(mid, rel))
        num = e[j]
        if num == fzero:
            return Ball(fzero)
        exact = self.d[j] is None or self.d[j] == fzero
        rel_num = fzero if exact else _pow2(1 - wp)
        mid = mpf_div(num, s, wp, round_nearest)
        rel = _rad_add(rel_num, rel_s, _pow2(1 - wp))
        return Ball(mid, _rel_rad(mid, rel))

    def p_exact(self, j: int) -> Fraction:
        """p_j for a degenerate (all-tied) row: 1/n or 0."""
        return Fraction(0) if self.d[j] is None else Fraction(1, self.n_finite)


class LogRat:
    """``log x`` for an exact positive rational ``x``."""

    __slots__ = ("x", "key", "_cache")

    def __init__(self, x: Fraction):
        if x <= 0:
            raise ValueError("LogRat needs a positive rational")
        self.x = x
        self.key = ("q", x)
        self._cache: dict[int, Ball] = {}

    def log_ball(self, prec: int) -> Ball:
        hit = self._cache.get(prec)
        if hit is not None:
            return hit
        x = self.x
        if x == 1:
            b = Ball(fzero)
        else:
            y = x - 1  # log x = log1p(y); keep relative accuracy when x is near 1
            ym = _mpf_of_fraction(abs(y), 64)
            extra = max(0, -_mag(ym))
            wp = prec + extra + 8
            xm = _mpf_of_fraction(x, wp)
            rel_x = fzero if _is_exact_dyadic(x) else _pow2(1 - wp)
            mid = mpf_log(xm, wp, round_nearest)
            # |d log x| = |dx|/x ≤ rel_x (absolute); the log itself errs ≤ 1 ulp at wp bits.
            # extra = -log2|x-1| makes rel_x small against |log x| ≈ |x-1| near x = 1.
            b = Ball(mid, _rad_add(rel_x, _pow2(_mag(mid) - wp + 1)))
        self._cache[prec] = b
        return b


# --------------------------------------------------------------------------- values


class Const:
    """An exact rational (Fraction) or a special float (NaN, ±inf)."""

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = frac(v)

    @property
    def is_special(self) -> bool:
        return isinstance(self.v, float)

    def __repr__(self) -> str:
        return f"Const({self.v})"


ZERO = Const(0)


class LinLog:
    """``r + Σ c_k log X_k`` with merged, non-zero coefficients (see module doc)."""

    __slots__ = ("r", "terms")

    def __init__(self, r: Fraction, terms: dict):
        # terms: key -> (coef Fraction, arg)
        self.r = r
        self.terms = terms

    @staticmethod
    def make(r: Fraction, terms) -> LinLog | Const:
        merged: dict = {}
        for c, arg in terms:
            if c == 0:
                continue
            old = merged.get(arg.key)
            merged[arg.key] = (c if old is None else old[0] + c, arg)
        merged = {k: v for k, v in merged.items() if v[0] != 0}
        if not merged:
            return Const(r)
        return LinLog(r, merged)

    def ends(self, prec: int) -> tuple[tuple, tuple]:
        balls = [arg.log_ball(prec).scaled(c, prec) for c, arg in self.terms.values()]
        t = balls[0] if len(balls) == 1 else _ball_sum(balls, prec)
        return _r_plus_t_ends(self.r, t, prec)


class SoftAff:
    """``r + c·(p_j − a)`` for a softmax row ``p`` of a :class:`Partition`.

    The anchor ``a`` is the exact rational nearest to ``p_j`` in the worst case: ``1/n``
    for one of ``n`` tied maxima (``anchored``), else 0 (then ``p_j < 1/2``). Writing the
    value as a rational plus ``c·(p_j − a)`` keeps the transcendental part free of
    cancellation, so a rational part on a rounding midpoint is decided however tiny the
    deviation (logits ±1e30).
    """

    __slots__ = ("r", "c", "part", "j", "anchored")

    def __init__(self, r: Fraction, c: Fraction, part: Partition, j: int, anchored: bool):
        self.r, self.c, self.part, self.j, self.anchored = r, c, part, j, anchored

    @staticmethod
    def make(r: Fraction, c: Fraction, part: Partition, j: int, minus_one: bool):
        """``r + c·(p_j − [minus_one])``."""
        if c == 0:
            return Const(r)
        if part.degenerate or part.d[j] is None:
            p = part.p_exact(j)
            return Const(r + c * (p - (1 if minus_one else 0)))
        offset = 1 if minus_one else 0
        if part.d[j] == fzero:
            return SoftAff(r + c * (Fraction(1, part.n_max) - offset), c, part, j, True)
        return SoftAff(r - c * offset, c, part, j, False)

    def scaled(self, g: Fraction):
        if g == 0:
            return Const(0)
        return SoftAff(self.r * g, self.c * g, self.part, self.j, self.anchored)

    def ends(self, prec: int) -> tuple[tuple, tuple]:
        t = self.part.p_ball(self.j, prec, self.anchored).scaled(self.c, prec)
        return _r_plus_t_ends(self.r, t, prec)


# --------------------------------------------------------------------------- rounding


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _ziv(value, prec: int):
    """Ziv's strategy: the ends ``(lo, hi)`` of ``value``'s enclosure at working precision
    ``prec``, then twice that, … up to ``MAX_PREC``; the caller stops when they decide."""
    while prec <= MAX_PREC:
        yield value.ends(prec)
        prec *= 2


def certify(value, fmt: Format) -> float:
    """The exact value correctly rounded to ``fmt`` (a float64 holding it), via Ziv."""
    if isinstance(value, Const):
        v = value.v
        if isinstance(v, float):
            return v
        return round_fraction(v, fmt)
    for lo, hi in _ziv(value, fmt.p + 24):
        a, b = round_mpf(lo, fmt), round_mpf(hi, fmt)
        if a == b:  # also +0 == -0: the sign of a zero result is not judged
            if a == 0:
                return -0.0 if (lo[0] and lo[1]) or (hi[0] and hi[1]) else 0.0
            return a
    raise OracleUncertain(f"could not round {value!r} to {fmt.name} within {MAX_PREC} bits")


def enclosure(value, rel_digits: int = 30) -> tuple[tuple, tuple] | float:
    """Ends of an enclosure at least ``rel_digits`` decimal digits tight, or a special."""
    if isinstance(value, Const):
        v = value.v
        if isinstance(v, float):
            return v
        m = _mpf_of_fraction(v, int(rel_digits * 3.33) + 20)
        return m, m
    for lo, hi in _ziv(value, int(rel_digits * 3.33) + 24):
        if lo == hi:
            return lo, hi
        # stop when the width is ≤ |lo| * 10**-(rel_digits+2)
        width = mpf_sub(hi, lo, 64, round_ceiling)
        if lo[1] and lo[0] == hi[0] and mpf_mul(width, from_int(10 ** (rel_digits + 2)), 64,
                                                round_ceiling) <= mpf_abs(lo):
            return lo, hi
    return value.ends(MAX_PREC)


def decimal_string(value, digits: int = 30) -> str:
    """The exact value as a decimal string with ``digits`` significant digits."""
    if isinstance(value, Const):
        v = value.v
        if isinstance(v, float):  # non-finite
            return float_text(v)
        if v == 0:
            return "0"
        m = _mpf_of_fraction(v, int(digits * 3.33) + 30)
        return to_str(m, digits)
    lo, hi = enclosure(value, digits)
    mid = mpf_add(lo, hi, int(digits * 3.33) + 30)
    mid = mpf_mul(mid, from_man_exp(1, -1), int(digits * 3.33) + 30)
    if mid[1] == 0:
        return "0"
    return to_str(mid, digits)


def to_float64(value) -> float:
    """The exact value correctly rounded to float64 (for tests and display)."""
    from .formats import FORMATS

    return certify(value, FORMATS["float64"])


def compare_to(value, r: float) -> int:
    """sign(value − r) for a finite float ``r``: -1, 1, or 0 when equal (or when Ziv's
    precision limit cannot tell them apart — a value within 2**-MAX_PREC of ``r``)."""
    if isinstance(value, Const):
        v = value.v
        if isinstance(v, float) and math.isnan(v):
            return 0
        return (v > r) - (v < r)
    q = from_float(r)
    for lo, hi in _ziv(value, 64):
        if mpf_cmp(lo, q) > 0:
            return 1
        if mpf_cmp(hi, q) < 0:
            return -1
    return 0


def sign_of(value) -> int:
    """-1, 0 or 1: the exact sign (0 only for an exact zero); NaN raises."""
    if isinstance(value, Const):
        v = value.v
        if isinstance(v, float) and math.isnan(v):
            raise ValueError("NaN has no sign")
        return (v > 0) - (v < 0)
    for lo, hi in _ziv(value, 64):
        if lo[0] == 0 and lo[1]:
            return 1
        if hi[0] == 1 and hi[1]:
            return -1
    raise OracleUncertain(f"could not decide the sign of {value!r}")



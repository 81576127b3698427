"""Certification for the vectorized tier: float64 values with a-priori error bounds.

A value computed in float64 with radius ``rad`` is *certified* when both ends of
``value ± rad`` round to the same value of the output format (:func:`certify_ball`;
:func:`certify_dd_f64` for double-double values and float64 outputs); error-free sums
(``dd.two_sum``) and the pairwise sum give the pieces their bounds. The error model and
the constants below are derived in :mod:`xentconf.oracle.engine`'s docstring.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .formats import FORMATS, Format, round_to_format

U = 2.0 ** -53
C_FN = 4 * U  # np.exp / np.log1p (and vexp's, 3u) relative error bound
ETA = 2.0 ** -1060  # absolute slack for exponentials that underflow
# Every radius is itself computed in float64: a sum or product of n non-negative rounded
# terms comes out at least (1 − u)^n times its exact value, so a radius multiplied by SLACK
# bounds the exact radius again for any n ≤ MAX_OPS, more operations than any radius here
# is built from ((1 − u)^-n ≤ e^{1.01·n·u} = 1.00006 for n = 2^39).
MAX_OPS = 2**39
SLACK = 1.0001
assert (1 - U) ** -MAX_OPS <= SLACK
F64 = FORMATS["float64"]


# --------------------------------------------------------------------------- rounding


F32 = FORMATS["float32"]
USE_ACCEL = True  # tests switch the compiled certification off to compare both paths
ACCEL_MIN = 4096  # elements: below this the numpy path is as fast


def _round(x: np.ndarray, fmt: Format) -> np.ndarray:
    """:func:`round_to_format`, with float32 by the hardware cast (one IEEE rounding, ties
    to even, overflow to ±inf) where the result is a normal float32, zero or not finite;
    the float32-subnormal range keeps the scaled rounding (immune to flush-to-zero)."""
    if fmt is not F32:
        return round_to_format(x, fmt)
    with np.errstate(all="ignore"):
        out = x.astype(np.float32).astype(np.float64)
        tiny = (np.abs(x) < 2.0 ** -126) & (x != 0)
        if tiny.any():
            out[tiny] = round_to_format(x[tiny], fmt)
    return out


def kernel_args(fmt: Format) -> tuple:
    """``fmt`` as the compiled certification takes it (``_kernels.certify_rows`` and the
    kernels that end with it): precision, minimum exponent, largest finite, float64."""
    return fmt.p, fmt.emin, fmt.max_finite, fmt is F64


def certify_ball(mid: np.ndarray, rad: np.ndarray, fmt: Format, out=None):
    """(rounded, ok): ok where both ends of ``mid ± rad`` round alike in ``fmt``.

    The ends are widened by two float64 roundings so that forming them cannot move them
    inward. Non-finite ``mid`` with zero radius is taken as exact (NaN, ±inf). ``out``:
    the (rounded, ok) arrays to write (of ``mid``'s shape), returned.
    """
    mid = np.asarray(mid, dtype=np.float64)
    rad = np.asarray(rad, dtype=np.float64)
    if USE_ACCEL and mid.size >= ACCEL_MIN and mid.shape == rad.shape:
        from . import accel

        kern = accel.certifier()
        if kern is not None:  # the same rounding, element by element
            rounded, ok = out if out is not None else (np.empty(mid.shape),
                                                       np.empty(mid.shape, dtype=bool))
            kern(np.ascontiguousarray(mid).reshape(-1), np.ascontiguousarray(rad).reshape(-1),
                 *kernel_args(fmt), rounded.reshape(-1),
                 ok.reshape(-1))
            return rounded, ok
    with np.errstate(all="ignore"):
        # a zero radius means mid is exact: nothing to widen
        w = np.where(rad == 0, 0.0, rad * (1 + 4 * U) + 4 * U * np.abs(mid) + 2.0 ** -1074)
        lo = _round(mid - w, fmt)
        hi = _round(mid + w, fmt)
        special = ~np.isfinite(mid) & (rad == 0)
        ok = ((lo == hi) | special) & np.isfinite(rad)
        if fmt is F64:
            ok &= rad == 0  # float64 outputs are certified by the double-double path only
        rounded = np.where(special, mid, _round(mid, fmt))
    if out is not None:
        out[0][...], out[1][...] = rounded, ok
        return out
    return rounded, ok


def certify_above(base: np.ndarray, mid: np.ndarray, rad: np.ndarray, fmt: Format):
    """(rounded, ok) for values known to lie in ``(base, mid + rad]``, ``base`` exact.

    Where ``base`` is itself a value or a rounding midpoint of ``fmt`` (the loss of a
    two-class row is ``d + log1p(e^−d)`` with the float16 difference ``d``, often a
    midpoint, and the second term far below the working precision), every real just
    above ``base`` rounds like ``base``'s float64 successor (no midpoint lies strictly
    between them), and rounding is monotone: so when the successor and the upper end
    round alike, that is the rounding of every value in the interval. ``ok`` is False
    elsewhere (``base`` neither a value nor a midpoint, or the ends round apart).
    """
    with np.errstate(all="ignore"):
        w = rad * (1 + 4 * U) + 4 * U * np.abs(mid) + 2.0 ** -1074
        up = _round(np.nextafter(base, np.inf), fmt)
        at = _round(base, fmt)
        # a midpoint: the nearest value's mirror image through base is a value as well
        # (base − at is exact, and so is the sum: the mirror lies on base's float64 grid)
        other = base + (base - at)
        value_or_mid = (at == base) | ((other != at) & (_round(other, fmt) == other))
        hi = _round(mid + w, fmt)
        ok = value_or_mid & (hi == up) & np.isfinite(base) & np.isfinite(rad) & \
            (mid + w > base) & (fmt is not F64)
    return up, ok


# --------------------------------------------------------------------------- sums


def pairwise_sum(a: np.ndarray):
    """Sum along the last axis in a fixed pairwise order; returns (sum, levels).

    Each level adds two partial sums with one rounding, so for non-negative terms the
    relative error is at most ``levels · u``; in general ``levels · u · Σ|a|``.
    """
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[-1]
    if n == 0:
        return np.zeros(a.shape[:-1]), 0
    levels = 0
    while a.shape[-1] > 1:
        m = a.shape[-1]
        if m % 2:
            a = np.concatenate([a, np.zeros(a.shape[:-1] + (1,))], axis=-1)
        a = a[..., 0::2] + a[..., 1::2]
        levels += 1
    return a[..., 0], levels


def pairwise_levels(n: int) -> int:
    """The ``levels`` of :func:`pairwise_sum` for ``n`` terms: ``⌈log₂ n⌉`` halvings."""
    return max(n - 1, 0).bit_length()


def certify_dd_f64(hi: np.ndarray, lo: np.ndarray, rad: np.ndarray):
    """(rounded, ok) for float64 outputs of double-double values ``hi + lo ± rad``.

    A normalised dd has ``|lo| ≤ ulp(hi)/2``, so the float64 rounding is ``hi`` exactly
    when ``lo ± rad`` stays strictly inside the half-ulps around ``hi`` (the one below a
    power of two is half as wide). Anything else — a tie, a straddle — is not certified.
    """
    hi = np.asarray(hi, dtype=np.float64)
    with np.errstate(all="ignore"):
        special = ~np.isfinite(hi)
        ahi = np.abs(hi)
        up = np.spacing(ahi)
        pow2 = (np.frexp(ahi)[0] == 0.5) & (ahi >= 2.0 ** -1021)
        down = np.where(pow2, up / 2, up)
        sgn = np.where(hi < 0, -1.0, 1.0)
        w = rad * (1 + 2.0 ** -50) + 2.0 ** -1074 * (rad > 0)
        dev_hi = sgn * lo + w
        dev_lo = sgn * lo - w
        shrink = 1 - 2.0 ** -50
        ok = (dev_hi < up / 2 * shrink) & (dev_lo > -down / 2 * shrink) & (hi != 0)
        ok |= (hi == 0) & (lo == 0) & (rad == 0)
        ok |= special & (rad == 0)
        ok &= np.isfinite(rad)
    return np.where(ok, hi, np.nan), ok


def frac_to_float(v) -> tuple[float, float]:
    """(float64 value, its absolute error bound) of an exact coefficient."""
    if isinstance(v, float):
        return v, 0.0
    f = float(v)
    if math.isfinite(f) and Fraction(f) == v:
        return f, 0.0
    return f, abs(f) * U

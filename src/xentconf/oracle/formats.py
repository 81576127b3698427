"""Binary floating-point formats and correct rounding into them.

Every value the oracle rounds is exact: a dyadic number ``(-1)**sign * man * 2**exp``
(the shape of an mpmath ``mpf`` tuple) or a :class:`fractions.Fraction`. Rounding is done
once, with integer arithmetic, straight into the target format — ties to even, gradual
underflow into subnormals, overflow to infinity — and never through a Python float or a
numpy/ml_dtypes cast (a ``float64 -> bfloat16`` cast through float32, as some ml_dtypes
releases do, rounds twice; the oracle's rounding depends on no library's cast).

The four formats are IEEE-754 style binary formats described by their precision ``p``
(significand bits, the implicit bit included) and exponent range ``[emin, emax]`` of
normal numbers. All four embed exactly in float64, so a rounded value is carried as a
float64 holding exactly the target-format value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import ml_dtypes
import numpy as np

__all__ = [
    "Format",
    "FORMATS",
    "format_of",
    "round_dyadic",
    "round_fraction",
    "round_mpf",
    "round_to_format",
    "ulp",
    "ulp_array",
]


@dataclass(frozen=True)
class Format:
    """An IEEE-754 binary interchange format (or bfloat16)."""

    name: str
    p: int  # significand bits, implicit bit included
    emin: int  # exponent of the smallest normal number
    emax: int  # exponent of the largest finite number
    dtype: np.dtype

    @property
    def u(self) -> float:
        """Unit roundoff 2**-p of round-to-nearest."""
        return math.ldexp(1.0, -self.p)

    @property
    def max_finite(self) -> float:
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.p), self.emax)

    @property
    def min_subnormal(self) -> float:
        return math.ldexp(1.0, self.emin - self.p + 1)

    @property
    def min_normal(self) -> float:
        return math.ldexp(1.0, self.emin)


FORMATS: dict[str, Format] = {
    "float16": Format("float16", 11, -14, 15, np.dtype(np.float16)),
    "bfloat16": Format("bfloat16", 8, -126, 127, np.dtype(ml_dtypes.bfloat16)),
    "float32": Format("float32", 24, -126, 127, np.dtype(np.float32)),
    "float64": Format("float64", 53, -1022, 1023, np.dtype(np.float64)),
}


def format_of(dtype) -> Format:
    """The :class:`Format` of a numpy dtype (or dtype name) among the four float formats."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"dtype {name!r} is not one of the float formats {', '.join(FORMATS)}"
        ) from None


def _finish(sign: int, man: int, q: int, fmt: Format) -> float:
    """Float64 holding the target-format value sign*man*2**q (man < 2**(p+1)), or ±inf."""
    if man == 0:
        return -0.0 if sign else 0.0
    if man.bit_length() + q > fmt.emax + 1:
        return -math.inf if sign else math.inf
    v = math.ldexp(float(man), q)  # exact: man has at most p+1 <= 54 bits, result in range
    return -v if sign else v


def round_dyadic(sign: int, man: int, exp: int, fmt: Format) -> float:
    """Round ``(-1)**sign * man * 2**exp`` (``man >= 0`` an int) to ``fmt``, ties to even.

    Returns a Python float (float64) that holds the rounded value exactly; ±inf on
    overflow; ±0.0 on underflow (the sign of the exact value is kept).
    """
    if man == 0:
        return -0.0 if sign else 0.0
    bc = man.bit_length()
    e = exp + bc - 1  # exponent of the leading bit
    q = max(e, fmt.emin) - (fmt.p - 1)  # exponent of the ulp at this magnitude
    if e < q - 1:
        # |x| < 2**(q-1), under half the smallest subnormal: underflow to ±0. Return
        # before building 1 << (q - exp - 1), which for an mpf such as exp(-1e10)
        # (exponent about -1.4e10) would be a gigabyte-sized integer.
        return -0.0 if sign else 0.0
    if exp >= q:
        return _finish(sign, man << (exp - q), q, fmt)
    shift = q - exp
    keep = man >> shift
    rem = man - (keep << shift)
    half = 1 << (shift - 1)
    if rem > half or (rem == half and keep & 1):
        keep += 1
    return _finish(sign, keep, q, fmt)


def round_fraction(x: Fraction, fmt: Format) -> float:
    """Round an exact rational to ``fmt``, ties to even (see :func:`round_dyadic`)."""
    num, den = x.numerator, x.denominator
    if num == 0:
        return 0.0
    sign = 1 if num < 0 else 0
    num = abs(num)
    if den & (den - 1) == 0:  # power of two: dyadic
        return round_dyadic(sign, num, 1 - den.bit_length(), fmt)
    # e = floor(log2(num/den))
    e = num.bit_length() - den.bit_length()
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1
    q = max(e, fmt.emin) - (fmt.p - 1)
    # scaled = num / (den * 2**q) = keep + frac
    if q >= 0:
        n2, d2 = num, den << q
    else:
        n2, d2 = num << (-q), den
    keep, rem = divmod(n2, d2)
    twice = 2 * rem
    if twice > d2 or (twice == d2 and keep & 1):
        keep += 1
    return _finish(sign, keep, q, fmt)


def round_mpf(t: tuple, fmt: Format) -> float:
    """Round an mpmath ``mpf`` value tuple (finite or special) to ``fmt``."""
    sign, man, exp, _bc = t
    if man:
        return round_dyadic(sign, man, exp, fmt)
    # special values in mpmath: zero has exp 0; inf/nan have man 0 and exp -456/-789
    if exp == 0:
        return -0.0 if sign else 0.0
    from mpmath.libmp import finf, fnan, fninf

    if t == fnan:
        return math.nan
    if t == finf:
        return math.inf
    if t == fninf:
        return -math.inf
    raise ValueError(f"not an mpf value: {t!r}")


def ulp(x: float, fmt: Format) -> float:
    """Unit in the last place of the format at the magnitude of the representable ``x``.

    For ``x`` in ``[2**e, 2**(e+1))`` this is ``2**(max(e, emin) - p + 1)``; for zero and
    subnormals it is the smallest subnormal; for infinities and NaN it is NaN.
    """
    if not math.isfinite(x):
        return math.nan
    if x == 0:
        return fmt.min_subnormal
    e = math.frexp(abs(x))[1] - 1
    return math.ldexp(1.0, max(e, fmt.emin) - fmt.p + 1)


def ulp_array(x: np.ndarray, fmt: Format) -> np.ndarray:
    """:func:`ulp` of each representable float64 value of ``x``, vectorized."""
    x = np.asarray(x, dtype=np.float64)
    e = np.frexp(np.abs(x))[1] - 1
    with np.errstate(invalid="ignore"):
        out = np.ldexp(1.0, np.maximum(e, fmt.emin) - fmt.p + 1)
    out = np.where(x == 0, fmt.min_subnormal, out)
    return np.where(np.isfinite(x), out, np.nan)


def float_text(x: float) -> str:
    """A float as bit-exact text: ``float.hex`` (``-0x0.0p+0`` keeps the sign of zero), or
    ``nan`` / ``inf`` / ``-inf`` — the spelling of the case and results formats."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x.hex()


def round_to_format(x: np.ndarray, fmt: Format) -> np.ndarray:
    """Round float64 values to ``fmt`` (ties to even), vectorized; values stay float64.

    Scaling by powers of two is exact and ``np.rint`` rounds half to even, so this is a
    single correct rounding (no library cast is used: a float64 -> bfloat16 cast through
    float32 would round twice).
    """
    x = np.asarray(x, dtype=np.float64)
    if fmt.p == 53:
        return x.copy()
    out = x.copy()
    fin = np.isfinite(x) & (x != 0)
    if fin.any():
        v = x[fin]
        e = np.frexp(v)[1] - 1  # v in [2**e, 2**(e+1))
        q = np.maximum(e, fmt.emin) - (fmt.p - 1)
        r = np.ldexp(np.rint(np.ldexp(v, -q)), q)
        r = np.where(np.abs(r) > fmt.max_finite, np.copysign(np.inf, v), r)
        out[fin] = r
    return out

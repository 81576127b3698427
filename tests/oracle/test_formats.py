"""Tests of ``xentconf.oracle.formats`` against an independent reference.

The reference below is built from first principles with Python integers only: a format is
its bit layout (exponent bits, fraction bits), a bit pattern decodes to an exact value
``man * 2**exp``, and the correctly rounded value of an exact ``x`` is found by bisecting
the (monotone) non-negative bit patterns for the two neighbours of ``|x|`` and taking the
nearer one, a tie going to the pattern whose last bit is 0 (the even significand).

The infinity pattern decodes, read as if it were a normal number, to ``2**(emax+1)``. Using
it as the neighbour above the largest finite value gives IEEE-754's overflow rule for free:
``|x| >= max_finite + ulp/2`` rounds to infinity (the exact midpoint too, because the
largest finite value has an odd significand and the infinity pattern an even one).

No numpy / ml_dtypes cast serves as the reference. numpy's float64->float16 and
float64->float32 casts (single correct roundings) are used as additional cross-checks, and
float64 values just below a bfloat16 midpoint are checked where a rounding through float32
(as older ml_dtypes releases did) would go wrong.
"""

from __future__ import annotations

import math
import tracemalloc
from dataclasses import dataclass
from fractions import Fraction

import ml_dtypes
import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mpmath import libmp

from xentconf.oracle.formats import (
    FORMATS,
    format_of,
    round_dyadic,
    round_fraction,
    round_mpf,
    ulp,
)

# ============================================================================ reference


@dataclass(frozen=True)
class Layout:
    """A binary format as a bit layout: 1 sign bit, ``ebits`` exponent bits, ``mbits``
    fraction bits (the implicit leading bit not stored)."""

    name: str
    ebits: int
    mbits: int

    @property
    def bias(self) -> int:
        return (1 << (self.ebits - 1)) - 1

    @property
    def width(self) -> int:
        return 1 + self.ebits + self.mbits

    @property
    def sign_bit(self) -> int:
        return 1 << (self.ebits + self.mbits)

    @property
    def inf_bits(self) -> int:
        """Pattern of +inf: all exponent bits set, fraction 0."""
        return ((1 << self.ebits) - 1) << self.mbits

    @property
    def min_normal_bits(self) -> int:
        return 1 << self.mbits

    @property
    def one_bits(self) -> int:
        return self.bias << self.mbits


LAYOUTS = {
    "float16": Layout("float16", 5, 10),
    "bfloat16": Layout("bfloat16", 8, 7),
    "float32": Layout("float32", 8, 23),
    "float64": Layout("float64", 11, 52),
}
ALL = list(LAYOUTS)
SMALL = ["float16", "bfloat16"]
LARGE = ["float32", "float64"]


def decode_mag(lay: Layout, bits: int) -> tuple[int, int]:
    """``(man, exp)`` with ``man * 2**exp`` the value of a non-negative pattern
    ``0 <= bits <= inf_bits``; the infinity pattern gives ``2**(emax+1)``."""
    assert 0 <= bits <= lay.inf_bits
    field = bits >> lay.mbits
    frac = bits & ((1 << lay.mbits) - 1)
    if field == 0:  # zero and subnormals: 0.frac * 2**(1-bias)
        return frac, 1 - lay.bias - lay.mbits
    return (1 << lay.mbits) | frac, field - lay.bias - lay.mbits


def dy_frac(man: int, exp: int) -> Fraction:
    return Fraction(man << exp) if exp >= 0 else Fraction(man, 1 << -exp)


def mag_value(lay: Layout, bits: int) -> Fraction:
    return dy_frac(*decode_mag(lay, bits))


def is_nan_pattern(lay: Layout, bits: int) -> bool:
    return (bits & (lay.sign_bit - 1)) > lay.inf_bits


def expected_float(lay: Layout, sign: int, mag_bits: int) -> float:
    """The float64 that holds pattern ``(sign, mag_bits)`` (exact: all formats embed)."""
    if mag_bits == lay.inf_bits:
        v = math.inf
    else:
        man, exp = decode_mag(lay, mag_bits)
        v = math.ldexp(float(man), exp)  # man < 2**53: exact
    return -v if sign else v


def ref_round(lay: Layout, x: Fraction) -> tuple[int, int]:
    """Correct rounding of the exact ``x``: ``(sign, magnitude pattern)``, ties to even."""
    sign = 1 if x < 0 else 0
    a = abs(x)
    if mag_value(lay, lay.inf_bits) <= a:  # |x| >= 2**(emax+1)
        return sign, lay.inf_bits
    lo, hi = 0, lay.inf_bits  # value(lo) <= a < value(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mag_value(lay, mid) <= a:
            lo = mid
        else:
            hi = mid
    below, above = a - mag_value(lay, lo), mag_value(lay, hi) - a
    if below < above:
        return sign, lo
    if above < below:
        return sign, hi
    return sign, lo if lo % 2 == 0 else hi


def ref_rounded_float(lay: Layout, x: Fraction) -> float:
    return expected_float(lay, *ref_round(lay, x))


def ref_ulp(lay: Layout, mag_bits: int) -> float:
    """Spacing above the non-negative finite pattern: the ulp at its magnitude (a power
    of two, exact as a float)."""
    A, B, e = pair(lay, mag_bits)
    return math.ldexp(float(B - A), e)


# ------------------------------------------------------------------------ helpers


def same(a: float, b: float) -> bool:
    """Bitwise-equal floats (distinguishes 0.0 from -0.0; NaN equals NaN)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def float_to_dyadic(x: float) -> tuple[int, int, int]:
    """A finite float as ``(sign, man, exp)`` (exact)."""
    sign = 1 if math.copysign(1.0, x) < 0 else 0
    m, e = math.frexp(abs(x))
    return sign, int(m * (1 << 53)), e - 53


def mpf_tuple(sign: int, man: int, exp: int) -> tuple:
    return libmp.from_man_exp(-man if sign else man, exp)


def pair(lay: Layout, b: int) -> tuple[int, int, int]:
    """Adjacent patterns ``b, b+1`` as integers ``A, B`` over a common exponent ``e``."""
    m0, e0 = decode_mag(lay, b)
    m1, e1 = decode_mag(lay, b + 1)
    e = min(e0, e1)
    return m0 << (e0 - e), m1 << (e1 - e), e


def boundary_patterns(lay: Layout) -> list[int]:
    """Lower patterns ``b`` of interesting adjacent pairs ``(b, b+1)``."""
    mn = lay.min_normal_bits
    return sorted(
        {
            0,  # (0, min subnormal)
            1,
            2,
            3,
            mn // 2,
            mn - 2,
            mn - 1,  # (largest subnormal, min normal)
            mn,
            mn + 1,
            2 * mn - 1,
            2 * mn,
            lay.one_bits - 1,  # (pred(1), 1)
            lay.one_bits,  # (1, succ(1))
            lay.inf_bits - (1 << lay.mbits) - 1,
            lay.inf_bits - (1 << lay.mbits),  # first pattern of the top binade
            lay.inf_bits - 3,
            lay.inf_bits - 2,
            lay.inf_bits - 1,  # (max finite, inf): the overflow threshold
        }
    )


# ==================================================================== reference sanity


@pytest.mark.parametrize("name", ALL)
def test_format_parameters_match_layout(name):
    lay, fmt = LAYOUTS[name], FORMATS[name]
    assert fmt.name == name
    assert fmt.p == lay.mbits + 1
    assert fmt.emin == 1 - lay.bias
    assert fmt.emax == lay.bias
    assert fmt.dtype.itemsize * 8 == lay.width
    assert Fraction(fmt.max_finite) == mag_value(lay, lay.inf_bits - 1)
    assert Fraction(fmt.min_subnormal) == mag_value(lay, 1)
    assert Fraction(fmt.min_normal) == mag_value(lay, lay.min_normal_bits)
    assert Fraction(fmt.u) == Fraction(1, 2**fmt.p)
    assert mag_value(lay, lay.one_bits) == 1


@pytest.mark.parametrize("name", SMALL)
def test_reference_decoder_agrees_with_numpy_widening(name):
    # Widening a 16-bit value to float64 is exact, so this checks our decoder.
    lay = LAYOUTS[name]
    raw = np.arange(1 << 16, dtype=np.uint16)
    with np.errstate(invalid="ignore"):
        widened = raw.view(FORMATS[name].dtype).astype(np.float64)
    for bits in range(1 << 16):
        w = float(widened[bits])
        if is_nan_pattern(lay, bits):
            assert math.isnan(w)
        else:
            assert same(w, expected_float(lay, bits >> 15, bits & 0x7FFF)), hex(bits)


def test_reference_rounding_spot_values():
    f16, bf16, f32, f64 = (LAYOUTS[n] for n in ALL)
    tenth = Fraction(1, 10)
    assert ref_round(f16, tenth) == (0, 0x2E66)
    assert ref_round(bf16, tenth) == (0, 0x3DCD)
    assert ref_round(f32, tenth) == (0, 0x3DCCCCCD)
    assert ref_round(f64, tenth) == (0, 0x3FB999999999999A)
    assert ref_round(f16, Fraction(65520)) == (0, 0x7C00)  # 65504 + 16 -> inf
    assert ref_round(f16, Fraction(65519)) == (0, 0x7BFF)
    assert ref_round(f16, Fraction(-1, 2**25)) == (1, 0)  # half min subnormal -> -0
    assert ref_round(f16, Fraction(3, 2**25)) == (0, 2)  # 1.5 * min subnormal -> 2 (even)


# ================================================================ exhaustive 16-bit


@pytest.mark.parametrize("name", SMALL)
def test_every_16bit_pattern_round_trips(name):
    lay, fmt = LAYOUTS[name], FORMATS[name]
    bad = []
    for bits in range(1 << 16):
        if is_nan_pattern(lay, bits):
            continue
        sign, mag = bits >> 15, bits & 0x7FFF
        want = expected_float(lay, sign, mag)
        if mag == lay.inf_bits:
            got = round_mpf(libmp.fninf if sign else libmp.finf, fmt)
            if not same(got, want):
                bad.append((hex(bits), "mpf", got, want))
            continue
        man, exp = decode_mag(lay, mag)
        got = round_dyadic(sign, man, exp, fmt)
        if not same(got, want):
            bad.append((hex(bits), "dyadic", got, want))
        x = dy_frac(man, exp)
        # Fraction and mpf have no negative zero: -0 comes back as +0.
        want_unsigned_zero = want if man else 0.0
        got = round_fraction(-x if sign else x, fmt)
        if not same(got, want_unsigned_zero):
            bad.append((hex(bits), "fraction", got, want_unsigned_zero))
        got = round_mpf(mpf_tuple(sign, man, exp), fmt)
        if not same(got, want_unsigned_zero):
            bad.append((hex(bits), "mpf", got, want_unsigned_zero))
        if len(bad) > 10:
            break
    assert not bad


@pytest.mark.parametrize("name", SMALL)
def test_every_16bit_adjacent_pair_midpoints(name):
    """For each pair ``(b, b+1)`` of adjacent non-negative patterns, ``b+1`` up to +inf,
    and their negatives: the midpoint goes to the even pattern; the midpoint -/+ 2**-200
    and -/+ one float64 ulp go to the lower/upper neighbour."""
    lay, fmt = LAYOUTS[name], FORMATS[name]
    mags = [decode_mag(lay, b) for b in range(lay.inf_bits + 1)]
    vals = [expected_float(lay, 0, b) for b in range(lay.inf_bits + 1)]
    bad = []
    for b in range(lay.inf_bits):
        (m0, e0), (m1, e1) = mags[b], mags[b + 1]
        e = min(e0, e1)
        S = (m0 << (e0 - e)) + (m1 << (e1 - e))  # midpoint = S * 2**(e-1)
        lo, hi = vals[b], vals[b + 1]
        even = lo if b % 2 == 0 else hi
        near = S << (e - 1 + 200)  # midpoint = near * 2**-200
        mid_f = math.ldexp(float(S), e - 1)  # exact in float64
        below = float_to_dyadic(math.nextafter(mid_f, 0.0))
        above = float_to_dyadic(math.nextafter(mid_f, math.inf))
        cases = (
            (S, e - 1, even),
            (near - 1, -200, lo),
            (near + 1, -200, hi),
            (below[1], below[2], lo),
            (above[1], above[2], hi),
        )
        for man, exp, want in cases:
            got = round_dyadic(0, man, exp, fmt)
            if not same(got, want):
                bad.append(("+dyadic", man, exp, got, want))
            got = round_dyadic(1, man, exp, fmt)
            if not same(got, -want):
                bad.append(("-dyadic", man, exp, got, -want))
        # the Fraction path, positive only (the sign is handled as above)
        for man, exp, want in cases[:3]:
            got = round_fraction(dy_frac(man, exp), fmt)
            if not same(got, want):
                bad.append(("fraction", man, exp, got, want))
        if len(bad) > 10:
            break
    assert not bad


@pytest.mark.parametrize("name", SMALL)
def test_ulp_every_16bit_pattern(name):
    lay, fmt = LAYOUTS[name], FORMATS[name]
    for bits in range(1 << 16):
        if is_nan_pattern(lay, bits):
            continue
        sign, mag = bits >> 15, bits & 0x7FFF
        x = expected_float(lay, sign, mag)
        if mag == lay.inf_bits:
            assert math.isnan(ulp(x, fmt))
        else:
            assert ulp(x, fmt) == ref_ulp(lay, mag), hex(bits)


# ========================================================== float32 / float64 pairs


def check_pair(lay: Layout, b: int, sign: int, k: int) -> None:
    """Midpoint of ``(b, b+1)`` -> even; midpoint -/+ 2**(e-1-k) (far below half an ulp)
    -> lower/upper; and for float32 midpoint -/+ one float64 ulp too."""
    fmt = FORMATS[lay.name]
    A, B, e = pair(lay, b)
    S = A + B
    even = b if b % 2 == 0 else b + 1
    lo_f, hi_f = expected_float(lay, sign, b), expected_float(lay, sign, b + 1)
    even_f = expected_float(lay, sign, even)
    # sanity of the reference itself
    mid = dy_frac(S, e - 1)
    assert ref_round(lay, -mid if sign else mid) == (sign, even)

    assert same(round_dyadic(sign, S, e - 1, fmt), even_f)
    near = S << (k + 1)  # midpoint = near * 2**(e-1-k-1); +-1 is +-2**(e-2-k)
    assert same(round_dyadic(sign, near - 1, e - 2 - k, fmt), lo_f)
    assert same(round_dyadic(sign, near + 1, e - 2 - k, fmt), hi_f)
    assert same(round_mpf(mpf_tuple(sign, near - 1, e - 2 - k), fmt), lo_f)
    assert same(round_mpf(mpf_tuple(sign, near + 1, e - 2 - k), fmt), hi_f)

    # a nonzero negative Fraction that rounds to zero gives -0.0
    sfr = -1 if sign else 1
    delta = dy_frac(1, e - 2 - k)
    assert same(round_fraction(sfr * mid, fmt), even_f)
    assert same(round_fraction(sfr * (mid - delta), fmt), lo_f)
    assert same(round_fraction(sfr * (mid + delta), fmt), hi_f)

    if lay.name == "float32":  # the midpoint (25 bits) is a float64
        mid_f = math.ldexp(float(S), e - 1)
        below, above = math.nextafter(mid_f, 0.0), math.nextafter(mid_f, math.inf)
        for t, want in ((below, lo_f), (above, hi_f)):
            _, m2, e2 = float_to_dyadic(t)
            assert same(round_dyadic(sign, m2, e2, fmt), want)


@pytest.mark.parametrize("name", ALL)
def test_boundary_pairs(name):
    lay = LAYOUTS[name]
    for b in boundary_patterns(lay):
        for sign in (0, 1):
            for k in (0, 1, 7, 60, 200):
                check_pair(lay, b, sign, k)


def pattern_strategy(lay: Layout) -> st.SearchStrategy[int]:
    """Lower patterns of adjacent pairs: uniform over all patterns (so uniform over the
    binades), with extra weight on subnormals and on the boundaries."""
    return st.one_of(
        st.integers(0, lay.inf_bits - 1),
        st.integers(0, lay.min_normal_bits - 1),
        st.sampled_from(boundary_patterns(lay)),
    )


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", LARGE)
@FAST
@given(data=st.data())
def test_random_pairs(name, data):
    lay = LAYOUTS[name]
    b = data.draw(pattern_strategy(lay), label="b")
    sign = data.draw(st.integers(0, 1), label="sign")
    k = data.draw(st.integers(0, 250), label="k")
    check_pair(lay, b, sign, k)


@pytest.mark.parametrize("name", LARGE)
@FAST
@given(data=st.data())
def test_random_points_between_neighbours(name, data):
    """A random exact point between two adjacent values: nearer one, ties to even."""
    lay, fmt = LAYOUTS[name], FORMATS[name]
    b = data.draw(pattern_strategy(lay), label="b")
    sign = data.draw(st.integers(0, 1), label="sign")
    den = data.draw(st.integers(1, 2**80), label="den")
    num = data.draw(st.integers(0, den), label="num")
    t = Fraction(num, den)
    lo, hi = mag_value(lay, b), mag_value(lay, b + 1)
    x = lo + (hi - lo) * t
    if t < Fraction(1, 2):
        r = b
    elif t > Fraction(1, 2):
        r = b + 1
    else:
        r = b if b % 2 == 0 else b + 1
    assert ref_round(lay, x) == (0, r)
    want = expected_float(lay, sign, r)  # -0.0 when a negative x rounds to zero
    got = round_fraction(-x if sign else x, fmt)
    if x == 0:
        assert same(got, 0.0)
    else:
        assert same(got, want)
        # the same value as a dyadic or an mpf when it is one
        if x.denominator & (x.denominator - 1) == 0:
            exp = 1 - x.denominator.bit_length()
            assert same(round_dyadic(sign, x.numerator, exp, fmt), want)
            assert same(round_mpf(mpf_tuple(sign, x.numerator, exp), fmt), want)


# ============================================================ overflow and underflow


@pytest.mark.parametrize("name", ALL)
def test_overflow_threshold(name):
    lay, fmt = LAYOUTS[name], FORMATS[name]
    p, emax = lay.mbits + 1, lay.bias
    max_f = mag_value(lay, lay.inf_bits - 1)
    assert max_f == (2 - Fraction(1, 2 ** (p - 1))) * Fraction(2) ** emax
    half_ulp = Fraction(2) ** (emax - p)
    threshold = max_f + half_ulp  # == (2 - 2**-p) * 2**emax
    assert threshold == (2 - Fraction(1, 2**p)) * Fraction(2) ** emax
    tiny = Fraction(1, 2**400)
    cases = [
        (threshold, math.inf),
        (threshold - tiny, float(max_f)),
        (threshold + tiny, math.inf),
        (max_f, float(max_f)),
        (Fraction(2) ** (emax + 1), math.inf),
        (Fraction(3) ** 5000, math.inf),
    ]
    for x, want in cases:
        for s in (1, -1):
            assert same(round_fraction(s * x, fmt), s * want), (s, x)
            assert same(ref_rounded_float(lay, s * x), s * want)
            if x.denominator & (x.denominator - 1) == 0:
                exp = 1 - x.denominator.bit_length()
                assert same(round_dyadic(int(s < 0), x.numerator, exp, fmt), s * want)
    # mpmath dyadic with a huge exponent
    assert round_dyadic(0, 1, 10**6, fmt) == math.inf
    assert round_dyadic(1, 12345, 10**9, fmt) == -math.inf


@pytest.mark.parametrize("name", ALL)
def test_underflow_threshold(name):
    lay, fmt = LAYOUTS[name], FORMATS[name]
    min_sub = mag_value(lay, 1)
    half = min_sub / 2
    tiny = min_sub / 2**300
    largest_sub = mag_value(lay, lay.min_normal_bits - 1)
    min_norm = mag_value(lay, lay.min_normal_bits)
    cases = [
        (half, 0.0),  # tie between 0 (even) and min subnormal (odd)
        (half - tiny, 0.0),
        (half + tiny, float(min_sub)),
        (min_sub / 3, 0.0),
        (min_sub * Fraction(2, 3), float(min_sub)),
        (min_sub * Fraction(3, 2), float(2 * min_sub)),  # tie -> even (pattern 2)
        (min_sub * Fraction(5, 2), float(2 * min_sub)),  # tie -> even (pattern 2)
        (largest_sub + half, float(min_norm)),  # tie -> min normal (fraction bits 0)
        (largest_sub + half - tiny, float(largest_sub)),
        (Fraction(1, 2**3000), 0.0),
    ]
    for x, want in cases:
        for s in (0, 1):
            sx, sw = (-x, -want) if s else (x, want)  # -0.0 for negative underflow
            assert same(ref_rounded_float(lay, sx), sw), (s, x)
            assert same(round_fraction(sx, fmt), sw), (s, x)
            if x.denominator & (x.denominator - 1) == 0:
                exp = 1 - x.denominator.bit_length()
                assert same(round_dyadic(s, x.numerator, exp, fmt), sw), (s, x)
                assert same(round_mpf(mpf_tuple(s, x.numerator, exp), fmt), sw), (s, x)


@pytest.mark.parametrize("name", ALL)
def test_zero_inputs(name):
    fmt = FORMATS[name]
    assert same(round_dyadic(0, 0, 0, fmt), 0.0)
    assert same(round_dyadic(1, 0, 0, fmt), -0.0)
    assert same(round_dyadic(0, 0, -5000, fmt), 0.0)
    assert same(round_fraction(Fraction(0), fmt), 0.0)
    assert same(round_mpf(libmp.fzero, fmt), 0.0)


@pytest.mark.parametrize("name", ALL)
def test_extreme_exponents_are_cheap(name):
    """A dyadic far below the underflow threshold (e.g. ``mpmath.exp(-1e10)``, exponent
    about -1.44e10) must not build a ``2**|exp|``-sized integer on its way to zero."""
    fmt = FORMATS[name]
    tracemalloc.start()
    try:
        assert same(round_dyadic(0, 3, -(10**9), fmt), 0.0)
        assert same(round_dyadic(1, 2**200 + 1, -(10**9), fmt), -0.0)
        assert same(round_mpf(mpmath.exp(-1e10)._mpf_, fmt), 0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


# ========================================================== random values, all formats


@FAST
@given(
    sign=st.integers(0, 1),
    man=st.one_of(st.integers(0, 2**12), st.integers(0, 2**60), st.integers(0, 2**200)),
    exp=st.integers(-1300, 1100),
)
@example(sign=0, man=1, exp=-1075)
@example(sign=1, man=3, exp=-1076)
@example(sign=0, man=2**54 - 1, exp=971)
def test_random_dyadics_all_formats(sign, man, exp):
    x = dy_frac(man, exp)
    for name in ALL:
        lay, fmt = LAYOUTS[name], FORMATS[name]
        want = ref_rounded_float(lay, -x if sign else x) if man else (-0.0 if sign else 0.0)
        assert same(round_dyadic(sign, man, exp, fmt), want), name
        if man:  # Fraction and mpf lose the sign of zero
            assert same(round_fraction(-x if sign else x, fmt), want), name
            assert same(round_mpf(mpf_tuple(sign, man, exp), fmt), want), name


NON_DYADIC = [
    Fraction(1, 3),
    Fraction(2, 3),
    Fraction(1, 10),
    Fraction(-1, 10),
    Fraction(-2, 3),
    Fraction(22, 7),
    Fraction(10**40, 3),  # overflows the small formats
    Fraction(1, 3 * 2**20),  # float16 subnormal range
    Fraction(1, 7 * 2**140),  # float32 / bfloat16 subnormal range
    Fraction(-1, 5 * 2**1070),  # float64 subnormal range
    Fraction(1, 3 * 2**1080),  # below every format
    Fraction(2**1024 - 1, 3),
]


@pytest.mark.parametrize("x", NON_DYADIC, ids=str)
@pytest.mark.parametrize("name", ALL)
def test_round_fraction_non_dyadic(name, x):
    lay, fmt = LAYOUTS[name], FORMATS[name]
    assert same(round_fraction(x, fmt), ref_rounded_float(lay, x))


def test_round_fraction_known_values():
    tenth = Fraction(1, 10)
    assert round_fraction(tenth, FORMATS["float16"]) == 0.0999755859375
    assert round_fraction(tenth, FORMATS["bfloat16"]) == 0.10009765625
    assert round_fraction(tenth, FORMATS["float32"]) == 0.100000001490116119384765625
    assert round_fraction(tenth, FORMATS["float64"]) == 0.1
    assert round_fraction(Fraction(1, 3), FORMATS["float16"]) == 0.333251953125
    assert round_fraction(Fraction(2, 3), FORMATS["float16"]) == 0.66650390625
    assert round_fraction(Fraction(1, 3), FORMATS["bfloat16"]) == 0.333984375


@FAST
@given(
    num=st.integers(-(2**130), 2**130),
    den=st.integers(1, 2**130),
    scale=st.integers(-1200, 1100),
)
@example(num=1, den=3, scale=0)
@example(num=-7, den=10, scale=-1070)
def test_random_rationals_all_formats(num, den, scale):
    x = Fraction(num, den) * Fraction(2) ** scale
    for name in ALL:
        lay, fmt = LAYOUTS[name], FORMATS[name]
        want = ref_rounded_float(lay, x) if x else 0.0
        assert same(round_fraction(x, fmt), want), name
    # additional cross-check: CPython's int/int true division is correctly rounded
    try:
        py = x.numerator / x.denominator
    except OverflowError:
        py = math.inf if x > 0 else -math.inf
    assert same(round_fraction(x, FORMATS["float64"]), py if x else 0.0)


# =================================================================== round_mpf specials


@pytest.mark.parametrize("name", ALL)
def test_round_mpf_special_values(name):
    fmt = FORMATS[name]
    assert same(round_mpf(libmp.fzero, fmt), 0.0)
    assert same(round_mpf(mpmath.mpf(0)._mpf_, fmt), 0.0)
    assert same(round_mpf(libmp.finf, fmt), math.inf)
    assert same(round_mpf(mpmath.inf._mpf_, fmt), math.inf)
    assert same(round_mpf(libmp.fninf, fmt), -math.inf)
    assert same(round_mpf((-mpmath.inf)._mpf_, fmt), -math.inf)
    assert math.isnan(round_mpf(libmp.fnan, fmt))
    assert math.isnan(round_mpf(mpmath.nan._mpf_, fmt))
    with pytest.raises(ValueError):
        round_mpf((0, 0, 7, 0), fmt)


MPF_EXPRS = {
    "1/3": lambda: mpmath.mpf(1) / 3,
    "-2/3": lambda: mpmath.mpf(-2) / 3,
    "pi": lambda: +mpmath.pi,
    "-e": lambda: -mpmath.e,
    "sqrt2*2**-140": lambda: mpmath.sqrt(2) * mpmath.mpf(2) ** -140,
    "-sqrt3*2**-1060": lambda: -mpmath.sqrt(3) * mpmath.mpf(2) ** -1060,
    "exp(100)": lambda: mpmath.exp(100),
    "exp(-1e10)": lambda: mpmath.exp(-1e10),
}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("expr", list(MPF_EXPRS))
def test_round_mpf_computed_values(name, expr):
    lay, fmt = LAYOUTS[name], FORMATS[name]
    with mpmath.workprec(300):
        v = MPF_EXPRS[expr]()
    if expr == "exp(-1e10)":  # exponent about -1.44e10: no exact Fraction here
        assert same(round_mpf(v._mpf_, fmt), 0.0)
        return
    sign, man, exp, _ = v._mpf_
    x = dy_frac(int(man), exp)
    assert same(round_mpf(v._mpf_, fmt), ref_rounded_float(lay, -x if sign else x))


# ================================================================================ ulp


@pytest.mark.parametrize("name", ALL)
def test_ulp_boundaries(name):
    lay, fmt = LAYOUTS[name], FORMATS[name]
    for b in boundary_patterns(lay):
        for sign in (0, 1):
            x = expected_float(lay, sign, b)
            assert ulp(x, fmt) == ref_ulp(lay, b), (name, b)
    assert math.isnan(ulp(math.inf, fmt))
    assert math.isnan(ulp(-math.inf, fmt))
    assert math.isnan(ulp(math.nan, fmt))
    assert ulp(1.0, fmt) == 2.0 ** (1 - fmt.p)
    assert ulp(0.0, fmt) == fmt.min_subnormal


@pytest.mark.parametrize("name", LARGE)
@QUICK
@given(data=st.data())
def test_ulp_random(name, data):
    lay, fmt = LAYOUTS[name], FORMATS[name]
    b = data.draw(pattern_strategy(lay), label="b")
    sign = data.draw(st.integers(0, 1), label="sign")
    x = expected_float(lay, sign, b)
    assert ulp(x, fmt) == ref_ulp(lay, b)


# ============================================================ numpy / ml_dtypes / misc


@FAST
@given(x=st.floats(allow_nan=False))
@example(x=65520.0)
@example(x=65519.99999999999)
@example(x=2.0**-25)
@example(x=-(2.0**-25))
@example(x=2.0**-25 + 2.0**-80)
@example(x=3.4028235677973366e38)
@example(x=1.401298464324817e-45 / 2)
def test_cross_check_numpy_float64_casts(x):
    """numpy's float64->float16 and float64->float32 casts are single correct roundings."""
    with np.errstate(over="ignore"):
        for name, dt in (("float16", np.float16), ("float32", np.float32)):
            fmt = FORMATS[name]
            if math.isinf(x):
                got = round_mpf(libmp.finf if x > 0 else libmp.fninf, fmt)
            else:
                got = round_dyadic(*float_to_dyadic(x), fmt)
            assert same(got, float(np.float64(x).astype(dt))), name


@FAST
@given(x=st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_cross_check_ml_dtypes_from_float32(x):
    """From a float32 input, ml_dtypes' bfloat16 cast is a single rounding, hence correct."""
    got = round_dyadic(*float_to_dyadic(x), FORMATS["bfloat16"])
    with np.errstate(over="ignore"):
        assert same(got, float(np.float32(x).astype(ml_dtypes.bfloat16)))


def test_float64_just_below_a_bfloat16_midpoint_rounds_once():
    """A float64 just below a bfloat16 midpoint (by less than half a float32 ulp) is nearer
    the lower neighbour. Going through float32 first lands *on* the midpoint, and the second
    rounding's tie-break then goes to even, upward for an odd lower neighbour: a double
    rounding. Our rounding goes straight to bfloat16 and must agree with the independent
    integer reference on every such value, odd and even neighbours alike."""
    lay, fmt = LAYOUTS["bfloat16"], FORMATS["bfloat16"]
    for b in range(lay.one_bits, lay.one_bits + 64):  # [1, 2) in bfloat16
        A, B, e = pair(lay, b)
        mid = math.ldexp(float(A + B), e - 1)
        for x in (mid - 2.0**-40, -(mid - 2.0**-40)):  # well below half a float32 ulp
            correct = ref_rounded_float(lay, Fraction(x))
            assert same(round_dyadic(*float_to_dyadic(x), fmt), correct)
            assert abs(correct) == expected_float(lay, 0, b)  # nearer the lower neighbour
            # ... which is not where a rounding through float32 would land for odd b
            via32 = ref_rounded_float(lay, Fraction(float(np.float32(x))))
            assert (via32 != correct) == (b % 2 == 1)


def test_format_of():
    assert format_of(np.float16) is FORMATS["float16"]
    assert format_of(np.dtype("float32")) is FORMATS["float32"]
    assert format_of("float64") is FORMATS["float64"]
    assert format_of(ml_dtypes.bfloat16) is FORMATS["bfloat16"]
    with pytest.raises(ValueError):
        format_of(np.int32)
    with pytest.raises(ValueError):
        format_of("float8_e4m3fn")

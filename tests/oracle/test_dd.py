"""Tests of ``xentconf.oracle.dd``: exactness of the error-free transformations (against
Fractions), and every documented error bound of the dd operations, of ``dd_sum`` and of
the dd ``exp`` / ``log1p`` / ``log`` (against exact Fractions or 320-bit mpmath), on random
arrays and on adversarial inputs (subnormal results, reduction boundaries, table-bucket
boundaries, tiny and huge arguments).

Each bound test asserts ``observed error <= bound`` on every element and records the
largest ``observed / bound`` ratio; ``pytest -s`` prints them at the end of the module.
"""

from __future__ import annotations

import ast
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xentconf.oracle import dd

U2 = 2.0**-106
REF = mpmath.MPContext()
REF.prec = 320  # reference values (relative error < 2**-318)
WIDE = mpmath.MPContext()
WIDE.prec = 2300  # exact sums/differences of float64 words and 320-bit references
REF_SLACK = 2.0**-310  # relative error allowed to the 320-bit reference itself

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

RATIOS: dict[str, float] = {}


def record(name: str, ratio: float) -> None:
    RATIOS[name] = max(RATIOS.get(name, 0.0), ratio)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nmax observed error / bound:")
    for name, r in sorted(RATIOS.items()):
        print(f"  {name:40s} {r:.4f}")


# ============================================================================ helpers


def frac(h, l=0.0) -> Fraction:
    return Fraction(float(h)) + Fraction(float(l))


def rand_dd(rng, n, emin, emax, sign=True):
    """Random normalized dd: hi with a random exponent in [emin, emax), lo a random
    fraction of ulp(hi)."""
    e = rng.integers(emin, emax, n)
    hi = np.ldexp(rng.uniform(1.0, 2.0, n), e)
    if sign:
        hi *= rng.choice([-1.0, 1.0], n)
    lo = hi * rng.uniform(-1.0, 1.0, n) * 2.0**-53
    return dd.dd_normalize(hi, lo)


def assert_normalized(hi, lo):
    hi, lo = np.asarray(hi), np.asarray(lo)
    ok = np.isfinite(hi)
    assert np.all(np.abs(lo[ok]) <= np.spacing(np.abs(hi[ok])) / 2)


def check_rel(name, res, exact, bound):
    """``|res - exact| <= bound |exact|`` elementwise (Fractions)."""
    worst = 0.0
    for (h, l), x in zip(zip(*res), exact):
        d = abs(frac(h, l) - x)
        if x == 0:
            assert d == 0
            continue
        r = float(d / abs(x)) / bound
        assert r <= 1.0, (name, h, l, x)
        worst = max(worst, r)
    record(name, worst)
    return worst


def check_abs_mp(name, hi, lo, err, ref, rel_bound=None):
    """``|hi + lo - ref| <= err`` with ``ref`` a list of 320-bit mpmath values. With
    ``rel_bound`` (a guaranteed relative bound), also checks the relative error over the
    non-zero refs above ``2**-960`` against the *derived* bound of the module docstring
    (stricter than the guarantee) and records relative error / guarantee."""
    worst = worst_rel = 0.0
    for h, l, e, y in zip(hi.ravel(), lo.ravel(), err.ravel(), ref):
        d = abs(WIDE.mpf(float(h)) + WIDE.mpf(float(l)) - y)
        d += abs(y) * REF_SLACK
        assert d <= e, (name, h, l, e, y)
        if e > 0:
            worst = max(worst, float(d / e))
        if rel_bound is not None and y != 0 and abs(y) > 2.0**-960:
            worst_rel = max(worst_rel, float(d / abs(y)) / rel_bound)
    record(name + " (err)", worst)
    if rel_bound is not None:
        derived = {dd.EXP_REL: dd._EXP_REL_DERIVED, dd.LOG_REL: dd._LOG_REL_DERIVED}[rel_bound]
        assert derived <= rel_bound
        assert worst_rel * rel_bound <= derived, (name, worst_rel * rel_bound / U2)
        record(name + " (relative)", worst_rel)


def mp_exp(xh, xl=None):
    xl = np.zeros_like(xh) if xl is None else xl
    with REF.workprec(REF.prec):
        return [REF.exp(REF.mpf(float(a)) + REF.mpf(float(b))) for a, b in zip(xh, xl)]


def mp_log1p(th, tl=None):
    tl = np.zeros_like(th) if tl is None else tl
    out = []
    for a, b in zip(th, tl):
        t = WIDE.mpf(float(a)) + WIDE.mpf(float(b))  # exact
        out.append(REF.log1p(t))
    return out


def mp_log(ah, al=None):
    al = np.zeros_like(ah) if al is None else al
    return [REF.log(WIDE.mpf(float(a)) + WIDE.mpf(float(b))) for a, b in zip(ah, al)]


# ============================================================================ module hygiene


def test_imports_only_numpy_and_stdlib():
    with open(dd.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    assert names <= {"__future__", "math", "fractions", "numpy"}, names


def test_constants_against_mpmath():
    ln2 = REF.log(2)
    assert abs(REF.mpf(dd.LN2_HI) + dd.LN2_LO - ln2) <= ln2 * U2
    c = ln2 / 64
    parts = [dd._C1, dd._C2, dd._C3, dd._C4]
    assert abs(sum(REF.mpf(p) for p in parts) - c) < 2.0**-150
    for p in parts[:3]:  # k * Ci exact for |k| < 2**24
        m = Fraction(p)
        assert (m.numerator // math.gcd(m.numerator, m.denominator)).bit_length() <= 29
    for j in range(64):
        t = REF.mpf(2) ** (REF.mpf(j) / 64)
        assert abs(REF.mpf(dd._EXP_T_HI[j]) + dd._EXP_T_LO[j] - t) <= t * U2
    for i, (h, l) in enumerate(dd._EXP_C):
        c = Fraction(1, math.factorial(i))
        assert abs(frac(h, l) - c) <= c * Fraction(U2)
    for i, (h, l) in enumerate(dd._LOG_S):
        c = Fraction((-1) ** (i + 1), i + 2)
        assert abs(frac(h, l) - c) <= abs(c) * Fraction(U2)
    for j in range(dd._LOG_J0, dd._LOG_J1 + 1):
        r = dd._LOG_R[j]
        assert r == 128.0 / j
        y = REF.log(REF.mpf(r))
        assert abs(REF.mpf(dd._LOG_LR_HI[j]) + dd._LOG_LR_LO[j] - y) <= abs(y) * U2


# ============================================================================ EFTs


def test_two_sum_and_fast_two_sum_exact():
    rng = np.random.default_rng(1)
    a, _ = rand_dd(rng, 3000, -1070, 1020)
    b, _ = rand_dd(rng, 3000, -1070, 1020)
    b[:500] = -a[:500] * (1 + rng.uniform(-1e-10, 1e-10, 500))  # cancellation
    b[500:600] = np.ldexp(rng.integers(-(2**52), 2**52, 100).astype(float), -1074)  # subnormal
    s, e = dd.two_sum(a, b)
    for x, y, p, q in zip(a, b, s, e):
        assert frac(p, q) == Fraction(x) + Fraction(y)
    big = np.where(np.abs(a) >= np.abs(b), a, b)
    small = np.where(np.abs(a) >= np.abs(b), b, a)
    s2, e2 = dd.fast_two_sum(big, small)
    assert np.array_equal(s, s2) and np.array_equal(e, e2)
    assert_normalized(s, e)


def _check_two_prod(a, b):
    p, e = dd.two_prod(a, b)
    assert np.array_equal(p, np.asarray(a) * np.asarray(b))
    for x, y, pp, ee in zip(np.ravel(a), np.ravel(b), np.ravel(p), np.ravel(e)):
        assert frac(pp, ee) == Fraction(float(x)) * Fraction(float(y)), (x, y)


def test_two_prod_exact_over_the_valid_range():
    rng = np.random.default_rng(2)
    n = 3000
    # products from 2**-968 to 2**1022, operands anywhere (including > 2**996: pre-scaling)
    ea = rng.integers(-1070, 1023, n)
    target = rng.integers(-967, 1021, n)
    a = np.ldexp(rng.uniform(1, 2, n), ea) * rng.choice([-1.0, 1.0], n)
    b = np.ldexp(rng.uniform(1, 2, n), np.clip(target - ea, -1074, 1023))
    ok = (np.abs(a * b) >= 2.0**-968) & (np.abs(a * b) < 2.0**1022)
    _check_two_prod(a[ok], b[ok])
    # both operands huge/tiny, subnormal operands, exact zero, the split limit
    a = np.array([2.0**1000 * 1.3, 1.7976931348623157e308, 5e-324, 2.0**-1060 * 1.77,
                  2.0**996, 2.0**996 * 1.0000001, 0.0, -3.0, 2.0**-500 * 1.9])
    b = np.array([2.0**-100 * 1.1, 2.0**-60 * 1.5, 2.0**150 * 1.23, -(2.0**100) * 1.61,
                  2.0**20 * 1.7, 1.5, 1e300, 0.0, 2.0**-467 * 1.3])
    _check_two_prod(a, b)


def test_split():
    rng = np.random.default_rng(3)
    a, _ = rand_dd(rng, 2000, -1074, 1024)
    a[:3] = [(2 - 2.0**-25) * 2.0**1023, -(2.0**997) * 1.999, 5e-324]
    hi, lo = dd.split(a)
    for x, h, l in zip(a, hi, lo):
        assert Fraction(h) + Fraction(l) == Fraction(x)
        for w in (h, l):
            if w != 0:
                n = abs(Fraction(w).numerator)
                n >>= (n & -n).bit_length() - 1  # drop trailing zero bits
                assert n.bit_length() <= 26


@SETTINGS
@given(st.floats(-1e300, 1e300), st.floats(-1e300, 1e300))
def test_two_sum_hypothesis(a, b):
    s, e = dd.two_sum(a, b)
    assert frac(s, e) == Fraction(a) + Fraction(b)


@SETTINGS
@given(st.floats(-1e150, 1e150), st.floats(-1e150, 1e150))
def test_two_prod_hypothesis(a, b):
    exact = Fraction(a) * Fraction(b)  # the float product may underflow to 0
    if exact != 0 and abs(exact) < Fraction(2) ** -968:
        return  # outside two_prod's documented range
    _check_two_prod(np.array([a]), np.array([b]))


# ============================================================================ dd operations


def _op_inputs(seed, n=1500, emin=-300, emax=300):
    rng = np.random.default_rng(seed)
    ah, al = rand_dd(rng, n, emin, emax)
    bh, bl = rand_dd(rng, n, emin, emax)
    # near-cancellation pairs for the additions, and equal exponents
    k = n // 4
    bh[:k], bl[:k] = dd.dd_normalize(-ah[:k] * (1 + rng.uniform(-1e-6, 1e-6, k)),
                                     -al[:k] * rng.uniform(-2, 2, k))
    bh[k:2 * k], bl[k:2 * k] = dd.dd_normalize(-ah[k:2 * k], al[k:2 * k] * rng.uniform(-2, 2, k))
    return ah, al, bh, bl


def test_dd_add_bounds():
    ah, al, bh, bl = _op_inputs(10)
    ex = [frac(a, b) + frac(c, d) for a, b, c, d in zip(ah, al, bh, bl)]
    res = dd.dd_add(ah, al, bh, bl)
    assert_normalized(*res)
    check_rel("dd_add", res, ex, dd.ADD_REL)
    ex = [frac(a, b) - frac(c, d) for a, b, c, d in zip(ah, al, bh, bl)]
    check_rel("dd_sub", dd.dd_sub(ah, al, bh, bl), ex, dd.ADD_REL)
    ex = [frac(a, b) + Fraction(c) for a, b, c in zip(ah, al, bh)]
    res = dd.dd_add_d(ah, al, bh)
    assert_normalized(*res)
    check_rel("dd_add_d", res, ex, dd.ADD_D_REL)


def test_dd_mul_div_bounds():
    ah, al, bh, bl = _op_inputs(11, emin=-1000, emax=1000)
    keep = np.abs(np.log2(np.abs(ah)) + np.log2(np.abs(bh))) < 960
    keep &= np.abs(np.log2(np.abs(ah)) - np.log2(np.abs(bh))) < 960
    ah, al, bh, bl = ah[keep], al[keep], bh[keep], bl[keep]
    ex = [frac(a, b) * frac(c, d) for a, b, c, d in zip(ah, al, bh, bl)]
    res = dd.dd_mul(ah, al, bh, bl)
    assert_normalized(*res)
    check_rel("dd_mul", res, ex, dd.MUL_REL)
    ex = [frac(a, b) * Fraction(c) for a, b, c in zip(ah, al, bh)]
    res = dd.dd_mul_d(ah, al, bh)
    assert_normalized(*res)
    check_rel("dd_mul_d", res, ex, dd.MUL_D_REL)
    ex = [frac(a, b) / frac(c, d) for a, b, c, d in zip(ah, al, bh, bl)]
    res = dd.dd_div(ah, al, bh, bl)
    assert_normalized(*res)
    check_rel("dd_div", res, ex, dd.DIV_REL)


@SETTINGS
@given(st.lists(st.floats(-1e140, 1e140).filter(lambda x: x == 0 or abs(x) > 1e-140),
                min_size=4, max_size=4))
def test_dd_ops_hypothesis(v):
    ah, al = dd.dd_normalize(v[0], v[1] * 2.0**-60)
    bh, bl = dd.dd_normalize(v[2], v[3] * 2.0**-60)
    a, b = frac(ah, al), frac(bh, bl)
    for name, res, x, bound in (
        ("dd_add", dd.dd_add(ah, al, bh, bl), a + b, dd.ADD_REL),
        ("dd_add_d", dd.dd_add_d(ah, al, bh), a + Fraction(float(bh)), dd.ADD_D_REL),
        ("dd_mul", dd.dd_mul(ah, al, bh, bl), a * b, dd.MUL_REL),
        ("dd_mul_d", dd.dd_mul_d(ah, al, bh), a * Fraction(float(bh)), dd.MUL_D_REL),
    ):
        check_rel(name, ([res[0]], [res[1]]), [x], bound)
    if b != 0:
        check_rel("dd_div", ([x] for x in dd.dd_div(ah, al, bh, bl)), [a / b], dd.DIV_REL)


# ============================================================================ dd_sum


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000])
def test_dd_sum_bound(n):
    rng = np.random.default_rng(n)
    rows = 40
    hi, lo = rand_dd(rng, rows * n, -60, 60)
    hi, lo = hi.reshape(rows, n), lo.reshape(rows, n)
    hi[: rows // 2] = np.abs(hi[: rows // 2])  # positive rows (softmax partitions)
    lo[: rows // 2] *= np.sign(hi[: rows // 2]) * np.sign(lo[: rows // 2])
    hi[-1, :] = hi[-1, 0] * (-1.0) ** np.arange(n)  # heavy cancellation
    lo[-1, :] = 0.0
    sh, sl, err = dd.dd_sum(hi, lo, axis=-1)
    assert_normalized(sh, sl)
    worst = 0.0
    for i in range(rows):
        exact = sum((frac(h, l) for h, l in zip(hi[i], lo[i])), Fraction(0))
        d = abs(frac(sh[i], sl[i]) - exact)
        assert d <= Fraction(float(err[i])), (n, i)
        if err[i] > 0:
            worst = max(worst, float(d / Fraction(float(err[i]))))
        else:
            assert d == 0
    record("dd_sum", worst)
    # the other axis gives the same sums
    sh0, sl0, err0 = dd.dd_sum(hi.T, lo.T, axis=0)
    assert np.array_equal(sh0, sh) and np.array_equal(sl0, sl) and np.array_equal(err0, err)


def test_dd_sum_empty_and_plain_floats():
    sh, sl, err = dd.dd_sum(np.zeros((3, 0)))
    assert sh.shape == (3,) and not sh.any() and not err.any()
    x = np.array([1.0, 2.0**-60, -1.0, 3.0])
    sh, sl, err = dd.dd_sum(x)
    assert frac(sh, sl) == 3 + Fraction(2) ** -60


# ============================================================================ exp


def _exp_adversarial():
    ln2 = REF.log(2)
    xs = [0.0, -0.0, -1e-300, -5e-324, -1e-17, -(2.0**-200), -(2.0**-199), -1e-8, -0.5,
          -1.0, -745.1332191019411, -745.1332191019412, -744.4400719213812,
          -708.3964185322641, -708.39641853226, -709.0, -740.0, -745.0, -746.0, -750.0,
          -786.0, -785.99999999999, 1e-300, 0.3, 1.0, 10.0, 700.0, 709.78]
    xs += [float(k * ln2) for k in range(-1074, 1, 7)]  # nearest doubles to k ln2
    xs += [float(k * ln2 / 64) for k in range(-47000, 0, 397)]  # k ln2/64
    half = [float((k + 0.5) * ln2 / 64) for k in range(-47000, 0, 1013)]  # rint ties
    xs += half + [np.nextafter(h, 0.0) for h in half] + [np.nextafter(h, -1.0) for h in half]
    return np.array(xs)


def test_exp_random_and_adversarial():
    rng = np.random.default_rng(20)
    x = np.concatenate([-rng.uniform(0, 745, 6000), -rng.uniform(700, 786, 1500),
                        -np.exp(rng.uniform(-700, 0, 1500)), _exp_adversarial()])
    hi, lo, err = dd.dd_exp(x)
    assert_normalized(hi, lo)
    assert np.all(err >= 0)
    check_abs_mp("dd_exp", hi, lo, err, mp_exp(x), rel_bound=dd.EXP_REL)
    mh, ml, e = dd.dd_exp_parts(x[x >= -786])
    assert np.all((mh >= 0.99) & (mh < 2.0))


def test_exp_specials():
    hi, lo, err = dd.dd_exp(np.array([-np.inf, np.inf, np.nan, -1e5, -800.0, 710.0, 0.0, -0.0]))
    assert hi[0] == 0 and err[0] == 0
    assert hi[1] == np.inf and err[1] == 0
    assert np.isnan(hi[2]) and np.isnan(err[2])
    assert hi[3] == 0 and lo[3] == 0 and err[3] == dd.EXP_UNDERFLOW_ERR
    assert REF.exp(dd.EXP_UNDERFLOW_X) < REF.mpf(2) ** -1133
    assert dd.EXP_UNDERFLOW_ERR == 5e-324
    assert hi[4] == 0 and err[4] == dd.EXP_UNDERFLOW_ERR
    assert hi[5] == np.inf and err[5] == np.inf
    assert hi[6] == 1 and lo[6] == 0 and hi[7] == 1
    mh, ml, e = dd.dd_exp_parts(np.array([-np.inf, 0.0]))
    assert list(mh) == [0.0, 1.0] and list(e) == [0, 0]
    with pytest.raises(ValueError):
        dd.dd_exp_parts(np.array([-(2.0**18)]))


def test_exp_parts_far_underflow():
    """dd_exp_parts keeps full relative accuracy far below the float64 range."""
    rng = np.random.default_rng(21)
    x = np.concatenate([-rng.uniform(745, 1.3e5, 400), [-(2.0**17), -1e5, -12345.678]])
    mh, ml, e = dd.dd_exp_parts(x)
    worst = 0.0
    for a, h, l, k in zip(x, mh, ml, e):
        y = REF.exp(REF.mpf(a))
        d = abs(WIDE.ldexp(WIDE.mpf(h) + WIDE.mpf(l), int(k)) - y) + y * REF_SLACK
        r = float(d / y) / dd.EXP_REL
        assert r <= 1.0
        worst = max(worst, r)
    record("dd_exp_parts far (relative)", worst)


def test_exp_dd_argument():
    """A dd argument: exp(xh + xl) with a non-zero low word, including arguments that are
    k ln2/64 to 106 bits (tiny reduced argument)."""
    rng = np.random.default_rng(22)
    xh = -rng.uniform(0, 745, 1500)
    xl = xh * rng.uniform(-1, 1, 1500) * 2.0**-53
    ks = np.arange(-47000, 0, 331)
    exact = [REF.log(2) * int(k) / 64 for k in ks]
    kh = np.array([float(v) for v in exact])
    kl = np.array([float(v - REF.mpf(h)) for v, h in zip(exact, kh)])
    xh, xl = np.concatenate([xh, kh]), np.concatenate([xl, kl])
    hi, lo, err = dd.dd_exp(xh, xl)
    assert_normalized(hi, lo)
    check_abs_mp("dd_exp dd-arg", hi, lo, err, mp_exp(xh, xl), rel_bound=dd.EXP_REL)


@SETTINGS
@given(st.lists(st.floats(-790, 0), min_size=1, max_size=8))
def test_exp_hypothesis(xs):
    x = np.array(xs)
    hi, lo, err = dd.dd_exp(x)
    check_abs_mp("dd_exp", hi, lo, err, mp_exp(x), rel_bound=dd.EXP_REL)


# ============================================================================ log1p / log


def _bucket_edges(rng, n):
    """1 + t next to the edges of the log table buckets (j +- 1/2)/128 * 2**q and of the
    sqrt(2) split, a few ulps either side."""
    j = rng.integers(91, 182, n) + 0.5
    q = rng.integers(0, 40, n)
    a = np.ldexp(j / 128, q)
    a = np.where(rng.random(n) < 0.1, np.ldexp(np.sqrt(0.5), q + 1), a)
    for _ in range(3):
        a = np.where(rng.random(n) < 0.5, np.nextafter(a, 0), np.nextafter(a, np.inf))
    return a


def _edges_near_one():
    """The bucket edges next to 1 (where |log a| is smallest for j != 128), +- 8 ulps."""
    e = np.array([126.5, 127.5, 128.5, 129.5]) / 128
    return (e[:, None] + np.arange(-8, 9)[None, :] * 2.0**-52).ravel()


def test_log1p_listed_and_random():
    rng = np.random.default_rng(30)
    listed = [0.0, 1e-300, 5e-324, 2.0**-200, 2.0**-199, 1e-17, 1e-8, 0.001, 0.0039, 0.5,
              1.0, 1e3, 1e8, 1e300, 1.7976931348623157e308, 2.0**-52, 0.41421356237309503]
    t = np.concatenate([listed, np.exp(rng.uniform(-690, 690, 5000)),
                        rng.uniform(0, 0.02, 1000), _bucket_edges(rng, 1500) - 1.0,
                        _edges_near_one() - 1.0])
    hi, lo, err = dd.dd_log1p(t)
    assert_normalized(hi, lo)
    check_abs_mp("dd_log1p", hi, lo, err, mp_log1p(t), rel_bound=dd.LOG_REL)
    assert hi[0] == 0 and err[0] == 0
    assert hi[1] == 1e-300 and lo[1] == 0  # log1p(t) = t - t**2/2: rounds to t


def test_log1p_dd_argument_and_negative():
    rng = np.random.default_rng(31)
    th = np.concatenate([np.exp(rng.uniform(-690, 690, 1500)), -rng.uniform(0, 1, 500),
                         [-0.5, -0.9999999999, -1e-10, -1.0 + 2.0**-52, -1.0, -0.29289]])
    tl = th * rng.uniform(-1, 1, th.size) * 2.0**-53
    tl[-2] = 2.0**-60  # t = -1 + 2**-60, 1 + t formed without rounding
    hi, lo, err = dd.dd_log1p(th, tl)
    assert_normalized(hi, lo)
    check_abs_mp("dd_log1p dd/negative", hi, lo, err, mp_log1p(th, tl), rel_bound=dd.LOG_REL)


def test_log1p_specials():
    hi, lo, err = dd.dd_log1p(np.array([-1.0, -2.0, np.inf, np.nan, -0.0]))
    assert hi[0] == -np.inf and err[0] == 0
    assert np.isnan(hi[1]) and np.isnan(hi[3])
    assert hi[2] == np.inf and err[2] == 0
    assert hi[4] == 0 and err[4] == 0


def test_log_random_and_adversarial():
    rng = np.random.default_rng(40)
    ah = np.concatenate([
        np.exp(rng.uniform(-708, 709, 3000)),
        1.0 + rng.integers(-2000, 2000, 400) * 2.0**-52,
        rng.uniform(0.98, 1.02, 600),
        _bucket_edges(rng, 1000) * 2.0 ** rng.integers(-60, 1, 1000), _edges_near_one(),
        [5e-324, 2.0**-1074 * 12345, 2.0**-1022, 1.7976931348623157e308, 1.0, 0.5, 2.0],
    ])
    al = ah * rng.uniform(-1, 1, ah.size) * 2.0**-53
    al[rng.random(ah.size) < 0.3] = 0.0
    ah, al = dd.dd_normalize(ah, al)
    ah = np.append(ah, [1.0, 1.0, 1.0])  # 1 + tiny low words: log a ~ lo
    al = np.append(al, [1e-300, -(2.0**-60), 5e-324])
    hi, lo, err = dd.dd_log(ah, al)
    assert_normalized(hi, lo)
    check_abs_mp("dd_log", hi, lo, err, mp_log(ah, al), rel_bound=dd.LOG_REL)


def test_log_specials():
    hi, lo, err = dd.dd_log(np.array([0.0, -1.0, np.inf, np.nan, 1.0]))
    assert hi[0] == -np.inf and err[0] == 0
    assert np.isnan(hi[1]) and np.isnan(hi[3])
    assert hi[2] == np.inf
    assert hi[4] == 0 and lo[4] == 0 and err[4] == 0


@SETTINGS
@given(st.lists(st.floats(0, 1e308), min_size=1, max_size=8))
def test_log1p_hypothesis(ts):
    t = np.array(ts)
    hi, lo, err = dd.dd_log1p(t)
    check_abs_mp("dd_log1p", hi, lo, err, mp_log1p(t), rel_bound=dd.LOG_REL)


@SETTINGS
@given(st.lists(st.floats(5e-324, 1e308), min_size=1, max_size=8))
def test_log_hypothesis(xs):
    a = np.array(xs)
    hi, lo, err = dd.dd_log(a)
    check_abs_mp("dd_log", hi, lo, err, mp_log(a), rel_bound=dd.LOG_REL)


# ============================================================================ misc


def test_shapes_broadcasting_and_blocks():
    rng = np.random.default_rng(50)
    x = -rng.uniform(0, 50, (3, 7000))  # > one block
    hi, lo, err = dd.dd_exp(x)
    assert hi.shape == x.shape
    h1, l1, e1 = dd.dd_exp(x.ravel()[:100])
    assert np.array_equal(h1, hi.ravel()[:100]) and np.array_equal(l1, lo.ravel()[:100])
    hi, lo, err = dd.dd_log1p(np.array(0.5))
    assert hi.shape == ()
    s = dd.dd_mul(np.ones((2, 1)), 0.0, np.arange(3.0), 0.0)
    assert s[0].shape == (2, 3)


def test_to_fraction():
    f = dd.to_fraction(np.array([1.0, np.inf]), np.array([2.0**-60, 0.0]))
    assert f[0] == 1 + Fraction(2) ** -60 and f[1] == math.inf

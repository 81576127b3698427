"""The engine's own exponential and summation order, and its two paths (numpy, compiled).

Both paths are tested: the compiled kernel (numba, a dependency wherever numba has a wheel)
must give the numpy path's values bit for bit, and the same certified answers through the
public API.
"""

from __future__ import annotations

import importlib.util

import mpmath
import numpy as np
import pytest
from tests.oracle.ruled import ruled_sparse

from xentconf.oracle import certify as C
from xentconf.oracle import engine as E
from xentconf.oracle import rows as R
from xentconf.oracle.dd import two_sum
from xentconf.oracle.fast import tf as fast_tf
from xentconf.oracle.vexp import (
    EXP_ABS,
    EXP_REL,
    LANES,
    LOG1P_REL,
    U,
    exp_nonpos,
    log1p_pos,
    log1p_unit,
)

HAS_NUMBA = importlib.util.find_spec("numba") is not None
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (a dependency "
                                 "of xentconf wherever numba publishes a wheel)")


def _exp_points() -> np.ndarray:
    rng = np.random.default_rng(2)
    ln2 = np.log(2.0)
    k = np.arange(1, 1160, 7.0)
    return np.concatenate([
        -rng.random(1500) * 800, -rng.random(1500) * 2, -np.abs(rng.standard_normal(1500)) * 40,
        -k * ln2, -(k + 0.5) * ln2, -(k + 0.5) * ln2 * (1 + 2.0 ** -40),  # |r| at its largest
        -rng.random(300) * 2.0 ** -30,
        [0.0, -0.0, -5e-324, -1e-300, -2.0 ** -53, -0.34657359027997264, -0.3465735902799727,
         -708.3964185322641, -708.4, -709.0, -744.44, -745.1332191019411, -745.14, -746.0,
         -799.99, -800.0, -800.01, -1e4, -3.4e38, -1e300, -np.inf],
    ])


def _worst_error(xs, got, fn: str, rel: float, absolute: float = 0.0,
                 floor: float = 0.0) -> float:
    """Holds ``|got − f(x)| ≤ rel·f(x) + absolute`` at every point against 120-bit mpmath
    (``f`` = ``mpmath.<fn>``); returns the largest relative error where ``f(x) > floor``."""
    ctx = mpmath.MPContext()
    ctx.prec = 120
    worst = 0.0
    for xi, gi in zip(np.asarray(xs).tolist(), np.asarray(got).tolist()):
        exact = getattr(ctx, fn)(ctx.mpf(xi))
        err = abs(ctx.mpf(gi) - exact)
        assert err <= rel * exact + absolute, (xi, gi)
        if exact > floor:
            worst = max(worst, float(err / exact))
    return worst


def test_exp_nonpos_is_within_its_claimed_bound():
    """|exp_nonpos(d) − e^d| ≤ EXP_REL·e^d + EXP_ABS against 120-bit mpmath, extremes
    included (the derivation in vexp gives 2.4u; the largest seen here is ~1.3u)."""
    d = _exp_points()
    worst = _worst_error(d, exp_nonpos(d), "exp", EXP_REL, EXP_ABS, 2.0 ** -1000)
    assert worst <= EXP_REL and worst > 0
    assert exp_nonpos(np.array([0.0, -0.0]))[0] == 1.0 == exp_nonpos(np.array([-0.0]))[0]
    assert worst / U < 2.5


def _log1p_points() -> np.ndarray:
    rng = np.random.default_rng(6)
    half = 0.5
    return np.concatenate([
        rng.random(4000), rng.random(1000) * 2.0 ** -rng.integers(1, 1075, 1000),
        half + rng.random(500) * 2.0 ** -30, half - rng.random(500) * 2.0 ** -30,  # the switch
        1 - rng.random(500) * 2.0 ** -30, rng.random(500) * 2.0 ** -20,
        exp_nonpos(-np.abs(rng.standard_normal(1000)) * 30),  # as the C = 2 loss asks
        [0.0, 5e-324, 1e-310, 2.0 ** -1022, 1e-300, 2.0 ** -60, 2.0 ** -53, 0.25,
         np.nextafter(half, 0), half, np.nextafter(half, 1), 0.4142135623730951,
         np.nextafter(1.0, 0), 1.0],
    ])


def test_log1p_unit_is_within_its_claimed_bound():
    """|log1p_unit(e) − log1p(e)| ≤ LOG1P_REL·log1p(e) on [0, 1] against 120-bit mpmath,
    both ends and the switch to the ln 2 reduction included (the derivation in vexp gives
    2.84u), exact at 0 and correctly rounded ln 2 at 1."""
    e = _log1p_points()
    worst = _worst_error(e, log1p_unit(e), "log1p", LOG1P_REL)
    assert 0 < worst <= LOG1P_REL and worst / U < 2.84
    assert log1p_unit(np.array([0.0, 1.0])).tolist() == [0.0, float(mpmath.log(2))]


def _log1p_pos_points() -> np.ndarray:
    """Points above 1 for log1p_pos: just above 1, a row's sum at C ≤ 16, large sums, the
    switch to halving ``g`` (``1 + t`` near ``3·2^(k−1)``), the largest float64."""
    rng = np.random.default_rng(7)
    k = rng.integers(2, 60, 1000)
    return np.concatenate([
        1 + rng.random(2000) * 2.0 ** -rng.integers(0, 60, 2000),
        1 + rng.random(3000) * 15, np.exp(rng.random(2000) * 44),
        3.0 * 2.0 ** (k - 1) * (1 + rng.standard_normal(1000) * 2.0 ** -40) - 1,
        [np.nextafter(1.0, 2), 2.0, 3.0, np.nextafter(3.0, 2), np.nextafter(2.0, 4), 7.0,
         2.0 ** 31, 1e300, np.finfo(np.float64).max],
    ])


def test_log1p_pos_is_within_its_claimed_bound():
    """|log1p_pos(t) − log1p(t)| ≤ LOG1P_REL·log1p(t) for t > 1 against 120-bit mpmath
    (the derivation in vexp gives 2.53u there), log1p_unit's very values up to 1, and
    +inf at +inf."""
    t = _log1p_pos_points()
    worst = _worst_error(t, log1p_pos(t), "log1p", LOG1P_REL)
    assert 0 < worst <= LOG1P_REL and worst / U < 2.53
    e = _log1p_points()
    assert np.array_equal(log1p_pos(e), log1p_unit(e))
    assert log1p_pos(np.array([np.inf, 0.0])).tolist() == [np.inf, 0.0]
    # 1 + t is no float64 here: its rounding error (up to 1.4u of the answer) is carried,
    # and these come out correctly rounded
    t = np.array([1 + 2.0 ** -52, 1 + 3 * 2.0 ** -52, 2 + 2.0 ** -51, 5 + 2.0 ** -50])
    assert log1p_pos(t).tolist() == [float(mpmath.log1p(mpmath.mpf(v))) for v in t.tolist()]


@needs_numba
@pytest.mark.parametrize("name", ["log1p_unit", "log1p_pos"])
def test_compiled_log1p_matches_the_numpy_one_bit_for_bit(name):
    from xentconf.oracle import _kernels, vexp

    x = _log1p_points() if name == "log1p_unit" else \
        np.concatenate([_log1p_points(), _log1p_pos_points(), [np.inf]])
    want = getattr(vexp, name)(x)
    compiled = getattr(_kernels, "_" + name)
    got = np.array([compiled(v) for v in x.tolist()])
    assert np.array_equal(got, want)


def _tree(v: list) -> float:
    """The complete binary tree over a power-of-two list (reference for lane_sum)."""
    while len(v) > 1:
        v = [v[i] + v[i + 1] for i in range(0, len(v), 2)]
    return v[0]


@pytest.mark.parametrize("c", [1, 2, 7, 8, 9, 17, 100, 1000, 2049, 5000])
def test_lane_sum_is_the_documented_tree(c):
    rng = np.random.default_rng(c)
    a = np.exp(rng.standard_normal((3, c)) * 20)
    s, lev = R.lane_sum(a)
    assert lev == R.lane_levels(c)
    lanes = LANES
    nch = -(-c // lanes)
    npow = 1 << (nch - 1).bit_length()
    for i in range(3):
        pad = np.zeros(npow * lanes)
        pad[:c] = a[i]
        chunks = pad.reshape(npow, lanes)
        vec = [_tree(list(chunks[:, j])) for j in range(lanes)]
        assert s[i] == _tree(vec)


def test_float32_shift_rule_is_sound():
    """Rows the rule calls exact have x − m exact in float64 (two_sum error 0)."""
    rng = np.random.default_rng(4)
    rows = []
    for _ in range(400):
        scale = 10.0 ** rng.integers(-45, 38)
        r = rng.standard_normal(12) * scale
        r[rng.random(12) < 0.2] *= 10.0 ** rng.integers(-40, 10)
        r[rng.random(12) < 0.1] = 0.0
        rows.append(r)
    with np.errstate(over="ignore"):
        x = np.array(rows).astype(np.float32)
    x[~np.isfinite(x)] = 0
    bad, m, _k = R._row_max(x)
    maybe = R._inexact_shift_rows(x, bad)
    _s, err = two_sum(x.astype(np.float64), -m[:, None])
    exact_rows = ~maybe & ~bad
    assert exact_rows.sum() > 100 and maybe.sum() > 10
    assert not err[exact_rows].any()


def _adversarial_blocks():
    rng = np.random.default_rng(3)
    for c in (1, 2, 7, 8, 9, 10, 15, 16, 17, 100, 1000, 2047, 2048, 2049, 4097, 20000):
        for dt in (np.float32, np.float64):
            x = (rng.standard_normal((5, c)) * 3).astype(dt)
            yield x
            y = x.copy()
            y[0, 0] = -np.inf
            y[1, -1] = np.nan
            y[2, :] = -np.inf
            y[3, c // 2] = np.inf
            yield y
            y = x.copy()
            y[:, 0] += dt(70)
            y[1] *= dt(1e-30)
            y[2, ::3] = dt(1e30)
            y[3] += dt(1e4)
            y[4, 1::2] = 0
            yield y
            yield np.round(x)  # ties
            yield np.round(x * dt(100))  # exact shifts, max − min > 700 (subnormal e_j)
            yield (x * dt(1e-38)).astype(dt)  # subnormal float32
            y = x.copy()
            y[:, 1::4] *= dt(1e-12)  # shifts that are not exact
            yield y
            if dt is np.float64 and c > 1:  # x − max overflows to −inf
                y = x.copy()
                y[:, 0] = 1.7e308
                y[::2, -1] = -1.7e308
                yield y


@needs_numba
def test_the_exponential_below_the_kernels_underflow_cut_is_exactly_zero():
    """The compiled ``exp_nonpos`` takes 0 below ``_kernels.UNDERFLOW`` instead of computing
    it (the steps there are subnormal, and slow): vexp's own steps give exactly 0 there
    (e^−746 is below half the least subnormal), and just above the cut both give vexp's
    bits, the first nonzero results included."""
    import numba as nb

    from xentconf.oracle import _kernels as K

    @nb.njit
    def compiled(d, out):
        for i in range(d.shape[0]):
            out[i] = K._exp_nonpos(d[i])

    below = np.concatenate([np.linspace(-800.0, K.UNDERFLOW, 200001),
                            [-np.inf, -1e300, -801.0, np.nextafter(K.UNDERFLOW, -1.0)]])
    above = np.concatenate([np.linspace(K.UNDERFLOW, -700.0, 200001), [-745.13, -745.2]])
    for d in (below, above):
        got = np.empty_like(d)
        compiled(d, got)
        assert np.array_equal(got, exp_nonpos(d))
    assert not exp_nonpos(below).any()
    e = exp_nonpos(above)  # the cut lies among zeros, just below the first subnormals
    assert (e[:3000] == 0).all() and (e[4000:200001] > 0).all()


@needs_numba
def test_kernel_matches_the_numpy_path_bit_for_bit():
    from xentconf.oracle import accel

    kern = accel.kernel()
    assert kern is not None
    rng = np.random.default_rng(9)
    for x in _adversarial_blocks():
        lab = rng.integers(0, x.shape[1], x.shape[0])
        a = kern(np.ascontiguousarray(x), lab)
        b = R.sparse_row_stats(x, lab, accel=False)
        assert np.array_equal(a[0], b[0])
        good = ~a[0]
        assert np.array_equal(a[5], b[5], equal_nan=True)
        for i in range(1, 5):
            assert np.array_equal(a[i][good], b[i][good]), (i, x.dtype, x.shape)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [3, 10, 16, 24, 32, 64, 100])  # 1 to 16 lane chunks
def test_kernel_blocks_that_are_not_quick_match_the_numpy_path(c, dtype):
    """The small-C kernel takes a quick road for a block of float32 rows whose shifts are
    all exact and narrow; one row that is not (an inexact shift, a −inf, a shift below
    −700) must send its own block, and only it, the general way: the same bits as the
    numpy path in every block (float64 rows, whose shifts are seldom exact, never take
    it)."""
    from xentconf.oracle import accel

    rng = np.random.default_rng(c)
    x = (rng.standard_normal((1500, c)) * 3).astype(dtype)
    x[300, 1] *= dtype(1e-12)  # x − m not exact in float64
    x[700, 0] = -np.inf
    x[1100, 0] = dtype(-720)  # e^(x − m) subnormal: the clamp and two-step scaling
    x[1400, c - 1] = dtype(2.0 ** -140)  # subnormal in float32: x − m not exact either
    x[900, 0] = dtype(-(2.0 ** -145))  # and in the first column (keys start there)
    lab = rng.integers(0, c, x.shape[0])
    a = accel.kernel()(x, lab)
    b = R.sparse_row_stats(x, lab, accel=False)
    assert not a[0].any() and not b[0].any()
    assert a[4][300] != 0  # the inexact shift's error is carried
    assert a[4][900] != 0 and a[4][1400] != 0  # (each in a block of its own)
    for i in range(1, 6):
        assert np.array_equal(a[i], b[i]), i


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [3, 10, 16, 40, 128, 129])
def test_a_zero_maximum_has_its_first_zero_as_index_whatever_its_sign(c, dtype):
    """A row whose maximum is 0 with a −0 before a +0 (and its mirror): the first index of
    the maximum is the first zero of either sign, as ``np.argmax`` finds it (−0 == +0),
    though the kernel orders −0 below +0 to find the maximum."""
    from xentconf.oracle import accel

    x = np.full((6, c), -1.5, dtype=dtype)
    x[0, 0], x[0, 1] = -0.0, 0.0
    x[1, 0], x[1, 1] = 0.0, -0.0
    x[2, 1], x[2, c - 1] = -0.0, 0.0
    x[3, c - 1] = 0.0
    x[4, :] = -0.0
    x[5, 1], x[5, 2] = -0.0, -np.inf  # a row with a non-finite logit takes its own road
    lab = np.arange(6) % c
    a = accel.kernel()(x, lab)
    b = R.sparse_row_stats(x, lab, accel=False)
    assert list(a[2]) == [0, 0, 1, c - 1, 0, 1] == list(np.argmax(x, axis=1))
    for i in range(6):
        assert np.array_equal(a[i], b[i]), i


@needs_numba
def test_a_non_contiguous_input_is_read_in_copies_with_the_same_rows(monkeypatch):
    """The compiled sparse loss reads a non-contiguous input (a transposed array) in copies
    of ``COPY_BYTES``: every row's value and radius the same bits as from a contiguous copy
    of it, and as the numpy path's, on several threads."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((10, 3000)) * 3).astype(np.float32).T  # [3000, 10], by column
    y = rng.integers(0, 10, 3000)
    y[::7] = -1  # out of range: NaN rows on the gpu profile
    monkeypatch.setattr(R, "COPY_BYTES", 4000)  # 100 rows a copy
    monkeypatch.setattr(E, "THREADS", 3)
    seen = []
    for z, accel in ((x, True), (np.ascontiguousarray(x), True), (x, False)):
        monkeypatch.setattr(E, "USE_ACCEL", accel)
        e = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y, z, profile="gpu")
        assert e.engine.accel is accel
        assert e.plan.rows.source.flags.c_contiguous is (z is not x)
        seen.append(e.engine._row_values())
    for L, R_ in seen[1:]:
        assert np.array_equal(L, seen[0][0], equal_nan=True)
        assert np.array_equal(R_, seen[0][1])
    assert np.isnan(seen[0][0][::7]).all() and np.isfinite(seen[0][0][1::7]).all()


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_public_answers_are_the_same_on_both_paths(monkeypatch, dtype):
    rng = np.random.default_rng(8)
    for x in _adversarial_blocks():
        if x.dtype != dtype:
            continue
        y = rng.integers(0, x.shape[1], x.shape[0])
        y_out = y.copy()
        y_out[::2] = x.shape[1]  # out of range: a NaN row on the gpu profile
        w = np.linspace(-1, 2, x.shape[0]).astype(np.float32)
        out = {}
        for accel_on in (True, False):
            monkeypatch.setattr(E, "USE_ACCEL", accel_on)
            e = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y, x)
            v = fast_tf.compat.v1.losses.sparse_softmax_cross_entropy(
                y, x, weights=w, reduction="weighted_mean")
            g = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y_out, x, profile="gpu")
            assert e.engine.accel is accel_on
            out[accel_on] = (e["loss"].rounded64, e.engine.fallbacks, v["loss"].rounded64,
                             g["loss"].rounded64)
        assert np.array_equal(out[True][0], out[False][0], equal_nan=True)
        assert out[True][1] == out[False][1]
        assert np.array_equal(out[True][2], out[False][2], equal_nan=True)
        assert np.isnan(out[True][3][::2]).all()
        assert np.array_equal(out[True][3], out[False][3], equal_nan=True)


@needs_numba
def test_float16_logits_take_the_compiled_kernel_with_the_numpy_paths_rows(monkeypatch):
    """float16 logits at C > 2 are read widened to float32 by the compiled sparse loss
    (exact): every row's value and radius, the answers and the fallbacks are the numpy
    path's, on the adversarial blocks in float16 (their 1e30s become infinities) and over
    several copies and threads."""
    rng = np.random.default_rng(12)
    monkeypatch.setattr(R, "COPY_BYTES", 256)
    monkeypatch.setattr(E, "THREADS", 3)
    for x32 in _adversarial_blocks():
        if x32.dtype != np.float32 or x32.shape[1] < 3:
            continue
        with np.errstate(over="ignore"):
            x = np.concatenate([x32] * 20).astype(np.float16)
        y = rng.integers(0, x.shape[1], x.shape[0])
        seen = []
        for accel in (True, False):
            monkeypatch.setattr(E, "USE_ACCEL", accel)
            e = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y, x)  # the loss alone
            assert e.engine.accel is accel
            loss = e["loss"].rounded64
            rows = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y, x).engine._row_values()
            seen.append((rows, loss, e.engine.fallbacks))
        ((La, Ra), a, fa), ((Lb, Rb), b, fb) = seen
        assert np.array_equal(La, Lb, equal_nan=True) and np.array_equal(Ra, Rb)
        assert np.array_equal(a, b, equal_nan=True) and fa == fb


@needs_numba
def test_the_compiled_gradient_rows_values_and_radii_are_the_numpy_paths():
    """Each row's scaled backprop and its radius from the compiled row function
    (``_kernels._sparse_grad_row``, on the kernel's row values) are ``rows._Rows.sparse_bp``
    scaled by ``engine._scale``, bit for bit, on the adversarial blocks (float32 and
    float64, C ≥ 3), with γ = 1 and with a signed γ carrying a radius."""
    from xentconf.oracle import _kernels as K
    from xentconf.oracle import accel

    rng = np.random.default_rng(14)
    for x in _adversarial_blocks():
        n, c = x.shape
        if c < 3:
            continue
        lab = rng.integers(0, c, n)
        bad, m, k, t, terr, _xy = accel.kernel()(np.ascontiguousarray(x), lab)
        bp, rad = R._Rows(x).sparse_bp(lab)
        assert np.array_equal(bad, R._Rows(x).bad)
        for g, gr in ((np.ones(n), np.zeros(n)), (rng.uniform(-3, 3, n), np.full(n, 1e-17))):
            want, want_rad = E._scale(g[:, None], gr[:, None], bp, rad)
            got, got_rad = np.empty((n, c)), np.empty((n, c))
            for i in np.flatnonzero(~bad):
                K._sparse_grad_row(x[i], m[i], k[i], lab[i], t[i], terr[i], c,
                                   R.lane_levels(c), C.C_FN, C.SLACK, U, C.ETA, g[i], gr[i],
                                   got[i], got_rad[i])
            good = ~bad
            assert np.array_equal(got[good], want[good]), (x.dtype, c)
            assert np.array_equal(np.signbit(got[good]), np.signbit(want[good]))
            assert np.array_equal(got_rad[good], want_rad[good]), (x.dtype, c)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_small_c_gradient_rows_are_the_row_functions(dtype):
    """At C ≤ 16 the compiled gradient computes a block's elements column by column
    (``_kernels._small_grad_rows``): every value and radius is the row function's (the
    numpy path's, above), bit for bit, on the adversarial blocks stacked into several
    column blocks, with γ = 1 (unread) and with a signed γ carrying a radius."""
    from xentconf.oracle import _kernels as K
    from xentconf.oracle import accel

    rng = np.random.default_rng(15)
    for c in (3, 8, 9, 10, 15, 16):
        blocks = [x for x in _adversarial_blocks() if x.dtype == dtype and x.shape[1] == c]
        if not blocks:
            blocks = [(rng.standard_normal((5, c)) * 3).astype(dtype)]
        x = np.ascontiguousarray(np.concatenate(blocks * (600 // (5 * len(blocks)) + 1)))
        n = x.shape[0]
        assert n > 2 * K.SMALL_BLOCK
        lab = rng.integers(0, c, n)
        _bad, m, k, t, terr, xy = accel.kernel()(x, lab)
        args = (c, R.lane_levels(c), C.C_FN, C.SLACK, U, C.ETA)
        for unit, g, gr in ((True, np.ones(n), np.zeros(n)),
                            (False, rng.uniform(-3, 3, n), np.full(n, 1e-17))):
            want, want_rad = np.empty((n, c)), np.empty((n, c))
            for i in range(n):
                K._sparse_grad_row(x[i], m[i], k[i], lab[i], t[i], terr[i], *args, g[i],
                                   gr[i], want[i], want_rad[i])
            got, got_rad = np.empty(n * c), np.empty(n * c)
            K._small_grad_rows(x, lab, t, terr, m, k, xy, *args, unit, g, gr, got, got_rad)
            assert np.array_equal(got.reshape(n, c), want, equal_nan=True), (c, unit)
            assert np.array_equal(np.signbit(got.reshape(n, c)), np.signbit(want))
            assert np.array_equal(got_rad.reshape(n, c), want_rad, equal_nan=True), (c, unit)


@needs_numba
def test_the_small_c_dense_gradient_rows_are_the_row_functions():
    """The same for the dense gradient (``_kernels._small_dense_grad_rows`` against
    ``_dense_grad_row``): soft, one-hot, negative and non-finite labels, with the labels'
    radii per row and as one row every row shares, float32 and float64 logits."""
    from xentconf.oracle import _kernels as K
    from xentconf.oracle import accel

    rng = np.random.default_rng(16)
    for dtype in (np.float32, np.float64):
        for c in (3, 9, 16):
            blocks = [x for x in _adversarial_blocks() if x.dtype == dtype and x.shape[1] == c]
            blocks = blocks or [(rng.standard_normal((5, c)) * 3).astype(dtype)]
            x = np.ascontiguousarray(np.concatenate(blocks * (600 // (5 * len(blocks)) + 1)))
            n = x.shape[0]
            y = _dense_labels(rng, n, c, np.float64)
            _bad, m, k, t, terr, _xy = accel.kernel()(x, np.zeros(n, dtype=np.int64))
            args = (c, R.lane_levels(c), C.C_FN, C.SLACK, U, C.ETA)
            for per_row in (True, False):
                yrad = rng.uniform(0, 1e-17, (n if per_row else 1, c))
                for unit, g, gr in ((True, np.ones(n), np.zeros(n)),
                                    (False, rng.uniform(-3, 3, n), np.full(n, 1e-17))):
                    want, want_rad = np.empty((n, c)), np.empty((n, c))
                    for i in range(n):
                        K._dense_grad_row(x[i], y[i], yrad[i if per_row else 0], m[i], k[i],
                                          t[i], terr[i], *args, g[i], gr[i], want[i],
                                          want_rad[i])
                    got, got_rad = np.empty(n * c), np.empty(n * c)
                    K._small_dense_grad_rows(x, y, yrad, per_row, t, terr, m, k, *args, unit,
                                             g, gr, got, got_rad)
                    assert np.array_equal(got.reshape(n, c), want, equal_nan=True)
                    assert np.array_equal(np.signbit(got.reshape(n, c)), np.signbit(want))
                    assert np.array_equal(got_rad.reshape(n, c), want_rad, equal_nan=True)


def _record_ranges(monkeypatch, name: str) -> list:
    """The row ranges ``(lo, hi)`` the engine hands to ``rows.<name>`` (a compiled range
    kernel's entry), recorded as it calls it."""
    calls: list = []
    kernel = getattr(R, name)
    monkeypatch.setattr(E, name, lambda *a: calls.append(a[1:3]) or kernel(*a))
    return calls


def _gradient_blocks(c: int) -> np.ndarray:
    """The float32 adversarial blocks of ``c`` classes, one under another, and a row whose
    softmax is ½ at two equal logits (the others −inf): scaled by a tiny upstream it lands
    on a rounding midpoint, which only the exact tier decides."""
    rows = [x for x in _adversarial_blocks() if x.dtype == np.float32 and x.shape[1] == c]
    half = np.full((1, c), -np.inf, dtype=np.float32)
    half[0, :2] = 1.5
    return np.concatenate(rows + [half] * 3)


@needs_numba
@pytest.mark.parametrize("scaled", [True, False])
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_the_compiled_gradient_is_the_numpy_paths_bit_for_bit(monkeypatch, dtype, scaled):
    """At C > 2 the gradient (``tf.nn``'s, scaled by an upstream) and the raw op's backprop
    (γ = 1, which the kernel takes without reading any γ) come from one compiled call a
    row range (``rows.sparse_grad_into``), certified block by block: on the adversarial
    blocks, with TF's row rules (a label out of range on the gpu profile, a NaN or +inf
    logit, an ignored row as Keras' ignore_class makes it), over several threads and
    copies, the same bits and the same fallbacks as the numpy path. The upstream's
    smallest float16 subnormal times a softmax of ½ is a rounding midpoint: those
    elements go to the exact tier on both paths."""
    rng = np.random.default_rng(13)
    monkeypatch.setattr(R, "COPY_BYTES", 512)
    calls = _record_ranges(monkeypatch, "sparse_grad_into")
    before = E.threads()
    try:
        for c in (3, 10, 17, 100):
            with np.errstate(over="ignore"):
                x = _gradient_blocks(c).astype(dtype)
            n = x.shape[0]
            y = rng.integers(-1, c + 1, n)  # -1 ignored below, c out of range
            y[-3:] = 2
            up = rng.choice([1.0, -0.75, 0.0, 3e-5, 6e4], n).astype(dtype)
            up[-3:] = 2.0 ** -24  # float16's smallest subnormal (float32 holds it too)
            seen = []
            for accel, threads in ((True, 3), (False, 1)):
                monkeypatch.setattr(E, "USE_ACCEL", accel)
                E.set_threads(threads)
                calls.clear()
                e = ruled_sparse(y, x, up, scaled)
                rows = e.engine.plan.rows
                with np.errstate(all="ignore"):
                    g = e["grad_logits" if scaled else "backprop"].rounded64
                assert bool(calls) is accel  # the kernel ran, on several ranges
                assert not accel or len(calls) > 1 or n <= R.sparse_block(rows)
                seen.append((g.reshape(n, c), e.engine.fallbacks))
            (a, fa), (b, fb) = seen
            assert np.isnan(a[y == c]).all() and (a[y == -1] == 0).all()  # the rules applied
            assert np.array_equal(a, b, equal_nan=True) and fa == fb, c
            assert np.array_equal(np.signbit(a), np.signbit(b))
            if scaled and dtype is np.float16:
                assert fa > 0 and (a[-3:, :2] == 0).all()  # the midpoint rounds to even: 0
    finally:
        E.set_threads(before)


def test_float32_rounding_shortcut_matches_round_to_format():
    from xentconf.oracle.formats import FORMATS, round_to_format

    rng = np.random.default_rng(6)
    f32 = FORMATS["float32"]
    top = float(np.finfo(np.float32).max)
    x = np.concatenate([
        rng.standard_normal(20000) * 10.0 ** rng.integers(-50, 40, 20000),
        np.nextafter(top, np.inf) * np.array([1, -1]), [top * (1 + 2.0 ** -25)],
        [top * (1 + 2.0 ** -25) * (1 - 2.0 ** -52), 2.0 ** -126, 2.0 ** -126 * (1 - 2.0 ** -30)],
        [2.0 ** -149 * 0.5, 2.0 ** -149 * 0.75, 2.0 ** -150, 1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24],
        [0.0, -0.0, np.inf, -np.inf, np.nan],
    ])
    assert np.array_equal(C._round(x, f32), round_to_format(x, f32), equal_nan=True)


def test_float32_logits_are_not_copied_to_float64():
    """The plan keeps float32 logits as they are; the engine and a fallback to the exact
    tier read rows of them, never a float64 copy of the whole input."""
    from xentconf.oracle import semantics as S

    z = np.zeros((300, 3), dtype=np.float32)
    # the first row's loss sits on a float32 midpoint (plus a tail below float64's
    # precision); a third class of −inf keeps it off the closed form of C = 2, which
    # decides such a row without the exact tier
    z[:] = [-(32 + 2.0**-18), 64.0, -np.inf]
    z[1:] = [0.5, 1.5, -np.inf]
    plan = S.plan_raw_sparse(z, np.zeros(300, dtype=np.int64))
    assert plan.rows.source is z or plan.rows.source.base is z
    r = E.evaluate_fast(plan)
    assert r["loss"].rounded64[0] == 96 + 2.0**-17 and r.engine.fallbacks == 1
    assert "_x" not in plan.rows.__dict__


@needs_numba
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 100, 1000])
def test_the_compiled_pairwise_sum_is_certify_pairwise_sum(n):
    """``_kernels._pairwise_in_place`` adds in ``certify.pairwise_sum``'s order, bit for
    bit (values spread over 30 binades cancel, so another order gives other bits), an odd
    count's last −0 becoming +0 as there; ``pairwise_levels`` is that sum's level count."""
    from xentconf.oracle import _kernels as K

    rng = np.random.default_rng(n)
    rows = [rng.standard_normal(n) * 10.0 ** rng.integers(-15, 15, n), np.full(n, -0.0),
            np.where(np.arange(n) % 3 == 0, -0.0, rng.standard_normal(n))]
    for a in rows:
        want, levels = C.pairwise_sum(a)
        got = K._pairwise_in_place(a.copy(), n)
        assert np.array_equal(got, want) and np.signbit(got) == np.signbit(want), (n, got, want)
        assert C.pairwise_levels(n) == levels


def _dense_labels(rng, n: int, c: int, dtype) -> np.ndarray:
    """Labels for the dense loss, row ``i`` of kind ``i mod 5``: one-hot; soft; all zero
    (0·(−inf) under xla); a NaN, a +inf and a −0; negative."""
    kinds = [np.eye(c)[rng.integers(0, c, n)], rng.random((n, c)), np.zeros((n, c)),
             rng.random((n, c)), rng.standard_normal((n, c)) * 2]
    kinds[3][:, 0] = np.nan
    kinds[3][:, -1] = np.inf
    kinds[3][:, c // 2] = -0.0
    return np.stack([kinds[i % 5][i] for i in range(n)]).astype(dtype)


@needs_numba
def test_the_compiled_dense_loss_is_the_numpy_paths_bit_for_bit(monkeypatch):
    """The dense loss by the compiled kernel (``rows.dense_loss_into``): every row's value
    and radius, with the row rules, the numpy path's bits, on the adversarial blocks
    (C ≤ 2,049, float32 and float64) with every kind of label, on the cpu profile and
    under xla (a zero label times −inf adds 0), and with label smoothing (Keras), and
    their float16 copies, in blocks of 3 rows on 3 threads. The plan keeps the logits'
    own format, as the sparse plans do."""
    rng = np.random.default_rng(15)
    monkeypatch.setattr(R, "SPARSE_BLOCK", 3)
    monkeypatch.setattr(E, "THREADS", 3)
    compared = 0
    blocks = [x for x in _adversarial_blocks() if x.shape[1] <= 2049]
    with np.errstate(over="ignore"):  # float16 copies (widened to float32 when read)
        blocks += [x.astype(np.float16) for x in blocks if x.dtype == np.float32]
    for x in blocks:
        n, c = x.shape
        y = _dense_labels(rng, n, c, x.dtype)
        keras = fast_tf.keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=0.2, reduction="none")
        calls = [(fast_tf.nn.softmax_cross_entropy_with_logits, {"profile": p})
                 for p in ("cpu", "xla")]
        if x.dtype != np.float64:  # (float64 outputs with smoothing: the exact tier)
            calls.append((keras, {}))
        for fn, kw in calls:
            seen = []
            for accel in (True, False):
                monkeypatch.setattr(E, "USE_ACCEL", accel)
                e = fn(y, x, **kw)
                assert e.engine.dense_accel is accel
                assert fn is keras or e.plan.rows.source.dtype == x.dtype
                seen.append(e.engine._row_values())
            (La, Ra), (Lb, Rb) = seen
            assert np.array_equal(La, Lb, equal_nan=True), (x.dtype, c)
            assert np.array_equal(Ra, Rb, equal_nan=True), (x.dtype, c)
            compared += 1
    assert compared > 200


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_answers_and_fallbacks_are_the_same_on_both_paths(monkeypatch, dtype):
    """Through the public API: the raw op's loss and ``tf.compat.v1``'s weighted mean of a
    dense loss, correctly rounded, and the count of fallbacks, the same with the compiled
    dense loss as without it."""
    rng = np.random.default_rng(16)
    for x in _adversarial_blocks():
        n, c = x.shape
        if x.dtype != dtype or c > 100:
            continue
        y = _dense_labels(rng, n, c, dtype)
        w = np.linspace(-1, 2, n).astype(np.float32)
        out = {}
        for accel in (True, False):
            monkeypatch.setattr(E, "USE_ACCEL", accel)
            e = fast_tf.raw_ops.SoftmaxCrossEntropyWithLogits(features=x, labels=y)
            v = fast_tf.compat.v1.losses.softmax_cross_entropy(
                y, x, weights=w, label_smoothing=0.1, reduction="weighted_mean")
            assert e.engine.dense_accel is accel
            out[accel] = (e["loss"].rounded64, e.engine.fallbacks, v["loss"].rounded64)
        assert np.array_equal(out[True][0], out[False][0], equal_nan=True)
        assert out[True][1] == out[False][1]
        assert np.array_equal(out[True][2], out[False][2], equal_nan=True)


@needs_numba
@pytest.mark.parametrize("scaled", [True, False])
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_the_compiled_dense_gradient_is_the_numpy_paths_bit_for_bit(monkeypatch, dtype,
                                                                    scaled):
    """The dense gradient (``tf.nn``'s, scaled by an upstream, on the cpu and xla profiles)
    and the raw op's backprop (γ = 1), and ``compat.v1``'s with label smoothing, come
    from one compiled call a row range (``rows.dense_grad_into``), certified block by
    block: on the adversarial blocks with every kind of label, over several threads, the
    same bits and the same fallbacks as the numpy path. A softmax of ½ with a zero label
    times float16's smallest subnormal is a rounding midpoint: those elements go to the
    exact tier on both paths (the values' radii are compared in the test below)."""
    rng = np.random.default_rng(17)
    calls = _record_ranges(monkeypatch, "dense_grad_into")
    monkeypatch.setattr(R, "SPARSE_BLOCK", 16)
    before = E.threads()
    try:
        for c in (7, 10, 17, 100):
            with np.errstate(over="ignore"):
                x = _gradient_blocks(c).astype(dtype)
            n = x.shape[0]
            y = _dense_labels(rng, n, c, dtype)
            y[-3:] = 0.0
            up = rng.choice([1.0, -0.75, 0.0, 3e-5, 6e4], n).astype(dtype)
            up[-3:] = 2.0 ** -24  # float16's smallest subnormal (float32 holds it too)
            for profile in ("cpu", "xla", "smoothed"):
                seen = []
                for accel, threads in ((True, 3), (False, 1)):
                    monkeypatch.setattr(E, "USE_ACCEL", accel)
                    E.set_threads(threads)
                    calls.clear()
                    with np.errstate(all="ignore"):
                        if profile == "smoothed":  # labels with a radius (ε = 0.1)
                            e = fast_tf.compat.v1.losses.softmax_cross_entropy(
                                y, x, label_smoothing=0.1, reduction="none",
                                upstream=up if scaled else None)
                        elif scaled:
                            e = fast_tf.nn.softmax_cross_entropy_with_logits(
                                y, x, upstream=up, profile=profile)
                        else:
                            e = fast_tf.raw_ops.SoftmaxCrossEntropyWithLogits(
                                features=x, labels=y, profile=profile)
                        g = e["backprop" if profile != "smoothed" and not scaled
                              else "grad_logits"].rounded64
                    assert e.engine.dense_accel is accel
                    assert bool(calls) is accel and (not accel or len(calls) > 1)
                    seen.append((g.reshape(n, c), e.engine.fallbacks))
                (a, fa), (b, fb) = seen
                assert np.array_equal(a, b, equal_nan=True) and fa == fb, (c, profile)
                assert np.array_equal(np.signbit(a), np.signbit(b))
                if scaled and dtype is np.float16 and profile != "smoothed":
                    assert fa > 0 and (a[-3:, :2] == 0).all()  # the midpoint rounds to even
    finally:
        E.set_threads(before)


@needs_numba
def test_the_compiled_dense_gradient_rows_values_and_radii_are_the_numpy_paths():
    """Each row's scaled dense backprop and its radius from the compiled row function
    (``_kernels._dense_grad_row``, on the kernel's row values) are ``rows._Rows.dense_bp``
    scaled by ``engine._scale``, bit for bit, on the adversarial blocks (float32 and
    float64) with every kind of label and a label radius (smoothing's), with γ = 1 and
    with a signed γ carrying a radius."""
    from xentconf.oracle import _kernels as K
    from xentconf.oracle import accel

    rng = np.random.default_rng(18)
    for x in _adversarial_blocks():
        n, c = x.shape
        if c > 2049:
            continue
        y = _dense_labels(rng, n, c, np.float64)
        yrad = np.abs(y) * rng.random((n, c)) * 1e-16
        bad, m, k, t, terr, _xy = accel.kernel()(np.ascontiguousarray(x), np.zeros(n, int))
        bp, rad = R._Rows(x).dense_bp(y, yrad)
        for g, gr in ((np.ones(n), np.zeros(n)), (rng.uniform(-3, 3, n), np.full(n, 1e-17))):
            want, want_rad = E._scale(g[:, None], gr[:, None], bp, rad)
            got, got_rad = np.empty((n, c)), np.empty((n, c))
            for i in np.flatnonzero(~bad):
                K._dense_grad_row(x[i], y[i], yrad[i], m[i], k[i], t[i], terr[i], c,
                                  R.lane_levels(c), C.C_FN, C.SLACK, U, C.ETA, g[i], gr[i],
                                  got[i], got_rad[i])
            good = ~bad
            assert np.array_equal(got[good], want[good], equal_nan=True), (x.dtype, c)
            assert np.array_equal(np.signbit(got[good]), np.signbit(want[good]))
            assert np.array_equal(got_rad[good], want_rad[good], equal_nan=True), (x.dtype, c)


@pytest.mark.parametrize("accel", [True, False])
def test_masked_logits_under_xla_stay_in_the_engine(monkeypatch, accel):
    """Logits masked with −inf and a zero label there: under xla the term is 0 (not
    0·inf = NaN), exactly, so it adds no radius either and every row is certified by the
    engine, on both paths, with the loss correctly rounded (against mpmath at 60 digits:
    ``Σ_{y_j ≠ 0} y_j (logsumexp(x) − x_j)``). On the cpu profile the row is NaN, as TF's."""
    monkeypatch.setattr(E, "USE_ACCEL", accel)
    rng = np.random.default_rng(19)
    n, c = 300, 6
    x = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    y = rng.random((n, c)).astype(np.float32)
    mask = rng.random((n, c)) < 0.4
    mask[:, 0] = False  # a finite logit in every row
    x[mask] = -np.inf
    y[mask] = 0.0
    e = fast_tf.nn.softmax_cross_entropy_with_logits(y, x, profile="xla")
    got = e["loss"].rounded64
    assert e.engine.fallbacks == 0
    ctx = mpmath.MPContext()
    ctx.dps = 60
    f32 = mpmath.MPContext()
    f32.prec = 24  # float32's significand, rounded to nearest once (losses are normal here)
    for i in range(n):
        fin = [ctx.mpf(float(v)) for v in x[i][~mask[i]]]
        lse = ctx.log(ctx.fsum(ctx.exp(v) for v in fin))
        loss = ctx.fsum(ctx.mpf(float(y[i, j])) * (lse - ctx.mpf(float(x[i, j])))
                        for j in range(c) if not mask[i, j])
        assert got[i] == float(f32.mpf(loss)), i
    cpu = fast_tf.nn.softmax_cross_entropy_with_logits(y, x, profile="cpu")["loss"].rounded64
    assert np.isnan(cpu[mask.any(axis=1)]).all()

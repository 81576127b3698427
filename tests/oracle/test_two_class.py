"""The engine's closed form at C = 2 (``rows.two_class_rows``): softplus of the logit
difference and ±sigmoid, certified, held against mpmath at high precision on every class
of float16 pair (random pairs, ties, huge differences, subnormals, ±0, ±inf, NaN), and
the compiled certification against the numpy one, bit for bit."""

from __future__ import annotations

import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
from tests.oracle.ruled import ruled_sparse

from xentconf.oracle import certify as C
from xentconf.oracle.fast import tf as fast_tf
from xentconf.oracle.formats import FORMATS

F16_MAX = 65504.0
F16_TIE = 65520.0  # the midpoint between the float16 maximum and 2**16: rounds to inf


def _f16_round(v: mpmath.mpf, tail: int = 0) -> float:
    """``v + τ`` correctly rounded to float16 (ties to even), where ``τ`` is a remainder too
    small for ``v``'s precision with the sign ``tail``: chosen between the float16
    neighbours by exact comparison in mpmath, a tie broken by ``τ``'s sign."""
    if mpmath.isnan(v):
        return math.nan
    if mpmath.isinf(v):
        return float(v)
    if abs(v) > F16_TIE or (abs(v) == F16_TIE and tail * v >= 0):
        return math.copysign(math.inf, float(v))
    x = np.float16(float(v))  # some float16 near v (maybe off by one step)
    with np.errstate(over="ignore"):
        cands = {float(np.nextafter(x, np.float16(-np.inf))), float(x),
                 float(np.nextafter(x, np.float16(np.inf)))}
    cands = sorted(c for c in cands if math.isfinite(c))
    dist = {c: abs(mpmath.mpf(c) - v) for c in cands}
    near = min(dist.values())
    best = [c for c in cands if dist[c] == near]
    if len(best) == 2 and tail:  # v is a midpoint: the remainder decides
        return best[1] if tail > 0 else best[0]
    return min(best, key=lambda c: int(np.float16(c).view(np.uint16)) & 1)


def _truth(zy: float, zo: float):
    """(loss, the sign of its remainder, σ) of a two-class row with label logit ``zy`` and
    other logit ``zo``: the exact values by TF's rules (NaN rows for a NaN, a +inf or two
    −inf). For ``d = zo − zy > 0`` the loss is ``d + log1p(e^−d)``: the second term may lie
    below the working precision, and then only its sign (+) matters."""
    if math.isnan(zy) or math.isnan(zo) or math.inf in (zy, zo) or zy == zo == -math.inf:
        return mpmath.nan, 0, mpmath.nan
    if zy == -math.inf:
        return mpmath.inf, 0, mpmath.mpf(1)
    if zo == -math.inf:
        return mpmath.mpf(0), 0, mpmath.mpf(0)
    d = mpmath.mpf(zo) - mpmath.mpf(zy)  # exact: float16 values differ by < 2**41 steps
    if d > 0:
        return d + mpmath.log1p(mpmath.exp(-d)), 1, 1 / (1 + mpmath.exp(-d))
    return mpmath.log1p(mpmath.exp(d)), 0, mpmath.exp(d) / (1 + mpmath.exp(d))


def _pairs() -> np.ndarray:
    rng = np.random.default_rng(13)
    every = np.arange(65536, dtype=np.uint16).view(np.float16)
    fin = every[np.isfinite(every)]
    sub = fin[(fin != 0) & (np.abs(fin) < np.float16(2.0 ** -14))]
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, F16_MAX, -F16_MAX, 1.0, -1.0,
                        2.0 ** -24, -(2.0 ** -24), 11.0, -11.0, 17.3, 2.0 ** -14],
                       dtype=np.float16)
    rows = [
        rng.choice(every, (6000, 2)),  # any bit patterns (NaNs, infinities included)
        np.repeat(rng.choice(fin, 1500)[:, None], 2, axis=1),  # ties
        np.stack([rng.choice(fin, 1500), rng.choice(sub, 1500)], axis=1),  # subnormals
        np.stack([rng.choice(fin, 1500), np.full(1500, F16_MAX, np.float16)], axis=1),
        np.stack(np.meshgrid(special, special), axis=-1).reshape(-1, 2),  # every special
        # differences where the loss leaves float16's range, underflows or sits near 1
        np.stack([rng.uniform(-30, 30, 3000), rng.uniform(-30, 30, 3000)],
                 axis=1).astype(np.float16),
    ]
    return np.concatenate([r.astype(np.float16) for r in rows])


def test_two_class_rows_are_correctly_rounded_against_mpmath():
    x = _pairs()
    labels = np.tile(np.array([0, 1], np.int32), x.shape[0] // 2 + 1)[:x.shape[0]]
    e = fast_tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(x, labels)
    assert e.engine.two_class
    loss, bp = e["loss"].rounded64, e["backprop"].rounded64
    mpmath.mp.prec = 160
    bad = []
    for i, (row, y) in enumerate(zip(x.astype(np.float64), labels)):
        L, tail, s = _truth(row[y], row[1 - y])
        want_l = _f16_round(L, tail)
        want_s = _f16_round(s)
        got_bp = bp[i]
        if math.isnan(want_l):
            ok = math.isnan(loss[i]) and np.isnan(got_bp).all()
        else:
            ok = loss[i] == want_l and got_bp[1 - y] == want_s and got_bp[y] == -want_s
        if not ok:
            bad.append((row.tolist(), int(y), loss[i], want_l, got_bp.tolist(), want_s))
    assert not bad, bad[:5]
    assert e.engine.fallbacks <= x.shape[0] // 1000  # the closed form certifies nearly all


def _round16(v: mpmath.mpf, dtype, tail: int = 0) -> float:
    """``v + τ`` correctly rounded to a 16-bit format (ties to even), by exact comparison
    with its neighbours' values in mpmath; ``τ`` as in :func:`_f16_round`."""
    if mpmath.isnan(v):
        return math.nan
    fi = ml_dtypes.finfo(dtype)
    top = mpmath.mpf(float(fi.max))
    if abs(v) >= top + mpmath.mpf(2) ** (int(math.log2(float(fi.max))) - fi.nmant - 1):
        return math.copysign(math.inf, float(v))
    with np.errstate(invalid="ignore"):
        x = np.array(float(v)).astype(dtype)
    bits = int(x.view(np.uint16))
    cands = set()
    for b in (bits - 1, bits, bits + 1):
        c = float(np.array(b & 0xFFFF, np.uint16).view(dtype))
        if math.isfinite(c):
            cands.add(c)
    dist = {c: abs(mpmath.mpf(c) - v) for c in cands}
    near = min(dist.values())
    best = sorted(c for c in cands if dist[c] == near)
    if len(best) == 2 and tail:  # v is a midpoint: the remainder decides
        return best[1] if tail > 0 else best[0]
    return min(best, key=lambda c: int(np.array(c).astype(dtype).view(np.uint16)) & 1)


def test_bfloat16_rows_far_apart_are_certified_against_mpmath():
    """bfloat16 spans 2**-133 to 2**128, so a tiny logit and a large one differ by more
    than float64 holds: the difference carries a rounding error ``d_lo``. Where the
    labelled logit is the larger, the loss is ``log1p(e^(d + d_lo))``, tiny or 0, and the
    closed form must certify it without the exact tier (a radius of ``|d_lo|`` sent a
    third of such rows there), and ``σ`` near 1, whose radius must not grow with
    ``|d_lo|`` (it sent a sixth of the gradients there). Every answer, the loss and the
    gradient, equals mpmath's, rounded to bfloat16."""
    rng = np.random.default_rng(17)
    bf = ml_dtypes.bfloat16
    every = np.arange(65536, dtype=np.uint16).view(bf)
    fin = every[np.isfinite(every.astype(np.float32))]
    mag = np.abs(fin.astype(np.float32))
    tiny, small = fin[mag < 2.0 ** -100], fin[(mag >= 2.0 ** -20) & (mag <= 1)]
    rows = np.concatenate([
        np.stack([rng.choice(tiny, 3000), rng.choice(fin, 3000)], axis=1),
        np.stack([rng.choice(small, 3000), rng.choice(fin, 3000)], axis=1),
        rng.choice(every, (3000, 2)),
    ]).astype(bf)
    labels = np.tile(np.array([0, 1], np.int32), rows.shape[0] // 2)
    e = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(labels, rows)
    assert e.engine.two_class
    loss, grad = e["loss"].rounded64, e["grad_logits"].rounded64
    assert e.engine.fallbacks <= rows.shape[0] // 1000
    mpmath.mp.prec = 400  # the difference of two bfloat16 values is exact
    bad = []
    with np.errstate(invalid="ignore"):
        wide = rows.astype(np.float64)
    for i, (row, y) in enumerate(zip(wide, labels)):
        L, tail, s = _truth(row[y], row[1 - y])
        want, want_s = _round16(L, bf, tail), _round16(s, bf)
        if math.isnan(want):
            ok = math.isnan(loss[i]) and np.isnan(grad[i]).all()
        else:
            ok = loss[i] == want and grad[i][1 - y] == want_s and grad[i][y] == -want_s
        if not ok:
            bad.append((row.tolist(), int(y), loss[i], want, grad[i].tolist(), want_s))
    assert not bad, bad[:5]


def test_two_class_matches_the_general_engine_on_float32(monkeypatch):
    """The closed form and the general row evaluator agree bit for bit (float32 logits,
    with an upstream gradient: loss and grad_logits)."""
    from xentconf.oracle import engine as E

    rng = np.random.default_rng(21)
    x = (rng.standard_normal((20000, 2)) * 10.0 ** rng.integers(-8, 8, (20000, 1)))
    x = x.astype(np.float32)
    x[::50, 0] = x[::50, 1]  # ties
    x[::77, 1] = -np.inf
    x[::91, 0] = np.nan
    y = rng.integers(0, 2, x.shape[0])
    up = rng.standard_normal(x.shape[0]).astype(np.float32)
    out = {}
    orig = E.Engine.__init__
    for closed in (True, False):
        def init(self, *a, _closed=closed, **k):
            orig(self, *a, **k)
            self.two_class = self.two_class and _closed
        monkeypatch.setattr(E.Engine, "__init__", init)
        e = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y, x, upstream=up)
        assert e.engine.two_class is closed
        out[closed] = (e["loss"].rounded64, e["grad_logits"].rounded64)
    for a, b in zip(out[True], out[False]):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64"])
def test_compiled_certification_matches_numpy(name):
    from xentconf.oracle import accel
    from xentconf.oracle.formats import round_to_format

    if accel.certifier() is None:
        pytest.skip("numba is not installed (or XENTCONF_ACCEL=0)")
    f = FORMATS[name]
    rng = np.random.default_rng(4)
    n = 200000
    pts = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float64)
    pts = pts[np.isfinite(pts)]
    mid = np.concatenate([
        rng.standard_normal(n) * np.exp(rng.uniform(-110, 100, n)), pts,
        (pts[1:] + pts[:-1]) / 2, rng.integers(-2**63, 2**63 - 1, n).view(np.float64),
        [np.nan, np.inf, -np.inf, 0.0, -0.0,
                                   f.max_finite * (1 + 2.0 ** -f.p),
                                   f.max_finite * (1 + 2.0 ** -f.p) * (1 - 2.0 ** -50),
                                   -f.min_subnormal / 2, -f.min_subnormal / 4]])
    with np.errstate(all="ignore"):
        rad = np.abs(mid) * rng.choice([0.0, 1e-20, 1e-10, 1e-4], mid.size)
        rad[::97] = np.inf
        rad[::89] = np.nan
        # balls at 0 with a subnormal radius (a loss of 0 carries ETA), and around the
        # compiled path's ZERO_BALL (2**-200), where it stops computing the rounding
        # (and NaN, ±inf with no radius: taken as exact)
        edge = np.array([0.0, -0.0, 5e-324, -5e-324, 2.0 ** -201, -(2.0 ** -201), 2.0 ** -200,
                         -(2.0 ** -200), 2.0 ** -199, 1e-300, -1e-300, np.nan, np.inf,
                         -np.inf])
        radii = np.array([0.0, 8.095e-320, 5e-324, 2.0 ** -201, 2.0 ** -200, 2.0 ** -199])
        mid = np.concatenate([mid, np.repeat(edge, radii.size)])
        rad = np.concatenate([rad, np.tile(radii, edge.size)])
        a = C.certify_ball(mid, rad, f)
        C.USE_ACCEL = False
        try:
            b = C.certify_ball(mid, rad, f)
        finally:
            C.USE_ACCEL = True
    assert np.array_equal(a[0], b[0], equal_nan=True)
    assert np.array_equal(np.signbit(a[0]), np.signbit(b[0]))
    assert np.array_equal(a[1], b[1])
    # in pieces of 8: a float32 piece without NaN or tiny values is certified by the cast
    # alone, and the others whole by the general loop (the whole array above has some)
    cert = accel.certifier()
    got, ok = np.empty_like(mid), np.empty(mid.size, dtype=bool)
    with np.errstate(all="ignore"):
        for i in range(0, mid.size, 8):
            cert(mid[i:i + 8], rad[i:i + 8], *C.kernel_args(f), got[i:i + 8], ok[i:i + 8])
    assert np.array_equal(got, b[0], equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(b[0]))
    assert np.array_equal(ok, b[1])
    # NaN and ±inf with no radius are exact (certified), among ordinary values
    ex = np.array([np.nan, 1.5, np.inf, -np.inf, 0.25, -3.0, 7.0, 1e10])
    got, ok = np.empty_like(ex), np.empty(ex.size, dtype=bool)
    cert(ex, np.zeros(ex.size), *C.kernel_args(f), got, ok)
    assert ok.all() and np.array_equal(got, round_to_format(ex, f), equal_nan=True)
    # and the rounding is formats.round_to_format's (scaling and rint, no library cast;
    # both roads above cast to float32 in its normal range)
    with np.errstate(all="ignore"):
        want = round_to_format(mid, f)
    assert np.array_equal(a[0], want, equal_nan=True)
    assert np.array_equal(np.signbit(a[0]), np.signbit(want))


@pytest.mark.parametrize("c", [2, 10])
def test_answers_do_not_depend_on_the_thread_count(c):
    """Row blocks on several threads give the same bits as one thread (and the same
    fallbacks): several blocks, float16 rows with exact ties to force some fallbacks."""
    from xentconf.oracle import engine as E

    rng = np.random.default_rng(5)
    n = 3 * E.KERNEL_BLOCK_ROWS // c + 17
    x = (rng.standard_normal((n, c)) * 4).astype(np.float16)
    x[::3] = 0  # uniform rows: log(c) and 1/c
    y = rng.integers(0, c, n)
    up = rng.standard_normal(n).astype(np.float16)
    seen = []
    before = E.threads()
    try:
        for threads in (1, 3):
            E.set_threads(threads)
            e = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y, x, upstream=up)
            seen.append((e["loss"].rounded64, e["grad_logits"].rounded64, e.engine.fallbacks))
    finally:
        E.set_threads(before)
    (l1, g1, f1), (l3, g3, f3) = seen
    assert np.array_equal(l1, l3, equal_nan=True)
    assert np.array_equal(g1, g3, equal_nan=True)
    assert np.array_equal(np.signbit(g1), np.signbit(g3))
    assert f1 == f3


def test_compiled_two_class_rows_match_numpy_bit_for_bit():
    """The compiled closed form (``rows.two_class_into``, the engine's road with numba) and
    the numpy one (``rows.two_class_rows``) agree on every value and radius: the loss, the
    sigmoid, the bad rows and ``d`` (no row rules here beyond a bad row's NaN loss)."""
    from xentconf.oracle import accel
    from xentconf.oracle import rows as R
    from xentconf.oracle.plan import Rows

    if accel.two_class_kernels() is None:
        pytest.skip("numba is not installed (or XENTCONF_ACCEL=0)")
    rng = np.random.default_rng(2)
    every = np.arange(65536, dtype=np.uint16).view(np.float16)
    x16 = rng.choice(every, (100000, 2))
    x32 = (rng.standard_normal((100000, 2)) * 10.0 ** rng.integers(-10, 38, (100000, 1)))
    x32 = x32.astype(np.float32)
    x32[::7, 1] = -np.inf
    x32[::11, 0] = np.nan
    x32[::13, 0] = x32[::13, 1]
    x32[::17, 1] *= np.float32(1e-25)  # far apart: the difference is inexact in float64
    for x in (x16, x32):
        lab = rng.integers(0, 2, x.shape[0])
        n = x.shape[0]
        got = [np.empty(n) for _ in range(4)] + [np.empty(n, dtype=bool), np.empty(n)]
        with np.errstate(all="ignore"):
            R.two_class_into(Rows("sparse", x, labels=lab), 0, n, *got)
            bad, (L, Lrad), (sig, srad), d = R.two_class_rows(x, lab, with_d=True)
        assert bad.any() and np.array_equal(got[4], bad)
        assert np.isnan(got[0][bad]).all() and (got[1][bad] == 0).all()
        for p, q in zip((got[0], got[1], got[2], got[3], got[5]), (L, Lrad, sig, srad, d)):
            p, q = p[~bad], q[~bad]
            assert np.array_equal(p, q, equal_nan=True)
            assert np.array_equal(np.signbit(p), np.signbit(q))


@pytest.mark.parametrize("scaled", [True, False])
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_the_compiled_rows_apply_the_row_rules_as_the_numpy_path_does(monkeypatch, dtype,
                                                                      scaled):
    """The compiled closed form writes the loss and the gradient (``tf.nn``'s, scaled by
    an upstream, or the raw op's backprop: γ = 1, which the compiled gradient takes
    without reading any γ) with TF's row rules applied (a NaN row on the gpu profile for
    a label out of range, a NaN or +inf logit, and an ignored row, as Keras' ignore_class
    makes them: set on the plan here, since Keras' own plans are in float64) in
    cache-sized blocks on several threads: the same bits as the numpy path on one thread,
    and the same fallbacks."""
    from xentconf.oracle import accel
    from xentconf.oracle import engine as E
    from xentconf.oracle import rows as R

    if accel.two_class_kernels() is None:
        pytest.skip("numba is not installed (or XENTCONF_ACCEL=0)")
    rng = np.random.default_rng(11)
    n = 3 * R.TWO_CLASS_BLOCK + 5
    x = rng.integers(0, 65536, (n, 2), dtype=np.uint16).view(np.float16)
    x = x.astype(dtype) if dtype is np.float32 else x
    y = rng.integers(-1, 3, n)  # -1 ignored below, 2 out of range
    up = rng.choice([1.0, -0.75, 0.0, 3e-5, 6e4], n).astype(dtype)
    before = E.threads()
    seen = []
    try:
        for accel_on, threads in ((True, 3), (False, 1)):
            monkeypatch.setattr(E, "USE_ACCEL", accel_on)
            E.set_threads(threads)
            e = ruled_sparse(y, x, up, scaled)
            assert e.engine.two_class and e.engine.plan.rows.nan_rows.any()
            with np.errstate(all="ignore"):
                seen.append((e["loss"].rounded64,
                             e["grad_logits" if scaled else "backprop"].rounded64,
                             e.engine.fallbacks))
    finally:
        E.set_threads(before)
    (a, ga, fa), (b, gb, fb) = seen
    assert np.isnan(a[y == 2]).all() and (a[y == -1] == 0).all()  # the rules did apply
    assert np.isnan(ga[y == 2]).all() and (ga[y == -1] == 0).all()
    assert np.array_equal(a, b, equal_nan=True) and fa == fb
    assert np.array_equal(np.signbit(a), np.signbit(b))
    assert np.array_equal(ga, gb, equal_nan=True)
    assert np.array_equal(np.signbit(ga), np.signbit(gb))


def test_a_midpoint_difference_is_decided_without_the_exact_tier():
    """d = 96 + 2**-18 is a float32 midpoint and the loss d + log1p(e^−d) lies just above
    it: the float32 rounding is 96 + 2**-17 (the upper neighbour; a tie would go to even,
    96). The closed form knows the tail is positive and certifies it on its own."""
    z = np.array([[-(32 + 2.0**-18), 64.0], [64.0, -(32 + 2.0**-18)]], dtype=np.float32)
    e = fast_tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(z, np.array([0, 1]))
    assert e["loss"].rounded64.tolist() == [96 + 2.0**-17] * 2
    assert e.engine.fallbacks == 0


def test_certify_above_needs_a_value_or_a_midpoint_as_base():
    """Values above an exact base: certified when the base is a float32 value or midpoint
    and the upper end rounds like the base's successor; not when the base lies one float64
    step below a midpoint (reals just above it round down, its successor rounds up)."""
    f32 = FORMATS["float32"]
    m = 1 + 3 * 2.0 ** -24  # between 1 + 2**-23 (odd) and 1 + 2**-22 (even): ties go up
    tiny = np.array([2.0 ** -60])
    r, ok = C.certify_above(np.array([m]), np.array([m + 2.0 ** -40]), tiny, f32)
    assert ok[0] and r[0] == 1 + 2.0 ** -22  # above the midpoint: up
    v = 1 + 2.0 ** -23
    r, ok = C.certify_above(np.array([v]), np.array([v + 2.0 ** -40]), tiny, f32)
    assert ok[0] and r[0] == v  # just above a value: the value
    below = np.nextafter(m, 0.0)
    _, ok = C.certify_above(np.array([below]), np.array([m + 2.0 ** -40]), tiny, f32)
    assert not ok[0]


def _blocks_and_whole_rows(y, x) -> list:
    """``(loss, fallbacks)`` of ``tf.nn``'s sparse loss on 3 threads, certified block by
    block (the loss asked for alone) and then from the whole rows (kept first, as a
    gradient keeps them)."""
    from xentconf.oracle import engine as E

    before = E.threads()
    seen = []
    try:
        E.set_threads(3)
        for whole in (False, True):
            e = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y, x)
            if not e.engine._certifies_in_blocks():
                pytest.skip("numba is not installed (or XENTCONF_ACCEL=0)")
            if whole:
                e.engine._row_values()
            seen.append((e["loss"].rounded64, e.engine.fallbacks))
    finally:
        E.set_threads(before)
    return seen


@pytest.mark.parametrize("above", [True, False])
def test_the_loss_certified_block_by_block_equals_the_loss_from_whole_rows(monkeypatch, above):
    """Asked for the loss alone, the compiled closed form certifies each block while it is
    in cache and keeps only the rows that miss (``rows.two_class_into``'s ``cert``); once
    the whole rows are kept (as a gradient keeps them), the loss is certified from them.
    Both roads give the same bits and the same fallbacks, with misses in several blocks on
    several threads: midpoint differences, which certify_above decides, and (with
    certify_above made to decide nothing) the same rows from the exact tier."""
    from xentconf.oracle import accel
    from xentconf.oracle import engine as E
    from xentconf.oracle import rows as R

    if accel.two_class_kernels() is None:
        pytest.skip("numba is not installed (or XENTCONF_ACCEL=0)")
    if not above:
        monkeypatch.setattr(E, "certify_above",
                            lambda d, m, r, fmt: (np.zeros(d.shape), np.zeros(d.shape, bool)))
    rng = np.random.default_rng(5)
    n = 4 * R.TWO_CLASS_BLOCK + 17
    x = (rng.standard_normal((n, 2)) * 4).astype(np.float32)
    y = rng.integers(0, 2, n)
    # d = 96 + 2**-18 (the test above): a miss; more per row range than the compiled
    # kernel's first buffer for them holds (16)
    mid = rng.choice(n, 400, replace=False)
    x[mid] = np.where(y[mid, None] == 0, [-(32 + 2.0**-18), 64.0], [64.0, -(32 + 2.0**-18)])
    (a, fa), (b, fb) = _blocks_and_whole_rows(y, x)
    assert (a[mid] == 96 + 2.0**-17).all()
    assert np.array_equal(a, b) and fa == fb == (0 if above else 400)


def test_the_loss_certified_block_by_block_at_c_10_equals_the_loss_from_whole_rows(
        monkeypatch):
    """At C > 2 too (float32 logits, the compiled kernel), the loss alone is certified in
    each block's compiled call (``rows.sparse_loss_into``'s ``cert``): the same bits and
    the same fallbacks as certifying the whole rows, over many blocks on several threads,
    with an absolute slack made large enough (for both roads) that some rows miss and the
    exact tier decides them."""
    from xentconf.oracle import rows as R

    rng = np.random.default_rng(8)
    x = (rng.standard_normal((600, 10)) * 3).astype(np.float32)
    y = rng.integers(0, 10, 600)
    monkeypatch.setattr(R, "SPARSE_BLOCK", 64)  # ten blocks, in ranges of several
    monkeypatch.setattr(R, "ETA", 2.0 ** -32)  # about one row in a hundred misses
    (a, fa), (b, fb) = _blocks_and_whole_rows(y, x)
    assert np.array_equal(a, b) and fa == fb > 0
    e = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y, x)
    want = e.engine.exact["loss"].rounded64  # the exact tier, every row
    assert np.array_equal(a, want)

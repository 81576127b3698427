"""Properties of the exact tier, and a differential against plain high-precision mpmath.

The reference here is written independently of the oracle: the textbook formulas
evaluated with mpmath's high-level API at thousands of bits, then rounded with an
integer-only rounding written in this file. The properties are mathematical identities
(shift invariance, label smoothing, reduction identities, gradient = derivative) that
must hold exactly for exact values.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xentconf.oracle import tf

CTX = mpmath.MPContext()
CTX.prec = 3000

DTYPES = {
    "float16": (np.float16, 11, -14, 15),
    "bfloat16": (ml_dtypes.bfloat16, 8, -126, 127),
    "float32": (np.float32, 24, -126, 127),
    "float64": (np.float64, 53, -1022, 1023),
}

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def ref_round(x, dtype: str) -> float:
    """Nearest value of the format to the mpf ``x``, ties to even (integer arithmetic)."""
    _, p, emin, emax = DTYPES[dtype]
    if CTX.isnan(x):
        return math.nan
    if CTX.isinf(x):
        return float(x)
    if x == 0:
        return 0.0
    sign = -1 if x < 0 else 1
    m, e = CTX.mpf(abs(x)).man_exp
    q = max(int(m).bit_length() + e - 1, emin) - (p - 1)
    v = Fraction(int(m)) * Fraction(2) ** (e - q)  # value in units of 2**q
    k = math.floor(v)
    rem = v - k
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and k % 2 == 1):
        k += 1
    if k.bit_length() + q > emax + 1:
        return sign * math.inf
    return sign * math.ldexp(float(k), q)


def ref_sparse(z: np.ndarray, y: int):
    zz = [CTX.mpf(float(v)) for v in z]
    lse = CTX.log(CTX.fsum([CTX.exp(v) for v in zz]))
    loss = lse - zz[y]
    bp = [CTX.exp(v - lse) - (1 if j == y else 0) for j, v in enumerate(zz)]
    return loss, bp


def ref_dense(z: np.ndarray, yrow: np.ndarray):
    zz = [CTX.mpf(float(v)) for v in z]
    lse = CTX.log(CTX.fsum([CTX.exp(v) for v in zz]))
    loss = CTX.fsum([CTX.mpf(float(t)) * (lse - v) for t, v in zip(yrow, zz)])
    bp = [CTX.exp(v - lse) - CTX.mpf(float(t)) for t, v in zip(yrow, zz)]
    return loss, bp


@st.composite
def logit_rows(draw, max_c=9):
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    c = draw(st.integers(1, max_c))
    b = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 8.0, 60.0]))
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((b, c)) * scale
    if draw(st.booleans()) and c > 1:
        z[:, 0] += draw(st.sampled_from([20.0, 90.0]))  # one dominant logit
    if draw(st.booleans()):
        z = np.round(z)  # exact ties
    z = z.astype(DTYPES[dtype][0])
    y = rng.integers(0, c, b)
    return dtype, z, y


@SETTINGS
@given(logit_rows())
def test_sparse_loss_and_backprop_are_correctly_rounded(case):
    dtype, z, y = case
    e = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(z, y.astype(np.int64))
    loss, bp = e["loss"].rounded64, e["backprop"].rounded64
    for b in range(z.shape[0]):
        rl, rbp = ref_sparse(z[b].astype(np.float64), int(y[b]))
        assert loss[b] == ref_round(rl, dtype), (z[b], y[b])
        for j in range(z.shape[1]):
            got, want = bp[b, j], ref_round(rbp[j], dtype)
            assert got == want or (got == 0 and want == 0), (z[b], y[b], j)


@SETTINGS
@given(logit_rows(), st.sampled_from(["onehot", "soft", "signed"]))
def test_dense_loss_and_backprop_are_correctly_rounded(case, label_kind):
    dtype, z, y = case
    b, c = z.shape
    rng = np.random.default_rng(int(y.sum()) + c)
    if label_kind == "onehot":
        lab = np.eye(c)[y]
    elif label_kind == "soft":
        lab = rng.random((b, c))
        lab /= lab.sum(axis=1, keepdims=True)
    else:
        lab = rng.standard_normal((b, c))
    lab = lab.astype(z.dtype)
    e = tf.raw_ops.SoftmaxCrossEntropyWithLogits(z, lab)
    loss, bp = e["loss"].rounded64, e["backprop"].rounded64
    for i in range(b):
        rl, rbp = ref_dense(z[i].astype(np.float64), lab[i].astype(np.float64))
        assert loss[i] == ref_round(rl, dtype) or (loss[i] == 0 and ref_round(rl, dtype) == 0)
        for j in range(c):
            want = ref_round(rbp[j], dtype)
            assert bp[i, j] == want or (bp[i, j] == 0 and want == 0), (z[i], lab[i], j)


def _mp(o, i=None):
    s = o.exact_strings(60)
    return [CTX.mpf(v) for v in s] if i is None else CTX.mpf(s[i])


@SETTINGS
@given(logit_rows(), st.sampled_from([0.25, 1.0, -3.0, 1024.0]))
def test_sparse_loss_is_shift_invariant(case, shift):
    dtype, z, y = case
    z64 = np.round(z.astype(np.float64) * 2**24) / 2**24  # few bits: z + shift is exact
    assert np.array_equal((z64 + shift) - shift, z64)
    a = tf.nn.sparse_softmax_cross_entropy_with_logits(y, z64)["loss"]
    b = tf.nn.sparse_softmax_cross_entropy_with_logits(y, z64 + shift)["loss"]
    assert a.exact_strings(40) == b.exact_strings(40)


@SETTINGS
@given(logit_rows(), st.sampled_from([0.1, 0.5, 1.0, 1.5]))
def test_label_smoothing_identity(case, eps):
    """(A5): smoothed CE = (1 − ε)·CE(Y, z) + ε·(lse(z) − mean z)."""
    _dtype, z, y = case
    z64 = z.astype(np.float64)
    b, c = z.shape
    onehot = np.eye(c)[y]
    sm = tf.compat.v1.losses.softmax_cross_entropy(onehot, z64, label_smoothing=eps,
                                                   reduction="none")["loss"]
    ce = tf.nn.softmax_cross_entropy_with_logits(onehot, z64)["loss"]
    e = CTX.mpf(eps)
    for i in range(b):
        zz = [CTX.mpf(float(v)) for v in z64[i]]
        lse = CTX.log(CTX.fsum([CTX.exp(v) for v in zz]))
        want = (1 - e) * _mp(ce, i) + e * (lse - CTX.fsum(zz) / c)
        got = _mp(sm, i)
        assert abs(got - want) <= CTX.mpf(10) ** -45 * (1 + abs(want))


@SETTINGS
@given(logit_rows(), st.lists(st.sampled_from([0.0, 0.5, 2.0, -1.0, 3.25]), min_size=3,
                              max_size=3))
def test_sum_is_sum_by_nonzero_weights_times_k(case, wlist):
    _dtype, z, y = case
    b = z.shape[0]
    w = np.array((wlist * b)[:b])
    k = int(np.count_nonzero(w))
    s = tf.compat.v1.losses.sparse_softmax_cross_entropy(y, z, weights=w,
                                                         reduction="weighted_sum")["loss"]
    n = tf.compat.v1.losses.sparse_softmax_cross_entropy(
        y, z, weights=w, reduction="weighted_sum_by_nonzero_weights")["loss"]
    if k == 0:
        assert n.exact_strings() == ["0"]
    else:
        assert abs(_mp(s, 0) - k * _mp(n, 0)) <= CTX.mpf(10) ** -50 * (1 + abs(_mp(s, 0)))


def _finite_difference(fn, x: np.ndarray, h_exp: int = -24):
    """Central differences of an exact scalar function at float64 points, in mpmath."""
    h = math.ldexp(1.0, h_exp)
    out = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        assert xp[idx] - x[idx] == h and x[idx] - xm[idx] == h  # exact perturbations
        out[idx] = (fn(xp) - fn(xm)) / (2 * CTX.mpf(h))
    return out


APIS_FOR_GRAD = ["nn_sparse", "v1_sparse_sbnz", "v1_dense_mean_smooth", "keras_sparse_probs",
                 "keras_dense_probs", "keras3_sparse_logits_msw"]


def _scalar_loss(api: str, x: np.ndarray, y: np.ndarray, up):
    if api == "nn_sparse":
        e = tf.nn.sparse_softmax_cross_entropy_with_logits(y, x, upstream=up)
    elif api == "v1_sparse_sbnz":
        e = tf.compat.v1.losses.sparse_softmax_cross_entropy(
            y, x, weights=np.array([0.5, 0.0, 2.0])[: len(y)])
    elif api == "v1_dense_mean_smooth":
        e = tf.compat.v1.losses.softmax_cross_entropy(
            np.eye(x.shape[1])[y], x, weights=np.array([0.5, 1.5, 2.0])[: len(y)],
            label_smoothing=0.2, reduction="weighted_mean")
    elif api == "keras_sparse_probs":
        e = tf.keras.losses.SparseCategoricalCrossentropy()(y, x)
    elif api == "keras_dense_probs":
        e = tf.keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(x.shape[1])[y], x)
    else:
        e = tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight", keras="keras3",
            dtype="float64")(y, x, sample_weight=np.array([0.5, 1.0, 3.0])[: len(y)])
    return e


@pytest.mark.parametrize("api", APIS_FOR_GRAD)
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), c=st.integers(2, 5), b=st.integers(1, 3))
def test_gradient_is_the_derivative_of_the_exact_loss(api, seed, c, b):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, b)
    if "probs" in api:
        x = rng.uniform(0.1, 0.8, (b, c))  # well inside the clip range
    else:
        x = rng.standard_normal((b, c)) * 3
    x = np.round(x * 2**20) / 2**20  # few bits: x ± 2**-24 is exact
    up = rng.uniform(0.5, 2.0, b).round(3) if api == "nn_sparse" else None
    e = _scalar_loss(api, x, y, up)

    def total(xx):
        o = _scalar_loss(api, xx, y, up)["loss"]
        vals = _mp(o)
        u = [1] * len(vals) if up is None else [CTX.mpf(float(v)) for v in up]
        return CTX.fsum([a * v for a, v in zip(u, vals)])

    fd = _finite_difference(total, x)
    g = e["grad_logits"]
    exact = np.array(_mp(g), dtype=object).reshape(g.shape)
    for idx in np.ndindex(x.shape):
        assert abs(exact[idx] - fd[idx]) <= CTX.mpf(2) ** -36 * (1 + abs(fd[idx])), (api, idx)


@SETTINGS
@given(logit_rows(), st.sampled_from(["none", "weighted_sum", "weighted_mean"]))
def test_budgets_cover_the_rounding_error(case, reduction):
    dtype, z, y = case
    e = tf.compat.v1.losses.sparse_softmax_cross_entropy(
        y, z, weights=np.linspace(0.5, 2, z.shape[0]).astype(np.float32), reduction=reduction)
    for name, o in e.outputs.items():
        exact = _mp(o)
        rounded = o.rounded64.ravel()
        for grade, bud in o.budgets.items():
            for i, (x, r) in enumerate(zip(exact, rounded)):
                if math.isfinite(r):
                    assert abs(CTX.mpf(float(r)) - x) <= bud.ravel()[i] * (1 + 1e-12), (
                        name, grade, i)
                    if grade == "faithful":
                        assert abs(CTX.mpf(float(r)) - x) < bud.ravel()[i]


def test_tie_rows_are_exactly_rational():
    """All-tied rows have p = 1/C exactly; with C = 4 the backprop is exact dyadic."""
    z = np.zeros((1, 4), dtype=np.float32)
    e = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(z, np.array([2]))
    assert e["backprop"].exact_strings(10) == ["0.25", "0.25", "-0.75", "0.25"]
    # loss log 4 is transcendental: certified digits agree with mpmath
    assert abs(CTX.mpf(e["loss"].exact_strings(40)[0]) - CTX.log(4)) < CTX.mpf(10) ** -38


def test_astronomical_gap_midpoint_is_decided():
    """|d_y| is a float64 midpoint and log1p(t) ~ e^-24576 > 0: round up, not to even."""
    a = 8192 + 2.0**-39  # exact in float64 (ulp at 2**13 is 2**-39)
    z = np.array([[-a, 16384.0]])
    e = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(z, np.array([0]))
    r = Fraction(16384) + Fraction(a)  # |d_y| = 24576 + 2**-39: half an ulp above 24576
    assert r == Fraction(24576) + Fraction(1, 2**39)
    # exact loss = r + log1p(e^-r) lies strictly above the midpoint: rounds up
    assert e["loss"].rounded64[0] == 24576 + 2.0**-38
    # through tf.nn on the same float64 logits, the same answer
    e2 = tf.nn.sparse_softmax_cross_entropy_with_logits(np.array([0]), z)
    assert e2["loss"].rounded64[0] == 24576 + 2.0**-38


def test_global_mpmath_precision_changes_nothing():
    """The exact tier uses no mpmath context: a caller's global precision is irrelevant."""
    z = np.array([[2, -5, .5, -.1], [0, 0, 1.9, 1.4]], np.float32)
    y = np.array([0, 3])
    want = tf.nn.sparse_softmax_cross_entropy_with_logits(y, z)["loss"].exact_strings(30)
    old = mpmath.mp.prec
    try:
        mpmath.mp.prec = 8
        got = tf.nn.sparse_softmax_cross_entropy_with_logits(y, z)["loss"].exact_strings(30)
    finally:
        mpmath.mp.prec = old
    assert got == want

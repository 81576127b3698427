"""The oracle against the worked numbers of TF-SEMANTICS.md and the seed docs.

Every expected number here is copied from the project's ``TF-SEMANTICS.md`` (section named
in each test id / docstring) or from the seed docs in ``seeds/``, or is the
documented formula evaluated independently in float64 from the (float32) inputs — never a
value produced by the oracle.

Tolerances follow the digits the document gives: an expected value written as a decimal
string is matched to one unit in its last decimal place, with a floor of 1e-6 relative for
values TensorFlow printed from float32 ("TF" values, which carry TF's own float32 rounding)
and 1e-7 relative for exact hand-computed values (the hand arithmetic uses the decimal
inputs, the oracle their float32 roundings). Where the document gives a float32 value
observed from TensorFlow with at least 7 significant digits, the oracle's correctly
rounded float32 must also be within 4 float32 ulps of it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from xentconf.oracle import oracle_call, tf

F32 = np.float32
I32 = np.int32

# The canonical example (§0): TF's own docstring example.
CANON_X = [[2.0, -5.0, 0.5, -0.1], [0.0, 0.0, 1.9, 1.4], [-100.0, 100.0, -100.0, -100.0]]
CANON_Y = [0, 3, 1]

# The Keras doc example (§6.3, seed 002).
K_TRUE = [1, 2]
K_ONEHOT = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
K_PRED = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]


# ------------------------------------------------------------------------ helpers


def _unit(s: str) -> float:
    """One unit in the last decimal place of a number written as ``s``."""
    mant, _, exp = s.strip().lower().partition("e")
    dec = len(mant.split(".")[1]) if "." in mant else 0
    return 10.0 ** ((int(exp) if exp else 0) - dec)


def _sig(s: str) -> int:
    mant = s.strip().lower().partition("e")[0].lstrip("+-").replace(".", "").lstrip("0")
    return len(mant)


def assert_doc(actual, docs, *, floor: float = 1e-7, tol: float | None = None,
               rel: float | None = None, what: str = ""):
    """``actual`` (array) matches the document's decimal strings ``docs`` (same shape)."""
    actual = np.asarray(actual, dtype=np.float64)
    docs = np.asarray(docs, dtype=object)
    assert actual.shape == docs.shape, f"{what}: shape {actual.shape} != doc {docs.shape}"
    for i, (a, s) in enumerate(zip(actual.ravel().tolist(), docs.ravel().tolist())):
        s = str(s)
        if s == "nan":
            assert math.isnan(a), f"{what}[{i}]: expected NaN, got {a!r}"
            continue
        if s in ("inf", "+inf", "-inf"):
            assert a == float(s), f"{what}[{i}]: expected {s}, got {a!r}"
            continue
        e = float(s)
        if e == 0.0 and tol is None and rel is None:
            t = 1e-30  # the document's exact zeros (row losses ~1e-87 count as 0)
        elif tol is not None:
            t = tol
        elif rel is not None:
            t = rel * abs(e)
        else:
            t = max(_unit(s), floor * abs(e))
        assert math.isfinite(a) and abs(a - e) <= t, (
            f"{what}[{i}]: oracle {a!r} vs doc {s} (|diff|={abs(a - e):.3g} > tol {t:.3g})")


def f32_ulps(a, b) -> int:
    def key(x):
        i = int(np.asarray(x, dtype=np.float32).view(np.int32))
        return i if i >= 0 else -(i & 0x7FFFFFFF)

    return abs(key(a) - key(b))


def assert_tf32(o, docs, *, max_ulps: int = 4, floor: float = 1e-6, what: str = ""):
    """A float32 output against values TensorFlow printed: the exact value within the doc's
    digits, and (for ≥7 significant digits) the correctly rounded float32 within a few ulps."""
    assert o.dtype == np.float32, f"{what}: dtype {o.dtype}"
    assert_doc(o.exact64, docs, floor=floor, what=what)
    r = np.asarray(o.rounded).ravel()
    for i, s in enumerate(np.asarray(docs, dtype=object).ravel().tolist()):
        s = str(s)
        if s in ("nan", "inf", "+inf", "-inf") or _sig(s) < 7:
            continue
        d = f32_ulps(r[i], np.float32(s))
        assert d <= max_ulps, (f"{what}[{i}]: oracle float32 {r[i]!r} is {d} ulps from TF's "
                               f"{s}")


def lse(z) -> float:
    z = [float(v) for v in z]
    m = max(z)
    return m + math.log(math.fsum(math.exp(v - m) for v in z))


def sparse_row(z, y) -> float:
    """A1 in float64: lse(z) − z_y."""
    return lse(z) - float(z[y])


def softmax(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def f32(x) -> np.ndarray:
    """The float32 rounding of the inputs, held in float64 (what TF and the oracle see)."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


# ------------------------------------------------------------------------ §0 canonical

CANON_LOSS_TF32 = ["0.29750752", "1.1448325", "0.0"]


@pytest.mark.parametrize("api", ["raw_op", "tf.nn", "compat.v1-none"])
def test_canonical_float32_per_row_loss(api):
    """§0: per-row loss [0.29750752, 1.1448325, 0.0] in float32 (row 3's exact value is
    3·e^-200 ≈ 4.15e-87, whose float32 rounding is 0)."""
    if api == "raw_op":
        e = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=CANON_X, labels=CANON_Y)
    elif api == "tf.nn":
        e = tf.nn.sparse_softmax_cross_entropy_with_logits(CANON_Y, CANON_X)
    else:
        e = tf.compat.v1.losses.sparse_softmax_cross_entropy(CANON_Y, CANON_X, reduction="none")
    assert e.raises is None
    o = e["loss"]
    assert o.shape == (3,)
    assert_tf32(o, CANON_LOSS_TF32, what="loss")
    assert o.rounded[2] == 0.0
    assert o.exact64[2] == pytest.approx(3 * math.exp(-200), rel=1e-12)


def test_canonical_float32_backprop_row3_underflows():
    """§0: float32 backprop row 3 underflows to 0 (exp(-200) is far below float32's range)."""
    e = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=CANON_X, labels=CANON_Y)
    bp = e["backprop"]
    assert bp.dtype == np.float32 and bp.shape == (3, 4)
    assert np.all(bp.rounded[2] == 0.0)


def test_canonical_float64_row3():
    """§0: float64 row 3 — exact loss 3·e^-200 ≈ 4.15e-87; TF's float64 prints 0, which is
    within budget; backprop has exp(-200) = 1.3838965267367376e-87 in the non-label columns."""
    e = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
        features=np.array(CANON_X, dtype=np.float64), labels=np.array(CANON_Y, dtype=I32))
    loss, bp = e["loss"], e["backprop"]
    assert loss.dtype == np.float64 and bp.dtype == np.float64
    exp200 = 1.3838965267367376e-87
    assert loss.exact64[2] == pytest.approx(3 * exp200, rel=1e-14)
    assert loss.rounded[2] != 0.0
    # TF's float64 answer 0.0 is within the stable budget of the exact value
    assert abs(0.0 - loss.exact64[2]) <= loss.budgets["stable"][2]
    for j in (0, 2, 3):
        assert bp.exact64[2, j] == pytest.approx(exp200, rel=1e-14)
        assert f64_ulps(bp.rounded[2, j], exp200) <= 1
    # rows 0 and 1 agree with the float32 digits (inputs differ only by float32 rounding)
    assert_doc(loss.exact64[:2], ["0.29750752", "1.1448325"], floor=1e-6, what="loss64")


def f64_ulps(a, b) -> int:
    def key(x):
        i = int(np.asarray(x, dtype=np.float64).view(np.int64))
        return i if i >= 0 else -(i & 0x7FFFFFFFFFFFFFFF)

    return abs(key(a) - key(b))


# ------------------------------------------------------------------------ §1.1 GPU test

GPU_X = [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]
GPU_Y = [4, 3, 0, -1]
GPU_LOSS = [np.nan, 1.3862, 3.4420, np.nan]
GPU_BP = [[np.nan] * 4, [0.25, 0.25, 0.25, -0.75], [-0.968, 0.087, 0.237, 0.6439],
          [np.nan] * 4]


@pytest.mark.parametrize("profile", ["gpu", "xla"])
@pytest.mark.parametrize("api", ["raw_op", "tf.nn"])
def test_invalid_label_nan_rows_tf_gpu_test(api, profile):
    """§1.1 (TF's testInvalidLabelGPU, [T]): labels [4,3,0,-1] → loss [nan, 1.3862, 3.4420,
    nan] and backprop rows [nan×4], [.25,.25,.25,-.75], [-.968,.087,.237,.6439], [nan×4],
    with TF's own test tolerance rtol=atol=1e-3. XLA gives the same NaN rows (§1.1)."""
    if api == "raw_op":
        e = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=GPU_X, labels=GPU_Y,
                                                           profile=profile)
        grad = e["backprop"]
    else:
        e = tf.nn.sparse_softmax_cross_entropy_with_logits(GPU_Y, GPU_X, profile=profile)
        grad = e["grad_logits"]
    assert e.raises is None
    np.testing.assert_allclose(e["loss"].exact64, GPU_LOSS, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(grad.exact64, GPU_BP, rtol=1e-3, atol=1e-3)
    assert np.isnan(e["loss"].rounded[[0, 3]]).all()
    assert np.isnan(grad.rounded[[0, 3]]).all()
    assert np.isfinite(e["loss"].rounded[[1, 2]]).all()
    assert np.isfinite(grad.rounded[[1, 2]]).all()


# ------------------------------------------------------------------------ §1.1 special values


def _raw(x, y, **kw):
    return tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
        features=np.array(x, dtype=np.float32), labels=np.array(y, dtype=I32), **kw)


def test_special_neg_inf_non_label_column():
    """§1.1 table: [0,-inf,1], label 0 → 1.3132616 (finite), backprop [-0.731, 0, 0.731]."""
    e = _raw([[0.0, -np.inf, 1.0]], [0])
    assert_tf32(e["loss"], ["1.3132616"], what="loss")
    assert_doc(e["backprop"].exact64, [["-0.731", "0", "0.731"]], what="backprop")
    assert e["backprop"].rounded[0, 1] == 0.0


def test_special_neg_inf_at_label():
    """§1.1 table: [0,-inf,1], label 1 (the −inf column) → +inf, backprop [0.269, -1, 0.731]
    (finite)."""
    e = _raw([[0.0, -np.inf, 1.0]], [1])
    assert e["loss"].exact64[0] == np.inf and e["loss"].rounded[0] == np.inf
    assert_doc(e["backprop"].exact64, [["0.269", "-1", "0.731"]], what="backprop")
    assert np.isfinite(e["backprop"].rounded).all()


@pytest.mark.parametrize("label", [0, 1], ids=["label0", "label1"])
@pytest.mark.parametrize("row", [[-np.inf, -np.inf], [np.inf, 0.0]], ids=["all-neg-inf", "pos-inf"])
def test_special_nan_rows(row, label):
    """§1.1 table: [-inf,-inf] and [+inf,0] → NaN loss and NaN backprop row, any label."""
    e = _raw([row], [label])
    assert np.isnan(e["loss"].rounded).all()
    assert np.isnan(e["backprop"].rounded).all()


@pytest.mark.parametrize("label", [0, 1], ids=["label0", "label1"])
def test_special_nan_only_in_its_row(label):
    """§1.1 table: [nan, 0] (other rows finite) → NaN only in that row; the finite row is
    A1: lse([1,2]) − 2 = log(1 + e^-1)."""
    e = _raw([[np.nan, 0.0], [1.0, 2.0]], [label, 1])
    loss, bp = e["loss"], e["backprop"]
    assert math.isnan(loss.rounded[0]) and np.isnan(bp.rounded[0]).all()
    assert np.isfinite(loss.rounded[1]) and np.isfinite(bp.rounded[1]).all()
    assert loss.exact64[1] == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-12)


def test_special_huge_logits():
    """§1.1 table: [1e30, -1e30], label 1 → 2e30, backprop [1, -1]."""
    e = _raw([[1e30, -1e30]], [1])
    assert_doc(e["loss"].exact64, ["2e30"], rel=1e-6, what="loss")
    assert f32_ulps(e["loss"].rounded[0], np.float32(2e30)) <= 4
    assert_doc(e["backprop"].exact64, [["1", "-1"]], tol=1e-7, what="backprop")


def test_special_single_class():
    """§1.1 table ([T]): single class [[1],[-1],[0]], labels 0 → loss 0 and backprop 0."""
    e = _raw([[1.0], [-1.0], [0.0]], [0, 0, 0])
    assert np.all(e["loss"].exact64 == 0.0)
    assert np.all(e["backprop"].exact64 == 0.0)
    assert e["backprop"].shape == (3, 1)


# ------------------------------------------------------------------------ §1.2 dense −inf


@pytest.mark.parametrize("api", ["raw_op", "tf.nn"])
def test_dense_neg_inf_zero_label_nan_on_cpu(api):
    """§1.2: −inf logit with a zero label → NaN loss (0·∞) while backprop stays finite."""
    x, y = [[0.0, -np.inf, 1.0]], [[1.0, 0.0, 0.0]]
    if api == "raw_op":
        e = tf.raw_ops.SoftmaxCrossEntropyWithLogits(features=x, labels=y)
        grad = e["backprop"]
    else:
        e = tf.nn.softmax_cross_entropy_with_logits(y, x)
        grad = e["grad_logits"]
    assert math.isnan(e["loss"].rounded[0])
    assert np.isfinite(grad.rounded).all()
    assert_doc(grad.exact64, [["-0.731", "0", "0.731"]], what="backprop")


def test_dense_neg_inf_zero_label_finite_under_xla():
    """§1.2: under XLA the same input gives the finite 1.3132616."""
    e = tf.raw_ops.SoftmaxCrossEntropyWithLogits(features=[[0.0, -np.inf, 1.0]],
                                                 labels=[[1.0, 0.0, 0.0]], profile="xla")
    assert_tf32(e["loss"], ["1.3132616"], what="loss")


def test_dense_neg_inf_with_label_smoothing_is_pos_inf():
    """§1.2: with label smoothing > 0 (all labels > 0) the same row gives +inf."""
    e = tf.compat.v1.losses.softmax_cross_entropy([[1.0, 0.0, 0.0]], [[0.0, -np.inf, 1.0]],
                                                  label_smoothing=0.1, reduction="none")
    assert e.raises is None
    assert e["loss"].rounded[0] == np.inf


# ------------------------------------------------------------------------ §2 / §3 tf.nn


def test_nn_sparse_rank1_logits_scalar_label():
    """§2 step 3: S(labels=2, logits=[1,2,3]) = 0.4076059, a scalar."""
    e = tf.nn.sparse_softmax_cross_entropy_with_logits(2, [1.0, 2.0, 3.0])
    assert e.raises is None
    assert e["loss"].shape == ()
    assert_tf32(e["loss"], np.array("0.4076059", dtype=object), what="loss")


def test_nn_dense_doc_example():
    """§3: logits [[4,2,1],[0,5,1]], labels [[1,0,0],[0,.8,.2]] → [0.16984604, 0.82474494]."""
    e = tf.nn.softmax_cross_entropy_with_logits([[1.0, 0.0, 0.0], [0.0, 0.8, 0.2]],
                                                [[4.0, 2.0, 1.0], [0.0, 5.0, 1.0]])
    assert e["loss"].shape == (2,)
    assert_tf32(e["loss"], ["0.16984604", "0.82474494"], what="loss")


def test_oracle_call_as_data():
    """The data path (oracle_call) gives the same §2 number as the namespace entry."""
    e = oracle_call("tf.nn.sparse_softmax_cross_entropy_with_logits",
                    {"labels": 2, "logits": [1.0, 2.0, 3.0]})
    assert_tf32(e["loss"], np.array("0.4076059", dtype=object), what="loss")


# ------------------------------------------------------------------------ §5.2 reductions

# weights id -> (weights argument or omitted, {reduction: doc value(s)})
L_NONE = ["0.2975074", "1.1448326", "0"]
RED_TABLE = {
    "default": (None, {
        "none": L_NONE, "weighted_sum": "1.44234", "weighted_sum_over_batch_size": "0.48078",
        "weighted_mean": "0.48078", "weighted_sum_by_nonzero_weights": "0.48078"}),
    "w[0.5,0,2]": ([0.5, 0.0, 2.0], {
        "none": ["0.1487537", "0", "0"], "weighted_sum": "0.1487537",
        "weighted_sum_over_batch_size": "0.0495846", "weighted_mean": "0.0595015",
        "weighted_sum_by_nonzero_weights": "0.0743769"}),
    "scalar2.0": (2.0, {
        "none": None,  # 2l: checked against the doubled doc l below
        "weighted_sum": "2.88468", "weighted_sum_over_batch_size": "0.96156",
        "weighted_mean": "0.48078", "weighted_sum_by_nonzero_weights": "0.96156"}),
    "scalar0": (0.0, {
        "none": ["0", "0", "0"], "weighted_sum": "0", "weighted_sum_over_batch_size": "0",
        "weighted_mean": "0", "weighted_sum_by_nonzero_weights": "0"}),
    "zeros": ([0.0, 0.0, 0.0], {
        "none": ["0", "0", "0"], "weighted_sum": "0", "weighted_sum_over_batch_size": "0",
        "weighted_mean": "0", "weighted_sum_by_nonzero_weights": "0"}),
    "w[-1,1,1]": ([-1.0, 1.0, 1.0], {
        "none": ["-0.2975", "1.1448", "0"], "weighted_sum": "0.8473252",
        "weighted_sum_over_batch_size": "0.2824417", "weighted_mean": "0.8473252",
        "weighted_sum_by_nonzero_weights": "0.2824417"}),
}
REDUCTIONS = ["none", "weighted_sum", "weighted_sum_over_batch_size", "weighted_mean",
              "weighted_sum_by_nonzero_weights"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("wid", list(RED_TABLE))
def test_compat_v1_reduction_table(wid, reduction):
    """§5.2 worked example: canonical logits, labels [0,3,1], every weights × reduction."""
    weights, row = RED_TABLE[wid]
    kw = {} if weights is None else {"weights": weights}
    e = tf.compat.v1.losses.sparse_softmax_cross_entropy(CANON_Y, CANON_X, reduction=reduction,
                                                         **kw)
    assert e.raises is None
    o = e["loss"]
    assert o.dtype == np.float32
    expected = row[reduction]
    # the table's numbers are TensorFlow's float32 outputs [V]: assert_tf32's 1e-6 floor
    if reduction == "none":
        assert o.shape == (3,)
        if expected is None:  # "2l"
            assert_doc(o.exact64[:2] / 2.0, L_NONE[:2], floor=1e-6, what="loss/2")
            assert o.rounded[2] == 0.0
        else:
            assert_tf32(o, expected, what="loss")
    else:
        assert o.shape == ()
        assert_tf32(o, np.array(expected, dtype=object), what="loss")
        if float(expected) == 0.0:
            assert o.rounded == 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compat_v1_reduction_empty_batch(reduction):
    """§5.2 worked example, empty batch: NONE → [], every other reduction → 0."""
    e = tf.compat.v1.losses.sparse_softmax_cross_entropy(
        np.zeros((0,), dtype=I32), np.zeros((0, 4), dtype=F32), reduction=reduction)
    assert e.raises is None
    o = e["loss"]
    if reduction == "none":
        assert o.shape == (0,)
    else:
        assert o.shape == () and o.exact64 == 0.0 and o.rounded == 0.0


RANK3_X = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) % 7 * 0.75 - 2.0).astype(F32)
RANK3_Y = np.array([[0, 1, 2], [3, 0, 1]], dtype=I32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compat_v1_rank3_weights_counted_after_broadcast(reduction):
    """§5.2 rank-3 example: logits [2,3,4], labels [2,3], weights [[1],[0]] → K = 3 (counted
    after broadcast), so SBNZ = MEAN = (sum of first row's 3 losses)/3; A6 for the others
    (SUM_OVER_BATCH_SIZE divides by N = 6)."""
    w = np.array([[1.0], [0.0]], dtype=F32)
    e = tf.compat.v1.losses.sparse_softmax_cross_entropy(RANK3_Y, RANK3_X, weights=w,
                                                         reduction=reduction)
    assert e.raises is None
    ls = [[sparse_row(RANK3_X[i, j], RANK3_Y[i, j]) for j in range(3)] for i in range(2)]
    first = math.fsum(ls[0])
    expected = {"none": np.array([ls[0], [0.0, 0.0, 0.0]]), "weighted_sum": first,
                "weighted_sum_over_batch_size": first / 6, "weighted_mean": first / 3,
                "weighted_sum_by_nonzero_weights": first / 3}[reduction]
    np.testing.assert_allclose(e["loss"].exact64, expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compat_v1_xla_broadcasts_weights_without_the_assert(reduction):
    """§5.2 (2): inside an XLA context ``assert_broadcastable`` is skipped, so ``[B,1]``
    weights meet the ``[B]`` losses only in the multiply: ``v[i,j] = w_i · L_j`` over
    ``[B,B]``; the sum of weights and the nonzero count run over that broadcast, and
    SUM_OVER_BATCH_SIZE still divides by ``size(losses)`` = B. Eagerly the same call raises.
    (TensorFlow's recorded XLA answer for the default reduction is 0.96156.)"""
    w = np.array([[1.0], [2.0], [0.0]], dtype=F32)
    y = np.eye(4, dtype=F32)[CANON_Y]
    eager = tf.compat.v1.losses.softmax_cross_entropy(y, CANON_X, weights=w, reduction=reduction)
    assert eager.raises is not None and eager.raises.error == "ValueError"
    e = tf.compat.v1.losses.softmax_cross_entropy(y, CANON_X, weights=w, reduction=reduction,
                                                  profile="xla")
    assert e.raises is None
    x = f32(CANON_X)
    ls = np.array([sparse_row(x[j], CANON_Y[j]) for j in range(3)])
    v = np.array([[1.0], [2.0], [0.0]]) * ls[None, :]
    expected = {"none": v, "weighted_sum": v.sum(), "weighted_sum_over_batch_size": v.sum() / 3,
                "weighted_mean": v.sum() / 9.0, "weighted_sum_by_nonzero_weights": v.sum() / 6
                }[reduction]
    # row 3's loss is ~4e-87, which the float64 hand sum rounds to 0
    np.testing.assert_allclose(e["loss"].exact64, expected, rtol=1e-12, atol=1e-80)
    if reduction == "weighted_sum_by_nonzero_weights":  # the recorded weights [[1],[2],[3]]
        e = tf.compat.v1.losses.softmax_cross_entropy(y, CANON_X, weights=w + [[0], [0], [3]],
                                                      profile="xla")
        assert_doc(e["loss"].exact64, "0.96156", floor=1e-6, what="loss")


def test_compat_v1_xla_weights_that_do_not_broadcast_fail_the_multiply():
    """Under XLA, weights [2] against losses [3] fail the multiply's shape inference
    (ValueError "Dimensions must be equal, but are 3 and 2"), not the eager assert."""
    e = tf.compat.v1.losses.sparse_softmax_cross_entropy(CANON_Y, CANON_X, weights=[1.0, 2.0],
                                                         profile="xla")
    assert e.raises is not None and e.raises.error == "ValueError"
    assert e.raises.message.startswith("Dimensions must be equal, but are 3 and 2")


def test_compat_v1_gradient_sbnz():
    """§5.2 gradient example: SBNZ with weights [0.5,0,2] → grad row 0 = 0.25·backprop₀
    (0.5/K, K = 2); by A6 row 1 = 0 and row 2 = (2/2)·backprop₂."""
    e = tf.compat.v1.losses.sparse_softmax_cross_entropy(CANON_Y, CANON_X, weights=[0.5, 0.0, 2.0])
    g = e["grad_logits"]
    assert g.shape == (3, 4) and g.dtype == np.float32
    x = f32(CANON_X)
    bp = [softmax(x[i]) - np.eye(4)[CANON_Y[i]] for i in range(3)]
    np.testing.assert_allclose(g.exact64[0], 0.25 * bp[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g.exact64[1], 0.0, atol=0)
    np.testing.assert_allclose(g.exact64[2], bp[2], rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------ §4 label smoothing

LS_Y = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_label_smoothing_doc_example():
    """§4 doc example: ε = 0.2, weights [0.3, 0.7] → 0.5761805."""
    e = tf.compat.v1.losses.softmax_cross_entropy(LS_Y, K_PRED, weights=[0.3, 0.7],
                                                  label_smoothing=0.2)
    assert e["loss"].shape == ()
    assert_tf32(e["loss"], np.array("0.5761805", dtype=object), what="loss")


def test_label_smoothing_doc_example_per_row():
    """§4 doc example per-row losses 0.70739679, 1.34305997 (ε = 0.2, unweighted)."""
    e = tf.compat.v1.losses.softmax_cross_entropy(LS_Y, K_PRED, label_smoothing=0.2,
                                                  reduction="none")
    assert_doc(e["loss"].exact64, ["0.70739679", "1.34305997"], what="loss")


def test_label_smoothing_canonical_eps_0_1():
    """§4: ε = 0.1 on the canonical example, reduction NONE → [0.5625074, 1.2023325, 15.0]."""
    onehot = np.eye(4, dtype=F32)[CANON_Y]
    e = tf.compat.v1.losses.softmax_cross_entropy(onehot, CANON_X, label_smoothing=0.1,
                                                  reduction="none")
    assert e["loss"].shape == (3,)
    assert_doc(e["loss"].exact64, ["0.5625074", "1.2023325", "15.0"], floor=1e-6, what="loss")
    r = e["loss"].rounded
    for i, s in enumerate(["0.5625074", "1.2023325", "15.0"]):
        assert f32_ulps(r[i], np.float32(s)) <= 4, (i, r[i], s)


@pytest.mark.parametrize("keras", ["keras2", "keras3"])
def test_keras_cce_label_smoothing_doc_check(keras):
    """§6.4 doc check: ε = 0.2, from_logits=True, weights [0.3, 0.7] → 0.5761805."""
    loss = tf.keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2,
                                                   keras=keras)
    e = loss(LS_Y, K_PRED, sample_weight=[0.3, 0.7])
    assert_tf32(e["loss"], np.array("0.5761805", dtype=object), what="loss")


# ------------------------------------------------------------------------ §6.3 Keras doc


def _scce(keras, y_true=K_TRUE, y_pred=K_PRED, sw=None, **init):
    return tf.keras.losses.SparseCategoricalCrossentropy(keras=keras, **init)(
        y_true, y_pred, sample_weight=sw)


def _cce(keras, y_true=K_ONEHOT, y_pred=K_PRED, sw=None, **init):
    return tf.keras.losses.CategoricalCrossentropy(keras=keras, **init)(
        y_true, y_pred, sample_weight=sw)


# id -> (init kwargs, sample_weight, seed-doc value, hand value, TF-2.21 value)
KERAS_DOC = {
    "default": ({}, None, "1.177", "1.17693924", "1.1769392"),
    "sample_weight[0.3,0.7]": ({}, [0.3, 0.7], "0.814", "0.81359879", "0.8135988"),
    "sum": ({"reduction": "sum"}, None, "2.354", "2.35387849", "2.3538785"),
    "none": ({"reduction": "none"}, None, ["0.0513", "2.303"], ["0.05129339", "2.30258509"],
             ["0.0512934", "2.3025851"]),
    "from_logits": ({"from_logits": True}, None, None, "0.98689505", "0.9868951"),
    "from_logits-none": ({"from_logits": True, "reduction": "none"}, None, None,
                         ["0.58406346", "1.38972664"], None),
}


def _as_doc(v):
    return np.array(v, dtype=object)


@pytest.mark.parametrize("keras", ["keras2", "keras3"])
@pytest.mark.parametrize("case", list(KERAS_DOC))
def test_keras_scce_doc_example(case, keras):
    """§6.3 / seed 002: y_true [1,2], y_pred [[.05,.95,0],[.1,.8,.1]] — the seed doc's
    digits, the hand-computed values and the TF-2.21 float32 values."""
    init, sw, seed, hand, tfv = KERAS_DOC[case]
    e = _scce(keras, sw=sw, **init)
    assert e.raises is None
    o = e["loss"]
    assert o.dtype == np.float32
    if seed is not None:
        assert_doc(o.exact64, _as_doc(seed), what="seed-doc")
    assert_doc(o.exact64, _as_doc(hand), what="hand")
    if tfv is not None:
        assert_tf32(o, _as_doc(tfv), what="tf-2.21")


def test_keras3_reduction_None_is_none():
    """§6.1: Keras 3 accepts reduction=None, same as "none" → [0.0512934, 2.3025851]."""
    e = _scce("keras3", reduction=None)
    assert e["loss"].shape == (2,)
    assert_tf32(e["loss"], ["0.0512934", "2.3025851"], what="loss")


@pytest.mark.parametrize("sw,hand,tfv", [
    ([0.3, 0.7], "1.62719758", None),
    ([0.3, 0.2], None, "0.9518101"),
], ids=["sw[0.3,0.7]", "sw[0.3,0.2]"])
def test_keras3_mean_with_sample_weight(sw, hand, tfv):
    """§6.3: Keras 3 "mean_with_sample_weight" divides by Σw: sw [0.3,0.7] → 1.62719758,
    sw [0.3,0.2] → 0.9518101."""
    e = _scce("keras3", sw=sw, reduction="mean_with_sample_weight")
    if hand:
        assert_doc(e["loss"].exact64, _as_doc(hand), what="hand")
    if tfv:
        assert_tf32(e["loss"], _as_doc(tfv), what="tf")


CCE_DOC = {
    "default": ({}, None, "1.177"),
    "sample_weight[0.3,0.7]": ({}, [0.3, 0.7], "0.814"),
    "sum": ({"reduction": "sum"}, None, "2.354"),
    "none": ({"reduction": "none"}, None, ["0.0513", "2.303"]),
}


@pytest.mark.parametrize("keras", ["keras2", "keras3"])
@pytest.mark.parametrize("case", list(CCE_DOC))
def test_keras_cce_doc_example_onehot(case, keras):
    """§6.3: CategoricalCrossentropy with the one-hot y_true gives the same 1.177 / 0.814 /
    2.354 / [0.0513, 2.303]."""
    init, sw, seed = CCE_DOC[case]
    e = _cce(keras, sw=sw, **init)
    assert e.raises is None
    assert_doc(e["loss"].exact64, _as_doc(seed), what="seed-doc")


@pytest.mark.parametrize("keras", ["keras2", "keras3"])
def test_keras_cce_probabilities_formula(keras):
    """§6.4 / A9 on the doc example: q = p/Σp, clip to [1e-7, 1−1e-7] (no effect here),
    L = −Σ y log q — evaluated in float64 from the float32 inputs."""
    e = _cce(keras, reduction="none")
    p = f32(K_PRED)
    q = p / p.sum(axis=1, keepdims=True)
    expected = [-math.log(q[0, 1]), -math.log(q[1, 2])]
    np.testing.assert_allclose(e["loss"].exact64, expected, rtol=1e-9)


# ------------------------------------------------------------------------ §6.1 ignore_class

IGN_PRED = [[0.05, 0.95, 0.0], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]]


@pytest.mark.parametrize("keras", ["keras3", "keras2"])
def test_ignore_class_example(keras):
    """§6.1 example: labels [1,-1,2], 3 rows, sample_weight [0.5,3,2] → 2.3154085
    = (0.5·0.0513 + 2·2.3026)/2 (rows 0 and 2 are the doc example's rows; the ignored
    middle row is arbitrary). tf_keras (§6.2/A8) rescales valid weights by N/V: same value."""
    loss = tf.keras.losses.SparseCategoricalCrossentropy(ignore_class=-1, keras=keras)
    e = loss([1, -1, 2], IGN_PRED, sample_weight=[0.5, 3.0, 2.0])
    assert e.raises is None
    assert_tf32(e["loss"], _as_doc("2.3154085"), what="loss")


@pytest.mark.parametrize("keras", ["keras3", "keras2"])
def test_ignore_class_none_reduction_zero_at_ignored(keras):
    """§6.1: reduction "none" → 0 at ignored positions; the others are the §6.3 per-row
    values 0.0512934, 2.3025851."""
    loss = tf.keras.losses.SparseCategoricalCrossentropy(ignore_class=-1, reduction="none",
                                                         keras=keras)
    e = loss([1, -1, 2], IGN_PRED)
    assert e["loss"].shape == (3,)
    assert_tf32(e["loss"], ["0.0512934", "0", "2.3025851"], what="loss")
    assert e["loss"].rounded[1] == 0.0


def test_ignore_class_all_ignored_keras3_is_zero():
    """§6.1: all ignored → 0.0 (not NaN) in Keras 3."""
    loss = tf.keras.losses.SparseCategoricalCrossentropy(ignore_class=-1, keras="keras3")
    e = loss([-1, -1], K_PRED)
    assert e.raises is None
    assert e["loss"].exact64 == 0.0 and e["loss"].rounded == 0.0


def test_ignore_class_all_ignored_tf_keras_is_nan():
    """§6.2: tf_keras rescales without divide_no_nan → all-ignored batch gives NaN."""
    loss = tf.keras.losses.SparseCategoricalCrossentropy(ignore_class=-1, keras="keras2")
    e = loss([-1, -1], K_PRED)
    assert e.raises is None
    assert math.isnan(float(e["loss"].rounded))


# ------------------------------------------------------------------------ §6.1 clipping

# (y_pred row, label, doc value or callable check)
CLIP_CASES = {
    "all-zero-row=logC": ([0.0, 0.0, 0.0], 0, "1.0986"),
    "[2,1,1]=log3": ([2.0, 1.0, 1.0], 0, "1.0986"),
    "[-1,1,1]": ([-1.0, 1.0, 1.0], 0, "16.811"),
    "[1e-9,.5,.5]": ([1e-9, 0.5, 0.5], 0, "16.118"),
}


@pytest.mark.parametrize("keras", ["keras2", "keras3"])
@pytest.mark.parametrize("case", list(CLIP_CASES))
def test_keras_sparse_clipping(case, keras):
    """§6.1 bullet: clip(p, 1e-7, 1−1e-7) then implicit renormalisation: all-zero row →
    log C (1.0986 for C = 3), [2,1,1] → log 3, [-1,1,1] → 16.811, [1e-9,.5,.5] → 16.118."""
    row, label, doc = CLIP_CASES[case]
    e = _scce(keras, y_true=[label], y_pred=[row], reduction="none")
    assert e.raises is None
    assert_doc(e["loss"].exact64, [doc], what="loss")
    if case in ("all-zero-row=logC", "[2,1,1]=log3"):
        # the clipped row has three equal entries: exactly log 3
        assert e["loss"].exact64[0] == pytest.approx(math.log(3.0), rel=1e-14)


@pytest.mark.parametrize("keras", ["keras2", "keras3"])
def test_keras_sparse_exact_one_hot_is_not_zero(keras):
    """§6.1 bullet: an exact one-hot prediction gives ≈2e-7, never 0."""
    e = _scce(keras, y_true=[1], y_pred=[[0.0, 1.0, 0.0]], reduction="none")
    v = float(e["loss"].exact64[0])
    assert 1.5e-7 <= v <= 2.5e-7, v
    assert e["loss"].rounded[0] != 0.0


@pytest.mark.parametrize("keras", ["keras2", "keras3"])
def test_keras_cce_normalises_before_clipping(keras):
    """§6.4: CCE [2,1,1], y = 0 → 0.6931 (normalise first, then clip) vs 1.0986 sparse."""
    e = _cce(keras, y_true=[[1.0, 0.0, 0.0]], y_pred=[[2.0, 1.0, 1.0]], reduction="none")
    assert_doc(e["loss"].exact64, ["0.6931"], what="loss")


# ------------------------------------------------------------------------ §6 empty batch


@pytest.mark.parametrize("reduction", ["sum", "sum_over_batch_size"])
def test_keras3_empty_batch_returned_unreduced(reduction):
    """§6.1 step 4: a loss of shape (0,) is returned unreduced, even for "sum"."""
    e = _scce("keras3", y_true=np.zeros((0,), I32), y_pred=np.zeros((0, 3), F32),
              reduction=reduction)
    assert e.raises is None
    assert e["loss"].shape == (0,)


def test_tf_keras_empty_batch_is_zero():
    """§6.2: tf_keras sum_over_batch_size uses divide_no_nan → empty batch gives 0.0."""
    e = _scce("keras2", y_true=np.zeros((0,), I32), y_pred=np.zeros((0, 3), F32))
    assert e.raises is None
    assert e["loss"].shape == () and float(e["loss"].exact64) == 0.0

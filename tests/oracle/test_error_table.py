"""The oracle against TF-SEMANTICS.md's error-semantics table (b) and the error texts of
§1.1, §1.2, §2, §3, §4, §5.1, §5.2 and §6.

For every input TensorFlow rejects, the oracle must answer ``raises`` with TF's error
class name and a message containing TF's key text (quoted exactly in the document; the
eager ``{{function_node ...}}`` prefix and ``[Op:...]`` suffix of kernel errors are not part
of the key text). Out-of-range sparse labels raise only under the ``cpu`` profile; under
``gpu`` and ``xla`` they give NaN in that element's loss and in its whole backprop/gradient
row, other rows unaffected. Bad input to the oracle itself raises ``OracleInputError``,
naming the argument.

Expected texts and numbers come from the document only, never from the oracle.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from xentconf.oracle import OracleInputError, oracle_call, tf

F32 = np.float32
I32 = np.int32
IAE = "InvalidArgumentError"

raw_sparse = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits
raw_dense = tf.raw_ops.SoftmaxCrossEntropyWithLogits
nn_sparse = tf.nn.sparse_softmax_cross_entropy_with_logits
nn_dense = tf.nn.softmax_cross_entropy_with_logits
v1_sparse = tf.compat.v1.losses.sparse_softmax_cross_entropy
v1_dense = tf.compat.v1.losses.softmax_cross_entropy
SCCE = tf.keras.losses.SparseCategoricalCrossentropy
CCE = tf.keras.losses.CategoricalCrossentropy

K_PRED = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]


def z(*shape, dtype=F32):
    return np.zeros(shape, dtype=dtype)


def lab(*values, dtype=I32):
    return np.array(values, dtype=dtype)


V1_KEYS = ("Invalid Reduction Key mean. Key should be one of ('none', 'weighted_sum', "
           "'weighted_mean', 'weighted_sum_over_batch_size', 'weighted_sum_by_nonzero_weights', "
           "'weighted_sum_by_nonzero_weights').")
K2_KEYS = "Expected keys are \"('auto', 'none', 'sum', 'sum_over_batch_size')\""
NONE_TENSOR = ("Attempt to convert a value (None) with an unsupported type (<class 'NoneType'>) "
               "to a Tensor.")
K3_RED = "Invalid value for argument `reduction`. Expected one of {"

# ------------------------------------------------------------------------ errors (not labels)
# id -> (call(profile) -> Expectation, error class or None (not stated by the doc), key texts)
# Every row here is device independent per table (b) ("same", "checked on host"), so it is
# checked under "cpu" and "gpu".

ERRORS = {
    # §1.1 attrs: dtype errors at op construction
    # A Python list of floats is converted to a float tensor and hits the attr check.
    # (TF-SEMANTICS §1.1 shows the uint8 text for a uint8 *tensor*; a numpy label array of
    # another dtype is cast to int64 by eager TF 2.21 instead — observed, see
    # test_raw_sparse_numpy_labels_are_cast below.)
    "raw-sparse/Tlabels-float-list": (
        lambda p: raw_sparse(features=z(2, 4), labels=[0.0, 1.0], profile=p), IAE,
        ["Value for attr 'Tlabels' of float is not in the list of allowed values: int32, int64"]),
    "raw-sparse/T-int32": (
        lambda p: raw_sparse(features=z(2, 4, dtype=I32), labels=lab(0, 1), profile=p), IAE,
        ["Value for attr 'T' of int32 is not in the list of allowed values: half, bfloat16, "
         "float, double"]),
    "raw-sparse/T-int32-before-shape-checks": (
        lambda p: raw_sparse(features=z(4, dtype=I32), labels=lab(0), profile=p), IAE,
        ["Value for attr 'T' of int32 is not in the list of allowed values"]),
    # §1.1 shape validation, in order
    "raw-sparse/logits-rank1": (
        lambda p: raw_sparse(features=z(4), labels=lab(0), profile=p), IAE,
        ["logits must be 2-D, but got shape [4]"]),
    "raw-sparse/logits-rank3": (
        lambda p: raw_sparse(features=z(1, 3, 4), labels=lab(0), profile=p), IAE,
        ["logits must be 2-D, but got shape [1,3,4]"]),
    "raw-sparse/labels-rank2": (
        lambda p: raw_sparse(features=z(3, 4), labels=np.zeros((1, 3), I32), profile=p), IAE,
        ["labels must be 1-D, but got shape [1,3]"]),
    "raw-sparse/batch-mismatch": (
        lambda p: raw_sparse(features=z(3, 4), labels=lab(0, 1), profile=p), IAE,
        ["logits and labels must have the same first dimension, got logits shape [3,4] and "
         "labels shape [2]"]),
    "raw-sparse/zero-classes": (
        lambda p: raw_sparse(features=z(3, 0), labels=lab(0, 0, 0), profile=p), IAE,
        ["Must have at least one class, but got logits shape [3,0]"]),
    "raw-sparse/zero-classes-zero-batch": (
        lambda p: raw_sparse(features=z(0, 0), labels=z(0, dtype=I32), profile=p), IAE,
        ["Must have at least one class, but got logits shape [0,0]"]),
    "raw-sparse/order-logits-before-labels": (
        lambda p: raw_sparse(features=z(4), labels=np.zeros((1, 3), I32), profile=p), IAE,
        ["logits must be 2-D, but got shape [4]"]),
    "raw-sparse/order-labels-before-batch": (
        lambda p: raw_sparse(features=z(3, 4), labels=np.zeros((1, 2), I32), profile=p), IAE,
        ["labels must be 1-D, but got shape [1,2]"]),
    "raw-sparse/order-batch-before-classes": (
        lambda p: raw_sparse(features=z(3, 0), labels=lab(0, 0), profile=p), IAE,
        ["logits and labels must have the same first dimension, got logits shape [3,0] and "
         "labels shape [2]"]),
    "raw-sparse/order-classes-before-labels": (
        lambda p: raw_sparse(features=z(2, 0), labels=lab(5, -2), profile=p), IAE,
        ["Must have at least one class, but got logits shape [2,0]"]),
    # §2 tf.nn sparse static checks (ValueError)
    "nn-sparse/scalar-logits": (
        lambda p: nn_sparse(0, 1.0, profile=p), "ValueError",
        ["`logits` cannot be a scalar. Received logits=1.0`"]),
    "nn-sparse/rank-mismatch": (
        lambda p: nn_sparse(np.zeros((3, 1), I32), z(3, 4), profile=p), "ValueError",
        ["`labels.shape.rank` must equal `logits.shape.rank - 1`. Received: labels.shape=(3, 1) "
         "of rank 2 and logits.shape=(3, 4) of rank 2"]),
    "nn-sparse/static-shape-mismatch": (
        lambda p: nn_sparse(lab(0, 1), z(3, 4), profile=p), "ValueError",
        ["`labels.shape` must equal `logits.shape` except for the last dimension. Received: "
         "labels.shape=(2,) and logits.shape=(3, 4)"]),
    "nn-sparse/labels-float32": (
        lambda p: nn_sparse(lab(0, 1, dtype=F32), z(2, 4), profile=p), IAE,
        ["Value for attr 'Tlabels' of float is not in the list of allowed values: int32, int64"]),
    "nn-sparse/logits-int32": (
        lambda p: nn_sparse(lab(0, 1), z(2, 4, dtype=I32), profile=p), IAE,
        ["Value for attr 'T' of int32 is not in the list of allowed values: half, bfloat16, "
         "float, double"]),
    "nn-sparse/rank2-zero-classes": (  # §2 step 3: static rank 2 → the kernel directly
        lambda p: nn_sparse(lab(0, 0, 0), z(3, 0), profile=p), IAE,
        ["Must have at least one class, but got logits shape [3,0]"]),
    # §1.2 raw dense
    "raw-dense/not-broadcastable": (
        lambda p: raw_dense(features=z(3, 4), labels=z(2, 4), profile=p), IAE,
        ["logits and labels must be broadcastable: logits_size=[3,4] labels_size=[2,4]"]),
    "raw-dense/rank1": (
        lambda p: raw_dense(features=z(4), labels=z(4), profile=p), IAE,
        ["logits and labels must be either 2-dimensional, or broadcasted to be 2-dimensional"]),
    "raw-dense/rank3": (
        lambda p: raw_dense(features=z(1, 3, 4), labels=z(1, 3, 4), profile=p), IAE,
        ["logits and labels must be either 2-dimensional, or broadcasted to be 2-dimensional"]),
    "raw-dense/T-int32": (
        lambda p: raw_dense(features=z(2, 4, dtype=I32), labels=z(2, 4, dtype=I32), profile=p),
        IAE, ["Value for attr 'T' of int32 is not in the list of allowed values: half, "
              "bfloat16, float, double"]),
    # §3 tf.nn dense
    "nn-dense/axis-minus2-rank3": (
        lambda p: nn_dense(z(2, 3, 4), z(2, 3, 4), axis=-2, profile=p), IAE,
        ["Requires start <= limit when delta > 0: 0/-2 [Op:Range]"]),
    "nn-dense/axis5-rank2": (
        lambda p: nn_dense(z(3, 4), z(3, 4), axis=5, profile=p), IAE,
        ["Requires start <= limit when delta > 0: 6/2 [Op:Range]"]),
    "nn-dense/scalars": (  # §3 step 4 (class not stated by the document)
        lambda p: nn_dense(1.0, 2.0, profile=p), None,
        ["Expected begin[0] == 0 (got -1) and size[0] == 0 (got 1) when input.dim_size(0) == 0 "
         "[Op:Slice]"]),
    "nn-dense/incompatible-shapes": (  # §3 step 4: the kernel's broadcast message
        lambda p: nn_dense(z(3, 3), z(3, 4), profile=p), IAE,
        ["logits and labels must be broadcastable: logits_size=[3,4] labels_size=[3,3]"]),
    # §4 compat.v1 softmax_cross_entropy
    "v1-dense/onehot-None": (
        lambda p: v1_dense(None, z(3, 4), profile=p), "ValueError",
        ["Argument `onehot_labels` must not be None."]),
    "v1-dense/logits-None": (
        lambda p: v1_dense(z(3, 4), None, profile=p), "ValueError",
        ["Argument `logits` must not be None."]),
    "v1-dense/shapes-3x4-vs-3x3": (
        lambda p: v1_dense(z(3, 3), z(3, 4), profile=p), "ValueError",
        ["Shapes (3, 4) and (3, 3) are incompatible"]),
    "v1-dense/no-broadcast-1x4": (
        lambda p: v1_dense(z(1, 4), z(3, 4), profile=p), "ValueError",
        ["Shapes (3, 4) and (1, 4) are incompatible"]),
    "v1-dense/weights-Bx1-not-squeezed": (
        lambda p: v1_dense(z(3, 4), z(3, 4), weights=np.ones((3, 1), F32), profile=p),
        "ValueError",
        ["weights can not be broadcast to values. values.rank=1. weights.rank=2."]),
    "v1-dense/invalid-reduction": (
        lambda p: v1_dense(z(3, 4), z(3, 4), reduction="mean", profile=p), "ValueError",
        [V1_KEYS]),
    # §5.1 compat.v1 sparse
    "v1-sparse/labels-None": (
        lambda p: v1_sparse(None, z(3, 4), profile=p), "ValueError",
        ["Argument `labels` must not be None."]),
    "v1-sparse/logits-None": (
        lambda p: v1_sparse(lab(0, 1, 2), None, profile=p), "ValueError",
        ["Argument `logits` must not be None."]),
    "v1-sparse/weights-None": (
        lambda p: v1_sparse(lab(0, 1, 2), z(3, 4), weights=None, profile=p), "ValueError",
        [NONE_TENSOR]),
    "v1-sparse/weights-Bx3-squeeze": (
        lambda p: v1_sparse(lab(0, 1, 2), z(3, 4), weights=np.ones((3, 3), F32), profile=p),
        IAE, ["Can not squeeze dim[1], expected a dimension of 1, got 3"]),
    "v1-sparse/weights-1xB-squeeze": (
        lambda p: v1_sparse(lab(0, 1, 2), z(3, 4), weights=np.ones((1, 3), F32), profile=p),
        IAE, ["Can not squeeze dim[1], expected a dimension of 1, got 3"]),
    # §5.2 compute_weighted_loss
    "v1-sparse/invalid-reduction": (
        lambda p: v1_sparse(lab(0, 1, 2), z(3, 4), reduction="mean", profile=p), "ValueError",
        [V1_KEYS]),
    "v1-sparse/weights-rank": (
        lambda p: v1_sparse(np.zeros((2, 3), I32), z(2, 3, 4), weights=np.ones(2, F32),
                            profile=p), "ValueError",
        ["weights can not be broadcast to values. values.rank=2. weights.rank=1. "
         "values.shape=(2, 3). weights.shape=(2,)."]),
    "v1-sparse/weights-mismatch-dim0": (
        lambda p: v1_sparse(lab(0, 1, 2), z(3, 4), weights=np.ones(2, F32), profile=p),
        "ValueError",
        ["weights can not be broadcast to values. Mismatch at dim 0. values.shape=[3], "
         "weights.shape=[2]."]),
    # §6.1 Keras 3
    "keras3-scce/reduction-auto": (
        lambda p: SCCE(reduction="auto", keras="keras3")([1, 2], K_PRED, profile=p),
        "ValueError", [K3_RED, "Received: reduction=auto"]),
    "keras3-scce/reduction-weighted_sum": (
        lambda p: SCCE(reduction="weighted_sum", keras="keras3")([1, 2], K_PRED, profile=p),
        "ValueError", [K3_RED, "Received: reduction=weighted_sum"]),
    "keras3-cce/reduction-auto": (
        lambda p: CCE(reduction="auto", keras="keras3")(np.eye(3, dtype=F32)[[1, 2]], K_PRED,
                                                        profile=p),
        "ValueError", [K3_RED, "Received: reduction=auto"]),
    "keras3-scce/axis1-rank3": (
        lambda p: SCCE(axis=1, keras="keras3")(np.zeros((2, 3), I32), z(2, 3, 4) + 0.25,
                                               profile=p),
        "ValueError", ["Only axis=-1 is currently supported. Received: axis=1"]),
    # §6.1 quotes this text for a scalar y_pred; Keras 3.15.1 reaches it when y_true is not
    # scalar too (with both scalar it fails earlier reading target.shape[-1]: IndexError,
    # pinned against real Keras by test_tensorflow_calibration's "y_pred-0d" case)
    "keras3-scce/output-rank0": (
        lambda p: SCCE(keras="keras3")(lab(1, 0), np.float32(0.5), profile=p), "ValueError",
        ["Argument `output` must be at least rank 1. Received: output.shape=()"]),
    "keras3-scce/output-rank": (
        lambda p: SCCE(keras="keras3")(np.zeros((2, 3), I32), z(2, 4) + 0.25, profile=p),
        "ValueError",
        ["Argument `output` must have rank (ndim) `target.ndim - 1`. Received: "
         "target.shape=(2, 3), output.shape=(2, 4)"]),
    "keras3-scce/shape-up-to-last": (
        lambda p: SCCE(keras="keras3")(lab(0, 1, 2), z(2, 4) + 0.25, profile=p), "ValueError",
        ["Arguments `target` and `output` must have the same shape up until the last "
         "dimension: target.shape="]),
    "keras3-scce/sample-weight-B-vs-BxT": (
        lambda p: SCCE(from_logits=True, keras="keras3")(
            np.zeros((2, 3), I32), z(2, 3, 4), sample_weight=np.ones(2, F32), profile=p),
        IAE, ["Incompatible shapes: [2,3] vs. [2] [Op:Mul]"]),
    "keras3-cce/shape": (
        lambda p: CCE(keras="keras3")(z(1, 3), z(1, 4) + 0.25, profile=p), "ValueError",
        ["Arguments `target` and `output` must have the same shape. Received: "
         "target.shape=(1, 3), output.shape=(1, 4)"]),
    # §6.2 tf_keras
    "keras2-scce/reduction-mean": (
        lambda p: SCCE(reduction="mean", keras="keras2")([1, 2], K_PRED, profile=p),
        "ValueError", ["Invalid Reduction Key: mean. " + K2_KEYS]),
    "keras2-scce/reduction-mean_with_sample_weight": (
        lambda p: SCCE(reduction="mean_with_sample_weight", keras="keras2")([1, 2], K_PRED,
                                                                              profile=p),
        "ValueError", ["Invalid Reduction Key: mean_with_sample_weight. " + K2_KEYS]),
    "keras2-cce/reduction-mean": (
        lambda p: CCE(reduction="mean", keras="keras2")(np.eye(3, dtype=F32)[[1, 2]], K_PRED,
                                                        profile=p),
        "ValueError", ["Invalid Reduction Key: mean. " + K2_KEYS]),
    "keras2-scce/no-axis-parameter": (
        lambda p: SCCE(axis=1, keras="keras2")([1, 2], K_PRED, profile=p), "TypeError",
        ["unexpected keyword argument 'axis'"]),
    "keras2-cce/shape": (
        lambda p: CCE(keras="keras2")(z(1, 3), z(1, 4) + 0.25, profile=p), "ValueError",
        ["Shapes (1, 3) and (1, 4) are incompatible"]),
}


def _check_raises(e, error, texts):
    assert e.raises is not None, f"expected {error} {texts[0]!r}, oracle computed {e!r}"
    if error is not None:
        assert e.raises.error == error, (e.raises.error, e.raises.message)
    for t in texts:
        assert t in e.raises.message, f"{t!r} not in oracle message {e.raises.message!r}"


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
@pytest.mark.parametrize("case", list(ERRORS))
def test_error_rows(case, profile):
    call, error, texts = ERRORS[case]
    _check_raises(call(profile), error, texts)


def test_keras3_reduction_message_lists_every_allowed_value():
    """§6.1: the allowed set is {"sum_over_batch_size", "sum", None, "none", "mean",
    "mean_with_sample_weight"} (its order in the message is not stable)."""
    e = SCCE(reduction="auto", keras="keras3")([1, 2], K_PRED)
    msg = e.raises.message
    inside = msg[msg.index("{") + 1: msg.index("}")]
    items = {s.strip() for s in inside.split(",")}
    assert items == {"'sum_over_batch_size'", "'sum'", "None", "'none'", "'mean'",
                     "'mean_with_sample_weight'"}


# ------------------------------------------------------------------------ label range

C4 = z(2, 4)


def _msg(bad, c, labels):
    return (f"Received a label value of {bad} which is outside the valid range of [0, {c}).  "
            f"Label values: {' '.join(str(v) for v in labels)}")


# id -> (call(profile), TF's message, bad-element mask of the loss (None: scalar loss),
#        name of the per-row gradient output, classes C)
LABELS = {
    # §1.1 min/max rule
    "raw/[5,-2]->min-2": (lambda p: raw_sparse(features=C4, labels=lab(5, -2), profile=p),
                         _msg(-2, 4, [5, -2]), [True, True], "backprop", 4),
    "raw/[-2,5]->min-2": (lambda p: raw_sparse(features=C4, labels=lab(-2, 5), profile=p),
                         _msg(-2, 4, [-2, 5]), [True, True], "backprop", 4),
    "raw/[7,9]->max9": (lambda p: raw_sparse(features=C4, labels=lab(7, 9), profile=p),
                       _msg(9, 4, [7, 9]), [True, True], "backprop", 4),
    "raw/[-1,-5]->min-5": (lambda p: raw_sparse(features=C4, labels=lab(-1, -5), profile=p),
                          _msg(-5, 4, [-1, -5]), [True, True], "backprop", 4),
    "raw/[0,4]->C": (lambda p: raw_sparse(features=C4, labels=lab(0, 4), profile=p),
                    _msg(4, 4, [0, 4]), [False, True], "backprop", 4),
    "raw/[3,-1]->-1": (lambda p: raw_sparse(features=C4, labels=lab(3, -1), profile=p),
                      _msg(-1, 4, [3, -1]), [False, True], "backprop", 4),
    "raw/tf-gpu-test[4,3,0,-1]": (
        lambda p: raw_sparse(features=z(4, 4), labels=lab(4, 3, 0, -1), profile=p),
        _msg(-1, 4, [4, 3, 0, -1]), [True, False, False, True], "backprop", 4),
    "raw/int64-max": (
        lambda p: raw_sparse(features=C4, labels=lab(0, np.iinfo(np.int64).max, dtype=np.int64),
                             profile=p),
        _msg(np.iinfo(np.int64).max, 4, [0, np.iinfo(np.int64).max]), [False, True],
        "backprop", 4),
    "raw/int32-min": (
        lambda p: raw_sparse(features=C4, labels=lab(np.iinfo(I32).min, 1), profile=p),
        _msg(np.iinfo(I32).min, 4, [np.iinfo(I32).min, 1]), [True, False], "backprop", 4),
    # §2: tf.nn lists the flattened labels
    "nn/rank2-labels-flattened": (
        lambda p: nn_sparse(np.array([[0, 5], [-2, 1]], I32), z(2, 2, 4), profile=p),
        _msg(-2, 4, [0, 5, -2, 1]), [[False, True], [True, False]], "grad_logits", 4),
    # §5: compat.v1
    "v1/[7,9]-none": (lambda p: v1_sparse(lab(7, 9), C4, reduction="none", profile=p),
                     _msg(9, 4, [7, 9]), [True, True], "grad_logits", 4),
    "v1/[0,9]-sbnz": (lambda p: v1_sparse(lab(0, 9), C4, profile=p),
                     _msg(9, 4, [0, 9]), None, None, 4),
    "v1/Bx1-labels-squeezed": (
        lambda p: v1_sparse(np.array([[7], [1]], I32), C4, reduction="none", profile=p),
        _msg(7, 4, [7, 1]), [True, False], "grad_logits", 4),
    # §6: Keras, TF backend (labels go through the TF op)
    "keras3/from_logits[1,4]": (
        lambda p: SCCE(from_logits=True, reduction="none", keras="keras3")([1, 4], K_PRED,
                                                                            profile=p),
        _msg(4, 3, [1, 4]), [False, True], "grad_logits", 3),
    "keras3/probs[1,4]": (
        lambda p: SCCE(reduction="none", keras="keras3")([1, 4], K_PRED, profile=p),
        _msg(4, 3, [1, 4]), [False, True], "grad_logits", 3),
    "keras2/from_logits[1,4]": (
        lambda p: SCCE(from_logits=True, reduction="none", keras="keras2")([1, 4], K_PRED,
                                                                            profile=p),
        _msg(4, 3, [1, 4]), [False, True], "grad_logits", 3),
    "keras2/probs[-3,1]-default": (
        lambda p: SCCE(keras="keras2")([-3, 1], K_PRED, profile=p),
        _msg(-3, 3, [-3, 1]), None, None, 3),
    # §6.1: Keras 3 replaces ignored labels by 0 *before* the op, so the op (and its message)
    # sees [1, 0, 5]; §6.2: tf_keras boolean-masks the valid entries first, so it sees [1, 5]
    "keras3/ignore_class-1-other-bad[1,-1,5]": (
        lambda p: SCCE(ignore_class=-1, reduction="none", keras="keras3")(
            [1, -1, 5], K_PRED + [[0.2, 0.3, 0.5]], profile=p),
        _msg(5, 3, [1, 0, 5]), [False, False, True], "grad_logits", 3),
    "keras2/ignore_class-1-other-bad[1,-1,5]": (
        lambda p: SCCE(ignore_class=-1, reduction="none", keras="keras2")(
            [1, -1, 5], K_PRED + [[0.2, 0.3, 0.5]], profile=p),
        _msg(5, 3, [1, 5]), [False, False, True], "grad_logits", 3),
}


@pytest.mark.parametrize("case", list(LABELS))
def test_label_range_cpu_raises(case):
    """Table (b) row 1 / §1.1: CPU raises InvalidArgumentError reporting the minimum if any
    label is negative, else the maximum, then the full label list after two spaces."""
    call, msg, _, _, _ = LABELS[case]
    e = call("cpu")
    _check_raises(e, IAE, [msg])


@pytest.mark.parametrize("profile", ["gpu", "xla"])
@pytest.mark.parametrize("case", list(LABELS))
def test_label_range_gpu_xla_nan_rows(case, profile):
    """Table (b) row 1: GPU and XLA do not raise; the bad element's loss is NaN and its whole
    backprop/gradient row is NaN, other rows unaffected (finite)."""
    call, _, bad, grad_name, c = LABELS[case]
    e = call(profile)
    assert e.raises is None, f"{profile} must not raise: {e.raises}"
    loss = np.asarray(e["loss"].rounded, dtype=np.float64)
    if bad is None:
        assert loss.shape == () and math.isnan(float(loss))
        return
    bad = np.asarray(bad, dtype=bool)
    assert loss.shape == bad.shape
    assert np.isnan(loss[bad]).all(), loss
    assert np.isfinite(loss[~bad]).all(), loss
    g = np.asarray(e[grad_name].rounded, dtype=np.float64).reshape(-1, c)
    rows = bad.ravel()
    assert np.isnan(g[rows]).all(), g
    assert np.isfinite(g[~rows]).all(), g


def test_label_list_is_never_truncated():
    """§1.1: the message lists the complete flattened label vector, never truncated (1000
    labels)."""
    labels = [i % 4 for i in range(1000)]
    labels[617] = 4
    e = raw_sparse(features=z(1000, 4), labels=np.array(labels, I32))
    _check_raises(e, IAE, [_msg(4, 4, labels)])


def test_label_range_raw_op_zero_batch_is_fine():
    """§1.1: batch size 0 with ≥ 1 class is fine: loss [0], backprop [0, C]."""
    e = raw_sparse(features=z(0, 4), labels=z(0, dtype=I32))
    assert e.raises is None
    assert e["loss"].shape == (0,) and e["backprop"].shape == (0, 4)


# ------------------------------------------------------------------------ table (b): no error


@pytest.mark.parametrize("keras", ["keras3", "keras2"])
@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_ignore_class_equal_to_bad_label_is_no_error(profile, keras):
    """Table (b): with ignore_class == V, no error, loss 0, excluded from the mean: labels
    [1, 255], ignore_class=255 → the mean over the one valid row = 0.0512934 (§6.3 row 0)."""
    e = SCCE(ignore_class=255, keras=keras)([1, 255], K_PRED, profile=profile)
    assert e.raises is None
    assert abs(float(e["loss"].exact64) - 0.0512934) <= 1e-6 * 0.0512934 + 1e-7


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
@pytest.mark.parametrize("row", [[-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 0.0],
                                 [np.nan, 0.0, 0.0]], ids=["all-neg-inf", "pos-inf", "nan"])
def test_non_finite_rows_nan_on_every_device(row, profile):
    """Table (b): all logits −inf, or any +inf, or NaN in a row → that row NaN (loss and
    backprop), CPU and GPU alike; the other row is unaffected."""
    x = np.array([row, [0.0, 1.0, 2.0]], dtype=F32)
    e = raw_sparse(features=x, labels=lab(1, 2), profile=profile)
    assert e.raises is None
    assert math.isnan(e["loss"].rounded[0]) and np.isnan(e["backprop"].rounded[0]).all()
    assert np.isfinite(e["loss"].rounded[1]) and np.isfinite(e["backprop"].rounded[1]).all()


@pytest.mark.parametrize("profile", ["cpu", "gpu", "xla"])
def test_dense_neg_inf_zero_label_by_profile(profile):
    """Table (b): −inf logit with a 0 soft label → loss NaN, backprop finite on CPU and GPU
    (same Eigen code); XLA gives the finite 1.3132616 (§1.2)."""
    e = raw_dense(features=[[0.0, -np.inf, 1.0]], labels=[[1.0, 0.0, 0.0]], profile=profile)
    assert e.raises is None
    v = float(e["loss"].rounded[0])
    if profile == "xla":
        assert abs(v - 1.3132616) <= 1e-6 * 1.3132616
    else:
        assert math.isnan(v)
    assert np.isfinite(e["backprop"].rounded).all()


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
@pytest.mark.parametrize("reduction", ["weighted_sum_over_batch_size", "weighted_mean",
                                       "weighted_sum_by_nonzero_weights"])
def test_compat_v1_zero_denominator_returns_zero(reduction, profile):
    """Table (b): compat.v1 zero denominator → 0 (div_no_nan)."""
    e = v1_sparse(lab(0, 1, 2), z(3, 4), weights=np.zeros(3, F32), reduction=reduction,
                  profile=profile)
    assert e.raises is None
    assert float(e["loss"].exact64) == 0.0


@pytest.mark.parametrize("case", ["labels[1,C]", "labels[C]", "labels[B,1]", "features[1,C]"])
def test_raw_dense_accepted_broadcasts(case):
    """§1.2: labels [1,C], [C] (rank 1) or [B,1] with features [B,C], and features [1,C] with
    labels [B,C] are accepted; outputs loss [B], backprop [B,C]."""
    b, c = 3, 4
    f, y = {"labels[1,C]": (z(b, c), z(1, c)), "labels[C]": (z(b, c), z(c)),
            "labels[B,1]": (z(b, c), z(b, 1)), "features[1,C]": (z(1, c), z(b, c))}[case]
    e = raw_dense(features=f, labels=y)
    assert e.raises is None
    assert e["loss"].shape == (b,) and e["backprop"].shape == (b, c)


def test_raw_dense_zero_classes_and_zero_batch():
    """§1.2: zero classes ([B,0]) → loss [0,…,0], no error; zero batch OK."""
    e = raw_dense(features=z(3, 0), labels=z(3, 0))
    assert e.raises is None and e["loss"].shape == (3,)
    assert np.all(e["loss"].exact64 == 0.0)
    e = raw_dense(features=z(0, 4), labels=z(0, 4))
    assert e.raises is None and e["loss"].shape == (0,)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_nn_dense_valid_axes(axis):
    """§3 step 2: positive axes (0, 1, …) and −1 work."""
    e = nn_dense(z(3, 4), z(3, 4), axis=axis)
    assert e.raises is None
    assert e["loss"].shape == ((4,) if axis == 0 else (3,))


def test_compat_v1_sparse_Bx1_labels_work():
    """§5.1: [B,1] labels are squeezed and work."""
    e = v1_sparse(np.array([[0], [1], [2]], I32), z(3, 4), reduction="none")
    assert e.raises is None and e["loss"].shape == (3,)


def test_tf_keras_sample_weight_B_on_BxT_loss_is_expanded():
    """Table (b) / §6.2: tf_keras expands [B] weights on a [B,T] loss (Keras 3 raises):
    sum_over_batch_size = Σ_b Σ_t w_b l_bt / (B·T), here with from_logits and zero logits, so
    every l_bt = log C."""
    w = np.array([1.0, 3.0], F32)
    e = SCCE(from_logits=True, keras="keras2")(np.zeros((2, 3), I32), z(2, 3, 4),
                                               sample_weight=w)
    assert e.raises is None
    expected = (1.0 * 3 + 3.0 * 3) * math.log(4.0) / 6
    assert float(e["loss"].exact64) == pytest.approx(expected, rel=1e-12)


def test_keras3_sample_weight_Bx1_on_BxT_loss_broadcasts():
    """§6.1 step 4: [B,1] sample weights work on a [B,T] loss by ordinary broadcasting."""
    w = np.array([[1.0], [3.0]], F32)
    e = SCCE(from_logits=True, keras="keras3")(np.zeros((2, 3), I32), z(2, 3, 4),
                                               sample_weight=w)
    assert e.raises is None
    expected = (1.0 * 3 + 3.0 * 3) * math.log(4.0) / 6
    assert float(e["loss"].exact64) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype,label,c,used", [("bfloat16", 257, 258, 256),
                                                ("float16", 2049, 2050, 2048)],
                         ids=["bfloat16-257->256", "float16-2049->2048"])
def test_keras3_label_beyond_exact_integer_range_silently_wrong_class(dtype, label, c, used):
    """Table (b) / §6.1 step 1: Keras 3 converts labels to the loss dtype, so labels beyond
    its exact-integer range (256 bf16, 2048 f16) silently pick the rounded class (ties to
    even: 257 → 256, 2049 → 2048). Logits: zeros except 2 at the rounded class."""
    x = np.zeros((1, c), F32)
    x[0, used] = 2.0
    e = SCCE(from_logits=True, reduction="none", dtype=dtype, keras="keras3")([label], x)
    assert e.raises is None
    lse = math.log((c - 1) + math.exp(2.0))
    assert float(e["loss"].exact64[0]) == pytest.approx(lse - 2.0, rel=1e-12)


# ------------------------------------------------------------------------ OracleInputError

ORACLE_INPUT_ERRORS = {
    "object-array-logits": (
        lambda: nn_sparse(lab(0), np.array([[object(), 1.0]], dtype=object)), "logits"),
    "object-array-features": (
        lambda: raw_sparse(features=np.array([[object(), 1.0]], dtype=object), labels=lab(0)),
        "features"),
    "string-weights": (lambda: v1_sparse(lab(0, 1), C4, weights="heavy"), "weights"),
    "unknown-api-id": (lambda: oracle_call("tf.nn.not_an_api", {"labels": [0]}), "api"),
    "v1-reduction-not-a-string": (lambda: v1_sparse(lab(0, 1), C4, reduction=3), "reduction"),
    "keras-reduction-not-a-string": (
        lambda: SCCE(reduction=3, keras="keras3")([1, 2], K_PRED), "reduction"),
    "unknown-profile": (lambda: nn_sparse(lab(0, 1), C4, profile="tpu"), "profile"),
    "unknown-keras-variant": (lambda: SCCE(keras="keras4"), "keras"),
    "label_smoothing-string": (
        lambda: v1_dense(C4, C4, label_smoothing="0.1"), "label_smoothing"),
    "init-for-non-keras-api": (
        lambda: oracle_call("tf.nn.sparse_softmax_cross_entropy_with_logits",
                            {"labels": [0], "logits": [[1.0, 2.0]]}, init={"from_logits": True}),
        "init"),
}


@pytest.mark.parametrize("case", list(ORACLE_INPUT_ERRORS))
def test_oracle_input_errors_name_the_argument(case):
    """Bad input to the oracle itself is not a TensorFlow error case: OracleInputError,
    whose message names the offending argument."""
    call, arg = ORACLE_INPUT_ERRORS[case]
    with pytest.raises(OracleInputError) as info:
        call()
    assert arg in str(info.value), str(info.value)


def test_oracle_input_error_is_not_an_expectation_for_bfloat16():
    """Sanity: ml_dtypes.bfloat16 arrays are numeric input, not an oracle input error."""
    x = np.zeros((1, 3), dtype=ml_dtypes.bfloat16)
    e = raw_sparse(features=x, labels=lab(0))
    assert e.raises is None and e["loss"].dtype == np.dtype(ml_dtypes.bfloat16)


@pytest.mark.parametrize("dtype,values,truncated", [
    (np.uint8, [1, 3, 0], [1, 3, 0]),
    (np.float32, [1.7, 3.9, -0.5], [1, 3, 0]),
    (np.bool_, [True, False, True], [1, 0, 1]),
])
def test_raw_sparse_numpy_labels_are_cast(dtype, values, truncated):
    """Eager TF 2.21 casts numpy labels of any numeric dtype to int64, truncating toward
    zero (observed on tensorflow-cpu 2.21: float32 [1.7, 3.9, -0.5] gives the losses of
    labels [1, 3, 0]); the canonical logits make the three rows distinguishable."""
    x = np.array([[2, -5, .5, -.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]], dtype=F32)
    got = raw_sparse(features=x, labels=np.array(values, dtype=dtype))
    want = raw_sparse(features=x, labels=np.array(truncated, dtype=np.int64))
    assert got.raises is None
    assert got["loss"].exact_strings(30) == want["loss"].exact_strings(30)

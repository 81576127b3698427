"""TensorFlow's mechanisms (oracle.mechanisms): which elements each affects and which
values it allows, on cases whose TensorFlow behaviour TF-SEMANTICS.md records."""

from __future__ import annotations

import numpy as np
import pytest

from xentconf.oracle import oracle_call
from xentconf.oracle.mechanisms import MECHANISMS

RAW_S, RAW_D = "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits", \
    "tf.raw_ops.SoftmaxCrossEntropyWithLogits"
V1 = "tf.compat.v1.losses.sparse_softmax_cross_entropy"


def allowed(exp, name, got) -> dict[str, np.ndarray]:
    """mechanism -> per-element bool: ``got`` is allowed there (stable budget as slack)."""
    o = exp.outputs[name]
    x = o.exact64.ravel()
    out = {}
    for a in exp.mechanisms((name,))[name]:
        out[a.mechanism] = a.allows(np.asarray(got, np.float64).ravel(), x,
                                    o.budgets["stable"].ravel())
    return out


def test_every_mechanism_is_named_once():
    assert len(set(MECHANISMS)) == len(MECHANISMS) == 8


def test_flushed_softmax_element_allows_zero_there_only():
    # backprop[0, 1] = e^-88.5 / (1 + e^-88.5) = 3.67e-39, a float32 subnormal (§0)
    x = np.array([[0, -88.5]], np.float32)
    exp = oracle_call(RAW_S, {"features": x, "labels": np.array([0])})
    a = allowed(exp, "backprop", [-1.0, 0.0])
    assert a["flush-denormals"].tolist() == [False, True]
    a = allowed(exp, "backprop", [-3.67e-39, 1e-30])
    assert not a["flush-denormals"][1]  # a normal-sized error is no flush


def test_flush_is_a_cpu_and_xla_mechanism_only():
    x = np.array([[0, -88.5]], np.float32)
    for profile, has in (("cpu", True), ("xla", True), ("gpu", False)):
        exp = oracle_call(RAW_S, {"features": x, "labels": np.array([0])}, profile=profile)
        names = {a.mechanism for a in exp.mechanisms()["backprop"]}
        assert ("flush-denormals" in names) is has, profile


def test_compat_v1_float64_allows_float32_rounding_not_a_thousandth():
    x = np.array([[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]])
    exp = oracle_call(V1, {"labels": np.array([0, 3, 1]), "logits": x})
    truth = float(exp["loss"].exact64)
    as_f32 = float(np.float32(truth))  # §5.2: TF returns float32's 0.48078000545501709
    assert as_f32 != truth
    assert allowed(exp, "loss", [as_f32])["compat-v1-float32"].all()
    assert not allowed(exp, "loss", [truth * (1 + 1e-3)])["compat-v1-float32"].any()


def test_compat_v1_float32_is_not_a_mechanism_of_float32_calls():
    x = np.array([[2, -5, 0.5, -0.1]], np.float32)
    exp = oracle_call(V1, {"labels": np.array([0]), "logits": x})
    assert "compat-v1-float32" not in {a.mechanism for a in exp.mechanisms()["loss"]}


@pytest.mark.parametrize("profile, labels, want", [
    ("cpu", [[0.5, 0.5]], np.inf),     # a positive label times the overflowed shift: +inf
    ("cpu", [[1.0, 0.0]], np.nan),     # a zero label times it: NaN (0·inf, §1.2)
    ("xla", [[1.0, 0.0]], None),       # XLA adds 0 for a zero label: nothing to allow
])
def test_dense_shift_overflow(profile, labels, want):
    x = np.array([[3e38, -3e38]], np.float32)
    exp = oracle_call(RAW_D, {"features": x, "labels": np.array(labels, np.float32)},
                      profile=profile)
    mech = [a for a in exp.mechanisms()["loss"] if a.mechanism == "dense-shift-overflow"]
    if want is None:
        assert not mech
        return
    a = allowed(exp, "loss", [want])["dense-shift-overflow"]
    assert a.all()
    assert not allowed(exp, "loss", [-np.inf])["dense-shift-overflow"].any()


def test_held_loss_above_float32_max_makes_compat_v1_float64_inf():
    # loss 6e38 is finite in float64; compat.v1 casts it to float32: inf (§5.2 step 3)
    exp = oracle_call(V1, {"labels": np.array([1]), "logits": np.array([[3e38, -3e38]])})
    assert np.isfinite(exp["loss"].exact64)
    assert allowed(exp, "loss", [np.inf])["held-loss-overflow"].all()
    assert not allowed(exp, "loss", [-np.inf])["held-loss-overflow"].any()


def test_sum_then_divide_overflows_where_the_mean_is_finite():
    # two float32 losses of 2e38: their mean is 2e38, their sum is past float32's max
    x = np.array([[2e38, 0], [2e38, 0]], np.float32)
    exp = keras_sum_over_batch(x)
    assert np.isfinite(exp["loss"].exact64) and exp["loss"].exact64 > 1e38
    a = allowed(exp, "loss", [np.inf])
    assert a["sum-overflow"].all()
    assert not allowed(exp, "loss", [np.nan]).get("sum-overflow", np.array([False])).any()


def keras_sum_over_batch(x):
    from xentconf.oracle import tf
    cls = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return cls(np.array([1, 1]), x)


def test_native_half_only_where_tensorflow_evaluates_in_half():
    x = np.array([[6.25, 0], [3, 0]], np.float16)
    raw = oracle_call(RAW_S, {"features": x, "labels": np.array([0, 0])})
    nn = oracle_call("tf.nn.sparse_softmax_cross_entropy_with_logits",
                     {"labels": np.array([0, 0]), "logits": x})
    assert "native-half" in {a.mechanism for a in raw.mechanisms()["loss"]}
    # tf.nn upcasts float16 to float32 (§2): no native half there
    assert "native-half" not in {a.mechanism for a in nn.mechanisms()["loss"]}


def test_a_raising_call_has_no_mechanisms():
    exp = oracle_call(RAW_S, {"features": np.zeros((1, 2), np.float32),
                              "labels": np.array([5])})
    assert exp.raises is not None and exp.mechanisms() == {}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int16])
def test_raw_sparse_numpy_labels_of_another_dtype_carry_the_contract(dtype):
    exp = oracle_call(RAW_S, {"features": np.array([[1.0, 2.0, 3.0]], np.float32),
                              "labels": np.array([1.7], dtype) if dtype in (
                                  np.float32, np.float64) else np.array([1], dtype)})
    assert exp.raises is None and exp.contract is not None
    assert "Tlabels" in exp.contract.message


def test_int_labels_and_other_apis_carry_no_contract():
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    assert oracle_call(RAW_S, {"features": x, "labels": np.array([1])}).contract is None
    nn = oracle_call("tf.nn.sparse_softmax_cross_entropy_with_logits",
                     {"labels": np.array([1.0], np.float32), "logits": x})
    assert nn.raises is not None  # tf.nn raises for float labels (TF-SEMANTICS §1.1)


def test_xla_nan_rows_where_the_eager_cpu_kernel_raises():
    # TF-SEMANTICS §1.1: XLA on the CPU does not check labels: NaN in exactly the bad rows
    from xentconf.oracle.mechanisms import xla_nan_rows

    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]], np.float32)
    exp = oracle_call(RAW_S, {"features": x, "labels": np.array([0, 5])})
    assert exp.raises is not None
    alt = xla_nan_rows(exp)
    loss = alt["loss"].rounded64
    assert np.isfinite(loss[0]) and np.isnan(loss[1])
    assert np.isnan(alt["backprop"].rounded64[1]).all()
    assert np.isfinite(alt["backprop"].rounded64[0]).all()
    # a call that raises for another reason has no XLA alternative
    bad_rank = oracle_call(RAW_S, {"features": x[0], "labels": np.array([0])})
    assert bad_rank.raises is not None and xla_nan_rows(bad_rank) is None


def test_the_oracle_command_reports_the_contract():
    import json

    from xentconf.oracle.case import run_case

    case = {"api": RAW_S, "args": {"features": {"dtype": "float32", "data": [[1, 2, 3]]},
                                   "labels": {"dtype": "float32", "data": [1.7]}}}
    answer = run_case(json.dumps(case))
    assert "outputs" in answer and "Tlabels" in answer["contract"]["message"]
    case["args"]["labels"] = {"dtype": "int32", "data": [1]}
    assert "contract" not in run_case(json.dumps(case))

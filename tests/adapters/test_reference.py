"""The reference target (the oracle as a target) conforms, and raises where TF raises."""

from __future__ import annotations

import numpy as np
import pytest
from tests.adapters.conftest import expect_raises, expectation, judge

from xentconf.adapters.reference import ReferenceTarget, TensorFlowError
from xentconf.protocol import (
    API_IDS,
    DTYPES,
    FEATURES,
    KERAS_APIS,
    PROFILES,
    RAW_OPS,
    Call,
    Setup,
    TargetError,
)

# TF's docstring example (TF-SEMANTICS.md): per-row loss [0.29750752, 1.1448325, 0.0]
X = np.array([[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]], np.float32)
Y = np.array([0, 3, 1])
ONEHOT = np.eye(4, dtype=np.float32)[Y]
PROBS = np.array([[0.05, 0.95, 0, 0], [0.1, 0.8, 0.05, 0.05], [0.25, 0.25, 0.25, 0.25]],
                 np.float32)

RAW_SPARSE, RAW_DENSE, NN_SPARSE, NN_DENSE, V1_SPARSE, V1_DENSE, K_SPARSE, K_DENSE = API_IDS


def canonical(api: str, x=X, labels=Y) -> list[Call]:
    """Calls of ``api`` on the canonical example (Keras: from logits and from probabilities)."""
    onehot = np.eye(x.shape[-1], dtype=x.dtype)[np.asarray(labels) % x.shape[-1]]
    if api == RAW_SPARSE:
        return [Call(api, {"features": x, "labels": labels})]
    if api == RAW_DENSE:
        return [Call(api, {"features": x, "labels": onehot})]
    if api == NN_SPARSE:
        return [Call(api, {"labels": labels, "logits": x})]
    if api == NN_DENSE:
        return [Call(api, {"labels": onehot, "logits": x})]
    if api == V1_SPARSE:
        return [Call(api, {"labels": labels, "logits": x, "weights": np.array([0.5, 0, 2],
                                                                             x.dtype)})]
    if api == V1_DENSE:
        return [Call(api, {"onehot_labels": onehot, "logits": x, "label_smoothing": 0.1,
                           "reduction": "none"})]
    y_true = labels if api == K_SPARSE else onehot
    return [Call(api, {"y_true": y_true, "y_pred": x}, init={"from_logits": True}),
            Call(api, {"y_true": y_true, "y_pred": PROBS.astype(x.dtype),
                       "sample_weight": np.array([0.3, 0.7, 1.0], x.dtype)},
                 init={"reduction": "sum"})]


def test_info():
    info = ReferenceTarget().info()
    assert info.available and info.name == "reference"
    assert [(m.device, m.profile) for m in info.modes] == [("cpu", p) for p in PROFILES]
    assert set(info.apis) == set(API_IDS)
    for support in info.apis.values():
        assert support.native == frozenset(FEATURES) and support.dtypes == DTYPES
    assert info.keras == "keras2"
    assert ReferenceTarget(keras="keras3").info().keras == "keras3"
    with pytest.raises(TargetError, match="keras2, keras3"):
        ReferenceTarget(keras="keras4")


def test_prepare_checks_the_setup():
    target = ReferenceTarget()
    with pytest.raises(TargetError, match="unknown API id"):
        target.prepare(Setup("tf.nn.nope"))
    with pytest.raises(TargetError, match="cuda/gpu"):
        target.prepare(Setup(NN_SPARSE, device="cuda", profile="gpu"))


@pytest.mark.parametrize("api", API_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_canonical_example_conforms(api, dtype):
    runner = ReferenceTarget().prepare(Setup(api))
    for call in canonical(api, X.astype(dtype)):
        out = runner.run(call)
        assert set(out) == ({"loss", "backprop"} if api in RAW_OPS else {"loss"})
        judge(out, call, grade="faithful")
        for name, got in out.items():  # the correctly rounded truth, bit for bit
            np.testing.assert_array_equal(got, expectation(call)[name].rounded)


@pytest.mark.parametrize("api", API_IDS)
def test_gradients(api):
    runner = ReferenceTarget().prepare(Setup(api, grad=True))
    for call in canonical(api):
        shape = expectation(call)["loss"].shape
        up = np.linspace(-1, 2, int(np.prod(shape))).reshape(shape).astype(np.float32)
        call = Call(call.api, call.args, call.init, upstream=up)
        out = runner.run(call)
        assert "grad_logits" in out
        judge(out, call, grade="faithful")


def test_canonical_numbers():
    out = ReferenceTarget().prepare(Setup(NN_SPARSE)).run(canonical(NN_SPARSE)[0])
    # TF's own float32 numbers are within an ulp of the correctly rounded truth
    np.testing.assert_allclose(out["loss"], [0.29750752, 1.1448325, 0.0], rtol=2e-7)


@pytest.mark.parametrize("api", [a for a in API_IDS if a not in (RAW_DENSE, NN_DENSE, V1_DENSE,
                                                                  K_DENSE)])
def test_bad_labels_raise_on_cpu_and_give_nan_rows_on_gpu(api):
    bad = np.array([0, 4, 1])
    cpu = ReferenceTarget().prepare(Setup(api))
    for call in canonical(api, labels=bad)[:1]:
        expect_raises(cpu, call)
        with pytest.raises(TensorFlowError) as info:
            cpu.run(call)
        assert type(info.value).__name__ == "InvalidArgumentError"
        assert info.value.error == "InvalidArgumentError"
        assert "outside the valid range of [0, 4)" in info.value.message
        for profile in ("gpu", "xla"):
            runner = ReferenceTarget().prepare(Setup(api, profile=profile))
            out = runner.run(call)
            judge(out, call, profile=profile, grade="faithful")
            if api in (RAW_SPARSE, NN_SPARSE):
                assert np.isnan(out["loss"][1]) and not np.isnan(out["loss"][[0, 2]]).any()


def test_value_errors_are_value_errors():
    runner = ReferenceTarget().prepare(Setup(NN_SPARSE))
    call = Call(NN_SPARSE, {"labels": np.array([[0], [3], [1]]), "logits": X})
    expect_raises(runner, call)
    with pytest.raises(ValueError, match="labels.shape.rank"):  # TF's ValueError is one
        runner.run(call)
    runner = ReferenceTarget().prepare(Setup(V1_SPARSE))
    with pytest.raises(TensorFlowError, match="Invalid Reduction Key"):
        runner.run(Call(V1_SPARSE, {"labels": Y, "logits": X, "reduction": "mean"}))


def test_keras_variants_and_setup_init():
    call = Call(K_SPARSE, {"y_true": Y, "y_pred": PROBS})
    keras2 = ReferenceTarget().prepare(Setup(K_SPARSE, init=(("reduction", "auto"),)))
    judge(keras2.run(call), call)  # init taken from the Setup when the call has none
    keras3 = ReferenceTarget(keras="keras3").prepare(Setup(K_SPARSE))
    judge(keras3.run(call), call, keras="keras3")
    with pytest.raises(TensorFlowError, match="reduction"):  # "auto" is not a Keras 3 value
        keras3.run(Call(K_SPARSE, call.args, init={"reduction": "auto"}))
    assert set(KERAS_APIS) == {K_SPARSE, K_DENSE}


def test_runner_refuses_another_api():
    runner = ReferenceTarget().prepare(Setup(NN_SPARSE))
    with pytest.raises(TargetError, match="prepared for"):
        runner.run(canonical(NN_DENSE)[0])

"""The PyTorch adapter against the oracle, on the real torch (skipped without it).

Random well-conditioned inputs for every supported API, dtype, reduction and kind of
weights must conform at the ``stable`` grade, gradients included. Where torch does
something other than TensorFlow (a ``-100`` label, uint8 labels, rank-1 raw ops,
``axis=-2``, ``label_smoothing > 1``, the gradient for unnormalised soft labels, float16
reductions that overflow) the test records torch's observed behaviour next to the
oracle's answer: those are findings for the report, not things the adapter patches.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from tests.adapters.conftest import check_snippets, expect_raises, expectation, judge, require

from xentconf.adapters.torch import INSTALL_HINT, TorchTarget
from xentconf.protocol import API_IDS, FEATURES, KERAS_APIS, Call, Setup, TargetError

torch = require("torch", "torch")

RAW_SPARSE, RAW_DENSE, NN_SPARSE, NN_DENSE, V1_SPARSE, V1_DENSE = API_IDS[:6]
SUPPORTED = API_IDS[:6]
REDUCTIONS = ("none", "weighted_sum", "weighted_sum_over_batch_size", "weighted_mean",
              "weighted_sum_by_nonzero_weights")
DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32,
          "float64": np.float64}
CUDA = bool(torch.cuda.is_available())

TARGET = TorchTarget()


@pytest.fixture(scope="module")
def runners():
    cache: dict[tuple, object] = {}

    def get(api: str, device: str = "cpu"):
        key = (api, device)
        if key not in cache:
            profile = "cpu" if device == "cpu" else "gpu"
            cache[key] = TARGET.prepare(Setup(api, device=device, profile=profile))
        return cache[key]

    return get


# --------------------------------------------------------------------------- inputs


def seed_of(*parts) -> int:
    return sum((i + 1) * ord(ch) for i, ch in enumerate("/".join(map(str, parts))))


def logits(rng, shape, dtype):
    return (rng.standard_normal(shape) * 3).astype(dtype)


def soft_labels(rng, shape, dtype, axis=-1):
    """Rows of multiples of 1/64 summing to exactly 1 along ``axis`` in every dtype: the
    dense gradients of TF and torch agree only for normalised labels (see
    ``test_dense_grad_unnormalised_labels``)."""
    shape = tuple(shape)
    moved = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:] + (shape[axis],)
    c = shape[axis]
    counts = rng.multinomial(64 - c, [1 / c] * c, size=moved[:-1]) + 1
    return np.moveaxis(counts / 64, -1, axis % len(shape)).astype(dtype)


def int_labels(rng, shape, classes, seed):
    return rng.integers(0, classes, shape).astype(np.int64 if seed % 2 else np.int32)


def upstream(rng, shape, dtype):
    return (rng.standard_normal(shape) + 0.5).astype(dtype)


def weights(kind: str, rng, shape, dtype):
    """compat.v1 weights of the given kind for a loss of ``shape``."""
    if kind == "python":
        return 2.5
    if kind == "python_zero":
        return 0.0
    if kind == "scalar":
        return np.asarray(0.75, dtype)
    if kind == "per_sample":
        w = rng.random(shape).astype(dtype)
        w.flat[0] = 0  # one zero weight: the non-zero count differs from the size
        return w
    if kind == "zeros":
        return np.zeros(shape, dtype)
    if kind == "negative":
        return (rng.random(shape) - 0.5).astype(dtype)
    if kind == "column":  # [B, 1]: squeezed by the sparse API (labels [B])
        return rng.random((*shape, 1)).astype(dtype)
    raise AssertionError(kind)


def reduced_shape(reduction, shape):
    return shape if reduction == "none" else ()


def run_judged(runners, call, device="cpu"):
    out = runners(call.api, device).run(call)
    judge(out, call, profile="cpu" if device == "cpu" else "gpu")
    return out


def worst_ratio(outputs, call) -> float:
    """The largest error / stable budget over the finite outputs (0 for exact)."""
    exp = expectation(call)
    worst = 0.0
    for name, o in exp.outputs.items():
        if name not in outputs:
            continue
        got = np.asarray(outputs[name]).astype(np.float64)
        err = np.abs(got - o.exact64)
        bud = o.budgets["stable"]
        fin = np.isfinite(o.exact64)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(err[fin] == 0, 0.0, err[fin] / bud[fin])
        worst = max(worst, float(r.max()) if r.size else 0.0)
    return worst


def make_call(api, dtype, rng, seed, *, b=3, c=5, reduction=None, wkind=None, grad=True):
    dt = DTYPES[dtype]
    z = logits(rng, (b, c), dt)
    if api in (RAW_SPARSE, NN_SPARSE, V1_SPARSE):
        y = int_labels(rng, (b,), c, seed)
    else:
        y = soft_labels(rng, (b, c), dt)
    if api == RAW_SPARSE or api == RAW_DENSE:
        args = {"features": z, "labels": y}
    elif api == NN_SPARSE or api == NN_DENSE:
        args = {"labels": y, "logits": z}
    else:
        w = weights(wkind, rng, (b,), dt)
        args = {"labels" if api == V1_SPARSE else "onehot_labels": y, "logits": z,
                "weights": w, "reduction": reduction}
        if api == V1_DENSE:
            args["label_smoothing"] = 0.1 if seed % 2 else 0
    shape = reduced_shape(reduction, (b,)) if reduction else (b,)
    return Call(api, args, upstream=upstream(rng, shape, dt) if grad else None)


# --------------------------------------------------------------------------- info/prepare


def test_module_import_does_not_import_torch():
    code = ("import sys, xentconf.adapters.torch as t; t.TorchTarget(); "
            "assert 'torch' not in sys.modules, 'torch imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_info():
    info = TARGET.info()
    assert info.name == "torch" and info.available and info.reason == ""
    assert info.version == torch.__version__
    assert info.keras is None
    assert [(m.device, m.profile, m.name) for m in info.modes] == [
        ("cpu", "cpu", "eager"), ("cpu", "cpu", "compile"),
        ("cuda", "gpu", "eager"), ("cuda", "gpu", "compile")]
    assert info.modes[0].available and info.modes[1].available
    assert info.modes[2].available == info.modes[3].available == CUDA
    assert set(info.apis) == set(API_IDS)
    for api, sup in info.apis.items():
        every = sup.native | sup.composed | sup.unsupported
        assert every <= set(FEATURES), api
        assert not (sup.native & sup.composed) and not (sup.native & sup.unsupported)
        assert not (sup.composed & sup.unsupported)
        if api in KERAS_APIS:
            assert not sup.native and not sup.composed and sup.dtypes == ()
        else:
            assert sup.dtypes == tuple(DTYPES) and "grad" in sup.native
    assert "backprop" in info.apis[RAW_SPARSE].composed
    assert "backprop" in info.apis[RAW_DENSE].composed
    assert {"weights", "reduction"} <= info.apis[V1_SPARSE].composed
    assert {"weights", "reduction"} <= info.apis[V1_DENSE].composed
    assert "label_smoothing" in info.apis[V1_DENSE].native
    assert "axis" in info.apis[NN_DENSE].composed


def test_info_without_torch(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    info = TorchTarget().info()
    assert not info.available
    assert info.reason == INSTALL_HINT == "torch is not installed (pip install torch==2.13.0)"
    assert info.name == "torch" and info.keras is None


@pytest.mark.skipif(CUDA, reason="torch sees a CUDA device")
def test_cuda_mode_unavailable_without_cuda():
    cuda = TARGET.info().modes[2]
    assert not cuda.available and "torch.cuda.is_available() is False" in cuda.reason
    with pytest.raises(TargetError, match="cuda mode is unavailable"):
        TARGET.prepare(Setup(NN_SPARSE, device="cuda", profile="gpu"))


def test_prepare_rejects_impossible_setups():
    with pytest.raises(TargetError, match="unknown API"):
        TARGET.prepare(Setup("tf.nn.nope"))
    for api in KERAS_APIS:
        with pytest.raises(TargetError, match="no Keras losses"):
            TARGET.prepare(Setup(api))
    with pytest.raises(TargetError, match="no torch mode"):
        TARGET.prepare(Setup(NN_SPARSE, device="cpu", profile="xla"))
    with pytest.raises(TargetError, match="no torch mode"):
        TARGET.prepare(Setup(NN_SPARSE, device="cpu", profile="cpu", mode="xla"))
    runner = TARGET.prepare(Setup(NN_SPARSE))
    with pytest.raises(TargetError, match="prepared for"):
        runner.run(Call(NN_DENSE, {"labels": np.ones((1, 2)), "logits": np.ones((1, 2))}))


# --------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("api", [RAW_SPARSE, RAW_DENSE, NN_SPARSE, NN_DENSE])
def test_unreduced_apis_conform(runners, api, dtype):
    seed = seed_of(api, dtype)
    rng = np.random.default_rng(seed)
    for i in range(2):
        out = run_judged(runners, make_call(api, dtype, rng, seed + i, b=4 - i, c=3 + 2 * i))
        assert "grad_logits" in out and ("backprop" in out) == (api in (RAW_SPARSE, RAW_DENSE))


@pytest.mark.parametrize("wkind", ["python", "python_zero", "scalar", "per_sample", "zeros",
                                   "negative"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("api", [V1_SPARSE, V1_DENSE])
def test_v1_losses_conform(runners, api, dtype, reduction, wkind):
    seed = seed_of(api, dtype, reduction, wkind)
    rng = np.random.default_rng(seed)
    call = make_call(api, dtype, rng, seed, b=4, c=3, reduction=reduction, wkind=wkind)
    out = run_judged(runners, call)
    assert out["loss"].shape == reduced_shape(reduction, (4,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_v1_sparse_squeezes_column_labels_and_weights(runners, reduction):
    rng = np.random.default_rng(seed_of("squeeze", reduction))
    y = int_labels(rng, (4, 1), 3, 1)
    for w in (1.0, weights("column", rng, (4,), np.float32)):
        call = Call(V1_SPARSE, {"labels": y, "logits": logits(rng, (4, 3), np.float32),
                                "weights": w, "reduction": reduction},
                    upstream=upstream(rng, reduced_shape(reduction, (4,)), np.float32))
        run_judged(runners, call)


@pytest.mark.parametrize("eps", [-0.1, 0, 0.2, 1.0])
def test_v1_dense_label_smoothing(runners, eps):
    rng = np.random.default_rng(seed_of("eps", eps))
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 3)]
    call = Call(V1_DENSE, {"onehot_labels": y, "logits": logits(rng, (3, 4), np.float32),
                           "label_smoothing": eps, "reduction": "none"},
                upstream=upstream(rng, (3,), np.float32))
    run_judged(runners, call)


def test_v1_documented_example(runners):
    call = Call(V1_DENSE, {"onehot_labels": np.array([[0, 1, 0], [0, 0, 1]], np.float32),
                           "logits": np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], np.float32),
                           "weights": np.array([0.3, 0.7], np.float32),
                           "label_smoothing": 0.2},
                upstream=np.array(1.0, np.float32))
    out = run_judged(runners, call)
    assert float(out["loss"]) == pytest.approx(0.5761805, rel=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_v1_rank3_broadcast_weights(runners, dtype):
    dt = DTYPES[dtype]
    rng = np.random.default_rng(seed_of("rank3w", dtype))
    for reduction in REDUCTIONS:
        call = Call(V1_SPARSE, {"labels": int_labels(rng, (2, 3), 4, 0),
                                "logits": logits(rng, (2, 3, 4), dt),
                                "weights": np.array([[1.5], [0]], dt), "reduction": reduction},
                    upstream=upstream(rng, reduced_shape(reduction, (2, 3)), dt))
        run_judged(runners, call)


def test_v1_empty_batch_reduces_to_zero(runners):
    for api, y in ((V1_SPARSE, np.zeros(0, np.int32)), (V1_DENSE, np.zeros((0, 3), np.float32))):
        for reduction in REDUCTIONS[1:]:
            key = "labels" if api == V1_SPARSE else "onehot_labels"
            call = Call(api, {key: y, "logits": np.zeros((0, 3), np.float32),
                              "reduction": reduction}, upstream=np.array(1.0, np.float32))
            out = run_judged(runners, call)
            assert float(out["loss"]) == 0.0 and out["grad_logits"].shape == (0, 3)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_rank1_and_rank3_shapes(runners, dtype):
    dt = DTYPES[dtype]
    rng = np.random.default_rng(seed_of("ranks", dtype))
    # rank 1: torch's unbatched form, scalar label -> scalar loss
    call = Call(NN_SPARSE, {"labels": np.array(2, np.int32), "logits": logits(rng, (5,), dt)},
                upstream=np.asarray(1.5, dt))
    assert run_judged(runners, call)["loss"].shape == ()
    call = Call(NN_DENSE, {"labels": soft_labels(rng, (5,), dt),
                           "logits": logits(rng, (5,), dt)}, upstream=np.asarray(0.5, dt))
    assert run_judged(runners, call)["loss"].shape == ()
    # rank 3 and 4: classes moved from last to dim 1 and back
    for shape in ((2, 3, 4), (2, 1, 3, 4)):
        call = Call(NN_SPARSE, {"labels": int_labels(rng, shape[:-1], 4, 1),
                                "logits": logits(rng, shape, dt)},
                    upstream=upstream(rng, shape[:-1], dt))
        out = run_judged(runners, call)
        assert out["loss"].shape == shape[:-1] and out["grad_logits"].shape == shape
        call = Call(NN_DENSE, {"labels": soft_labels(rng, shape, dt),
                               "logits": logits(rng, shape, dt)},
                    upstream=upstream(rng, shape[:-1], dt))
        out = run_judged(runners, call)
        assert out["loss"].shape == shape[:-1] and out["grad_logits"].shape == shape


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_dense_axis(runners, axis):
    rng = np.random.default_rng(seed_of("axis", axis))
    shape = (2, 3, 4)
    y = soft_labels(rng, shape, np.float32, axis=axis)
    loss_shape = tuple(d for i, d in enumerate(shape) if i != axis % 3)
    call = Call(NN_DENSE, {"labels": y, "logits": logits(rng, shape, np.float32), "axis": axis},
                upstream=upstream(rng, loss_shape, np.float32))
    assert run_judged(runners, call)["loss"].shape == loss_shape


def test_dense_label_broadcasting(runners):
    rng = np.random.default_rng(seed_of("bcast"))
    z = logits(rng, (3, 4), np.float32)
    row = soft_labels(rng, (4,), np.float32)
    for api, names in ((NN_DENSE, ("labels", "logits")), (RAW_DENSE, ("labels", "features"))):
        for y in (row, row[None, :], np.full((3, 1), 0.25, np.float32)):
            call = Call(api, {names[0]: y, names[1]: z},
                        upstream=upstream(rng, (3,), np.float32))
            run_judged(runners, call)
    # the raw op also broadcasts the features; the oracle defines no gradient then
    call = Call(RAW_DENSE, {"features": z[:1], "labels": soft_labels(rng, (3, 4), np.float32)})
    run_judged(runners, call)


def test_empty_batch_and_single_class(runners):
    for api in (RAW_SPARSE, NN_SPARSE):
        names = ("features", "labels") if api == RAW_SPARSE else ("logits", "labels")
        call = Call(api, {names[0]: np.zeros((0, 3), np.float32),
                          names[1]: np.zeros(0, np.int32)}, upstream=np.zeros(0, np.float32))
        assert run_judged(runners, call)["loss"].shape == (0,)
        call = Call(api, {names[0]: np.array([[1], [-1], [0]], np.float32),
                          names[1]: np.zeros(3, np.int64)}, upstream=np.ones(3, np.float32))
        out = run_judged(runners, call)
        assert not out["loss"].any()  # -0.0 from torch; the sign of zero is not judged


def test_python_values_convert_as_tensorflow_does(runners):
    """Python lists and numbers convert like ``tf.convert_to_tensor``: floats to float32."""
    call = Call(NN_SPARSE, {"labels": [0, 2], "logits": [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]]},
                upstream=np.ones(2, np.float32))
    out = run_judged(runners, call)
    assert out["loss"].dtype == np.float32 and out["grad_logits"].dtype == np.float32
    call = Call(NN_SPARSE, {"labels": 1, "logits": [0.25, 4.0, -2.0]})
    assert run_judged(runners, call)["loss"].shape == ()


# --------------------------------------------------------------------------- special values


INF, NAN = math.inf, math.nan
SPECIAL = np.array([[0, -INF, 1], [0, -INF, 1], [-INF, -INF, 0], [-INF, -INF, -INF],
                    [INF, 0, 0], [NAN, 0, 0], [1e30, -1e30, 0], [2, -5, 0.5]], np.float32)


@pytest.mark.parametrize("api", [RAW_SPARSE, NN_SPARSE])
def test_special_values_sparse(runners, api):
    """−inf at the label → +inf loss; all −inf, +inf or NaN → a NaN row (loss and gradient);
    ±1e30 finite — as TensorFlow does; the other rows are unaffected."""
    y = np.array([0, 1, 0, 0, 0, 0, 1, 2], np.int32)
    names = ("features", "labels") if api == RAW_SPARSE else ("logits", "labels")
    call = Call(api, {names[0]: SPECIAL, names[1]: y}, upstream=np.ones(8, np.float32))
    out = run_judged(runners, call)
    assert out["loss"][1] == INF and np.isnan(out["loss"][3:6]).all()
    assert np.isnan(out["grad_logits"][3:6]).all() and np.isfinite(out["grad_logits"][7]).all()


@pytest.mark.parametrize("api", [RAW_DENSE, NN_DENSE])
def test_special_values_dense(runners, api):
    """A −inf logit under a zero label gives NaN (0·∞) with a finite gradient, as in TF."""
    y = np.tile(np.array([0.5, 0, 0.5], np.float32), (8, 1))
    names = ("features", "labels") if api == RAW_DENSE else ("logits", "labels")
    call = Call(api, {names[0]: SPECIAL, names[1]: y}, upstream=np.ones(8, np.float32))
    out = run_judged(runners, call)
    assert np.isnan(out["loss"][0]) and np.isfinite(out["grad_logits"][0]).all()


def test_special_values_smoothing_gives_inf(runners):
    call = Call(V1_DENSE, {"onehot_labels": np.array([[0.5, 0, 0.5]], np.float32),
                           "logits": np.array([[0, -INF, 1]], np.float32),
                           "label_smoothing": 0.1, "reduction": "none"})
    assert run_judged(runners, call)["loss"][0] == INF


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("bad", [[0, 4, 1], [0, -1, 1], [5, -2, 0], [0, 2**31 - 1, 1]])
@pytest.mark.parametrize("api", [RAW_SPARSE, NN_SPARSE, V1_SPARSE])
def test_bad_labels_raise_on_cpu(runners, api, bad):
    """Out-of-range labels raise on CPU (torch: IndexError "Target 4 is out of bounds."),
    which matches the oracle's ``cpu`` profile (TF: InvalidArgumentError)."""
    names = ("features", "labels") if api == RAW_SPARSE else ("logits", "labels")
    call = Call(api, {names[0]: logits(np.random.default_rng(0), (3, 4), np.float32),
                      names[1]: np.array(bad, np.int64)})
    expect_raises(runners(api), call)
    with pytest.raises(IndexError, match="out of bounds"):
        runners(api).run(call)


def test_torch_and_tf_both_reject(runners):
    rng = np.random.default_rng(1)
    z = logits(rng, (3, 4), np.float32)
    cases = [
        Call(NN_SPARSE, {"labels": np.zeros(3, np.int32), "logits": np.zeros((3, 0), np.float32)}),
        Call(NN_SPARSE, {"labels": np.array([0, 1, 2], np.int16), "logits": z}),
        Call(NN_SPARSE, {"labels": np.array([0, 1, 2], np.float32), "logits": z}),
        Call(NN_SPARSE, {"labels": np.zeros((3, 1), np.int32), "logits": z}),
        Call(NN_SPARSE, {"labels": np.array(0, np.int32), "logits": np.array(1.0, np.float32)}),
        Call(NN_DENSE, {"labels": np.ones((2, 4), np.float32), "logits": z}),
        Call(NN_DENSE, {"labels": np.ones((3, 4), np.float32), "logits": z, "axis": 2}),
        Call(V1_SPARSE, {"labels": np.zeros(3, np.int32), "logits": z, "reduction": "mean"}),
        Call(V1_SPARSE, {"labels": np.zeros(3, np.int32), "logits": z,
                         "weights": np.ones((3, 3), np.float32)}),
        Call(V1_DENSE, {"onehot_labels": np.ones((1, 4), np.float32), "logits": z}),
        Call(V1_DENSE, {"onehot_labels": np.ones((3, 4), np.float32), "logits": z,
                        "weights": np.ones((3, 1), np.float32)}),
    ]
    for call in cases:
        expect_raises(runners(call.api), call)


# --------------------------------------------------------------------------- findings


def _divergence(runners, call, *, torch_raises: bool):
    """Assert torch's observed outcome for ``call`` and that the oracle's differs."""
    exp = expectation(call)
    runner = runners(call.api)
    if torch_raises:
        assert exp.raises is None, "the oracle now expects an error too"
        with pytest.raises(Exception):  # noqa: B017 - torch's own rejection
            runner.run(call)
        return None
    assert exp.raises is not None, "the oracle now expects values too"
    return runner.run(call)


def test_finding_ignore_index_label(runners):
    """Label -100 is torch's default ``ignore_index``: loss 0 instead of an error. torch has
    no way to turn ignoring off, so the adapter leaves it (TF CPU raises)."""
    z = logits(np.random.default_rng(2), (3, 4), np.float32)
    y = np.array([0, -100, 1], np.int64)
    out = _divergence(runners, Call(NN_SPARSE, {"labels": y, "logits": z}), torch_raises=False)
    assert out["loss"][1] == 0 and out["loss"][0] > 0
    out = _divergence(runners, Call(V1_SPARSE, {"labels": y, "logits": z}), torch_raises=False)
    assert np.isfinite(out["loss"])
    # the raw op's composed backprop uses one_hot, which rejects the negative label
    with pytest.raises(RuntimeError, match="non-negative"):
        runners(RAW_SPARSE).run(Call(RAW_SPARSE, {"features": z, "labels": y}))


def test_finding_torch_accepts_what_tf_rejects(runners):
    rng = np.random.default_rng(3)
    z = logits(rng, (3, 4), np.float32)
    z3 = logits(rng, (2, 3, 4), np.float32)
    accepted = [
        # uint8 is a torch class-index dtype (Byte); TF allows int32/int64 only
        Call(NN_SPARSE, {"labels": np.array([0, 3, 1], np.uint8), "logits": z}),
        # the raw ops take any rank in torch (unbatched [C], or classes at dim 1)
        Call(RAW_SPARSE, {"features": z[0], "labels": np.array(2, np.int32)}),
        Call(RAW_SPARSE, {"features": z3, "labels": np.zeros((2, 3), np.int32)}),
        Call(RAW_DENSE, {"features": z[0], "labels": soft_labels(rng, (4,), np.float32)}),
        # movedim normalises a negative axis; TF's wrapper fails on axis=-2 (a TF bug)
        Call(NN_DENSE, {"labels": soft_labels(rng, (2, 3, 4), np.float32), "logits": z3,
                        "axis": -2}),
        # C = 0 with an empty batch: torch returns an empty loss
        Call(NN_SPARSE, {"labels": np.zeros(0, np.int32), "logits": np.zeros((0, 0), np.float32)}),
        # torch broadcasts weights [3] to a [2, 3] loss; TF requires equal ranks
        Call(V1_SPARSE, {"labels": np.zeros((2, 3), np.int32), "logits": z3,
                         "weights": np.array([1, 0, 1], np.float32)}),
    ]
    for call in accepted:
        _divergence(runners, call, torch_raises=False)


def test_finding_label_smoothing_above_one_raises(runners):
    """TF accepts any ε (ε > 1 included); torch checks 0 ≤ ε ≤ 1 and raises."""
    call = Call(V1_DENSE, {"onehot_labels": np.eye(4, dtype=np.float32)[[0, 3, 1]],
                           "logits": logits(np.random.default_rng(4), (3, 4), np.float32),
                           "label_smoothing": 1.5})
    _divergence(runners, call, torch_raises=True)
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0"):
        runners(V1_DENSE).run(call)


@pytest.mark.parametrize("api", [NN_DENSE, RAW_DENSE])
def test_dense_grad_unnormalised_labels(runners, api):
    """Finding: for labels whose rows do not sum to 1, TF's gradient is ``u·(p − y)`` (its
    kernel's backprop), while torch's autograd gives the true derivative ``u·(p·Σy − y)``.
    The losses agree; the gradients differ except where ``Σy = 1``."""
    rng = np.random.default_rng(5)
    z = logits(rng, (3, 4), np.float64)
    y = np.array([[0.5, 0.5, 0.5, 0.5], [0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    u = np.array([1.0, 2.0, -1.0])
    names = ("features", "labels") if api == RAW_DENSE else ("logits", "labels")
    call = Call(api, {names[0]: z, names[1]: y}, upstream=u)
    out = runners(api).run(call)
    judge(out, call, names=["loss"] + (["backprop"] if api == RAW_DENSE else []))
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    true = u[:, None] * (p * y.sum(-1, keepdims=True) - y)
    np.testing.assert_allclose(out["grad_logits"], true, rtol=1e-12, atol=1e-15)
    tf = expectation(call).outputs["grad_logits"].exact64
    np.testing.assert_allclose(tf[2], out["grad_logits"][2], rtol=1e-12)  # Σy = 1
    assert not np.allclose(tf[:2], out["grad_logits"][:2])


def test_finding_float16_reduction_overflow(runners):
    """The composed compat.v1 reductions run in the loss dtype, as torch's own
    ``reduction="mean"`` does: a float16 sum beyond 65504 overflows to inf before the
    division, where TF (reducing in float32) returns the finite mean."""
    z = np.array([[0, -40000], [0, -40000]], np.float16)
    y = np.array([[0, 1], [0, 1]], np.float16)
    torch_mean = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor([1, 1]))
    assert torch.isinf(torch_mean)  # torch's native mean overflows the same way
    for reduction in ("weighted_mean", "weighted_sum_over_batch_size",
                      "weighted_sum_by_nonzero_weights"):
        call = Call(V1_DENSE, {"onehot_labels": y, "logits": z, "reduction": reduction})
        out = runners(V1_DENSE).run(call)
        assert out["loss"] == np.inf
        assert float(expectation(call).outputs["loss"].exact64) == 40000.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_error_ratios(runners, dtype, capsys):
    """torch's half-precision results on CPU stay inside the stable budget; the worst
    error/budget ratio is printed for the report."""
    worst = {}
    for api in SUPPORTED:
        seed = seed_of("ratio", api, dtype)
        rng = np.random.default_rng(seed)
        r = 0.0
        for i in range(3):
            red = "weighted_mean" if api in (V1_SPARSE, V1_DENSE) else None
            call = make_call(api, dtype, rng, seed + i, b=6, c=7, reduction=red,
                             wkind="per_sample")
            r = max(r, worst_ratio(runners(api).run(call), call))
        worst[api] = r
    with capsys.disabled():
        print(f"\n[torch {dtype}] worst error/stable-budget: " +
              ", ".join(f"{a.rsplit('.', 1)[-1]}={r:.3f}" for a, r in worst.items()))
    assert max(worst.values()) <= 1.0


# --------------------------------------------------------------------------- gpu


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="torch sees no CUDA device")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_conforms(runners, dtype):
    seed = seed_of("cuda", dtype)
    rng = np.random.default_rng(seed)
    for api in SUPPORTED:
        red = "weighted_sum_by_nonzero_weights" if api in (V1_SPARSE, V1_DENSE) else None
        run_judged(runners, make_call(api, dtype, rng, seed, reduction=red, wkind="per_sample"),
                   device="cuda")


# --------------------------------------------------------------------------- snippets


def _snippet_calls(device: str) -> dict:
    rng = np.random.default_rng(seed_of("snippet", device))
    bf16 = DTYPES["bfloat16"]
    x = logits(rng, (4, 5), np.float32)
    y = int_labels(rng, 4, 5, 1)
    soft = soft_labels(rng, (4, 5), np.float32)
    up4 = upstream(rng, (4,), np.float32)
    calls = {
        "raw_sparse-grad": Call(RAW_SPARSE, {"features": x, "labels": y}, upstream=up4),
        "raw_sparse-bfloat16-grad": Call(
            RAW_SPARSE, {"features": x.astype(bf16), "labels": y.astype(np.int32)},
            upstream=up4.astype(bf16)),
        "raw_dense-broadcast": Call(RAW_DENSE, {"features": x, "labels": soft[0]}),
        "nn_sparse-rank3-float16-grad": Call(
            NN_SPARSE, {"labels": int_labels(rng, (2, 3), 5, 0),
                        "logits": logits(rng, (2, 3, 5), np.float16)},
            upstream=upstream(rng, (2, 3), np.float16)),
        "nn_dense-axis0-grad": Call(NN_DENSE, {"labels": soft.T.copy(), "logits": x.T.copy(),
                                               "axis": 0}, upstream=up4),
        "nn_dense-broadcast": Call(NN_DENSE, {"labels": soft[1], "logits": x}),
        "v1_sparse-column-weighted_mean-grad": Call(V1_SPARSE, {
            "labels": y[:, None], "logits": x,
            "weights": weights("column", rng, (4,), np.float32),
            "reduction": "weighted_mean"}, upstream=np.asarray(1.5, np.float32)),
        "v1_sparse-python_weight-list_labels-sbnz": Call(V1_SPARSE, {
            "labels": [0, 4, 1, 1], "logits": x.astype(np.float64), "weights": 2.5,
            "reduction": "weighted_sum_by_nonzero_weights"},
            upstream=np.asarray(-0.5)),
        "v1_dense-smoothing-bfloat16-over_batch": Call(V1_DENSE, {
            "onehot_labels": soft.astype(bf16), "logits": x.astype(bf16),
            "label_smoothing": 0.1, "weights": weights("per_sample", rng, (4,), np.float32),
            "reduction": "weighted_sum_over_batch_size"},
            upstream=np.asarray(2.0, bf16)),
        "v1_dense-none": Call(V1_DENSE, {"onehot_labels": soft, "logits": x,
                                         "weights": np.asarray(0.75, np.float32),
                                         "reduction": "none"}, upstream=up4),
        "v1_dense-defaults": Call(V1_DENSE, {"onehot_labels": soft, "logits": x}),
    }
    rejections = {"bad_label": Call(NN_SPARSE, {"labels": np.array([0, 5, 1, 1]),
                                                "logits": x})}
    profile = "cpu" if device == "cpu" else "gpu"
    return ({k: (Setup(c.api, device=device, profile=profile), c) for k, c in calls.items()},
            {k: (Setup(c.api, device=device, profile=profile), c)
             for k, c in rejections.items()})


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="torch sees no CUDA device")])])
def test_snippets_reproduce_the_runner(device):
    """``snippet`` writes the runner's torch calls out for one call; run standalone (without
    xentconf) it gives the runner's outputs bit for bit, and raises where it raises."""
    calls, rejections = _snippet_calls(device)
    if device == "cuda":
        rejections = {}  # a device-side assert would poison the CUDA context
    check_snippets(TARGET, calls, rejections=rejections)


def test_no_snippet_for_the_keras_apis():
    call = Call(KERAS_APIS[0], {"y_true": np.array([0]), "y_pred": np.zeros((1, 2), "f")})
    assert TARGET.snippet(Setup(KERAS_APIS[0]), call) is None


# --------------------------------------------------------------------------- torch.compile


@pytest.mark.slow  # inductor compiles C++ for each graph
def test_compile_mode_conforms_across_shapes_with_one_graph_per_kind():
    """The compile mode runs the APIs through torch.compile (inductor, dynamic shapes):
    its answers conform like eager's, and calls that differ only in batch size and class
    count (both above 1, which torch specialises) reuse one compiled graph instead of
    compiling one per shape."""
    from torch._dynamo.utils import counters

    runner = TARGET.prepare(Setup(NN_SPARSE, mode="compile", grad=True))
    before = counters["stats"]["unique_graphs"]
    for i, (b, c) in enumerate([(3, 5), (4, 7), (6, 11)]):
        rng = np.random.default_rng(seed_of("compile", b, c))
        call = Call(NN_SPARSE, {"labels": int_labels(rng, (b,), c, 1),
                                "logits": logits(rng, (b, c), np.float32)},
                    upstream=upstream(rng, (b,), np.float32))
        out = runner.run(call)
        judge(out, call, profile="cpu")
        if i == 0:
            first = counters["stats"]["unique_graphs"] - before
            assert first >= 1, "nothing was compiled: the mode ran eagerly"
    assert counters["stats"]["unique_graphs"] - before == first, "a new shape recompiled"


@pytest.mark.slow  # inductor compiles C++ for each graph
def test_compile_mode_shares_a_graph_across_label_and_weight_dtypes():
    """int32 and int64 sparse labels, and float32 and float64 weights arrays, reach the
    computation as the same dtypes (Long labels, weights in the loss dtype), so the compile
    mode compiles one graph for them, not one per input dtype; the answers conform."""
    from torch._dynamo.utils import counters

    runner = TARGET.prepare(Setup(V1_SPARSE, mode="compile", grad=True))
    before = counters["stats"]["unique_graphs"]
    for i, (label_dt, weight_dt) in enumerate([(np.int32, np.float32), (np.int64, np.float64),
                                               (np.int64, np.float32), (np.int32, np.float64)]):
        rng = np.random.default_rng(seed_of("dtypes", i))
        call = Call(V1_SPARSE, {"labels": rng.integers(0, 5, 4).astype(label_dt),
                                "logits": logits(rng, (4, 5), np.float32),
                                "weights": weights("per_sample", rng, (4,), weight_dt),
                                "reduction": "weighted_mean"},
                    upstream=np.asarray(1.5, np.float32))
        judge(runner.run(call), call, profile="cpu")
        if i == 0:
            first = counters["stats"]["unique_graphs"] - before
            assert first >= 1, "nothing was compiled: the mode ran eagerly"
    assert counters["stats"]["unique_graphs"] - before == first, "an input dtype recompiled"


@pytest.mark.slow
def test_compile_mode_snippet_compiles_the_same_computation():
    """The reproducer of a compile-mode case calls torch.compile itself and gives what the
    runner gives."""
    rng = np.random.default_rng(7)
    z = logits(rng, (2, 4), np.float64)
    call = Call(V1_SPARSE, {"labels": np.array([1, 3], np.int32), "logits": z,
                            "weights": 2.5, "reduction": "weighted_mean"},
                upstream=np.asarray(1.5, np.float64))
    setup = Setup(V1_SPARSE, mode="compile", grad=True)
    source = TARGET.snippet(setup, call)
    assert "torch.compile(forward" in source
    check_snippets(TARGET, {"v1_sparse": (setup, call)})

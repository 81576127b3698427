"""The ONNX Runtime adapter against the oracle, on the real onnxruntime (skipped without it).

Random inputs for every supported API, dtype, reduction and kind of weights must conform
at the ``stable`` grade; what ORT does where it differs from TensorFlow (bad labels, an
empty batch) is recorded as observed behaviour, not judged.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.adapters.conftest import check_snippets, judge, require

from xentconf.adapters.onnxruntime import DTYPES, SUPPORT, OnnxRuntimeTarget
from xentconf.protocol import API_IDS, KERAS_APIS, Call, Setup, TargetError

ort = require("onnxruntime", "onnxruntime")
require("onnxruntime", "onnx")

RAW_SPARSE, RAW_DENSE, NN_SPARSE, NN_DENSE, V1_SPARSE, V1_DENSE = API_IDS[:6]
REDUCTIONS = ("none", "weighted_sum", "weighted_sum_over_batch_size", "weighted_mean",
              "weighted_sum_by_nonzero_weights")

# One intra-op thread: under pytest-xdist, ORT's default (a spinning thread per core in
# every worker) oversubscribes the machine and makes each call ~50x slower.
TARGET = OnnxRuntimeTarget(intra_op_num_threads=1)


@pytest.fixture(scope="module")
def runners():
    cache: dict[str, object] = {}

    def get(api: str):
        if api not in cache:
            cache[api] = TARGET.prepare(Setup(api))
        return cache[api]

    return get


def logits(rng, shape, dtype):
    return (rng.standard_normal(shape) * 4).astype(dtype)


def soft_labels(rng, shape, dtype, axis=-1):
    y = rng.random(shape)
    return (y / y.sum(axis=axis, keepdims=True)).astype(dtype)


def int_labels(rng, shape, classes, seed):
    return rng.integers(0, classes, shape).astype(np.int64 if seed % 2 else np.int32)


def weights(kind: str, rng, shape, dtype):
    """TF-style weights of the given kind for a loss of ``shape``."""
    if kind == "python":
        return 2.5
    if kind == "zero":
        return 0.0
    if kind == "scalar":
        return np.asarray(0.75, dtype)
    w = rng.random(shape).astype(dtype)
    if kind == "per_element":
        w.flat[0] = 0  # a zero weight: SBNZ and weighted_mean must count it right
        return w
    if kind == "negative":
        return (w - 0.5).astype(dtype)
    if kind == "column":  # [B, 1] against a [B] (sparse: squeezed) or [B, T] loss
        return w[..., :1] if len(shape) > 1 else w[:, None]
    raise ValueError(kind)


# --------------------------------------------------------------------------- info


def test_info_declares_what_it_computes():
    info = TARGET.info()
    assert info.available, info.reason
    assert info.version == ort.__version__
    assert set(info.apis) == set(API_IDS) - set(KERAS_APIS)
    for api, sup in info.apis.items():
        assert "grad" in sup.unsupported, api
        assert sup.dtypes == ("float16", "float32", "float64"), api
        assert not (sup.native & sup.composed), api
    assert info.apis[NN_SPARSE].native >= {"rank3+", "bad_labels"}
    assert info.apis[V1_SPARSE].composed >= {"weights", "reduction"}
    assert info.apis[RAW_SPARSE].composed == {"backprop"}
    cpu, cuda = info.modes
    assert (cpu.device, cpu.profile, cpu.available) == ("cpu", "cpu", True)
    assert (cuda.device, cuda.profile) == ("cuda", "gpu")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert cuda.available == has_cuda
    if not has_cuda:
        assert "CUDAExecutionProvider" in cuda.reason


def test_prepare_refuses_what_it_cannot_do():
    for api in KERAS_APIS:
        with pytest.raises(TargetError, match="does not support"):
            TARGET.prepare(Setup(api))
    with pytest.raises(TargetError, match="no gradients"):
        TARGET.prepare(Setup(NN_SPARSE, grad=True))
    with pytest.raises(TargetError, match="cpu/xla"):
        TARGET.prepare(Setup(NN_SPARSE, profile="xla"))
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(TargetError, match="unavailable"):
            TARGET.prepare(Setup(NN_SPARSE, device="cuda", profile="gpu"))


def test_no_gradient_with_upstream(runners):
    x = np.zeros((2, 3), np.float32)
    call = Call(NN_SPARSE, {"labels": np.array([0, 1]), "logits": x},
                upstream=np.ones(2, np.float32))
    with pytest.raises(TargetError, match="no gradients"):
        runners(NN_SPARSE).run(call)


# --------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_raw_ops(runners, dtype, seed):
    rng = np.random.default_rng(seed)
    x = logits(rng, (4, 6), dtype)
    for api, labels in ((RAW_SPARSE, int_labels(rng, 4, 6, seed)),
                        (RAW_DENSE, soft_labels(rng, (4, 6), dtype)),
                        (RAW_DENSE, soft_labels(rng, (6,), dtype))):  # labels broadcast
        call = Call(api, {"features": x, "labels": labels})
        judge(runners(api).run(call), call)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6,), (4, 6), (2, 3, 6), (2, 1, 2, 5)])
def test_nn_sparse(runners, dtype, shape):
    rng = np.random.default_rng(len(shape))
    call = Call(NN_SPARSE, {"labels": int_labels(rng, shape[:-1], shape[-1], len(shape)),
                            "logits": logits(rng, shape, dtype)})
    judge(runners(NN_SPARSE).run(call), call)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((6,), -1), ((4, 6), -1), ((4, 6), 0), ((2, 3, 5), 1),
                                        ((2, 3, 5), -1)])
def test_nn_dense(runners, dtype, shape, axis):
    rng = np.random.default_rng(axis + 7)
    call = Call(NN_DENSE, {"labels": soft_labels(rng, shape, dtype, axis),
                           "logits": logits(rng, shape, dtype), "axis": axis})
    judge(runners(NN_DENSE).run(call), call)


WEIGHT_KINDS = ("default", "python", "zero", "scalar", "per_element", "negative", "column")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", WEIGHT_KINDS)
def test_v1_sparse(runners, dtype, reduction, kind):
    rng = np.random.default_rng(WEIGHT_KINDS.index(kind))
    args = {"labels": int_labels(rng, 5, 4, 1), "logits": logits(rng, (5, 4), dtype),
            "reduction": reduction}
    if kind != "default":
        args["weights"] = weights(kind, rng, (5,), dtype)
    call = Call(V1_SPARSE, args)
    judge(runners(V1_SPARSE).run(call), call)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_v1_sparse_shapes(runners, dtype, reduction):
    rng = np.random.default_rng(3)
    runner = runners(V1_SPARSE)
    # [B, 1] labels are squeezed; rank 3 with [B, 1] weights broadcast over the time axis
    for args in ({"labels": int_labels(rng, (4, 1), 5, 0), "logits": logits(rng, (4, 5), dtype),
                  "weights": weights("column", rng, (4,), dtype)},
                 {"labels": int_labels(rng, (2, 3), 5, 1),
                  "logits": logits(rng, (2, 3, 5), dtype),
                  "weights": np.array([[1.0], [0.0]], dtype)},
                 {"labels": np.int64(2), "logits": logits(rng, (5,), dtype), "weights": 3.0}):
        call = Call(V1_SPARSE, {**args, "reduction": reduction})
        judge(runner.run(call), call)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0, 0.1, 1.0, -0.2])
def test_v1_dense(runners, dtype, reduction, smoothing):
    rng = np.random.default_rng(int(smoothing * 10) + 5)
    runner = runners(V1_DENSE)
    for kind in ("default", "python", "per_element", "zero"):
        args = {"onehot_labels": np.eye(5, dtype=dtype)[rng.integers(0, 5, 4)],
                "logits": logits(rng, (4, 5), dtype), "label_smoothing": smoothing,
                "reduction": reduction}
        if kind != "default":
            args["weights"] = weights(kind, rng, (4,), dtype)
        call = Call(V1_DENSE, args)
        judge(runner.run(call), call)
    # rank 3, soft labels, [B, 1] weights
    call = Call(V1_DENSE, {"onehot_labels": soft_labels(rng, (2, 3, 4), dtype),
                           "logits": logits(rng, (2, 3, 4), dtype), "label_smoothing": smoothing,
                           "weights": np.array([[0.5], [2.0]], dtype), "reduction": reduction})
    judge(runner.run(call), call)


def test_special_values(runners):
    inf = np.inf
    x = np.array([[0, -inf, 1], [0, -inf, 1], [1e30, -1e30, 0], [np.nan, 0, 0], [5, 6, 7]],
                 np.float32)
    call = Call(RAW_SPARSE, {"features": x, "labels": np.array([0, 1, 1, 2, 2])})
    judge(runners(RAW_SPARSE).run(call), call)
    call = Call(NN_SPARSE, {"labels": np.array([0, 1, 1, 2, 2]), "logits": x})
    judge(runners(NN_SPARSE).run(call), call)


def test_sessions_are_cached_per_signature(runners):
    runner = TARGET.prepare(Setup(NN_SPARSE))
    rng = np.random.default_rng(0)
    for batch in (1, 3, 7):  # symbolic dims: one session for every batch size
        runner.run(Call(NN_SPARSE, {"labels": int_labels(rng, batch, 4, 1),
                                    "logits": logits(rng, (batch, 4), np.float32)}))
    assert len(runner._sessions) == 1
    runner.run(Call(NN_SPARSE, {"labels": int_labels(rng, 3, 4, 1),
                                "logits": logits(rng, (3, 4), np.float64)}))
    assert len(runner._sessions) == 2


# --------------------------------------------------------------------------- ORT's own ways


X = np.array([[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]], np.float32)


@pytest.mark.parametrize("bad", [4, 100, -5])
def test_bad_labels_on_cpu_raise(runners, bad):
    # Observed (onnxruntime 1.31, CPU): SoftmaxCrossEntropyLoss runs as its ONNX function
    # body, whose GatherElements raises "Out of range value in index tensor" for a label
    # outside [-C, C) — which is what TF's cpu profile asks for (an error).
    for api, args in ((RAW_SPARSE, {"features": X, "labels": np.array([0, bad, 1])}),
                      (NN_SPARSE, {"labels": np.array([0, bad, 1]), "logits": X}),
                      (V1_SPARSE, {"labels": np.array([0, bad, 1]), "logits": X})):
        with pytest.raises(Exception, match="Out of range"):
            runners(api).run(Call(api, args))


def test_negative_labels_wrap_on_cpu(runners):
    # Observed (onnxruntime 1.31, CPU): a label in [-C, -1] is NOT rejected: GatherElements
    # follows ONNX's negative-index rule, so -1 reads class C-1 — the loss is a finite,
    # wrong number where TF raises (cpu) or gives NaN (gpu/xla). Recorded, not judged.
    out = runners(NN_SPARSE).run(Call(NN_SPARSE, {"labels": np.array([0, -1, 1]),
                                                  "logits": X}))
    same = runners(NN_SPARSE).run(Call(NN_SPARSE, {"labels": np.array([0, 3, 1]),
                                                   "logits": X}))
    np.testing.assert_array_equal(out["loss"], same["loss"])
    raw = runners(RAW_SPARSE).run(Call(RAW_SPARSE, {"features": X,
                                                    "labels": np.array([0, -1, 1])}))
    assert np.isfinite(raw["backprop"]).all()  # OneHot wraps -1 the same way


def test_empty_batch(runners):
    # Observed (onnxruntime 1.31, CPU): SoftmaxCrossEntropyLoss's function body reshapes the
    # scores to [N, C, -1], which fails for N = 0 ("The input tensor cannot be reshaped"),
    # where TF returns an empty loss. The dense compositions handle N = 0.
    empty = np.zeros((0, 4), np.float32)
    with pytest.raises(Exception, match="reshape"):
        runners(NN_SPARSE).run(Call(NN_SPARSE, {"labels": np.zeros(0, np.int64),
                                                "logits": empty}))
    call = Call(NN_DENSE, {"labels": empty, "logits": empty})
    judge(runners(NN_DENSE).run(call), call)
    call = Call(V1_DENSE, {"onehot_labels": empty, "logits": empty})
    judge(runners(V1_DENSE).run(call), call)


def test_rejects_what_the_model_signature_rejects(runners):
    # The raw op's model takes features [B, C] and labels [B], as the kernel does.
    with pytest.raises(Exception, match="rank"):
        runners(RAW_SPARSE).run(Call(RAW_SPARSE, {"features": X[0], "labels": np.array(1)}))
    # bfloat16 has no CPU kernels for these operators: ORT refuses to build the model
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(Exception):  # noqa: B017 - whatever ORT raises
        runners(NN_SPARSE).run(Call(NN_SPARSE, {"labels": np.array([0, 3, 1]),
                                                "logits": X.astype(ml_dtypes.bfloat16)}))
    with pytest.raises(ValueError, match="reduction"):
        runners(V1_SPARSE).run(Call(V1_SPARSE, {"labels": np.array([0, 3, 1]), "logits": X,
                                                "reduction": "mean"}))


def test_support_table_covers_only_real_apis():
    assert set(SUPPORT) <= set(API_IDS)


# --------------------------------------------------------------------------- snippets


def test_snippets_reproduce_the_runner():
    """``snippet`` writes the runner's model out with ``onnx.helper``; run standalone
    (without xentconf) it gives the runner's outputs bit for bit."""
    rng = np.random.default_rng(11)
    x = logits(rng, (4, 5), np.float32)
    y = int_labels(rng, 4, 5, 1)
    soft = soft_labels(rng, (4, 5), np.float32)
    calls = {
        "raw_sparse": Call(RAW_SPARSE, {"features": x, "labels": y.astype(np.int32)}),
        "raw_dense-float16-broadcast": Call(RAW_DENSE, {"features": x.astype(np.float16),
                                                        "labels": soft[0]}),
        "nn_sparse-rank3-float64": Call(NN_SPARSE, {
            "labels": int_labels(rng, (2, 3), 5, 0),
            "logits": logits(rng, (2, 3, 5), np.float64)}),
        "nn_sparse-rank1-python_label": Call(NN_SPARSE, {"labels": 3, "logits": x[0]}),
        "nn_dense-axis0": Call(NN_DENSE, {"labels": soft.T.copy(), "logits": x.T.copy(),
                                          "axis": 0}),
        "v1_sparse-weights-weighted_mean": Call(V1_SPARSE, {
            "labels": y[:, None], "logits": x, "weights": weights("column", rng, (4,),
                                                                  np.float32),
            "reduction": "weighted_mean"}),
        "v1_sparse-python_weight-list_labels": Call(V1_SPARSE, {
            "labels": [0, 4, 1, 1], "logits": x.astype(np.float64), "weights": 2.5,
            "reduction": "weighted_sum_by_nonzero_weights"}),
        "v1_dense-smoothing-float16": Call(V1_DENSE, {
            "onehot_labels": soft.astype(np.float16), "logits": x.astype(np.float16),
            "label_smoothing": 0.1, "reduction": "weighted_sum_over_batch_size"}),
        "v1_dense-scalar_weights-none": Call(V1_DENSE, {
            "onehot_labels": soft, "logits": x, "weights": np.asarray(0.75, np.float32),
            "reduction": "none"}),
        "v1_dense-defaults": Call(V1_DENSE, {"onehot_labels": soft, "logits": x}),
    }
    bad = Call(NN_SPARSE, {"labels": np.array([0, 100, 1, 1]), "logits": x})
    check_snippets(TARGET, {k: (Setup(c.api), c) for k, c in calls.items()},
                   rejections={"bad_label": (Setup(NN_SPARSE), bad)})


def test_no_snippet_where_the_runner_cannot_run():
    x = np.zeros((2, 3), np.float32)
    call = Call(NN_SPARSE, {"labels": np.array([0, 1]), "logits": x}, upstream=np.ones(2))
    assert TARGET.snippet(Setup(NN_SPARSE), call) is None  # no gradients
    k = Call(KERAS_APIS[0], {"y_true": np.array([0, 1]), "y_pred": x})
    assert TARGET.snippet(Setup(KERAS_APIS[0]), k) is None


@pytest.mark.parametrize("given, env, expect", [(None, "1", 1), (2, "1", 2), (None, "", 0)])
def test_sessions_take_omp_num_threads_unless_told(monkeypatch, given, env, expect):
    """A sweep's workers set OMP_NUM_THREADS=1 (one core each); ORT's default pool, one
    spinning thread per core, ignores it unless the target passes it on."""
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    target = OnnxRuntimeTarget(intra_op_num_threads=given)
    api = "tf.nn.sparse_softmax_cross_entropy_with_logits"
    runner = target.prepare(Setup(api))
    runner.run(Call(api, {"labels": np.array([0, 1], np.int32),
                          "logits": np.ones((2, 3), np.float32)}))
    (session,) = runner._sessions.values()
    assert session.get_session_options().intra_op_num_threads == expect

"""The generic callable target (SPEC §4), end to end with small numpy implementations."""

from __future__ import annotations

import itertools
import sys
import textwrap

import numpy as np
import pytest
from tests.adapters.conftest import check_snippets, judge

from xentconf.adapters.callable import CallableTarget, TargetOutputError
from xentconf.protocol import API_IDS, FEATURES, Call, Setup, TargetError

RAW_SPARSE, RAW_DENSE, NN_SPARSE, NN_DENSE, V1_SPARSE, V1_DENSE, K_SPARSE, K_DENSE = API_IDS

# Small numpy implementations of TF's APIs, as a user would write them.
IMPLEMENTATIONS = '''
import numpy as np

def _lse(z, axis=-1):
    m = np.max(z, axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True)) + m

def raw_sparse(features, labels):
    logp = features - _lse(features)
    onehot = np.eye(features.shape[1], dtype=features.dtype)[labels]
    loss = -np.take_along_axis(logp, labels[:, None], axis=1)[:, 0]
    return loss, np.exp(logp) - onehot

def nn_sparse(labels, logits):
    logp = logits - _lse(logits)
    return -np.take_along_axis(logp, np.asarray(labels)[..., None], axis=-1)[..., 0]

def nn_dense(labels, logits, axis=-1):
    return -np.sum(labels * (logits - _lse(logits, axis)), axis=axis)

def v1_sparse(labels, logits, weights=1.0, reduction="weighted_sum_by_nonzero_weights"):
    loss = nn_sparse(labels, logits)
    w = np.broadcast_to(np.asarray(weights, loss.dtype), loss.shape)
    s = np.sum(w * loss, dtype=loss.dtype)
    if reduction == "none":
        return w * loss
    if reduction == "weighted_sum":
        return s
    den = {"weighted_sum_over_batch_size": loss.size, "weighted_mean": np.sum(w),
           "weighted_sum_by_nonzero_weights": np.count_nonzero(w)}[reduction]
    return np.asarray(s / den if den else 0, loss.dtype)

class SparseCategoricalCrossentropy:
    def __init__(self, from_logits=False, ignore_class=None, reduction="auto"):
        assert from_logits and ignore_class is None
        self.reduction = reduction

    def __call__(self, y_true, y_pred, sample_weight=None):
        loss = nn_sparse(y_true, y_pred)
        if sample_weight is not None:
            loss = loss * sample_weight
        return loss if self.reduction == "none" else np.asarray(loss.mean(), loss.dtype)

def factory(from_logits=False, label_smoothing=0.0, axis=-1, reduction="auto"):
    return lambda y_true, y_pred, sample_weight=None: nn_dense(y_true, y_pred, axis)

def garbage(labels, logits):
    return "not a loss"

def nothing(labels, logits):
    return None

def ragged(labels, logits):
    return [np.zeros(2), np.zeros(3)]

def one_output(features, labels):
    return np.zeros(len(labels), features.dtype)

def triple(features, labels):
    return (1, 2, 3)

def picky(labels, logits):
    raise ValueError("labels out of range")

def kwargs_only(**kw):
    return nn_sparse(kw["labels"], kw["logits"])

def too_few(labels):
    return labels

def needs_more(labels, logits, temperature):
    return labels

class NotCallable:
    def __init__(self, from_logits=False, ignore_class=None, reduction="auto"):
        pass

class BadCall:
    def __init__(self, from_logits=False, ignore_class=None, reduction="auto"):
        pass

    def __call__(self, y_true):
        return y_true

not_a_function = 42
'''

_counter = itertools.count()


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write IMPLEMENTATIONS (or given source) as a fresh module on sys.path; its name."""

    def make(source: str = IMPLEMENTATIONS) -> str:
        name = f"xentconf_test_impl_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setitem(sys.modules, name, None)  # restored (removed) after the test
        del sys.modules[name]
        return name

    return make


X = np.array([[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]], np.float32)
Y = np.array([0, 3, 1])


def run(spec: str, api: str, args: dict, init=None, **options):
    target = CallableTarget(spec, api, **options)
    return target.prepare(Setup(api)).run(Call(api, args, init or {}))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_implementations_conform(module, dtype):
    m = module()
    x = X.astype(dtype)
    onehot = np.eye(4, dtype=dtype)[Y]
    rng = np.random.default_rng(1)
    cases = [
        (f"{m}:raw_sparse", Call(RAW_SPARSE, {"features": x, "labels": Y})),
        (f"{m}:nn_sparse", Call(NN_SPARSE, {"labels": Y, "logits": x})),
        (f"{m}:nn_sparse", Call(NN_SPARSE, {"labels": rng.integers(0, 5, (2, 3)),
                                            "logits": rng.standard_normal((2, 3, 5)).astype(
                                                dtype)})),
        (f"{m}:nn_dense", Call(NN_DENSE, {"labels": onehot, "logits": x})),
        (f"{m}:nn_dense", Call(NN_DENSE, {"labels": onehot.T, "logits": x.T, "axis": 0})),
        (f"{m}:v1_sparse", Call(V1_SPARSE, {"labels": Y, "logits": x})),
        (f"{m}:v1_sparse", Call(V1_SPARSE, {"labels": Y, "logits": x, "reduction": "weighted_mean",
                                            "weights": np.array([0.5, 0, 2], dtype)})),
        (f"{m}:SparseCategoricalCrossentropy",
         Call(K_SPARSE, {"y_true": Y, "y_pred": x}, {"from_logits": True})),
        (f"{m}:SparseCategoricalCrossentropy",
         Call(K_SPARSE, {"y_true": Y, "y_pred": x, "sample_weight": np.array([1, 2, 0], dtype)},
              {"from_logits": True, "reduction": "none"})),
        (f"{m}:factory", Call(K_DENSE, {"y_true": onehot, "y_pred": x, "sample_weight": None},
                              {"from_logits": True, "reduction": "none"})),
    ]
    for spec, call in cases:
        out = CallableTarget(spec, call.api).prepare(Setup(call.api)).run(call)
        judge(out, call)


def test_raw_op_results_are_a_pair(module):
    m = module()
    out = run(f"{m}:raw_sparse", RAW_SPARSE, {"features": X, "labels": Y})
    assert set(out) == {"loss", "backprop"} and out["backprop"].shape == (3, 4)
    with pytest.raises(TargetOutputError, match=r"\(loss, backprop\) pair.*ndarray"):
        run(f"{m}:one_output", RAW_SPARSE, {"features": X, "labels": Y})
    with pytest.raises(TargetOutputError, match="tuple of length 3"):
        run(f"{m}:triple", RAW_SPARSE, {"features": X, "labels": Y})


@pytest.mark.parametrize("attr,message", [("garbage", "not a numeric array: got str"),
                                          ("nothing", "not a numeric array: got NoneType"),
                                          ("ragged", "not array-like")])
def test_garbage_is_an_output_error(module, attr, message):
    m = module()
    with pytest.raises(TargetOutputError, match=message):
        run(f"{m}:{attr}", NN_SPARSE, {"labels": Y, "logits": X})


def test_exceptions_propagate(module):
    m = module()
    with pytest.raises(ValueError, match="labels out of range"):
        run(f"{m}:picky", NN_SPARSE, {"labels": Y, "logits": X})


def test_values_are_not_changed(module):
    m = module()
    out = run(f"{m}:nn_sparse", NN_SPARSE, {"labels": Y, "logits": X.astype(np.float64)})
    assert out["loss"].dtype == np.float64  # whatever the callable returns, as it is


def test_info(module):
    m = module()
    target = CallableTarget(f"{m}:nn_sparse", NN_SPARSE, profile="gpu",
                            unsupported=["rank1"], deviations="devs.toml")
    info = target.info()
    assert info.available and info.name == f"{m}:nn_sparse"
    assert [(mode.device, mode.profile) for mode in info.modes] == [("cpu", "gpu")]
    support = info.apis[NN_SPARSE]
    assert support.unsupported == {"rank1", "grad"}
    assert support.native == frozenset(FEATURES) - {"rank1", "grad"}
    assert info.keras is None and info.deviations == "devs.toml"
    keras = CallableTarget(f"{m}:SparseCategoricalCrossentropy", K_SPARSE, keras="keras3")
    assert keras.info().keras == "keras3"
    missing = CallableTarget("xentconf_no_such_module_anywhere:fn", NN_SPARSE).info()
    assert not missing.available
    assert "xentconf_no_such_module_anywhere" in missing.reason
    assert not missing.modes[0].available


def test_prepare_refuses_other_setups(module):
    m = module()
    target = CallableTarget(f"{m}:nn_sparse", NN_SPARSE)
    with pytest.raises(TargetError, match="follows"):
        target.prepare(Setup(NN_DENSE))
    with pytest.raises(TargetError, match="cpu/cpu"):
        target.prepare(Setup(NN_SPARSE, profile="gpu"))
    with pytest.raises(TargetError, match="no gradients"):
        target.prepare(Setup(NN_SPARSE, grad=True))
    runner = target.prepare(Setup(NN_SPARSE))
    with pytest.raises(TargetError, match="no gradients"):
        runner.run(Call(NN_SPARSE, {"labels": Y, "logits": X}, upstream=np.ones(3)))


@pytest.mark.parametrize("options,message", [
    ({"api": "tf.nn.nope"}, "unknown API id 'tf.nn.nope'; use one of: tf.raw_ops"),
    ({"api": NN_SPARSE, "profile": "tpu"}, "unknown profile 'tpu'; use one of: cpu, gpu, xla"),
    ({"api": NN_SPARSE, "keras": "keras1"}, "unknown Keras variant"),
    ({"api": NN_SPARSE, "unsupported": ["wings"]}, "unknown feature or dtype 'wings'"),
])
def test_bad_options(options, message):
    with pytest.raises(TargetError, match=message):
        CallableTarget("a.b:c", **options)


@pytest.mark.parametrize("attr,api,message", [
    ("kwargs_only", NN_SPARSE, None),
    ("too_few", NN_SPARSE, r"does not fit .*unexpected keyword argument 'logits'"),
    ("needs_more", NN_SPARSE, r"missing a required argument: 'temperature'"),
    ("nn_sparse", V1_SPARSE, r"keyword arguments labels, logits, weights, reduction"),
    ("not_a_function", NN_SPARSE, "is not callable"),
    ("NotCallable", K_SPARSE, "instances of NotCallable are not callable"),
    ("BadCall", K_SPARSE, r"instances must be callable as obj\(y_true, y_pred, sample_weight"),
    ("SparseCategoricalCrossentropy", K_DENSE, "constructor must accept"),
    ("no_such_attr", NN_SPARSE, "has no attribute 'no_such_attr'"),
])
def test_signature_checks(module, attr, api, message):
    target = CallableTarget(f"{module()}:{attr}", api)
    if message is None:
        target.resolve()
        return
    with pytest.raises(TargetError, match=message) as info:
        target.resolve()
    assert "\n" not in str(info.value)


def test_module_that_does_not_import(module):
    m = module("import xentconf_surely_missing_dependency\n")
    with pytest.raises(TargetError, match=f"module '{m}' does not import "
                       r"\(ModuleNotFoundError: No module named "
                       "'xentconf_surely_missing_dependency'"):
        CallableTarget(f"{m}:f", NN_SPARSE).resolve()
    broken = module("def f(:\n")
    with pytest.raises(TargetError, match="SyntaxError"):
        CallableTarget(f"{broken}:f", NN_SPARSE).resolve()


# --------------------------------------------------------------------------- snippets


def test_snippets_reproduce_the_runner(module, tmp_path):
    """``snippet`` imports the callable from its module and calls it as the runner does;
    run standalone (without xentconf) it gives the runner's outputs bit for bit."""
    m = module()
    w = np.array([0.5, 0, 2], np.float32)
    soft = np.full((3, 4), 0.25, np.float32)
    cases = {
        "raw_sparse": (RAW_SPARSE, "raw_sparse", {"features": X, "labels": Y}, {}),
        "nn_dense-axis": (NN_DENSE, "nn_dense", {"labels": soft.T.copy(),
                                                 "logits": X.T.copy(), "axis": 0}, {}),
        "v1_sparse-weights-weighted_mean": (V1_SPARSE, "v1_sparse", {
            "labels": Y, "logits": X.astype(np.float64), "weights": w,
            "reduction": "weighted_mean"}, {}),
        "keras_class-kwargs-sample_weight": (K_SPARSE, "SparseCategoricalCrossentropy", {
            "y_true": Y, "y_pred": X, "sample_weight": w}, {"from_logits": True,
                                                            "reduction": "none"}),
        "keras_factory-no_sample_weight": (K_DENSE, "factory", {
            "y_true": soft, "y_pred": X, "sample_weight": None}, {"from_logits": True}),
    }
    for name, (api, attr, args, init) in cases.items():
        target = CallableTarget(f"{m}:{attr}", api)
        check_snippets(target, {name: (Setup(api), Call(api, args, init))},
                       sys_path=[str(tmp_path)])


def test_snippet_uses_the_setup_kwargs_and_refuses_gradients(module):
    m = module()
    target = CallableTarget(f"{m}:SparseCategoricalCrossentropy", K_SPARSE)
    setup = Setup(K_SPARSE, init=(("from_logits", True),))
    source = target.snippet(setup, Call(K_SPARSE, {"y_true": Y, "y_pred": X}))
    assert f"from {m} import SparseCategoricalCrossentropy" in source
    assert "SparseCategoricalCrossentropy(from_logits=True)" in source
    call = Call(NN_SPARSE, {"labels": Y, "logits": X}, upstream=np.ones(3, np.float32))
    assert CallableTarget(f"{m}:nn_sparse", NN_SPARSE).snippet(Setup(NN_SPARSE), call) is None

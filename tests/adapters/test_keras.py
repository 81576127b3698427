"""The Keras 3 adapter against the oracle's ``keras3`` semantics (skipped without keras).

Keras 3's two loss classes on the configured backend — tested on the TensorFlow backend
only (the jax and torch code paths are not exercised here): every dtype of ``y_pred``
× representative features, gradients included, must conform at the ``stable`` grade;
out-of-range labels and the inputs Keras 3 rejects must raise.
"""

from __future__ import annotations

import zlib

import ml_dtypes
import numpy as np
import pytest
from tests.adapters.conftest import check_snippets, expect_raises, expectation, judge, require

from xentconf.adapters.keras import KerasTarget
from xentconf.protocol import (
    API_IDS,
    FEATURES,
    KERAS_APIS,
    KERAS_BACKENDS,
    Call,
    Setup,
    TargetError,
)

keras = require("keras", "keras")

if keras.backend.backend() != "tensorflow":  # pragma: no cover - depends on KERAS_BACKEND
    pytest.skip(f"the Keras adapter is tested on the tensorflow backend only (this is "
                f"{keras.backend.backend()}): unset KERAS_BACKEND", allow_module_level=True)

SCCE, CCE = KERAS_APIS
DT = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16),
      "float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
TARGET = KerasTarget()
_RUNNERS: dict[tuple, object] = {}


def runner(api: str, init: dict | None = None):
    setup = Setup(api, init=tuple(sorted((init or {}).items())), grad=True)
    if setup not in _RUNNERS:
        _RUNNERS[setup] = TARGET.prepare(setup)
    return _RUNNERS[setup]


def rng_for(*parts) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(parts).encode()))


def logits(rng, shape, dt):
    return (rng.standard_normal(shape) * 3).astype(np.float32).astype(DT[dt])


def soft(rng, shape, dt):
    """Rows of multiples of 1/64 summing to exactly 1 (exact in every dtype)."""
    c = shape[-1]
    counts = rng.multinomial(64 - c, [1 / c] * c, size=shape[:-1]) + 1
    return (counts / 64).astype(np.float32).astype(DT[dt])


def build(api: str, feature: str, dt: str, rng):
    """(args, init) of one valid call."""
    kind, _, detail = feature.partition(":")
    b, c = 4, 5
    sw = np.array([0.5, 0, 2, 1], np.float32)
    if api == SCCE:
        y = rng.integers(0, c, b)
        if kind == "from_logits":
            return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
                    {"from_logits": True})
        if kind == "probabilities":
            return {"y_true": y, "y_pred": soft(rng, (b, c), dt)}, {}
        if kind == "ignore_class":
            y[1] = int(detail)
            return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
                    {"from_logits": True, "ignore_class": int(detail)})
        if kind == "rank3+":
            return ({"y_true": rng.integers(0, 4, (2, 3)), "y_pred": logits(rng, (2, 3, 4), dt)},
                    {"from_logits": True, "reduction": "sum"})
        if kind == "batch0":
            return {"y_true": np.zeros(0, np.int64), "y_pred": logits(rng, (0, c), dt)}, {}
        return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
                {"from_logits": True, "reduction": detail})
    y = soft(rng, (b, c), "float32")
    if kind == "from_logits":
        return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
                {"from_logits": True})
    if kind == "probabilities":
        return {"y_true": y, "y_pred": soft(rng, (b, c), dt)}, {}
    if kind == "label_smoothing":
        return ({"y_true": y, "y_pred": logits(rng, (b, c), dt)},
                {"from_logits": True, "label_smoothing": float(detail), "reduction": "none"})
    if kind == "axis":
        return ({"y_true": np.moveaxis(soft(rng, (3, c), "float32"), -1, 0),
                 "y_pred": logits(rng, (c, 3), dt)},
                {"from_logits": True, "axis": 0, "label_smoothing": 0.1, "reduction": "none"})
    return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
            {"from_logits": True, "reduction": detail})


FEATURES_OF = {
    SCCE: ["from_logits", "probabilities", "ignore_class:-1", "rank3+", "batch0",
           "reduction:none", "reduction:mean", "reduction:mean_with_sample_weight"],
    CCE: ["from_logits", "probabilities", "label_smoothing:0.2", "axis:0", "reduction:sum",
          "reduction:mean_with_sample_weight"],
}
assert all(f.partition(":")[0] in FEATURES for fs in FEATURES_OF.values() for f in fs)
SHORT = {SCCE: "keras_sparse", CCE: "keras_dense"}
CASES = [(api, dt, f) for api, fs in FEATURES_OF.items() for dt in DT for f in fs]


@pytest.mark.parametrize("case", CASES,
                         ids=[f"keras-cpu-{d}-{SHORT[a]}-{f}" for a, d, f in CASES])
def test_conforms(case):
    api, dt, feature = case
    rng = rng_for(api, dt, feature)
    args, init = build(api, feature, dt, rng)
    exp = expectation(Call(api, args, init), keras="keras3")
    assert exp.raises is None, f"the builder made an invalid case: {exp.raises}"
    up = rng.choice([0.5, -1.25, 2.0, 1.0], size=exp["loss"].shape).astype(exp["loss"].dtype)
    call = Call(api, args, init, upstream=up)
    out = runner(api, init).run(call)
    assert set(out) == set(exp.outputs) == {"loss", "grad_logits"}
    assert out["loss"].dtype == np.float32  # Keras 3's loss dtype, whatever y_pred's
    judge(out, call, keras="keras3")


def test_documented_example():
    """TF-SEMANTICS §6.3: y_true [1, 2], y_pred [[.05, .95, 0], [.1, .8, .1]] → 1.1769392."""
    call = Call(SCCE, {"y_true": np.array([1, 2]),
                       "y_pred": np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], np.float32)})
    out = runner(SCCE).run(call)
    assert out["loss"] == np.float32(1.1769392)
    judge(out, call, keras="keras3")


@pytest.mark.parametrize("init", [{"from_logits": True}, {}, {"reduction": "none"}],
                         ids=["from_logits", "probabilities", "none"])
def test_bad_labels_raise_on_cpu(init):
    rng = rng_for("bad", str(init))
    y_pred = logits(rng, (4, 5), "float32") if init.get("from_logits") else \
        soft(rng, (4, 5), "float32")
    call = Call(SCCE, {"y_true": np.array([0, 5, -1, 2]), "y_pred": y_pred}, init)
    expect_raises(runner(SCCE, init), call, keras="keras3")


def test_ignored_out_of_range_label_does_not_raise():
    """The ignored id may be out of range: it never reaches the range check (§6.1)."""
    init = {"ignore_class": 255, "from_logits": True}
    call = Call(SCCE, {"y_true": np.array([[1], [255]]),
                       "y_pred": logits(rng_for("ign"), (2, 3), "float32")}, init)
    judge(runner(SCCE, init).run(call), call, keras="keras3")


F = np.float32
REJECTIONS = {
    "auto_reduction": (SCCE, {"y_true": np.array([0, 1]), "y_pred": np.eye(2, dtype=F)},
                       {"reduction": "auto"}),
    "weight_rank": (SCCE, {"y_true": np.zeros((3, 2), np.int64),
                           "y_pred": np.zeros((3, 2, 4), F), "sample_weight": np.ones(3, F)},
                    {"from_logits": True}),
    "sparse_axis": (SCCE, {"y_true": np.zeros((2, 4), np.int64), "y_pred": np.zeros((2, 3, 4), F)},
                    {"axis": 1}),
    "dense_shape_mismatch": (CCE, {"y_true": np.eye(3, dtype=F), "y_pred": np.zeros((3, 4), F)},
                             {}),
    "scalar_output": (SCCE, {"y_true": np.int64(0), "y_pred": F(1.0)}, {}),
}


@pytest.mark.parametrize("name", list(REJECTIONS))
def test_rejections(name):
    api, args, init = REJECTIONS[name]
    expect_raises(runner(api, init), Call(api, args, init), keras="keras3")


def test_info():
    info = TARGET.info()
    assert info.available and info.name == "keras" and info.keras == "keras3"
    assert info.version == keras.__version__ and info.deviations is None
    assert set(info.apis) == set(KERAS_APIS)
    for support in info.apis.values():
        assert support.native <= set(FEATURES) and not support.composed
    # a CPU mode per backend, named by it; only the configured backend's can run
    backend = keras.backend.backend()
    modes = {(m.device, m.profile, m.name): m for m in info.modes}
    assert set(modes) == {("cpu", "cpu", b) for b in KERAS_BACKENDS} | {("cuda", "gpu", backend)}
    assert [m.name for m in info.modes if m.device == "cpu" and m.available] == [backend]
    assert info.modes[0].name == backend  # the default mode
    other = next(m for m in info.modes if m.device == "cpu" and m.name != backend)
    assert f"KERAS_BACKEND={other.name}" in other.reason
    if backend == "tensorflow":
        import tensorflow as tf

        has_gpu = bool(tf.config.list_physical_devices("GPU"))
        assert modes["cuda", "gpu", backend].available == has_gpu


def test_keras_option():
    assert KerasTarget(keras="keras3").keras == "keras3"
    with pytest.raises(TargetError, match="keras2"):
        KerasTarget(keras="keras2")


@pytest.mark.parametrize("setup", [
    Setup(API_IDS[0]),
    Setup(SCCE, device="cpu", profile="xla"),
    Setup(SCCE, device="tpu", profile="cpu"),
], ids=["not_a_keras_api", "xla", "unknown_device"])
def test_prepare_rejects_impossible_setups(setup):
    with pytest.raises(TargetError):
        TARGET.prepare(setup)


def test_constructor_error_is_a_rejection():
    init = {"reduction": "weighted_mean"}
    r = runner(SCCE, init)  # preparing succeeds; the call raises Keras's ValueError
    with pytest.raises(ValueError, match="reduction"):
        r.run(Call(SCCE, {"y_true": np.array([0]), "y_pred": np.eye(1, 2, dtype=F)}, init))


# --------------------------------------------------------------------------- snippets


def test_snippets_reproduce_the_runner():
    """``snippet`` writes Keras's call out on the configured backend; run standalone
    (without xentconf) it gives the runner's outputs bit for bit, and raises where the
    runner raises."""
    cases = {}
    for api, dt, feature in [(SCCE, "float32", "from_logits"),
                             (SCCE, "bfloat16", "reduction:mean_with_sample_weight"),
                             (SCCE, "float16", "rank3+"),
                             (CCE, "float64", "axis:0"),
                             (CCE, "bfloat16", "probabilities")]:
        rng = rng_for("snippet", api, dt, feature)
        args, init = build(api, feature, dt, rng)
        up = None
        if feature != "probabilities":  # one call without an upstream gradient
            shape = expectation(Call(api, args, init), keras="keras3")["loss"].shape
            up = rng.choice([0.5, -1.25, 2.0], size=shape).astype(np.float32)
        setup = Setup(api, init=tuple(sorted(init.items())), grad=up is not None)
        cases[f"{SHORT[api]}-{dt}-{feature}"] = (setup, Call(api, args, init, upstream=up))
    rejections = {}
    for name in ("auto_reduction", "dense_shape_mismatch"):
        api, args, init = REJECTIONS[name]
        rejections[name] = (Setup(api, init=tuple(sorted(init.items()))),
                            Call(api, args, init))
    check_snippets(TARGET, cases, rejections=rejections)

"""The TensorFlow adapter against the oracle, on the real TensorFlow (skipped without it).

TensorFlow is the reference implementation, so these tests check the oracle as much as
the adapter. Every API × dtype × representative feature, eager on the CPU (profile
``cpu``) and as ``tf.function(jit_compile=True)`` on the CPU (profile ``xla``), gradients
included, must conform at the ``stable`` grade or differ only as TensorFlow's own
mechanisms allow (``as-tensorflow``, SPEC §2: flushed denormals, compat.v1's float32
reduction, overflow, ...) — except where an entry of the target's known-deviations file
matches the case id ``tensorflow-<device>-<dtype>-<api>-<feature>``: there the deviation
must be real (a ``fail`` entry: outside ``stable``, yet a precision loss only) or TensorFlow
must still reach the entry's grade. Every pinned case of the file is run and must reach
exactly its declared grade, so an entry that stops deviating fails here. The cases that
showed each mechanism before it was modelled (pinned in the deviations file then) are run
too: TensorFlow misses the grade there, and only as its mechanisms allow.

Error rows: TensorFlow's rejections raise in both modes; out-of-range sparse labels raise
on the eager CPU and give NaN rows under XLA (the oracle's ``xla`` profile).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import math
import zlib

import ml_dtypes
import numpy as np
import pytest
from tests.adapters.conftest import check_snippets, expect_raises, expectation, judge, require

from xentconf.adapters.tensorflow import API_SHORT_NAMES, DEVIATIONS, TensorFlowTarget
from xentconf.conformance import deviations as devmod
from xentconf.conformance.verdict import judge as verdict
from xentconf.oracle.case import parse_case
from xentconf.protocol import API_IDS, FEATURES, KERAS_APIS, Call, Setup, TargetError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

tf = require("tensorflow", "tensorflow")

HAS_TF_KERAS = importlib.util.find_spec("tf_keras") is not None
HAS_KERAS3 = importlib.util.find_spec("keras") is not None
SHORT_TO_API = {v: k for k, v in API_SHORT_NAMES.items()}
DT = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16),
      "float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
MODES = {"eager": ("cpu", "cpu"), "xla": ("cpu", "xla")}  # mode -> (device, profile)
V1_REDUCTIONS = ("none", "weighted_sum", "weighted_sum_over_batch_size", "weighted_mean",
                 "weighted_sum_by_nonzero_weights")
# a logit gap whose exp is a subnormal of the dtype (float16: not flushed, no deviation)
UNDERFLOW_GAP = {"float16": -12.0, "bfloat16": -88.5, "float32": -88.5, "float64": -720.0}
GRADES = ("exact", "faithful", "tf-precision", "stable")

TARGETS = {"keras2": TensorFlowTarget(keras="keras2") if HAS_TF_KERAS else None,
           "keras3": TensorFlowTarget(keras="keras3") if HAS_KERAS3 else None}
_RUNNERS: dict[tuple, object] = {}


def runner(variant: str, api: str, mode: str, init: dict | None = None):
    """A runner per (Keras variant, API, mode, constructor kwargs), built once."""
    target = TARGETS[variant]
    if target is None:
        pytest.skip(f"{'tf_keras' if variant == 'keras2' else 'keras'} is not installed")
    device, profile = MODES[mode]
    setup = Setup(api, device=device, profile=profile, init=tuple(sorted((init or {}).items())),
                  grad=True)
    key = (variant, setup)
    if key not in _RUNNERS:
        _RUNNERS[key] = target.prepare(setup)
    return _RUNNERS[key]


def load_deviations() -> list[dict]:
    with open(DEVIATIONS, "rb") as f:
        return tomllib.load(f)["deviation"]


DEVIATION_ENTRIES = load_deviations()


LOADED = {d.id: d for d in devmod.load(DEVIATIONS)}


def matching_deviations(case_id: str, variant: str) -> list[dict]:
    """Entries matching ``case_id`` as a run matches them (tags exactly)."""
    return [d for d in DEVIATION_ENTRIES if LOADED[d["id"]].applies(case_id, variant)]


# --------------------------------------------------------------------------- inputs


def logits(rng, shape, dt):
    return (rng.standard_normal(shape) * 3).astype(np.float32).astype(DT[dt])


def soft(rng, shape, dt, axis=-1):
    """Rows of multiples of 1/64 summing to exactly 1 along ``axis`` (exact in every dtype)."""
    shape = tuple(shape)
    ax = axis % len(shape)
    moved = shape[:ax] + shape[ax + 1:]
    c = shape[ax]
    counts = rng.multinomial(64 - c, [1 / c] * c, size=moved) + 1
    return np.moveaxis(counts / 64, -1, ax).astype(np.float32).astype(DT[dt])


def labels(rng, shape, classes):
    return rng.integers(0, classes, shape).astype(np.int64 if rng.random() < 0.5 else np.int32)


def special_rows(dt, sparse: bool):
    """±inf, NaN and huge logits (TF-SEMANTICS §1.1 table), one row each."""
    inf, nan = math.inf, math.nan
    x = np.array([[0, -inf, 1], [0, -inf, 1], [nan, 0, 0], [1e4, -1e4, 0], [-inf, -inf, -inf],
                  [inf, 0, 0], [2, -1, 0.5]], np.float32).astype(DT[dt])
    y = np.array([0, 1, 1, 1, 0, 1, 2])
    if sparse:
        return x, y
    dense = np.eye(3, dtype=np.float32)[y]
    dense[0] = [0.5, 0, 0.5]  # a zero label at -inf: NaN eager, finite under XLA (§1.2)
    return x, dense.astype(DT[dt])


def underflow_rows(dt):
    gap = UNDERFLOW_GAP[dt]
    return np.array([[0, gap], [gap, 0], [0, 0]], np.float32).astype(DT[dt]), np.array([0, 0, 1])


def build(short: str, feature: str, dt: str, variant: str, rng):
    """(args, init) of one representative call; valid inputs (the oracle does not raise)."""
    kind, _, detail = feature.partition(":")
    b, c = 4, 5
    if short == "raw_sparse":
        if kind == "batch0":
            return {"features": logits(rng, (0, c), dt), "labels": np.zeros(0, np.int32)}, {}
        if feature == "special_values:inf_nan":
            x, y = special_rows(dt, True)
            return {"features": x, "labels": y}, {}
        if feature == "special_values:underflow":
            x, y = underflow_rows(dt)
            return {"features": x, "labels": y}, {}
        return {"features": logits(rng, (b, c), dt), "labels": labels(rng, b, c)}, {}
    if short == "raw_dense":
        if kind == "batch0":
            return {"features": logits(rng, (0, c), dt), "labels": soft(rng, (0, c), dt)}, {}
        if feature == "special_values:inf_nan":
            x, y = special_rows(dt, False)
            return {"features": x, "labels": y}, {}
        if feature == "special_values:underflow":
            x, y = underflow_rows(dt)
            return {"features": x, "labels": np.eye(2, dtype=np.float32)[y].astype(DT[dt])}, {}
        if kind == "broadcast_labels":
            return {"features": logits(rng, (3, c), dt), "labels": soft(rng, (1, c), dt)[0]}, {}
        return {"features": logits(rng, (b, c), dt), "labels": soft(rng, (b, c), dt)}, {}
    if short == "nn_sparse":
        if kind == "rank1":
            return {"labels": np.int32(2), "logits": logits(rng, (c,), dt)}, {}
        if kind == "rank3+":
            return {"labels": labels(rng, (2, 3), 4), "logits": logits(rng, (2, 3, 4), dt)}, {}
        if feature == "special_values:inf_nan":
            x, y = special_rows(dt, True)
            return {"labels": y, "logits": x}, {}
        return {"labels": labels(rng, b, c), "logits": logits(rng, (b, c), dt)}, {}
    if short == "nn_dense":
        if kind == "axis":
            return {"labels": soft(rng, (c, 3), dt, axis=0), "logits": logits(rng, (c, 3), dt),
                    "axis": 0}, {}
        if kind == "rank3+":
            return {"labels": soft(rng, (2, 3, 4), dt), "logits": logits(rng, (2, 3, 4), dt)}, {}
        if kind == "broadcast_labels":
            return {"labels": soft(rng, (1, c), dt)[0], "logits": logits(rng, (3, c), dt)}, {}
        return {"labels": soft(rng, (b, c), dt), "logits": logits(rng, (b, c), dt)}, {}
    if short == "v1_sparse":
        args = {"labels": labels(rng, b, c), "logits": logits(rng, (b, c), dt)}
        if kind == "reduction":
            args.update(weights=np.array([0.5, 0, 2, 1], np.float32), reduction=detail)
        elif kind == "weights":  # [B,1] labels are squeezed; scalar Python weight
            args.update(labels=args["labels"][:, None], weights=2.0)
        elif kind == "batch0":
            args = {"labels": np.zeros(0, np.int64), "logits": logits(rng, (0, c), dt)}
        return args, {}
    if short == "v1_dense":
        args = {"onehot_labels": soft(rng, (b, c), dt), "logits": logits(rng, (b, c), dt)}
        if kind == "label_smoothing":
            args.update(label_smoothing=float(detail), reduction="none")
        elif kind == "reduction":
            args.update(weights=np.array([0.5, 0, 2, 1], np.float32), reduction=detail)
        elif kind == "weights":
            args.update(weights=0.0)
        return args, {}
    sw = np.array([0.5, 0, 2, 1], np.float32)
    probs = soft(rng, (b, c), dt)
    if kind == "regimes":  # a dominant logit: gradients below float32's smallest normal
        x = np.array([[0, -88.5], [0, -3]], np.float32).astype(DT[dt])
        y = np.array([0, 0]) if short == "keras_sparse" else np.eye(2, dtype=np.float32)[[0, 0]]
        return {"y_true": y, "y_pred": x}, {"from_logits": True, "reduction": "sum"}
    if short == "keras_sparse":
        y = labels(rng, b, c)
        if kind == "from_logits":
            return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
                    {"from_logits": True})
        if kind == "probabilities":
            return {"y_true": y, "y_pred": probs}, {}
        if kind == "ignore_class":
            y[1] = int(detail)
            return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
                    {"from_logits": True, "ignore_class": int(detail)})
        if kind == "rank3+":
            return ({"y_true": labels(rng, (2, 3), 4), "y_pred": logits(rng, (2, 3, 4), dt)},
                    {"from_logits": True, "reduction": "sum"})
        return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
                {"from_logits": True, "reduction": detail})
    # keras_dense
    y = soft(rng, (b, c), "float32")
    if kind == "from_logits":
        return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
                {"from_logits": True})
    if kind == "probabilities":
        return {"y_true": y, "y_pred": probs}, {}
    if kind == "label_smoothing":
        return ({"y_true": y, "y_pred": logits(rng, (b, c), dt)},
                {"from_logits": True, "label_smoothing": float(detail), "reduction": "none"})
    if kind == "axis":
        return ({"y_true": soft(rng, (c, 3), "float32", axis=0),
                 "y_pred": logits(rng, (c, 3), dt)},
                {"from_logits": True, "axis": 0, "reduction": "none"})
    return ({"y_true": y, "y_pred": logits(rng, (b, c), dt), "sample_weight": sw},
            {"from_logits": True, "reduction": detail})


FEATURES_OF = {
    "raw_sparse": ["backprop", "batch0", "special_values:inf_nan", "special_values:underflow"],
    "raw_dense": ["backprop", "batch0", "broadcast_labels", "special_values:inf_nan",
                  "special_values:underflow"],
    "nn_sparse": ["grad", "rank1", "rank3+", "special_values:inf_nan"],
    "nn_dense": ["grad", "axis:0", "rank3+", "broadcast_labels"],
    "v1_sparse": [*(f"reduction:{r}" for r in V1_REDUCTIONS), "weights:labels_B1", "batch0"],
    "v1_dense": ["label_smoothing:0.1", "reduction:weighted_mean", "weights:zero"],
    "keras_sparse": ["from_logits", "probabilities", "ignore_class:-1", "rank3+",
                     "reduction:none"],
    "keras_dense": ["from_logits", "probabilities", "label_smoothing:0.2", "axis:0",
                    "reduction:sum"],
}
KERAS3_EXTRA = {"keras_sparse": ["reduction:mean_with_sample_weight", "reduction:mean"],
                "keras_dense": ["reduction:mean_with_sample_weight"]}
assert all(f.partition(":")[0] in FEATURES for fs in FEATURES_OF.values() for f in fs)

CASES = [("keras2", short, dt, f) for short, fs in FEATURES_OF.items() for dt in DT for f in fs]
CASES += [("keras3", short, dt, f) for short in ("keras_sparse", "keras_dense") for dt in DT
          for f in FEATURES_OF[short] + KERAS3_EXTRA[short]]
# Keras 3 computes float64 y_pred in float32: a float32 subnormal gradient is flushed
CASES += [("keras3", short, "float64", "regimes:dominant") for short in ("keras_sparse",
                                                                          "keras_dense")]


def case_id(short: str, dt: str, feature: str, device: str = "cpu") -> str:
    return f"tensorflow-{device}-{dt}-{short}-{feature}"


def seeded(*parts) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(parts).encode()))


def upstream(rng, shape, dtype):
    return rng.choice([0.5, -1.25, 2.0, 1.0, -0.75], size=shape).astype(dtype)


def reaches(outputs: dict, call: Call, grade: str, *, profile: str, keras: str) -> bool:
    try:
        judge(outputs, call, profile=profile, keras=keras, grade=grade)
    except AssertionError:
        return False
    return True


def best_grade(outputs: dict, call: Call, *, profile: str, keras: str) -> str:
    """The best grade every element reaches (exact … stable), else fail."""
    for grade in GRADES:
        if reaches(outputs, call, grade, profile=profile, keras=keras):
            return grade
    return "fail"


def judge_precision_loss(outputs: dict, call: Call, *, profile: str, keras: str) -> None:
    """For a ``fail`` deviation: everything but precision agrees — shapes, dtypes, NaN/inf
    placement — and each finite value is within the stable budget plus float32's precision
    of the exact value, plus the dtype's smallest normal (a flushed subnormal)."""
    exp = expectation(call, profile=profile, keras=keras)
    assert exp.raises is None
    for name, got in outputs.items():
        o = exp.outputs[name]
        got = np.asarray(got)
        assert got.shape == o.shape and got.dtype == o.dtype, name
        g, r, x = got.astype(np.float64), o.rounded64, o.exact64
        assert np.array_equal(np.isnan(g), np.isnan(r)), f"{name}: NaN placement"
        inf = np.isinf(r)
        assert np.array_equal(g[inf], r[inf]), f"{name}: inf placement"
        fin = np.isfinite(r)
        tiny = float(np.finfo(np.float32 if o.dtype == DT["bfloat16"] else o.dtype).tiny)
        tol = o.budgets["stable"][fin] + 2.0 ** -20 * np.maximum(np.abs(x[fin]), 1.0) + tiny
        assert np.all(np.abs(g[fin] - x[fin]) <= tol), f"{name}: more than a precision loss"


def check(out: dict, call: Call, cid: str, *, profile: str, keras: str) -> None:
    """``judge`` at the stable grade, unless a known deviation matches ``cid``: then
    TensorFlow must reach the entry's grade, or — for a ``fail`` entry — the deviation must
    be real (outside stable) yet a loss of precision only. A ``fail`` entry cannot show where
    every finite result is exactly zero (an empty batch, zero weights): those conform."""
    devs = matching_deviations(cid, keras)
    exp = expectation(call, profile=profile, keras=keras)
    v = verdict(exp, out, "stable", tuple(out))
    if v.ok or v.as_tensorflow:
        return
    if not devs:
        judge(out, call, profile=profile, keras=keras)
        return
    # several entries can match (a bfloat16 kernel that also flushes subnormals): the
    # worst grade they declare is what TensorFlow is held to
    worst = max(devs, key=lambda d: (*GRADES, "fail").index(d.get("grade", "fail")))
    grade = worst.get("grade", "fail")
    if grade != "fail":
        judge(out, call, profile=profile, keras=keras, grade=grade)
        return
    exp = expectation(call, profile=profile, keras=keras)
    values = np.concatenate([o.exact64.ravel() for o in exp.outputs.values()])
    if not np.any(np.isfinite(values) & (values != 0)):
        judge(out, call, profile=profile, keras=keras)
        return
    assert not reaches(out, call, "stable", profile=profile, keras=keras), (
        f"{cid} matches the deviation {worst['id']!r} but conforms at the stable grade")
    judge_precision_loss(out, call, profile=profile, keras=keras)


# --------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", CASES,
                         ids=[f"{v}-{case_id(s, d, f)}" for v, s, d, f in CASES])
def test_conforms(case, mode):
    variant, short, dt, feature = case
    api = SHORT_TO_API[short]
    device, profile = MODES[mode]
    cid = case_id(short, dt, feature, device)
    rng = seeded(variant, cid)
    args, init = build(short, feature, dt, variant, rng)
    exp = expectation(Call(api, args, init), profile=profile, keras=variant)
    assert exp.raises is None, f"the builder made an invalid case: {exp.raises}"
    up = upstream(rng, exp["loss"].shape, exp["loss"].dtype)
    call = Call(api, args, init, upstream=up)
    out = runner(variant, api, mode, init).run(call)
    assert set(out) == set(exp.outputs), f"outputs {sorted(out)} != {sorted(exp.outputs)}"
    check(out, call, cid, profile=profile, keras=variant)


def test_every_deviation_matches_a_case():
    """No entry of the deviations file is dead: each matches a representative case above,
    where ``test_conforms`` holds TensorFlow to it."""
    ids = [(v, case_id(s, d, f)) for v, s, d, f in CASES]
    for entry in DEVIATION_ENTRIES:
        hits = [cid for v, cid in ids if LOADED[entry["id"]].applies(cid, v)]
        if not hits and ":" in entry["id"].split("-", 4)[4]:
            # an entry naming tags of generated cases (near_max, dominant, probs, ...):
            # its pinned case shows it (test_pinned_case_shows_the_deviation)
            assert "pinned" in entry, entry["id"]
            continue
        assert hits, f"deviation {entry['id']!r} matches none of the representative cases"


# --------------------------------------------------------------------------- deviations


def test_deviations_file_schema():
    keys = {"id", "reason", "link", "grade", "keras", "profile", "nonfinite", "pinned"}
    shorts = set(API_SHORT_NAMES.values())
    seen = set()
    for entry in DEVIATION_ENTRIES:
        assert set(entry) <= keys and {"id", "reason"} <= set(entry), entry.get("id")
        assert entry["id"] not in seen
        seen.add(entry["id"])
        target, device, dtype, api, feature = entry["id"].split("-", 4)
        assert target == "tensorflow" and device in ("cpu", "cuda", "*")
        assert dtype in (*DT, "*") and (api in shorts or "*" in api) and feature
        assert entry["reason"].strip() and "\n\n" not in entry["reason"]
        assert entry.get("grade", "fail") in (*GRADES, "fail")
        assert entry.get("keras", "keras2") in ("keras2", "keras3")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("entry", DEVIATION_ENTRIES, ids=[d["id"] for d in DEVIATION_ENTRIES])
def test_pinned_case_shows_the_deviation(entry, mode):
    """The pinned case is matched by the entry's pattern and TensorFlow reaches exactly the
    declared grade on it: the deviation is real, and no worse than declared."""
    assert "pinned" in entry, f"{entry['id']}: give a pinned case that shows the deviation"
    case = parse_case(json.dumps(entry["pinned"]))
    api = case["api"]
    variant = case["keras"] or "keras2"
    assert entry.get("keras", variant) == variant
    diff = {"features", "logits", "y_pred"} & set(case["args"])
    dtype = case["args"][diff.pop()].dtype.name
    device, profile = MODES[mode]
    fields = entry["id"].split("-", 4)
    for pattern, value in zip(fields[:4], ("tensorflow", device, dtype, API_SHORT_NAMES[api])):
        assert fnmatch.fnmatchcase(value, pattern), f"{entry['id']} does not match its case"
    init = case["init"] or {}
    call = Call(api, case["args"], init, upstream=case["upstream"])  # a gradient is judged
    out = runner(variant, api, mode, init).run(call)  # only with an upstream
    got = best_grade(out, call, profile=profile, keras=variant)
    assert got == entry.get("grade", "fail"), f"{entry['id']}: TensorFlow reaches {got}"


# --------------------------------------------------------------------------- mechanisms

_HEX_ROW = ["0x1.82p-1", "-0x1.1ep-1", "0x1.16p-3", "0x1.5cp-1", "-0x1.36p-1", "0x1.1p+1",
            "-0x1.98p-1", "0x1.8p+0", "0x1.5ap+6"]
# (the mechanism, required grade, keras variant, a case in `xentconf oracle`'s format):
# the cases that showed each mechanism when it was a deviation entry of its own
MECHANISM_CASES = [
    ("compat-v1-float32", "stable", "keras2",
     {"api": API_IDS[4], "args": {"labels": {"dtype": "int32", "data": [0, 3, 1]},
      "logits": {"dtype": "float64", "data": [[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4],
                                              [-100, 100, -100, -100]]}}}),
    ("compat-v1-float32", "stable", "keras2",
     {"api": API_IDS[5], "args": {
         "onehot_labels": {"dtype": "float64", "data": [[1, 0, 0, 0], [0, 0, 0, 1],
                                                        [0, 1, 0, 0]]},
         "logits": {"dtype": "float64", "data": [[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4],
                                                 [-100, 100, -100, -100]]}}}),
    ("native-half", "exact", "keras2",
     {"api": API_IDS[0], "args": {"features": {"dtype": "float16", "data": [[6.25, 0], [3, 0]]},
                                  "labels": {"dtype": "int64", "data": [0, 0]}}}),
    ("native-half", "exact", "keras2",
     {"api": API_IDS[0], "args": {"features": {"dtype": "bfloat16", "data": [[6.25, 0], [3, 0]]},
                                  "labels": {"dtype": "int64", "data": [0, 0]}}}),
    ("native-half", "exact", "keras2",
     {"api": API_IDS[1], "args": {"features": {"dtype": "bfloat16", "data": [[6.25, 0], [3, 0]]},
                                  "labels": {"dtype": "bfloat16", "data": [[1, 0], [1, 0]]}}}),
    ("native-half", "exact", "keras2",
     {"api": API_IDS[2], "args": {"labels": {"dtype": "int64", "data": [0, 0]},
                                  "logits": {"dtype": "bfloat16", "data": [[6.25, 0], [3, 0]]}}}),
    ("flush-denormals", "stable", "keras2",
     {"api": API_IDS[0], "args": {"features": {"dtype": "float32", "data": [[0, -88.5]]},
                                  "labels": {"dtype": "int64", "data": [0]}}}),
    ("flush-denormals", "stable", "keras2",
     {"api": API_IDS[0], "args": {"features": {"dtype": "float64", "data": [[0, -720]]},
                                  "labels": {"dtype": "int64", "data": [0]}}}),
    ("flush-denormals", "stable", "keras2",
     {"api": API_IDS[0], "args": {"features": {"dtype": "bfloat16", "data": [[0, -88.5]]},
                                  "labels": {"dtype": "int64", "data": [0]}}}),
    ("flush-denormals", "stable", "keras2",
     {"api": API_IDS[0], "args": {"features": {"dtype": "bfloat16", "data": [_HEX_ROW]},
                                  "labels": {"dtype": "int32", "data": [8]}}}),
    ("keras3-float32", "stable", "keras3",
     {"api": API_IDS[6], "keras": "keras3", "init": {"from_logits": True, "reduction": "sum"},
      "args": {"y_true": {"dtype": "int64", "data": [0, 0]},
               "y_pred": {"dtype": "float64", "data": [[0, -88.5], [0, -3]]}},
      "upstream": {"dtype": "float32", "data": 1.0}}),
    ("dense-shift-overflow", "stable", "keras2",
     {"api": API_IDS[1], "args": {"features": {"dtype": "float32", "data": [[3e38, -3e38]]},
                                  "labels": {"dtype": "float32", "data": [[0.5, 0.5]]}}}),
    ("held-loss-overflow", "stable", "keras2",
     {"api": API_IDS[4], "args": {"labels": {"dtype": "int32", "data": [1]},
                                  "logits": {"dtype": "float64", "data": [[3e38, -3e38]]}}}),
]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("mechanism, grade, variant, case", MECHANISM_CASES,
                         ids=[f"{m}-{i}" for i, (m, *_) in enumerate(MECHANISM_CASES)])
def test_mechanism_cases_are_as_tensorflow(mechanism, grade, variant, case, mode):
    """TensorFlow misses the grade on the case, and only as its mechanisms allow."""
    if TARGETS[variant] is None:
        pytest.skip(f"{variant} is not installed")
    c = parse_case(json.dumps(case))
    init = c["init"] or {}
    call = Call(c["api"], c["args"], init, upstream=c["upstream"])
    out = runner(variant, c["api"], mode, init).run(call)
    _, profile = MODES[mode]
    exp = expectation(call, profile=profile, keras=variant)
    names = tuple(n for n in out if n in exp.outputs and (n != "grad_logits" or c["upstream"]
                                                             is not None))
    v = verdict(exp, out, grade, names)
    assert v.ok or v.as_tensorflow, v.message
    if not v.ok:
        assert mechanism in v.mechanisms, v.message


# --------------------------------------------------------------------------- bad labels

BAD_LABEL_CASES = [
    ("keras2", "raw_sparse", "float32", {}), ("keras2", "raw_sparse", "float16", {}),
    ("keras2", "raw_sparse", "bfloat16", {}), ("keras2", "raw_sparse", "float64", {}),
    ("keras2", "nn_sparse", "float32", {}), ("keras2", "v1_sparse", "float32", {}),
    ("keras2", "v1_sparse", "float64", {"reduction": "none"}),
    ("keras2", "keras_sparse", "float32", {"from_logits": True}),
    ("keras2", "keras_sparse", "float32", {"reduction": "none"}),
    ("keras3", "keras_sparse", "float32", {"from_logits": True, "reduction": "none"}),
    ("keras3", "keras_sparse", "float64", {}),
]


def bad_label_call(short, dt, opts):
    """Labels [0, 5, -1, 2] for 5 classes: rows 1 and 2 are out of range."""
    rng = seeded("bad", short, dt)
    x = logits(rng, (4, 5), dt)
    y = np.array([0, 5, -1, 2], np.int64)
    api = SHORT_TO_API[short]
    if short == "raw_sparse":
        return Call(api, {"features": x, "labels": y}), {}
    if short == "nn_sparse":
        return Call(api, {"labels": y.reshape(2, 2), "logits": x.reshape(2, 2, 5)}), {}
    if short == "v1_sparse":
        return Call(api, {"labels": y, "logits": x, **opts}), {}
    if not opts.get("from_logits"):
        x = soft(rng, (4, 5), dt)
    return Call(api, {"y_true": y, "y_pred": x}, opts), opts


@pytest.mark.parametrize("case", BAD_LABEL_CASES,
                         ids=[f"{v}-{case_id(s, d, 'bad_labels')}-{i}"
                              for i, (v, s, d, _) in enumerate(BAD_LABEL_CASES)])
def test_bad_labels_raise_on_cpu(case):
    variant, short, dt, opts = case
    call, init = bad_label_call(short, dt, opts)
    expect_raises(runner(variant, call.api, "eager", init), call, profile="cpu", keras=variant)


@pytest.mark.parametrize("case", BAD_LABEL_CASES,
                         ids=[f"{v}-{case_id(s, d, 'bad_labels')}-{i}"
                              for i, (v, s, d, _) in enumerate(BAD_LABEL_CASES)])
def test_bad_labels_give_nan_rows_under_xla(case):
    variant, short, dt, opts = case
    call, init = bad_label_call(short, dt, opts)
    exp = expectation(call, profile="xla", keras=variant)
    up = upstream(seeded("up", short, dt), exp["loss"].shape, exp["loss"].dtype)
    call = Call(call.api, call.args, call.init, upstream=up)
    out = runner(variant, call.api, "xla", init).run(call)
    assert np.isnan(out["loss"].astype(np.float64)).any()
    check(out, call, case_id(short, dt, "bad_labels"), profile="xla", keras=variant)


# --------------------------------------------------------------------------- rejections

F = np.float32
X = np.array([[2, -5, .5, -.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]], F)
Y = np.array([0, 3, 1])
ONEHOT = np.eye(4, dtype=F)[Y]
REJECTIONS = {
    "raw_sparse-rank1_features": ("keras2", API_IDS[0], {"features": X[0], "labels": Y[:1]}, {}),
    "raw_sparse-rank2_labels": ("keras2", API_IDS[0], {"features": X, "labels": Y[:, None]}, {}),
    "raw_sparse-int_features": ("keras2", API_IDS[0],
                                {"features": X.astype(np.int32), "labels": Y}, {}),
    "raw_sparse-zero_classes": ("keras2", API_IDS[0],
                                {"features": np.zeros((3, 0), F), "labels": Y}, {}),
    "raw_sparse-batch_mismatch": ("keras2", API_IDS[0], {"features": X, "labels": Y[:2]}, {}),
    "raw_dense-not_broadcastable": ("keras2", API_IDS[1],
                                    {"features": X, "labels": ONEHOT[:2]}, {}),
    "raw_dense-rank3": ("keras2", API_IDS[1],
                        {"features": X[None], "labels": ONEHOT[None]}, {}),
    "nn_sparse-rank_mismatch": ("keras2", API_IDS[2], {"labels": Y[:, None], "logits": X}, {}),
    "nn_sparse-scalar_logits": ("keras2", API_IDS[2], {"labels": np.int32(0),
                                                       "logits": F(1.0)}, {}),
    "nn_dense-negative_axis": ("keras2", API_IDS[3], {"labels": ONEHOT[None],
                                                      "logits": X[None], "axis": -2}, {}),
    "v1_sparse-bad_reduction": ("keras2", API_IDS[4], {"labels": Y, "logits": X,
                                                       "reduction": "mean"}, {}),
    "v1_sparse-weights_not_squeezable": ("keras2", API_IDS[4], {
        "labels": Y, "logits": X, "weights": np.ones((3, 3), F)}, {}),
    "v1_dense-shape_mismatch": ("keras2", API_IDS[5], {"onehot_labels": ONEHOT[:1],
                                                       "logits": X}, {}),
    "keras_sparse-keras2_bad_reduction": ("keras2", API_IDS[6], {"y_true": Y, "y_pred": X},
                                          {"reduction": "mean"}),
    "keras_dense-keras2_shape_mismatch": ("keras2", API_IDS[7], {"y_true": ONEHOT[:, :3],
                                                                 "y_pred": X}, {}),
    "keras_sparse-keras3_auto_reduction": ("keras3", API_IDS[6], {"y_true": Y, "y_pred": X},
                                           {"reduction": "auto"}),
    "keras_sparse-keras3_weight_rank": ("keras3", API_IDS[6], {
        "y_true": np.zeros((3, 2), np.int64), "y_pred": np.zeros((3, 2, 4), F),
        "sample_weight": np.ones(3, F)}, {"from_logits": True}),
    "keras_dense-keras3_shape_mismatch": ("keras3", API_IDS[7], {"y_true": ONEHOT[:, :3],
                                                                 "y_pred": X}, {}),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(REJECTIONS))
def test_rejections(name, mode):
    variant, api, args, init = REJECTIONS[name]
    _, profile = MODES[mode]
    expect_raises(runner(variant, api, mode, init), Call(api, args, init), profile=profile,
                  keras=variant)


# --------------------------------------------------------------------------- numpy labels


@pytest.mark.parametrize("mode", list(MODES))
def test_numpy_float_labels_are_converted(mode):
    """A numpy float array of labels reaches the raw op as given; TensorFlow converts it to
    the op's int64 (truncating 1.5 to 1) where a float32 tensor would be rejected."""
    call = Call(API_IDS[0], {"features": X, "labels": np.array([0, 3, 1.5], F)},
                upstream=np.ones(3, F))
    _, profile = MODES[mode]
    judge(runner("keras2", API_IDS[0], mode).run(call), call, profile=profile)


@pytest.mark.parametrize("mode", list(MODES))
def test_numpy_uint8_labels_are_converted(mode):
    """Likewise a numpy uint8 label array (only a uint8 *tensor* hits the 'Tlabels' error)."""
    call = Call(API_IDS[0], {"features": X, "labels": Y.astype(np.uint8)})
    _, profile = MODES[mode]
    judge(runner("keras2", API_IDS[0], mode).run(call), call, profile=profile)


# --------------------------------------------------------------------------- observed XLA


@pytest.mark.parametrize("mode", list(MODES))
def test_keras2_all_ignored_is_nan(mode):
    """tf_keras with every label ignored: NaN (keras-team/tf-keras#734), eagerly and under
    XLA with the labels as constants — the adapter's XLA mode. (Observed: with ``y_true`` an
    input of the jit-compiled function, XLA gives 0.0 instead.)"""
    api = API_IDS[6]
    init = {"ignore_class": -1}
    call = Call(api, {"y_true": np.array([-1, -1]),
                      "y_pred": np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], F)}, init)
    _, profile = MODES[mode]
    out = runner("keras2", api, mode, init).run(call)
    assert np.isnan(out["loss"])
    judge(out, call, profile=profile, keras="keras2")


# --------------------------------------------------------------------------- the target


def test_info():
    target = TensorFlowTarget()
    info = target.info()
    assert info.available and info.name == "tensorflow" and info.version == tf.__version__
    assert info.keras == ("keras2" if HAS_TF_KERAS else "keras3")
    assert info.deviations and DEVIATIONS.is_file() and str(DEVIATIONS) == info.deviations
    modes = {(m.device, m.profile): m for m in info.modes}
    assert set(modes) == {("cpu", "cpu"), ("cpu", "xla"), ("cuda", "gpu"), ("cuda", "xla")}
    assert modes["cpu", "cpu"].available and modes["cpu", "xla"].available
    assert modes["cpu", "cpu"].name == modes["cuda", "gpu"].name == "eager"
    assert modes["cpu", "xla"].name == modes["cuda", "xla"].name == "xla"
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    for key in (("cuda", "gpu"), ("cuda", "xla")):
        assert modes[key].available == has_gpu and (has_gpu or modes[key].reason)
    assert set(info.apis) == set(API_IDS)
    for api, support in info.apis.items():
        assert support.native <= set(FEATURES) and not support.composed
        if api in ("tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits",
                   "tf.raw_ops.SoftmaxCrossEntropyWithLogits"):
            assert "backprop" in support.native


def test_keras_variant_option():
    if HAS_KERAS3:
        assert TensorFlowTarget(keras="keras3").info().keras == "keras3"
    with pytest.raises(TargetError, match="keras"):
        TensorFlowTarget(keras="keras4")


@pytest.mark.parametrize("setup", [
    Setup("tf.nn.no_such_loss"),
    Setup(API_IDS[0], device="cpu", profile="gpu"),
    Setup(API_IDS[0], device="tpu", profile="cpu"),
], ids=["unknown_api", "cpu_with_gpu_profile", "unknown_device"])
def test_prepare_rejects_impossible_setups(setup):
    with pytest.raises(TargetError):
        TensorFlowTarget().prepare(setup)


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is present")
def test_prepare_cuda_without_gpu():
    with pytest.raises(TargetError, match="GPU"):
        TensorFlowTarget().prepare(Setup(API_IDS[0], device="cuda", profile="gpu"))


def test_bfloat16_goes_straight_through():
    """ml_dtypes.bfloat16 arrays convert with tf.constant; outputs keep TF's bfloat16."""
    x = np.array([[2, -5, 0.5, -0.1]], ml_dtypes.bfloat16)
    call = Call(API_IDS[0], {"features": x, "labels": np.array([0])},
                upstream=np.ones(1, ml_dtypes.bfloat16))
    out = runner("keras2", API_IDS[0], "eager").run(call)
    assert {v.dtype for v in out.values()} == {np.dtype(ml_dtypes.bfloat16)}
    judge(out, call)


def test_runner_checks_the_api():
    r = runner("keras2", API_IDS[0], "eager")
    with pytest.raises(TargetError):
        r.run(Call(API_IDS[2], {"labels": Y, "logits": X}))


def test_constructor_error_is_a_rejection():
    """A Keras constructor TF rejects raises when the call runs, not when preparing."""
    init = {"reduction": "not_a_reduction"}
    r = runner("keras2", KERAS_APIS[0], "eager", init)
    with pytest.raises(ValueError):
        r.run(Call(KERAS_APIS[0], {"y_true": Y, "y_pred": X}, init))


# --------------------------------------------------------------------------- snippets


def _snippet_calls(variant: str) -> dict[str, Call]:
    rng = seeded("snippet", variant)
    bf16 = DT["bfloat16"]
    x = logits(rng, (4, 5), "float32")
    y = labels(rng, 4, 5)
    sw = np.array([0.5, 0, 2, 1], np.float32)
    up4 = upstream(rng, (4,), np.float32)
    if variant == "keras3":  # the Keras classes only
        return {
            "keras_sparse-mean_with_sample_weight-grad": Call(
                KERAS_APIS[0], {"y_true": y, "y_pred": x, "sample_weight": sw},
                {"from_logits": True, "reduction": "mean_with_sample_weight"},
                upstream=np.asarray(1.5, np.float32)),
            "keras_dense-probabilities-bfloat16": Call(
                KERAS_APIS[1], {"y_true": soft(rng, (4, 5), "float32"),
                                "y_pred": soft(rng, (4, 5), "bfloat16")}, {}),
        }
    return {
        "raw_sparse-bfloat16-grad": Call(
            API_IDS[0], {"features": x.astype(bf16), "labels": y}, upstream=up4.astype(bf16)),
        "raw_dense-broadcast-grad": Call(
            API_IDS[1], {"features": x, "labels": soft(rng, (1, 5), "float32")[0]},
            upstream=up4),
        "nn_sparse-rank3-float16-grad": Call(
            API_IDS[2], {"labels": labels(rng, (2, 3), 4), "logits": logits(rng, (2, 3, 4),
                                                                             "float16")},
            upstream=upstream(rng, (2, 3), np.float16)),
        "nn_dense-axis0-float64": Call(
            API_IDS[3], {"labels": soft(rng, (5, 3), "float64", axis=0),
                         "logits": logits(rng, (5, 3), "float64"), "axis": 0}),
        "v1_sparse-weights-weighted_mean-grad": Call(
            API_IDS[4], {"labels": y, "logits": x, "weights": sw, "reduction": "weighted_mean"},
            upstream=np.asarray(2.0, np.float32)),
        "v1_dense-smoothing-python_weight-grad": Call(
            API_IDS[5], {"onehot_labels": soft(rng, (4, 5), "float32"), "logits": x,
                         "weights": 2.0, "label_smoothing": 0.1, "reduction": "none"},
            upstream=up4),
        "keras_sparse-from_logits-sum-grad": Call(
            KERAS_APIS[0], {"y_true": y, "y_pred": x, "sample_weight": sw},
            {"from_logits": True, "reduction": "sum"}, upstream=np.asarray(-0.75, np.float32)),
        "keras_dense-smoothing-axis-bfloat16-grad": Call(
            KERAS_APIS[1], {"y_true": soft(rng, (5, 3), "float32", axis=0),
                            "y_pred": logits(rng, (5, 3), "bfloat16")},
            {"from_logits": True, "label_smoothing": 0.2, "axis": 0, "reduction": "none"},
            upstream=upstream(rng, (3,), bf16)),
    }


def _snippet_setup(call: Call, mode: str) -> Setup:
    device, profile = MODES[mode]
    return Setup(call.api, device=device, profile=profile,
                 init=tuple(sorted(call.init.items())), grad=call.upstream is not None)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("variant", ["keras2", "keras3"])
def test_snippets_reproduce_the_runner(variant, mode):
    """``snippet`` writes TensorFlow's call out (eagerly, or in one
    ``tf.function(jit_compile=True)``); run standalone (without xentconf) it gives the
    runner's outputs bit for bit, and raises where the runner raises."""
    target = TARGETS[variant]
    if target is None:
        pytest.skip(f"{'tf_keras' if variant == 'keras2' else 'keras'} is not installed")
    calls = _snippet_calls(variant)
    rejections = {"nn_sparse-rank_mismatch": Call(*REJECTIONS["nn_sparse-rank_mismatch"][1:])}
    if mode == "eager":
        bad, _ = bad_label_call("raw_sparse", "float32", {})
        rejections["raw_sparse-bad_label"] = bad
    if variant == "keras2":
        init = {"reduction": "not_a_reduction"}
        rejections["keras_sparse-bad_constructor"] = Call(KERAS_APIS[0],
                                                          {"y_true": Y, "y_pred": X}, init)
    check_snippets(target, {k: (_snippet_setup(c, mode), c) for k, c in calls.items()},
                   rejections={k: (_snippet_setup(c, mode), c) for k, c in rejections.items()})

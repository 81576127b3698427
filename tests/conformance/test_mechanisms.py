"""TensorFlow's mechanisms through the real checker: a callable that computes as TensorFlow
does gets ``as-tensorflow`` (a failure under ``strict``), and a bug planted in the same API
and dtype as a mechanism is still a ``fail``. The targets (tests/conformance/targets/
tf_mechanisms.py) reproduce TensorFlow's arithmetic with numpy; no TensorFlow is needed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from xentconf.conformance import deviations as devmod
from xentconf.conformance.checker import Checker, TestSpec, _Record
from xentconf.conformance.sandbox import Sandbox, TargetSpec
from xentconf.conformance.strategies import Case
from xentconf.protocol import API_IDS

TARGETS = Path(__file__).parent / "targets"
RAW, NN, V1 = API_IDS[0], API_IDS[2], API_IDS[4]
KERAS = "tf.keras.losses.SparseCategoricalCrossentropy"


@pytest.fixture(autouse=True)
def _targets_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TARGETS))
    yield
    sys.modules.pop("tf_mechanisms", None)


def checker(attr: str, api: str, *, strict=False, accuracy="stable", deviations=()):
    spec = TargetSpec(f"tf_mechanisms:{attr}", tuple(sorted(
        {"api": api, "profile": "cpu", "keras": "keras2", "unsupported": ()}.items())))
    return Checker(sandbox=Sandbox(spec, isolate=False), target_name=f"tf_mechanisms.{attr}",
                   device="cpu", profile="cpu", keras="keras2", accuracy=accuracy,
                   deviations=list(deviations), callable_spec=True, strict=strict,
                   support_of=lambda api, feature: "unsupported" if feature == "grad"
                   else "native")


def judged(attr, api, dtype, args, init=None, tags=("moderate",), **kw):
    chk = checker(attr, api, **kw)
    spec = TestSpec(f"{attr}-cpu-{dtype}-x-regimes", api, dtype, "regimes", "native")
    case = Case(api, dtype, "regimes", args, init or {}, tags, 0)
    seen = chk.check_case(spec, case, _Record())
    chk.sandbox.close()
    return seen


RNG = np.random.default_rng(11)
X64 = RNG.standard_normal((6, 5)) * 3
Y = RNG.integers(0, 5, 6)


@pytest.mark.parametrize("reduction", ["none", "weighted_sum", "weighted_mean",
                                       "weighted_sum_by_nonzero_weights"])
def test_compat_v1_float64_reduced_in_float32_is_as_tensorflow(reduction):
    args = {"labels": Y, "logits": X64, "weights": np.linspace(0.5, 2, 6),
            "reduction": reduction}
    seen = judged("v1_sparse_float32", V1, "float64", args)
    assert seen.kind == "as-tensorflow", seen.message
    assert seen.verdict.mechanisms == ("compat-v1-float32",)
    assert seen.verdict.grade == "fail"  # float32's 1e-8 is far outside a float64 budget


@pytest.mark.parametrize("reduction", ["none", "weighted_sum_by_nonzero_weights"])
def test_compat_v1_float64_off_by_a_thousandth_fails(reduction):
    args = {"labels": Y, "logits": X64, "reduction": reduction}
    seen = judged("v1_sparse_float32_off", V1, "float64", args)
    assert seen.kind == "fail" and not seen.verdict.mechanisms, seen.message


def test_strict_makes_as_tensorflow_a_failure():
    args = {"labels": Y, "logits": X64}
    seen = judged("v1_sparse_float32", V1, "float64", args, strict=True)
    assert seen.kind == "fail" and "--strict" in seen.message


def test_a_whole_test_of_as_tensorflow_cases_is_as_tensorflow_and_records_mechanisms():
    chk = checker("v1_sparse_float32", V1)
    spec = TestSpec("v1-cpu-float64-v1_sparse-basic", V1, "float64", "basic", "native")
    out = chk.run_test(spec, max_examples=6, shrink_seconds=5, derandomize=True, seed=None)
    chk.sandbox.close()
    assert out["verdict"] == "as-tensorflow", out["message"]
    assert out["grade"] == "fail" and set(out["mechanisms"]) == {"compat-v1-float32"}


def test_a_conforming_outcome_keeps_its_example_only_when_it_is_small():
    # as-tensorflow cases are not shrunk: a small one stays as the outcome's example, a
    # large-classes one (thousands of logits) would be a megabyte of results: left out
    from xentconf.conformance.checker import EXAMPLE_ELEMENTS

    sizes = {}
    for feature in ("basic", "large_classes"):
        chk = checker("v1_sparse_float32", V1)
        spec = TestSpec(f"v1-cpu-float64-v1_sparse-{feature}", V1, "float64", feature,
                        "native")
        out = chk.run_test(spec, max_examples=6, shrink_seconds=5, derandomize=True,
                           seed=None)
        chk.sandbox.close()
        assert out["verdict"] == "as-tensorflow", out["message"]
        ex = out["counterexample"]
        sizes[feature] = None if ex is None else int(np.prod(ex["args"]["logits"]["shape"]))
    assert sizes["basic"] is not None and sizes["basic"] <= EXAMPLE_ELEMENTS
    assert sizes["large_classes"] is None


def test_flushed_subnormal_backprop_is_as_tensorflow():
    # backprop[0, 1] = e^-88.5 / (1 + e^-88.5) = 3.67e-39 is a float32 subnormal; TensorFlow
    # flushes it to 0 (TF-SEMANTICS §0's canonical example flushes likewise)
    args = {"labels": np.array([0, 1]), "features": np.array([[0, -88.5], [0, 1]], np.float32)}
    seen = judged("raw_sparse_ftz", RAW, "float32", args, tags=("dominant", "underflow"))
    assert seen.kind == "as-tensorflow", seen.message
    assert seen.verdict.mechanisms == ("flush-denormals",)


def test_loss_doubled_in_an_underflow_gap_row_fails_beside_a_flushed_element():
    # row 0's flushed backprop is as TensorFlow; row 1's loss is 302.5, a normal float32,
    # and no mechanism allows 605 there: the case fails
    args = {"labels": np.array([0, 1]),
            "features": np.array([[0, -88.5], [2.5, -300]], np.float32)}
    seen = judged("raw_sparse_ftz_gap_doubled", RAW, "float32", args,
                  tags=("underflow_gap",))
    assert seen.kind == "fail", seen.message
    assert "loss[1]" in seen.message and not seen.verdict.mechanisms


def test_an_underflow_deviation_does_not_cover_an_underflow_gap_case():
    args = {"labels": np.array([1]), "features": np.array([[2.5, -300]], np.float32)}
    entry = devmod.Deviation("raw_sparse_ftz_gap_doubled-*:underflow", "subnormals flushed")
    seen = judged("raw_sparse_ftz_gap_doubled", RAW, "float32", args,
                  tags=("underflow_gap",), deviations=[entry])
    assert seen.kind == "fail", seen.message


def test_deviation_tags_take_no_wildcards(tmp_path):
    p = tmp_path / "d.toml"
    p.write_text('[[deviation]]\nid = "t-cpu-float32-*-*:underflow*"\nreason = "r"\n')
    with pytest.raises(devmod.DeviationsError, match="match exactly"):
        devmod.load(p)


def test_row_loss_past_float64_max_held_as_inf_is_as_tensorflow():
    # row 0's loss is 2e308 (> float64 max): held in float64 it is inf, so the mean is
    # inf; the exact mean (1e308 + 0.35) is finite
    args = {"y_true": np.array([1, 0]),
            "y_pred": np.array([[1e308, -1e308], [1.0, 0.5]])}
    init = {"from_logits": True}
    seen = judged("KerasSparseHeld", KERAS, "float64", args, init)
    assert seen.kind == "as-tensorflow", seen.message
    assert "held-loss-overflow" in seen.verdict.mechanisms
    assert seen.actual["loss"]["data"] in ("inf", ["inf"])


@pytest.mark.parametrize("attr, did", [("raw_sparse_contract", "raised"),
                                       ("raw_sparse_coerce", "coerced")])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16])
def test_documented_contract_and_coercion_both_conform(attr, did, dtype):
    args = {"features": np.array([[2.0, -5, 0.5], [0, 1, 2]], np.float32),
            "labels": np.array([1.7, 2], dtype)}
    seen = judged(attr, RAW, "float32", args)
    assert seen.kind == "pass", seen.message
    assert seen.verdict.contract == did


def test_int_labels_involve_no_contract():
    args = {"features": np.array([[2.0, -5, 0.5]], np.float32), "labels": np.array([1])}
    seen = judged("raw_sparse_contract", RAW, "float32", args)
    assert seen.kind == "pass" and seen.verdict.contract is None


@pytest.mark.parametrize("attr, kind", [("raw_sparse_nan_rows", "as-tensorflow"),
                                        ("raw_sparse_zero_rows", "fail")])
def test_nan_rows_for_bad_labels_are_as_tensorflow_on_the_cpu(attr, kind):
    # the eager CPU kernel raises for label 5 of 3 classes; XLA on the CPU gives a NaN row
    args = {"features": np.array([[2.0, -5, 0.5], [0, 1, 2]], np.float32),
            "labels": np.array([1, 5])}
    seen = judged(attr, RAW, "float32", args, tags=("out_of_range",))
    assert seen.kind == kind, seen.message
    if kind == "as-tensorflow":
        assert seen.verdict.mechanisms == ("xla-nan-rows",)

"""Verdicts: grades from perturbations whose size is known independently of the code.

Perturbing the correctly rounded answer by whole format steps (numpy.nextafter) gives
answers whose grade follows from the definitions of SPEC §3: 0 steps is ``exact``; one
step toward the exact value is ``faithful`` (the exact value lies between the two);
one step away from it is not; far outside every budget is ``fail``. The exact values
come from the exact tier, never from the verdict code.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from xentconf.conformance.verdict import Raised, grade_output, judge
from xentconf.oracle import oracle_call

NN = "tf.nn.sparse_softmax_cross_entropy_with_logits"
RAW = "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits"


def loss_case(dtype=np.float32):
    # the canonical example of TF-SEMANTICS (§1.1): three rows, none exactly representable
    x = np.array([[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]], np.float64)
    return oracle_call(NN, {"labels": np.array([0, 3, 1], np.int32),
                            "logits": x.astype(dtype)})


def step(values: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """One step of the values' own format in ``direction``'s sign."""
    toward = np.where(direction > 0, np.inf, -np.inf).astype(values.dtype)
    return np.nextafter(values, toward)


def exact_side(o) -> np.ndarray:
    """sign(exact − rounded) per element, from the exact tier's 40-digit decimals."""
    exact = [Decimal(t) for t in o.exact_strings(40)]
    r = [Decimal(float(v)) for v in o.rounded64.ravel()]  # exact conversion of a binary
    return np.array([(e > q) - (e < q) for e, q in zip(exact, r)]).reshape(o.shape)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_grades_of_whole_step_perturbations(dtype):
    exp = loss_case(dtype)
    o = exp.outputs["loss"]
    r = o.rounded
    side = exact_side(o)
    assert np.all(side != 0), "the canonical losses are not representable"
    assert grade_output(o, r, "stable").grade == "exact"
    toward = step(r, side)
    assert grade_output(o, toward, "stable").grade == "faithful"
    away = step(r, -side)
    g = grade_output(o, away, "stable")
    assert g.grade in ("tf-precision", "stable") and g.worst_ulps == pytest.approx(1.0)
    far = (r.astype(np.float64) * 2 + 1).astype(dtype)
    f = grade_output(o, far, "stable")
    assert f.grade == "fail" and f.worst_budget > 1 and "loss[" in f.message


def test_nan_and_inf_must_match():
    x = np.array([[0, -np.inf, 1], [np.nan, 0, 0], [np.inf, 0, 0]], np.float32)
    exp = oracle_call(RAW, {"features": x, "labels": np.array([1, 0, 1], np.int32)})
    o = exp.outputs["loss"]
    r = o.rounded
    assert np.isinf(r[0]) and np.isnan(r[1]) and np.isnan(r[2])  # TF-SEMANTICS §1.1 table
    assert grade_output(o, r, "stable").grade == "exact"
    other_nan = np.array([r[0], np.float32("nan"), -np.float32("nan")], np.float32)
    assert grade_output(o, other_nan, "stable").grade == "exact"  # any NaN payload
    finite = np.array([3.0, r[1], r[2]], np.float32)
    g = grade_output(o, finite, "stable")
    assert g.grade == "fail" and g.wrong_special and "expected inf" in g.message
    v = judge(exp, {"loss": finite, "backprop": exp.outputs["backprop"].rounded})
    assert not v.ok and v.structural


def test_error_semantics_shapes_and_dtypes():
    bad = {"labels": np.array([0, 7], np.int32), "logits": np.zeros((2, 3), np.float32)}
    exp = oracle_call(NN, bad)
    assert exp.raises is not None  # label 7 of 3 classes raises on the CPU profile
    assert judge(exp, Raised("ValueError", "no")).ok
    v = judge(exp, {"loss": np.zeros(2, np.float32)})
    assert not v.ok and "TensorFlow raises" in v.message
    good = loss_case()
    v = judge(good, Raised("RuntimeError", "boom"), outputs=("loss",))
    assert not v.ok and "the target raised RuntimeError: boom" in v.message
    r = good.outputs["loss"].rounded
    assert not judge(good, {"loss": r.astype(np.float64)}, outputs=("loss",)).ok
    assert not judge(good, {"loss": r[:2]}, outputs=("loss",)).ok
    assert "did not return loss" in judge(good, {}, outputs=("loss",)).message
    assert judge(good, {"loss": r}, outputs=("loss",)).grade == "exact"


def test_underflow_tag_for_subnormal_results():
    # a dominant logit: the loss log1p(exp(-100)) ~ 3.7e-44 is a float32 subnormal
    x = np.array([[100.0, 0.0]], np.float32)
    exp = oracle_call(NN, {"labels": np.array([0], np.int32), "logits": x})
    value = float(exp.outputs["loss"].rounded64[0])
    assert 0 < value < np.finfo(np.float32).tiny and math.isclose(value, math.exp(-100),
                                                                 rel_tol=0.1)
    v = judge(exp, {"loss": np.zeros(1, np.float32)}, outputs=("loss",))
    assert "underflow" in v.tags


def test_exact_values_of_a_few_elements_equal_those_of_every_element():
    """The verdict asks for the exact values of a few borderline elements only; they are
    the very values of the whole output's exact64 (computed on a fresh expectation). A
    Keras loss: no cheaper widened road there, so the few are rounded one form each."""
    from xentconf.oracle.fast import tf as fast_tf

    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((6, 9)) * 4).astype(np.float32)
    labels = rng.integers(0, 9, 6).astype(np.int32)

    def out():
        loss = fast_tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  reduction="none")
        o = loss(labels, logits)["grad_logits"]
        assert o.exact64_source is None
        return o

    flat = np.array([0, 7, 31, 53])
    few = out().exact64_at(flat)
    every = out().exact64.ravel()[flat]
    assert few.dtype == np.float64 and np.array_equal(few, every)
    assert not np.array_equal(few, out().rounded64.ravel()[flat].astype(np.float32))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_widened_exact_values_are_the_exact_tiers(dtype):
    """For the raw ops and tf.nn the vectorized oracle takes the exact values of narrow
    outputs from the same call widened to float64 (cheap); they are the exact tier's values
    rounded to float64, element for element, on hard rows (huge, tiny, tied, far apart)."""
    import ml_dtypes

    from xentconf.oracle.api import EXACT, WIDE_EXACT
    from xentconf.oracle.fast import oracle_call as fast_call

    dt = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    rng = np.random.default_rng(11)
    big = float(np.finfo(np.float16).max) if dtype == "float16" else 3e38
    z = np.array([[0.0, 1.0, -2.0, 0.5], [big, -big, big / 2, 0.0], [1e-7, 2e-7, 0.0, 0.0],
                  [30.0, -30.0, 0.0, 12.0], [3.0, 3.0, 3.0, 3.0]]).astype(dt)
    y = rng.integers(0, 4, 5).astype(np.int32)
    soft = (rng.multinomial(64, [0.25] * 4, size=5) / 64).astype(dt)
    up = (rng.standard_normal(5) + 0.5).astype(dt)
    for api in WIDE_EXACT:
        sparse = "Sparse" in api or "sparse" in api
        labels = y if sparse else soft
        args = ({"features": z, "labels": labels} if api.startswith("tf.raw_ops")
                else {"labels": labels, "logits": z})
        grad = None if api.startswith("tf.raw_ops") else up
        exp = fast_call(api, args, None, profile="cpu", upstream=grad)
        truth = EXACT.oracle_call(api, args, None, profile="cpu", upstream=grad)
        for name, o in exp.outputs.items():
            assert o.exact64_source is not None, (api, name)
            got = o.exact64
            t = truth.outputs[name]
            assert t.exact64_source is None  # the exact tier rounds its own forms
            fin = np.isfinite(t.rounded64)
            assert np.array_equal(got[fin], t.exact64[fin]), (api, name)

"""The oracle against a real TensorFlow 2.21 (CPU, eager): calibration and semantics.

These tests run only where ``tensorflow-cpu`` is installed (``nox -s tensorflow``); Keras 2
semantics additionally need ``tf_keras`` and Keras 3 semantics ``keras``. The cases and
the comparison live in ``tf_cases.py``; ``test_tensorflow_recorded.py`` holds the oracle to
the same cases as recorded from TensorFlow (``nox -s record-tensorflow``), without it.

Goal 1 — calibration (SPEC §3). On well-conditioned random inputs every element TensorFlow
returns (loss, the raw ops' backprop, and the gradient w.r.t. the logits / ``y_pred`` taken
with ``tf.GradientTape`` and upstream ones) must satisfy ``|tf − exact| ≤ budget``: the
``stable`` budget always, and the ``tf-precision`` budget wherever TensorFlow is not known
to deviate. The largest observed ``|error| / budget`` per API, dtype and output is printed
at the end of the module (run with ``-s``) so the safety factor ``K`` and the summation
allowance ``g`` of ``xentconf.oracle.budgets`` can be calibrated.

Goal 2 — semantics differential. On edge inputs (ranks, ``[B,1]`` labels, weight shapes,
reductions, empty batches, C = 1, special values, ``ignore_class``, label smoothing, dense
label oddities, ``axis``, Keras clipping rows, bad labels and dtypes) the oracle's
decisions — raise or not (error class name), output shapes and dtypes, NaN / ±inf
positions, values within the ``stable`` budget — must agree with TensorFlow, which is the
ground truth.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="needs tensorflow-cpu: run `nox -s tensorflow`")

from tests.oracle.tf_cases import (  # noqa: E402
    BF16,
    CALIBRATION_KEYS,
    DIFF_ARG,
    EDGE_CASES,
    Case,
    TFResult,
    calibration_cases,
    compare_case,
    describe_case,
    describe_expectation,
    describe_tf,
    raise_problems,
    run_oracle,
)

from xentconf.oracle import budgets as oracle_budgets  # noqa: E402
from xentconf.oracle import tf as otf  # noqa: E402

CPU = "/CPU:0"  # the oracle's "cpu" profile: every TF call is pinned to the CPU



def _keras_module(variant: str):
    if variant == "keras2":
        return pytest.importorskip("tf_keras", reason="needs tf-keras (Keras 2 semantics)")
    return pytest.importorskip("keras", reason="needs keras 3")


def _tf_callable(case: Case):
    """A function of the case's arguments (the differentiable one as a tensor)."""
    a = case.api
    if a == "raw_sparse":
        return lambda **kw: tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(**kw)
    if a == "raw_dense":
        return lambda **kw: tf.raw_ops.SoftmaxCrossEntropyWithLogits(**kw)
    if a == "nn_sparse":
        return tf.nn.sparse_softmax_cross_entropy_with_logits
    if a == "nn_dense":
        return tf.nn.softmax_cross_entropy_with_logits
    if a == "v1_sparse":
        return tf.compat.v1.losses.sparse_softmax_cross_entropy
    if a == "v1_dense":
        return tf.compat.v1.losses.softmax_cross_entropy
    mod = _keras_module(case.keras)
    cls = mod.losses.SparseCategoricalCrossentropy if a == "scce" else \
        mod.losses.CategoricalCrossentropy

    def call(**kw):
        return cls(**(case.init or {}))(**kw)

    return call


def _np(t) -> np.ndarray:
    return np.asarray(t.numpy())


def run_tf(case: Case, *, grad: bool = True) -> TFResult:
    """Call TensorFlow eagerly on CPU; record outputs, gradient, or the error class."""
    fn = _tf_callable(case)
    key = DIFF_ARG[case.api]
    args = dict(case.args)
    x = args[key]
    res = TFResult()
    try:
        with warnings.catch_warnings(), tf.device(CPU):
            warnings.simplefilter("ignore")
            xt = tf.constant(x) if isinstance(x, np.ndarray) else x
            differentiable = grad and isinstance(x, np.ndarray) and (
                x.dtype.kind == "f" or x.dtype == BF16)
            with tf.GradientTape() as tape:
                if differentiable:
                    tape.watch(xt)
                args[key] = xt
                out = fn(**args)
            if isinstance(out, (tuple, list)):
                loss = out[0]
                res.outputs["loss"] = _np(out[0])
                res.outputs["backprop"] = _np(out[1])
            else:
                loss = out
                res.outputs["loss"] = _np(out)
    except Exception as exc:  # any error TF raises is "rejected the input"
        res.error = type(exc).__name__
        res.message = str(exc)[:400]
        res.outputs = {}
        return res
    if differentiable:
        try:
            with tf.device(CPU):
                g = tape.gradient(loss, xt,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            res.outputs["grad_logits"] = _np(g)
        except Exception as exc:
            res.grad_error = f"{type(exc).__name__}: {str(exc)[:200]}"
    return res



# =========================================================================== ratio table

RATIOS: dict = {}  # (api label, dtype, output) -> {budget: (ratio, where, case id)}


def _record(label: str, dtype: str, cmps: dict, case_id: str) -> None:
    for name, c in cmps.items():
        slot = RATIOS.setdefault((label, dtype, name), {})
        for bname, r in c.ratio.items():
            if bname not in slot or r > slot[bname][0]:
                slot[bname] = (r, c.where[bname], case_id)


@pytest.fixture(scope="module", autouse=True)
def ratio_table():
    t0 = time.time()
    yield RATIOS
    if not RATIOS:
        return
    lines = ["", f"max |TF − exact| / budget per API, dtype, output (K = {oracle_budgets.K}; "
                 f"{time.time() - t0:.0f} s)",
             f"{'api':<22} {'dtype':<9} {'output':<12} {'stable':>9} {'tf-prec':>9} "
             f"{'v1-f32':>9}  worst element (stable, or v1-f32)"]
    for (label, dtype, name), slot in sorted(RATIOS.items()):
        def fmt(b, slot=slot):
            return f"{slot[b][0]:9.3g}" if b in slot else f"{'-':>9}"
        key = "v1-f32" if "v1-f32" in slot else "stable"
        where = f"{slot[key][2]}: {slot[key][1]}" if key in slot else ""
        lines.append(f"{label:<22} {dtype:<9} {name:<12} {fmt('stable')} {fmt('tf-precision')} "
                     f"{fmt('v1-f32')}  {where}")
        if "tf-precision" in slot and slot["tf-precision"][0] > 1 and key != "v1-f32":
            lines.append(f"{'':<46}tf-precision worst: {slot['tf-precision'][2]}: "
                         f"{slot['tf-precision'][1]}")
    print("\n".join(lines))



CALIBRATION_PARAMS = [
    pytest.param(api, dtype, kv, id=f"{api}-{kv}-{dtype}" if kv else f"{api}-{dtype}")
    for api, dtype, kv in CALIBRATION_KEYS
]


@pytest.mark.tensorflow
@pytest.mark.parametrize(("api", "dtype_name", "keras"), CALIBRATION_PARAMS)
def test_calibration(api, dtype_name, keras, ratio_table):
    """TF's CPU results on well-conditioned inputs lie within the oracle's budgets."""
    if keras:
        _keras_module(keras)
    failures = []
    for case in calibration_cases(api, dtype_name, keras):
        e = run_oracle(case)
        res = run_tf(case)
        if e.raises is not None or res.error:
            failures.append(f"{case.id}: TF {describe_tf(res)} / oracle {describe_expectation(e)}")
            continue
        cmps = compare_case(case, e, res, assert_budgets=("stable", "tf-precision"))
        _record(case.label, dtype_name, cmps, case.id)
        for c in cmps.values():
            failures.extend(f"{case.id}: {p}" for p in c.problems)
    assert not failures, "\n".join(failures)





@pytest.mark.tensorflow
@pytest.mark.parametrize("case", EDGE_CASES, ids=[c.id for c in EDGE_CASES])
def test_semantics_agree_with_tensorflow(case):
    """The oracle decides every edge input as TensorFlow does (TF is the ground truth)."""
    if case.keras:
        _keras_module(case.keras)
    e = run_oracle(case)
    res = run_tf(case)
    problems = raise_problems(e, res)
    if problems is None:
        problems = []
        for c in compare_case(case, e, res).values():
            problems.extend(c.problems)
    assert not problems, (
        f"{case.id}: " + "; ".join(problems) + f"\n  call:   {describe_case(case)}"
        f"\n  TF:     {describe_tf(res)}\n  oracle: {describe_expectation(e)}")


@pytest.mark.tensorflow
def test_keras2_float16_probability_gradient_overflows():
    """The known TF deviation excluded from calibration is real: TF's float16 gradient has
    inf/NaN where the exact gradient is finite (a probability below 2**-16)."""
    _keras_module("keras2")
    import tf_keras

    y_pred = np.array([[1e-6, 0.5, 0.5 - 1e-6], [0.2, 0.3, 0.5]], dtype=np.float16)
    y_true = np.array([0, 1], dtype=np.int32)
    x = tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf_keras.losses.SparseCategoricalCrossentropy()(y_true, x)
    g = tape.gradient(loss, x).numpy().astype(np.float64)
    e = otf.keras.losses.SparseCategoricalCrossentropy()(y_true, y_pred)
    exact = e["grad_logits"].exact64
    assert np.isfinite(exact).all()
    assert not np.isfinite(g[0]).all(), g

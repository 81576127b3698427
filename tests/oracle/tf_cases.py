"""The cases on which the oracle is held to TensorFlow 2.21, and their recordings.

One home for three sets of calls, used both by the live tests against a real TensorFlow
(``test_tensorflow_calibration.py``, marked ``tensorflow``) and by the recorder
(``record_tensorflow.py``, ``nox -s record-tensorflow``) whose files under
``tests/fixtures/tensorflow/`` the default tests read without TensorFlow
(``test_tensorflow_recorded.py``):

* the **calibration set** (:func:`calibration_cases`): well-conditioned random inputs
  per API, dtype and Keras variant, on which TensorFlow's CPU results calibrate the
  safety factor ``K`` and the summation allowance ``g`` of ``xentconf.oracle.budgets``;
* the **semantic edge cases** (:func:`edge_cases`): ranks, ``[B,1]`` labels, weight
  shapes, reductions, empty batches, C = 1, special values, ``ignore_class``, label
  smoothing, dense label oddities, ``axis``, Keras clipping rows, bad labels and dtypes;
* the **worked numbers** (:func:`worked_cases`): the inputs of the worked examples of
  TF-SEMANTICS.md and the seed documents (``test_worked_numbers.py``).

It also holds the comparison of one TensorFlow answer with the oracle's expectation
(:func:`compare_case`, with TensorFlow's known precision artefacts spelled out), and the
fixture format (:func:`encode_case`, :func:`decode_case`, :func:`load_recordings`).

Fixture format (``FORMAT`` = 1): one gzipped JSON file per mode (``eager.json.gz``,
``xla.json.gz``), ``{"format", "mode", "profile", "versions": {tensorflow, tf_keras,
keras, numpy, python}, "cases": [...]}``. A case is ``{"id", "group", "case", "result"}``
where ``case`` is a case of ``xentconf oracle`` (``api``, ``args``, ``init``, ``keras``,
``profile``, ``upstream``; every array ``{"dtype", "shape", "data"}`` with flat row-major
``data``, floats as C99 hex strings or ``"nan"``/``"inf"``/``"-inf"``), and ``result`` is
``{"raises": {"error": CLASS, "message": TEXT}}`` or ``{"outputs": {name: ARRAY},
"grad_error": TEXT | null}`` — what TensorFlow returned, bit for bit.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np

from xentconf.oracle import budgets as oracle_budgets

#: The fixture format; bump it when the layout of the files changes.
FORMAT = 1
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tensorflow"
#: The recorded modes: name -> (oracle profile, TensorFlow's way of running the call).
MODES = {"eager": "cpu", "xla": "xla"}
BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": BF16,
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
U32 = 2.0 ** -24

# =========================================================================== plumbing

API_IDS = {
    "raw_sparse": "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits",
    "raw_dense": "tf.raw_ops.SoftmaxCrossEntropyWithLogits",
    "nn_sparse": "tf.nn.sparse_softmax_cross_entropy_with_logits",
    "nn_dense": "tf.nn.softmax_cross_entropy_with_logits",
    "v1_sparse": "tf.compat.v1.losses.sparse_softmax_cross_entropy",
    "v1_dense": "tf.compat.v1.losses.softmax_cross_entropy",
    "scce": "tf.keras.losses.SparseCategoricalCrossentropy",
    "cce": "tf.keras.losses.CategoricalCrossentropy",
}
# the argument the gradient is taken with respect to
DIFF_ARG = {
    "raw_sparse": "features", "raw_dense": "features", "nn_sparse": "logits",
    "nn_dense": "logits", "v1_sparse": "logits", "v1_dense": "logits",
    "scce": "y_pred", "cce": "y_pred",
}



@dataclass
class Case:
    """One call of one API: its arguments exactly as a user passes them."""

    api: str  # key of API_IDS
    args: dict
    init: dict | None = None  # Keras constructor kwargs
    keras: str | None = None  # "keras2" (tf_keras) or "keras3" (keras)
    id: str = ""

    @property
    def label(self) -> str:
        return f"{self.api}[{self.keras}]" if self.keras else self.api


@dataclass
class TFResult:
    error: str | None = None  # exception class name
    message: str = ""
    outputs: dict = field(default_factory=dict)  # name -> numpy array
    grad_error: str | None = None



def run_oracle(case: Case, *, profile: str = "cpu", upstream=None, fast: bool = False):
    """The oracle's expectation for ``case`` (the exact tier, or the vectorized one)."""
    if fast:
        from xentconf.oracle.fast import oracle_call
    else:
        from xentconf.oracle import oracle_call
    return oracle_call(API_IDS[case.api], dict(case.args), case.init, profile=profile,
                       keras=case.keras or "keras2", upstream=upstream)


# --------------------------------------------------------------------------- comparison


@dataclass
class Cmp:
    problems: list = field(default_factory=list)
    ratio: dict = field(default_factory=dict)  # budget name -> max |err|/budget
    where: dict = field(default_factory=dict)  # budget name -> worst element description


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.float64)


def _ratio(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, x / b, np.where(x > 0, np.inf, 0.0))


def measured_errors(o, g: np.ndarray, ok: np.ndarray, budgets: dict) -> tuple:
    """(|g − exact|, exact) at the finite elements ``ok``, each exact value rounded to
    float64 — evaluated (by the exact tier, which is slow) only where it can matter.

    For a float64 output the correctly rounded value *is* the exact value rounded to
    float64. For a narrower one ``r`` is within half an ulp of the exact value, so
    ``|g − r| ± ½ulp`` brackets the error: the exact value is taken wherever the error can
    straddle a budget, or (float32) reach half of one; elsewhere the error is measured
    from ``r``. Every budget verdict, and the float32 ratios above 0.5, are exact."""
    r = o.rounded64
    if o.format.p >= 53:
        with np.errstate(invalid="ignore"):
            return np.where(ok, np.abs(g - r), 0.0), r
    with np.errstate(invalid="ignore"):
        d = np.where(ok, np.abs(g - r), 0.0)
    half = 0.5 * np.asarray(o.budgets["faithful"], dtype=np.float64)
    need = np.zeros(r.shape, dtype=bool)
    # float32 ratios calibrate K (exact above half a budget); for the half formats only
    # the verdicts need the exact value
    above = 0.5 if o.format.p >= 24 else 1.0
    for b in budgets.values():
        b = np.asarray(b, dtype=np.float64)
        lb, ub = _ratio(np.maximum(d - half, 0.0), b), _ratio(d + half, b)
        need |= ok & ((ub >= above) | ((lb <= 1) & (ub > 1)))
    ex = r.copy()
    if need.any():
        from xentconf.oracle.exact import to_float64

        forms = o.forms
        idx = np.flatnonzero(need)
        ex.ravel()[idx] = [to_float64(forms[int(k)]) for k in idx]
    with np.errstate(invalid="ignore"):
        return np.where(ok, np.abs(g - ex), 0.0), ex


def compare_output(name: str, got: np.ndarray, o, *, budgets: dict | None = None,
                   assert_budgets: tuple = ("stable",)) -> Cmp:
    """Shape, dtype, NaN/inf pattern, and |got − exact| against each budget.

    ``budgets`` maps a budget name to an array (default: the oracle's own); the ones in
    ``assert_budgets`` produce problems when exceeded, the others are only measured.
    """
    c = Cmp()
    got = np.asarray(got)
    if tuple(got.shape) != tuple(o.shape):
        c.problems.append(f"{name}: shape TF {tuple(got.shape)} vs oracle {o.shape}")
        return c
    if got.dtype.name != np.dtype(o.dtype).name:
        c.problems.append(f"{name}: dtype TF {got.dtype.name} vs oracle {np.dtype(o.dtype).name}")
    g = _f64(got)
    r = o.rounded64
    nan_exp = np.isnan(r)
    inf_exp = np.isinf(r)
    fin = ~(nan_exp | inf_exp)
    bad = nan_exp & ~np.isnan(g)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        c.problems.append(f"{name}: oracle NaN, TF {g[i]!r} at {i} ({int(bad.sum())} elements)")
    bad = ~nan_exp & np.isnan(g)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        c.problems.append(f"{name}: TF NaN, oracle {r[i]!r} at {i} ({int(bad.sum())} elements)")
    bad = inf_exp & ~np.isnan(g) & (g != r)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        c.problems.append(f"{name}: oracle {r[i]!r}, TF {g[i]!r} at {i}")
    bad = fin & np.isinf(g)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        c.problems.append(f"{name}: TF {g[i]!r}, oracle finite {r[i]!r} at {i}")
    budgets = budgets if budgets is not None else o.budgets
    ok = fin & np.isfinite(g)
    if not ok.any():
        return c
    # "faithful" (one ulp) is only measured, from the rounded value where nothing else
    # needs the exact one
    err, ex = measured_errors(o, g, ok, {k: v for k, v in budgets.items() if k != "faithful"})
    for bname, b in budgets.items():
        b = np.asarray(b, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ok, err / b, 0.0)
        ratio = np.where(ok & (err == 0), 0.0, ratio)
        k = int(np.argmax(ratio))
        worst = float(ratio.ravel()[k])
        c.ratio[bname] = worst
        i = tuple(int(v) for v in np.unravel_index(k, ratio.shape)) if ratio.ndim else ()
        c.where[bname] = (f"{name}{list(i)}: TF {float(g[i])!r} exact {float(ex[i])!r} "
                          f"err {float(err[i]):.3e} budget {float(b[i]):.3e}")
        if bname in assert_budgets and worst > 1.0:
            c.problems.append(f"{name}: outside the {bname!r} budget by x{worst:.3g} — "
                              f"{c.where[bname]}")
    return c


def describe_expectation(e) -> str:
    if e.raises is not None:
        return f"raises {e.raises.error}: {e.raises.message[:200]}"
    parts = []
    for k, o in e.outputs.items():
        vals = np.array2string(o.rounded64.ravel()[:8], precision=6)
        parts.append(f"{k}{list(o.shape)}:{np.dtype(o.dtype).name}={vals}")
    return "; ".join(parts)


def describe_tf(res: TFResult) -> str:
    if res.error:
        return f"raises {res.error}: {res.message[:200]}"
    parts = []
    for k, v in res.outputs.items():
        vals = np.array2string(_f64(v).ravel()[:8], precision=6)
        parts.append(f"{k}{list(v.shape)}:{v.dtype.name}={vals}")
    if res.grad_error:
        parts.append(f"grad error {res.grad_error}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- compat.v1 f64

def _approx_row_losses(case: Case) -> np.ndarray:
    """Float64 approximations of the per-element losses of a compat.v1 call (magnitudes)."""
    z = _f64(case.args["logits"])
    m = z.max(axis=-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(z - m).sum(axis=-1))
    if case.api == "v1_sparse":
        lab = np.asarray(case.args["labels"]).astype(np.int64)
        if lab.ndim == z.ndim:
            lab = lab[..., 0]
        return lse - np.take_along_axis(z, lab[..., None], axis=-1)[..., 0]
    y = _f64(case.args["onehot_labels"])
    eps = float(case.args.get("label_smoothing", 0))
    if eps > 0:
        y = y * (1 - eps) + eps / y.shape[-1]
    return (y * (lse[..., None] - z)).sum(axis=-1)


def v1_float64_bounds(case: Case, e) -> dict:
    """Explicit budgets for compat.v1 with float64 logits.

    ``compute_weighted_loss`` casts the float64 per-element losses and the weights to
    float32, multiplies, reduces and divides in float32, and casts the result back to
    float64 (TF-SEMANTICS §5.2 (3)) — a known TF precision artefact that the oracle does
    not reproduce (SPEC §2), so the float64 ``stable`` budget (u = 2^-53) cannot hold.
    We grant, on top of the oracle's float64 ``stable`` budget, a worst-case float32
    error bound of that stage with the same safety factor K:

      loss, reduced:  K · u32 · ((M + 4) · Σ|w_i L_i| / |D| + |R| · (1 + M · Σ|w_i| / |D|
             if D is a sum of weights)) — 3 roundings per element (loss cast, weight cast,
             product), a recursive f32 sum of M terms (worst case (M − 1) u32), the
             division, the final value;
      loss, "none":  K · u32 · 4 · |w_i L_i| (loss cast, weight cast, product, margin);
      grad:  K · u32 · (4 + M · Σ|w_i| / |D| for weighted_mean) · |g_exact|
             — the row coefficient γ = w / D is formed in float32 (weight cast, division,
             product) before it multiplies the float64 backprop.

    This is deliberately worst-case (M, not g(M)): it checks that nothing worse than
    float32 evaluation of the reduction happens, not how well TF sums.
    """
    red = case.args.get("reduction", "weighted_sum_by_nonzero_weights")
    L = np.abs(_approx_row_losses(case))
    w = case.args.get("weights", 1.0)
    w = _f64(np.asarray(w))
    if w.ndim == L.ndim + 1:  # [B,1] weights are squeezed (§5.1)
        w = w[..., 0]
    wb = np.broadcast_to(w, L.shape)
    M = max(L.size, 1)
    wl = np.abs(wb * L)
    if red == "none":
        D, M = 1.0, 1
    elif red == "weighted_sum":
        D = 1.0
    elif red == "weighted_sum_over_batch_size":
        D = float(L.size)
    elif red == "weighted_mean":
        D = abs(float(wb.sum()))
    else:
        D = float(np.count_nonzero(wb))
    K = oracle_budgets.K
    out = {}
    lo = e["loss"]
    if D == 0:
        extra_loss = np.zeros(lo.shape)
        extra_grad_rel = 0.0
    elif red == "none":
        extra_loss = K * U32 * 4 * wl.reshape(lo.shape)
        extra_grad_rel = K * U32 * 4
    else:
        R = abs(float(np.sum(wb * _approx_row_losses(case)))) / D
        wmean = M * float(np.abs(wb).sum()) / D if red == "weighted_mean" else 0.0
        extra_loss = np.full(lo.shape, K * U32 * ((M + 4) * wl.sum() / D + R * (1 + wmean)))
        extra_grad_rel = K * U32 * (4 + wmean)
    out["loss"] = {"v1-f32": lo.budgets["stable"] + extra_loss,
                   "stable": lo.budgets["stable"], "tf-precision": lo.budgets["tf-precision"]}
    if "grad_logits" in e.outputs:
        go = e["grad_logits"]
        # a float64 output: its correctly rounded value is the exact one rounded to float64
        extra = extra_grad_rel * np.abs(np.nan_to_num(go.rounded64))
        out["grad_logits"] = {"v1-f32": go.budgets["stable"] + extra,
                              "stable": go.budgets["stable"],
                              "tf-precision": go.budgets["tf-precision"]}
    return out


def is_v1_float64(case: Case) -> bool:
    return case.api in ("v1_sparse", "v1_dense") and isinstance(
        case.args.get("logits"), np.ndarray) and case.args["logits"].dtype == np.float64


def keras2_float16_probability_gradient(case: Case) -> bool:
    """TF's known deviation: tf_keras's float16 probability path differentiates log(p) in
    float16, so 1/p overflows to inf (and 0·inf gives NaN) wherever p < 2**-16, clipped
    elements included. The oracle's exact gradient is finite there; the TF target declares
    this in its known-deviations file, and test_keras2_float16_probability_gradient_overflows
    shows it. Only the gradient is affected; the loss is still calibrated."""
    return (case.keras == "keras2" and case.api in ("scce", "cce")
            and not (case.init or {}).get("from_logits", False)
            and str(np.asarray(case.args.get("y_pred")).dtype) == "float16")


def raise_problems(e, res: TFResult, *, error_class: bool = True) -> list[str] | None:
    """Where the oracle and TensorFlow disagree on raising (and, with ``error_class``, on
    the error's class); None when neither raised, so the values are to be compared."""
    if e.raises is not None and res.error is None:
        return [f"oracle raises {e.raises.error}, TF does not"]
    if e.raises is None and res.error is not None:
        return [f"TF raises {res.error}, oracle does not"]
    if e.raises is not None:
        if error_class and e.raises.error != res.error:
            return [f"error class: TF {res.error}, oracle {e.raises.error}"]
        return []
    return None


def compare_case(case: Case, e, res: TFResult, *, assert_budgets=("stable",),
                 names=None) -> dict:
    """Compare every output (or those in ``names``); returns {output: Cmp}."""
    out = {}
    v1 = v1_float64_bounds(case, e) if is_v1_float64(case) else {}
    for name, o in e.outputs.items():
        if names is not None and name not in names:
            continue
        if name == "grad_logits" and keras2_float16_probability_gradient(case):
            continue
        if name not in res.outputs:
            c = Cmp(problems=[f"{name}: TF produced no {name} ({res.grad_error})"])
            out[name] = c
            continue
        if name in v1:
            c = compare_output(name, res.outputs[name], o, budgets=v1[name],
                               assert_budgets=("v1-f32",))
        else:
            c = compare_output(name, res.outputs[name], o, assert_budgets=assert_budgets)
        out[name] = c
    return out



# =========================================================================== Goal 1

# Few rows at large C: g(C) is calibrated by the class count, not the number of rows, and
# the recorded answers (every element as a hex float) stay a few MB.
SHAPES = [(8, 1), (16, 2), (32, 3), (64, 10), (8, 100), (2, 1000)]


def _rng(*key) -> np.random.Generator:
    """A generator seeded by the key (stable across runs and processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _cast(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round to ``dtype`` (bfloat16 through float32: ties are irrelevant for random data)."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(dtype) if dtype == BF16 \
        else np.asarray(a, dtype=np.float64).astype(dtype)


def logits(rng, shape, dtype) -> np.ndarray:
    """N(0, 3) logits with a few moderately large entries (|z| up to 50)."""
    z = rng.normal(0.0, 3.0, size=shape)
    flat = z.reshape(-1, shape[-1])
    nbig = max(1, flat.shape[0] // 4)
    rows = rng.choice(flat.shape[0], size=min(nbig, flat.shape[0]), replace=False)
    for r in rows:
        j = rng.integers(0, shape[-1])
        flat[r, j] = rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 50.0)
    return _cast(z, dtype)


def prob_logits(rng, shape) -> np.ndarray:
    """Logits for Keras probability inputs: N(0, 2) with a few very negative entries.

    No class dominates its row: a probability within rounding of the upper clip bound
    ``1 − 1e-7`` (a row whose other classes sum to ~1e-7) makes the clip's derivative
    jump with the last bit of TF's ``p / Σp``, an ill-conditioned gradient, not a
    calibration datum. Tiny probabilities (clipped at 1e-7, far below it) are kept.
    """
    z = rng.normal(0.0, 2.0, size=shape)
    flat = z.reshape(-1, shape[-1])
    for r in rng.choice(flat.shape[0], size=max(1, flat.shape[0] // 4), replace=False):
        if shape[-1] > 1:
            flat[r, rng.integers(0, shape[-1])] = -rng.uniform(15.0, 50.0)
    return np.asarray(z, dtype=np.float64)


def softmax64(z: np.ndarray) -> np.ndarray:
    z = _f64(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def int_labels(rng, shape, c, i) -> np.ndarray:
    return rng.integers(0, c, size=shape).astype(np.int32 if i % 2 else np.int64)


def soft_labels(rng, shape, dtype, i) -> np.ndarray:
    """Soft labels (a softmax) on even i, one-hot on odd i."""
    if i % 2:
        lab = rng.integers(0, shape[-1], size=shape[:-1])
        y = np.eye(shape[-1])[lab]
    else:
        y = softmax64(rng.normal(0.0, 1.0, size=shape))
    return _cast(y, dtype)


def sample_weights(rng, n, kind, dtype=np.float32):
    if kind == "none":
        return None
    w = rng.uniform(0.1, 2.0, size=n)
    if n > 2:
        w[rng.integers(0, n)] = 0.0
    if kind == "col":
        return w.reshape(n, 1).astype(dtype)
    return w.astype(dtype)


def calibration_cases(api: str, dtype_name: str, keras: str | None) -> list[Case]:
    dt = DTYPES[dtype_name]
    rng = _rng(api, dtype_name, keras)
    cases: list[Case] = []

    def add(args, init=None, tag=""):
        cases.append(Case(api, args, init, keras,
                          id=f"{api}{'-' + keras if keras else ''}/{dtype_name}/{tag}"))

    if api in ("raw_sparse", "nn_sparse"):
        key = "features" if api == "raw_sparse" else "logits"
        for i, (b, c) in enumerate(SHAPES):
            add({key: logits(rng, (b, c), dt), "labels": int_labels(rng, (b,), c, i)},
                tag=f"B{b}C{c}")
        if api == "nn_sparse":
            add({"logits": logits(rng, (3, 5, 10), dt), "labels": int_labels(rng, (3, 5), 10, 0)},
                tag="rank3")
            if dtype_name == "float32":  # the one C = 50 000 case
                add({"logits": logits(rng, (1, 50000), dt),
                     "labels": int_labels(rng, (1,), 50000, 1)}, tag="B1C50000")
    elif api in ("raw_dense", "nn_dense"):
        key = "features" if api == "raw_dense" else "logits"
        for i, (b, c) in enumerate(SHAPES):
            add({key: logits(rng, (b, c), dt), "labels": soft_labels(rng, (b, c), dt, i)},
                tag=f"B{b}C{c}{'onehot' if i % 2 else 'soft'}")
        if api == "nn_dense":
            add({"logits": logits(rng, (10, 6), dt), "labels": soft_labels(rng, (10, 6), dt, 0),
                 "axis": 0}, tag="axis0")
            add({"logits": logits(rng, (3, 4, 7), dt),
                 "labels": soft_labels(rng, (3, 4, 7), dt, 0)},
                tag="rank3")
    elif api in ("v1_sparse", "v1_dense"):
        reductions = ["none", "weighted_sum", "weighted_mean", "weighted_sum_over_batch_size",
                      "weighted_sum_by_nonzero_weights"]
        wkinds = ["one", "py2.5", "vec", "col"]
        i = 0
        for red in reductions:
            for wk in wkinds:
                b, c = SHAPES[(i + 2) % len(SHAPES)] if i % 7 else SHAPES[i % 3 + 2]
                i += 1
                if wk == "one":
                    w = 1.0
                elif wk == "py2.5":
                    w = 2.5
                else:
                    w = sample_weights(rng, b, "vec" if wk == "vec" else "col", np.float32)
                z = logits(rng, (b, c), dt)
                if api == "v1_sparse":
                    args = {"labels": int_labels(rng, (b,), c, i), "logits": z}
                else:
                    args = {"onehot_labels": soft_labels(rng, (b, c), dt, i), "logits": z,
                            "label_smoothing": (0, 0.1, 0.25)[i % 3]}
                    if wk == "col":  # compat.v1 dense does not squeeze [B,1] weights
                        w = w[:, 0]
                args.update(weights=w, reduction=red)
                add(args, tag=f"{red}/w={wk}/B{b}C{c}" + (
                    f"/ls={args['label_smoothing']}" if api == "v1_dense" else ""))
    else:  # Keras
        if keras == "keras2":
            reductions = ["auto", "none", "sum", "sum_over_batch_size"]
        else:
            reductions = ["sum_over_batch_size", "sum", "none", "mean",
                          "mean_with_sample_weight"]
        i = 0
        for red in reductions:
            for wk in ("none", "vec"):
                for from_logits in (True, False):
                    b, c = SHAPES[(i + 2) % len(SHAPES)]
                    i += 1
                    y_pred = logits(rng, (b, c), dt) if from_logits else \
                        _cast(softmax64(prob_logits(rng, (b, c))), dt)
                    init = {"from_logits": from_logits, "reduction": red}
                    if api == "scce":
                        y_true = int_labels(rng, (b,), c, i)
                    else:
                        y_true = soft_labels(rng, (b, c), dt, i)
                        init["label_smoothing"] = (0.0, 0.1, 0.2)[i % 3]
                    args = {"y_true": y_true, "y_pred": y_pred,
                            "sample_weight": sample_weights(rng, b, wk, np.float32)}
                    add(args, init, tag=f"{red}/sw={wk}/logits={from_logits}/B{b}C{c}" + (
                        f"/ls={init['label_smoothing']}" if api == "cce" else ""))
    return cases



# =========================================================================== Goal 2

F32 = np.float32
INF, NAN = np.inf, np.nan
X = np.array([[2, -5, .5, -.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]], dtype=F32)
Y = np.array([0, 3, 1], dtype=np.int32)
Y1H = np.eye(4, dtype=F32)[Y]
YSOFT = np.array([[.7, .1, .1, .1], [0, .2, .3, .5], [.25, .25, .25, .25]], dtype=F32)
# Keras's documented example (TF-SEMANTICS §6.3)
KP = np.array([[.05, .95, 0], [.1, .8, .1]], dtype=F32)
KY = np.array([1, 2], dtype=np.int32)
KY1H = np.eye(3, dtype=F32)[KY]
KSW = np.array([.3, .7], dtype=F32)
R3 = np.random.default_rng(7).normal(0, 2, size=(2, 3, 4)).astype(F32)
R3Y = np.array([[0, 1, 3], [2, 2, 1]], dtype=np.int32)
R3Y1H = np.eye(4, dtype=F32)[R3Y]
V1_REDUCTIONS = ("none", "weighted_sum", "weighted_mean", "weighted_sum_over_batch_size",
                 "weighted_sum_by_nonzero_weights")
K2_REDUCTIONS = ("auto", "none", "sum", "sum_over_batch_size")
K3_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None, "mean", "mean_with_sample_weight")


def a(x, dtype=F32) -> np.ndarray:
    """An array of ``dtype`` (bfloat16 through float32)."""
    return _cast(np.asarray(x, dtype=np.float64), np.dtype(dtype)) if np.dtype(dtype).kind == "f" \
        or np.dtype(dtype) == BF16 else np.asarray(x, dtype=dtype)


def i32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int32)


def edge_cases() -> list[Case]:
    cs: list[Case] = []

    def E(api, cid, keras=None, init=None, **args):
        cs.append(Case(api, args, init, keras, id=f"{api}{'-' + keras if keras else ''}:{cid}"))

    # ------------------------------------------------------------ raw sparse (§1.1)
    for dt in ("float32", "float64", "float16", "bfloat16"):
        E("raw_sparse", f"canonical-{dt}", features=a(X, dt), labels=Y)
    E("raw_sparse", "labels-int64", features=X, labels=Y.astype(np.int64))
    E("raw_sparse", "label=C", features=X, labels=i32([0, 4, 1]))
    E("raw_sparse", "label=-1", features=X, labels=i32([0, -1, 1]))
    E("raw_sparse", "labels-float", features=X, labels=a([0, 3, 1]))
    E("raw_sparse", "labels-float-fractional", features=X, labels=a([1.7, 3.9, -0.5]))
    E("raw_sparse", "labels-uint8", features=X, labels=Y.astype(np.uint8))
    E("raw_sparse", "labels-int16", features=X, labels=Y.astype(np.int16))
    E("raw_sparse", "labels-bool", features=X, labels=np.array([True, False, True]))
    E("raw_sparse", "labels-list-int", features=X, labels=[0, 3, 1])
    E("raw_sparse", "labels-list-float", features=X, labels=[0.0, 3.0, 1.0])
    E("raw_sparse", "features-int", features=i32([[1, 2], [3, 4]]), labels=i32([0, 1]))
    E("raw_sparse", "features-rank1", features=a([1, 2, 3]), labels=i32([0]))
    E("raw_sparse", "features-rank3", features=R3, labels=i32([0, 1]))
    E("raw_sparse", "labels-rank2", features=X, labels=i32([[0], [3], [1]]))
    E("raw_sparse", "batch-mismatch", features=X, labels=i32([0, 3]))
    E("raw_sparse", "C=0", features=np.zeros((3, 0), F32), labels=Y)
    E("raw_sparse", "empty-batch", features=np.zeros((0, 4), F32), labels=i32([]))
    E("raw_sparse", "C=1", features=a([[1], [-1], [0]]), labels=i32([0, 0, 0]))
    E("raw_sparse", "-inf-off-label", features=a([[0, -INF, 1]]), labels=i32([0]))
    E("raw_sparse", "-inf-at-label", features=a([[0, -INF, 1]]), labels=i32([1]))
    E("raw_sparse", "all--inf", features=a([[-INF, -INF], [1, 2]]), labels=i32([0, 1]))
    E("raw_sparse", "+inf", features=a([[INF, 0], [1, 2]]), labels=i32([1, 1]))
    E("raw_sparse", "nan-row", features=a([[NAN, 0], [1, 2]]), labels=i32([1, 0]))
    E("raw_sparse", "1e30", features=a([[1e30, -1e30], [-1e30, 1e30]]), labels=i32([1, 1]))

    # ------------------------------------------------------------ raw dense (§1.2)
    E("raw_dense", "canonical-soft", features=X, labels=YSOFT)
    E("raw_dense", "canonical-f64", features=a(X, np.float64), labels=a(YSOFT, np.float64))
    E("raw_dense", "canonical-f16", features=a(X, np.float16), labels=a(YSOFT, np.float16))
    E("raw_dense", "labels-f64-numpy", features=X, labels=a(YSOFT, np.float64))
    E("raw_dense", "labels-int", features=X, labels=i32(Y1H))
    E("raw_dense", "labels-[C]", features=X, labels=a([.5, .5, 0, 0]))
    E("raw_dense", "labels-[1,C]", features=X, labels=a([[.5, .5, 0, 0]]))
    E("raw_dense", "labels-[B,1]", features=X, labels=a([[1], [0], [.5]]))
    E("raw_dense", "features-[1,C]", features=X[:1], labels=YSOFT)
    E("raw_dense", "not-broadcastable", features=X, labels=YSOFT[:2])
    E("raw_dense", "rank1", features=a([1, 2, 3]), labels=a([0, 1, 0]))
    E("raw_dense", "rank3", features=R3, labels=R3Y1H)
    E("raw_dense", "C=0", features=np.zeros((3, 0), F32), labels=np.zeros((3, 0), F32))
    E("raw_dense", "empty-batch", features=np.zeros((0, 4), F32), labels=np.zeros((0, 4), F32))
    E("raw_dense", "unnormalised", features=X, labels=a([[2, 1, 0, 0], [0, 0, 3, 3], [1, 1, 1, 1]]))
    E("raw_dense", "negative", features=X,
      labels=a([[-1, 2, 0, 0], [.5, -.5, 1, 0], [0, 0, 0, -1]]))
    E("raw_dense", "all-zero-row", features=X, labels=a([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]))
    E("raw_dense", "-inf-zero-label", features=a([[0, -INF, 1]]), labels=a([[1, 0, 0]]))
    E("raw_dense", "-inf-pos-label", features=a([[0, -INF, 1]]), labels=a([[.5, .5, 0]]))
    E("raw_dense", "nan-row", features=a([[NAN, 0], [1, 2]]), labels=a([[1, 0], [0, 1]]))
    E("raw_dense", "1e30", features=a([[1e30, -1e30]]), labels=a([[0, 1]]))

    # ------------------------------------------------------------ tf.nn sparse (§2)
    E("nn_sparse", "rank1-scalar-label", logits=a([1, 2, 3]), labels=np.asarray(2, np.int32))
    E("nn_sparse", "rank3", logits=R3, labels=R3Y)
    E("nn_sparse", "rank4", logits=R3.reshape(2, 1, 3, 4), labels=R3Y.reshape(2, 1, 3))
    E("nn_sparse", "rank-mismatch-[B,1]", logits=X, labels=i32([[0], [3], [1]]))
    E("nn_sparse", "shape-mismatch", logits=X, labels=i32([0, 3]))
    E("nn_sparse", "scalar-logits", logits=np.asarray(1.0, F32), labels=np.asarray(0, np.int32))
    for dt in ("float16", "bfloat16", "float64"):
        E("nn_sparse", f"canonical-{dt}", logits=a(X, dt), labels=Y)
    E("nn_sparse", "empty-batch", logits=np.zeros((0, 4), F32), labels=i32([]))
    E("nn_sparse", "empty-rank3", logits=np.zeros((2, 0, 4), F32),
      labels=np.zeros((2, 0), np.int32))
    E("nn_sparse", "C=0", logits=np.zeros((3, 0), F32), labels=Y)
    E("nn_sparse", "C=0-rank3", logits=np.zeros((2, 3, 0), F32), labels=R3Y)
    E("nn_sparse", "labels-float", logits=X, labels=a([0, 3, 1]))
    E("nn_sparse", "labels-uint8", logits=X, labels=Y.astype(np.uint8))
    E("nn_sparse", "C=1", logits=a([[1], [-1], [0]]), labels=i32([0, 0, 0]))
    E("nn_sparse", "label=C-rank3", logits=R3, labels=i32([[0, 1, 4], [2, 2, 1]]))
    E("nn_sparse", "-inf-at-label", logits=a([[0, -INF, 1], [1, 2, 3]]), labels=i32([1, 0]))
    E("nn_sparse", "nan-row-rank3", logits=np.where(np.arange(24).reshape(2, 3, 4) == 5, NAN, R3)
      .astype(F32), labels=R3Y)
    E("nn_sparse", "1e30", logits=a([[1e30, -1e30]]), labels=i32([1]))

    # ------------------------------------------------------------ tf.nn dense (§3)
    E("nn_dense", "rank1", logits=a([1, 2, 3]), labels=a([0, .5, .5]))
    E("nn_dense", "rank3", logits=R3, labels=R3Y1H)
    E("nn_dense", "rank4", logits=R3.reshape(2, 1, 3, 4), labels=R3Y1H.reshape(2, 1, 3, 4))
    E("nn_dense", "axis=0", logits=X, labels=YSOFT, axis=0)
    E("nn_dense", "axis=1-rank3", logits=R3, labels=R3Y1H, axis=1)
    E("nn_dense", "axis=0-rank3", logits=R3, labels=R3Y1H, axis=0)
    E("nn_dense", "axis=-1", logits=X, labels=YSOFT, axis=-1)
    E("nn_dense", "axis=-2-rank3", logits=R3, labels=R3Y1H, axis=-2)
    E("nn_dense", "axis=-2-rank2", logits=X, labels=YSOFT, axis=-2)
    E("nn_dense", "axis=5", logits=X, labels=YSOFT, axis=5)
    E("nn_dense", "labels-[C]", logits=X, labels=a([.5, .5, 0, 0]))
    E("nn_dense", "labels-[1,C]", logits=X, labels=a([[.5, .5, 0, 0]]))
    E("nn_dense", "labels-[C]-axis0", logits=X, labels=a([.2, .3, .5]), axis=0)
    E("nn_dense", "labels-int", logits=X, labels=i32(Y1H))
    E("nn_dense", "labels-mismatch", logits=X, labels=YSOFT[:, :3])
    for dt in ("float16", "bfloat16", "float64"):
        E("nn_dense", f"canonical-{dt}", logits=a(X, dt), labels=a(YSOFT, dt))
    E("nn_dense", "f16-labels-f64", logits=a(X, np.float16), labels=a(YSOFT, np.float64))
    E("nn_dense", "unnormalised", logits=X, labels=a([[2, 1, 0, 0], [0, 0, 3, 3], [1, 1, 1, 1]]))
    E("nn_dense", "negative", logits=X, labels=a([[-1, 2, 0, 0], [.5, -.5, 1, 0], [0, 0, 0, -1]]))
    E("nn_dense", "all-zero", logits=X, labels=np.zeros((3, 4), F32))
    E("nn_dense", "-inf-zero-label", logits=a([[0, -INF, 1]]), labels=a([[1, 0, 0]]))
    E("nn_dense", "scalar", logits=np.asarray(1.0, F32), labels=np.asarray(1.0, F32))
    E("nn_dense", "C=0", logits=np.zeros((3, 0), F32), labels=np.zeros((3, 0), F32))
    E("nn_dense", "C=0-rank1", logits=np.zeros((0,), F32), labels=np.zeros((0,), F32))
    E("nn_dense", "C=0-rank3", logits=np.zeros((2, 3, 0), F32), labels=np.zeros((2, 3, 0), F32))
    E("nn_dense", "empty-batch-rank3", logits=np.zeros((0, 3, 4), F32),
      labels=np.zeros((0, 3, 4), F32))
    E("nn_dense", "empty-batch", logits=np.zeros((0, 4), F32), labels=np.zeros((0, 4), F32))

    # ------------------------------------------------------------ compat.v1 sparse (§5)
    weights = {
        "1.0": 1.0, "0.0": 0.0, "py2.0": 2.0, "0d-2.0": np.asarray(2.0, F32),
        "0d-0": np.asarray(0.0, F32), "[B]": a([.5, 0, 2]), "[B,1]": a([[.5], [0], [2]]),
        "[1]": a([3.0]), "neg": a([-1, 1, 1]), "nan": a([NAN, 1, 1]), "zeros": a([0, 0, 0]),
    }
    for red in V1_REDUCTIONS:
        for wk, w in weights.items():
            E("v1_sparse", f"{red}/w={wk}", labels=Y, logits=X, weights=w, reduction=red)
    for red in V1_REDUCTIONS:
        E("v1_sparse", f"{red}/empty", labels=i32([]), logits=np.zeros((0, 4), F32), reduction=red)
        E("v1_sparse", f"{red}/rank3-w[2,1]", labels=R3Y, logits=R3, weights=a([[1], [0]]),
          reduction=red)
    E("v1_sparse", "labels-[B,1]", labels=i32([[0], [3], [1]]), logits=X)
    E("v1_sparse", "labels-[B,1]-w[B,1]", labels=i32([[0], [3], [1]]), logits=X,
      weights=a([[1], [2], [0]]), reduction="weighted_mean")
    E("v1_sparse", "labels-[B,1]-none", labels=i32([[0], [3], [1]]), logits=X, reduction="none")
    E("v1_sparse", "rank3-w[2]", labels=R3Y, logits=R3, weights=a([1, 2]))
    E("v1_sparse", "rank3-w[2,3]", labels=R3Y, logits=R3, weights=a([[1, 0, 2], [0, 0, 3]]))
    E("v1_sparse", "rank3-w[2,3,1]", labels=R3Y, logits=R3, weights=a(np.ones((2, 3, 1))))
    E("v1_sparse", "rank3-w[1,3]", labels=R3Y, logits=R3, weights=a([[1, 0, 2]]),
      reduction="weighted_sum_by_nonzero_weights")
    E("v1_sparse", "w[B,3]", labels=Y, logits=X, weights=a(np.ones((3, 3))))
    E("v1_sparse", "w[1,B]", labels=Y, logits=X, weights=a(np.ones((1, 3))))
    E("v1_sparse", "w[2]", labels=Y, logits=X, weights=a([1, 2]))
    E("v1_sparse", "reduction=mean", labels=Y, logits=X, reduction="mean")
    E("v1_sparse", "reduction=sum", labels=Y, logits=X, reduction="sum")
    E("v1_sparse", "label=C", labels=i32([0, 4, 1]), logits=X)
    E("v1_sparse", "nan-row-w0", labels=i32([0, 1]), logits=a([[NAN, 0], [1, 2]]),
      weights=a([0, 1]))
    E("v1_sparse", "f16-sum-overflow", labels=i32([0, 0]),
      logits=a([[0, 40000], [0, 40000]], np.float16), reduction="weighted_sum")
    E("v1_sparse", "f64-weights", labels=Y, logits=a(X, np.float64),
      weights=a([.5, 0, 2], np.float64))
    E("v1_sparse", "bf16-mean", labels=Y, logits=a(X, BF16), weights=a([.5, 1, 2]),
      reduction="weighted_mean")
    E("v1_sparse", "w-int32", labels=Y, logits=X, weights=i32([1, 0, 2]),
      reduction="weighted_mean")
    E("v1_sparse", "w-py-int", labels=Y, logits=X, weights=2, reduction="weighted_sum")
    E("v1_sparse", "C=1", labels=i32([0, 0]), logits=a([[1], [2]]))

    # ------------------------------------------------------------ compat.v1 dense (§4)
    for ls in (0, 0.1, 1, 1.5, -0.1):
        for red in ("none", "weighted_sum_by_nonzero_weights"):
            E("v1_dense", f"ls={ls}/{red}", onehot_labels=Y1H, logits=X, label_smoothing=ls,
              reduction=red)
    E("v1_dense", "ls=0.1-rank3", onehot_labels=R3Y1H, logits=R3, label_smoothing=0.1,
      reduction="none")
    for red in V1_REDUCTIONS:
        E("v1_dense", f"{red}/w[B]", onehot_labels=YSOFT, logits=X, weights=a([.5, 0, 2]),
          reduction=red)
        E("v1_dense", f"{red}/empty", onehot_labels=np.zeros((0, 4), F32),
          logits=np.zeros((0, 4), F32), reduction=red)
    E("v1_dense", "labels-[1,C]", onehot_labels=Y1H[:1], logits=X)
    E("v1_dense", "labels-[B,C-1]", onehot_labels=Y1H[:, :3], logits=X)
    E("v1_dense", "w[B,1]", onehot_labels=Y1H, logits=X, weights=a([[1], [2], [3]]))
    E("v1_dense", "labels-f64-logits-f32", onehot_labels=a(YSOFT, np.float64), logits=X,
      reduction="none")
    E("v1_dense", "labels-int", onehot_labels=i32(Y1H), logits=X)
    E("v1_dense", "unnormalised", onehot_labels=a([[2, 1, 0, 0], [0, 0, 3, 3], [1, 1, 1, 1]]),
      logits=X, reduction="none")
    E("v1_dense", "-inf-zero-label", onehot_labels=a([[1, 0, 0]]), logits=a([[0, -INF, 1]]),
      reduction="none")
    E("v1_dense", "-inf-smoothed", onehot_labels=a([[1, 0, 0]]), logits=a([[0, -INF, 1]]),
      label_smoothing=0.1, reduction="none")
    E("v1_dense", "f64-ls", onehot_labels=a(Y1H, np.float64), logits=a(X, np.float64),
      label_smoothing=0.1, weights=a([.5, 0, 2], np.float64))

    # ------------------------------------------------------------ Keras sparse (§6.1, §6.2)
    for kv, reds, bad in (("keras2", K2_REDUCTIONS, "mean"), ("keras3", K3_REDUCTIONS, "auto")):
        def K(cid, init=None, kv=kv, **args):
            E("scce", cid, kv, init, **args)

        for red in reds:
            K(f"doc/{red}", {"reduction": red}, y_true=KY, y_pred=KP)
            K(f"doc/{red}/sw", {"reduction": red}, y_true=KY, y_pred=KP, sample_weight=KSW)
            K(f"doc-logits/{red}/sw", {"reduction": red, "from_logits": True}, y_true=KY,
              y_pred=KP, sample_weight=KSW)
            K(f"rank3/{red}/sw[2]", {"reduction": red, "from_logits": True}, y_true=R3Y,
              y_pred=R3, sample_weight=a([1, 2]))
            K(f"rank3/{red}/sw[2,1]", {"reduction": red, "from_logits": True}, y_true=R3Y,
              y_pred=R3, sample_weight=a([[1], [.5]]))
            K(f"empty/{red}", {"reduction": red}, y_true=i32([]), y_pred=np.zeros((0, 3), F32))
            K(f"ignore-all/{red}", {"reduction": red, "ignore_class": -1},
              y_true=i32([-1, -1]), y_pred=KP)
            K(f"ignore-1/{red}/sw", {"reduction": red, "ignore_class": -1},
              y_true=i32([1, -1, 2]), y_pred=a([[.05, .95, 0], [.3, .3, .4], [.1, .8, .1]]),
              sample_weight=a([.5, 3, 2]))
        K("invalid-reduction", {"reduction": bad}, y_true=KY, y_pred=KP)
        K("labels-[B,1]", None, y_true=i32([[1], [2]]), y_pred=KP)
        K("labels-float", None, y_true=a([1.7, 2.2]), y_pred=KP)
        K("ignore-in-range", {"ignore_class": 2, "reduction": "none"}, y_true=i32([1, 2]),
          y_pred=KP)
        K("ignore-in-range-sum", {"ignore_class": 2, "reduction": "sum_over_batch_size"},
          y_true=i32([1, 2, 0]), y_pred=a([[.05, .95, 0], [.1, .8, .1], [.2, .2, .6]]))
        K("ignore-[B,1]", {"ignore_class": -1}, y_true=i32([[1], [-1]]), y_pred=KP)
        K("ignore-rank3", {"ignore_class": 3, "from_logits": True}, y_true=R3Y, y_pred=R3)
        K("label=C", None, y_true=i32([1, 3]), y_pred=KP)
        K("label=-1", None, y_true=i32([1, -1]), y_pred=KP)
        K("C=1", {"reduction": "none"}, y_true=i32([0, 0]), y_pred=a([[1], [.5]]))
        K("C=1-logits", {"reduction": "none", "from_logits": True}, y_true=i32([0, 0]),
          y_pred=a([[1], [.5]]))
        for rid, row in (("zeros", [0, 0, 0]), ("onehot", [1, 0, 0]), ("2,1,1", [2, 1, 1]),
                         ("-1,1,1", [-1, 1, 1]), ("1e-9,.5,.5", [1e-9, .5, .5]),
                         ("one-hot-other", [0, 1, 0])):
            K(f"clip-row-{rid}", {"reduction": "none"}, y_true=i32([0, 0]),
              y_pred=a([row, [.2, .3, .5]]))
        K("logits-specials", {"reduction": "none", "from_logits": True}, y_true=i32([0, 1, 0]),
          y_pred=a([[NAN, 0, 1], [0, -INF, 1], [1e30, -1e30, 0]]))
        K("f64", {"reduction": "none"}, y_true=KY, y_pred=a(KP, np.float64))
        K("f16-probs", {"reduction": "none"}, y_true=KY, y_pred=a(KP, np.float16))
        K("bf16-probs-sum", {"reduction": "sum"}, y_true=KY, y_pred=a(KP, BF16))
        K("labels-flat-[B*T]", {"from_logits": True, "reduction": "none"},
          y_true=R3Y.reshape(-1), y_pred=R3)
        K("labels-[B,1,1]", {"reduction": "none"}, y_true=i32([[[1]], [[2]]]), y_pred=KP)
        K("labels-float64", {"reduction": "none"}, y_true=a([1, 2], np.float64), y_pred=KP)
        K("ignore-255", {"ignore_class": 255, "reduction": "sum_over_batch_size"},
          y_true=i32([1, 255]), y_pred=KP, sample_weight=KSW)
        K("ignore-rank3-sw[2,1]", {"ignore_class": 1, "from_logits": True, "reduction": "sum"},
          y_true=R3Y, y_pred=R3, sample_weight=a([[1], [.5]]))
        K("reduction=None", {"reduction": None}, y_true=KY, y_pred=KP)
        K("f16-logits", {"reduction": "sum", "from_logits": True}, y_true=KY,
          y_pred=a(KP, np.float16))
    big = np.zeros((1, 2050), F32)
    big[0, 2049] = 5.0
    E("scce", "dtype=float16-label-2049", "keras3", {"from_logits": True, "dtype": "float16"},
      y_true=i32([2049]), y_pred=big)
    E("scce", "axis-kw", "keras2", {"axis": 1}, y_true=KY, y_pred=KP)
    for kv in ("keras2", "keras3"):  # a scalar y_pred: tf_keras divides by its rank (0)
        E("scce", "y_pred-0d", kv, {"from_logits": True}, y_true=i32([1]), y_pred=a(0.5))
    E("scce", "axis-kw", "keras3", {"axis": 0}, y_true=KY, y_pred=KP)
    E("scce", "mean_with_sample_weight-rank3-[2,1]", "keras3",
      {"reduction": "mean_with_sample_weight", "from_logits": True}, y_true=R3Y, y_pred=R3,
      sample_weight=a([[1], [.5]]))

    # ------------------------------------------------------------ Keras dense (§6.4)
    for kv, reds in (("keras2", K2_REDUCTIONS), ("keras3", K3_REDUCTIONS)):
        def KC(cid, init=None, kv=kv, **args):
            E("cce", cid, kv, init, **args)

        for red in reds:
            KC(f"doc/{red}/sw", {"reduction": red}, y_true=KY1H, y_pred=KP, sample_weight=KSW)
            KC(f"empty/{red}", {"reduction": red}, y_true=np.zeros((0, 3), F32),
               y_pred=np.zeros((0, 3), F32))
        for ls in (0, 0.1, 1, 1.5, -0.1):
            for fl in (True, False):
                KC(f"ls={ls}/logits={fl}", {"label_smoothing": ls, "from_logits": fl,
                                            "reduction": "none"}, y_true=KY1H, y_pred=KP)
        for ax in (0, 1, -2, 5):
            for fl in (True, False):
                KC(f"axis={ax}/logits={fl}", {"axis": ax, "from_logits": fl, "reduction": "none"},
                   y_true=a([[0, 1, 0], [1, 0, 0]]), y_pred=a([[.3, .3, .4], [.5, .25, .25]]))
            KC(f"axis={ax}-rank3", {"axis": ax, "from_logits": True, "reduction": "none"},
               y_true=R3Y1H, y_pred=R3)
        KC("axis=-2/ls=0.1/logits=False", {"axis": -2, "label_smoothing": 0.1,
                                           "reduction": "none"},
           y_true=a([[0, 1, 0], [1, 0, 0]]), y_pred=a([[.3, .3, .4], [.5, .25, .25]]))
        KC("axis=0/ls=0.1", {"axis": 0, "label_smoothing": 0.1, "from_logits": True,
                             "reduction": "none"},
           y_true=a([[0, 1, 0], [1, 0, 0]]), y_pred=a([[.3, .3, .4], [.5, .25, .25]]))
        KC("shape-mismatch", None, y_true=a([[0, 1, 0]]), y_pred=a([[.25, .25, .25, .25]]))
        KC("y_true-[B,1]", None, y_true=a([[1], [0]]), y_pred=KP)
        KC("y_true-[C]", None, y_true=a([0, 1, 0]), y_pred=KP)
        for rid, row in (("zeros", [0, 0, 0]), ("onehot", [1, 0, 0]), ("2,1,1", [2, 1, 1]),
                         ("-1,1,1", [-1, 1, 1]), ("1e-9,.5,.5", [1e-9, .5, .5])):
            KC(f"clip-row-{rid}", {"reduction": "none"}, y_true=a([[1, 0, 0], [0, 0, 1]]),
               y_pred=a([row, [.2, .3, .5]]))
        for lid, lab in (("unnormalised", [[2, 1, 0], [0, 3, 3]]), ("negative", [[-1, 2, 0],
                                                                                [.5, -.5, 1]]),
                         ("all-zero", [[0, 0, 0], [0, 1, 0]])):
            for fl in (True, False):
                KC(f"labels-{lid}/logits={fl}", {"from_logits": fl, "reduction": "none"},
                   y_true=a(lab), y_pred=KP)
        KC("-inf-zero-label", {"from_logits": True, "reduction": "none"},
           y_true=a([[1, 0, 0]]), y_pred=a([[0, -INF, 1]]))
        KC("sw[B,1]", {"reduction": "sum"}, y_true=KY1H, y_pred=KP, sample_weight=a([[1], [2]]))
        KC("rank3-sw[2]", {"from_logits": True}, y_true=R3Y1H, y_pred=R3, sample_weight=a([1, 2]))
        KC("f16-probs", {"reduction": "none"}, y_true=KY1H, y_pred=a(KP, np.float16))
        KC("rank3-ls", {"from_logits": True, "label_smoothing": 0.2, "reduction": "sum"},
           y_true=R3Y1H, y_pred=R3)
        KC("f64", {"reduction": "none", "label_smoothing": 0.1}, y_true=a(KY1H, np.float64),
           y_pred=a(KP, np.float64))
    return cs


EDGE_CASES = edge_cases()
assert len({c.id for c in EDGE_CASES}) == len(EDGE_CASES), "duplicate edge case ids"


def _short(v) -> str:
    if isinstance(v, np.ndarray):
        dt = v.dtype.name
        if v.size > 24:
            return f"{dt}{list(v.shape)}"
        vals = np.array2string(_f64(v) if v.dtype == BF16 else v, precision=4, separator=",")
        return f"{dt}{list(v.shape)}{vals}".replace("\n", "")
    return repr(v)


def describe_case(case: Case) -> str:
    args = ", ".join(f"{k}={_short(v)}" for k, v in case.args.items())
    init = f" init={case.init}" if case.init else ""
    return f"{API_IDS[case.api]}{init} [{case.keras or 'tf'}] ({args})"

# =========================================================================== worked numbers

CANON_X = [[2.0, -5.0, 0.5, -0.1], [0.0, 0.0, 1.9, 1.4], [-100.0, 100.0, -100.0, -100.0]]
CANON_Y = [0, 3, 1]
K_TRUE = [1, 2]
K_ONEHOT = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
K_PRED = [[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]]
IGN_PRED = [[0.05, 0.95, 0.0], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]]
RANK3_X = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) % 7 * 0.75 - 2.0).astype(F32)
RANK3_Y = np.array([[0, 1, 2], [3, 0, 1]], dtype=np.int32)
GPU_X = [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]
GPU_Y = [4, 3, 0, -1]


def worked_cases() -> list[Case]:
    """The inputs of the worked examples of TF-SEMANTICS.md and the seed documents (the
    numbers ``test_worked_numbers.py`` holds the oracle to), as a user writes them — Python
    lists where the document uses lists — and with float32 arrays, so that TensorFlow's
    gradient is recorded too."""
    cs: list[Case] = []

    def W(api, cid, keras=None, init=None, **args):
        cs.append(Case(api, args, init, keras,
                       id=f"worked:{api}{'-' + keras if keras else ''}:{cid}"))

    # §0 the canonical example, float32 and float64
    for dt in ("float32", "float64"):
        W("raw_sparse", f"canonical-{dt}", features=a(CANON_X, dt), labels=i32(CANON_Y))
        W("nn_sparse", f"canonical-{dt}", labels=i32(CANON_Y), logits=a(CANON_X, dt))
        W("v1_sparse", f"canonical-{dt}-none", labels=i32(CANON_Y), logits=a(CANON_X, dt),
          reduction="none")
    W("nn_sparse", "canonical-lists", labels=CANON_Y, logits=CANON_X)
    # the invalid-label rows of TF's GPU test (NaN rows on GPU/XLA, an error on the CPU)
    W("raw_sparse", "gpu-test-labels", features=a(GPU_X), labels=i32(GPU_Y))
    W("nn_sparse", "gpu-test-labels", labels=i32(GPU_Y), logits=a(GPU_X))
    # §1.1 special values
    W("raw_sparse", "-inf-non-label", features=a([[0.0, -INF, 1.0]]), labels=i32([0]))
    W("raw_sparse", "-inf-at-label", features=a([[0.0, -INF, 1.0]]), labels=i32([1]))
    for rid, row in (("all--inf", [-INF, -INF]), ("+inf", [INF, 0.0])):
        for lab in (0, 1):
            W("raw_sparse", f"{rid}-label{lab}", features=a([row]), labels=i32([lab]))
    for lab in (0, 1):
        W("raw_sparse", f"nan-only-its-row-label{lab}", features=a([[NAN, 0.0], [1.0, 2.0]]),
          labels=i32([lab, 1]))
    W("raw_sparse", "huge", features=a([[1e30, -1e30]]), labels=i32([1]))
    W("raw_sparse", "single-class", features=a([[1.0], [-1.0], [0.0]]), labels=i32([0, 0, 0]))
    # §1.2 / §3 dense
    W("raw_dense", "-inf-zero-label", features=a([[0.0, -INF, 1.0]]), labels=a([[1, 0, 0]]))
    W("nn_dense", "-inf-zero-label", labels=a([[1, 0, 0]]), logits=a([[0.0, -INF, 1.0]]))
    W("raw_dense", "-inf-label-half", features=a([[0.0, -INF, 1.0]]),
      labels=a([[0.5, 0, 0.5]]))
    W("v1_dense", "-inf-smoothed", onehot_labels=[[1.0, 0.0, 0.0]], logits=a([[0.0, -INF, 1.0]]),
      label_smoothing=0.1, reduction="none")
    W("nn_sparse", "rank1-scalar-label", labels=2, logits=[1.0, 2.0, 3.0])
    W("nn_sparse", "rank1-scalar-label-array", labels=np.asarray(2, np.int32),
      logits=a([1.0, 2.0, 3.0]))
    W("nn_dense", "doc", labels=[[1.0, 0.0, 0.0], [0.0, 0.8, 0.2]],
      logits=[[4.0, 2.0, 1.0], [0.0, 5.0, 1.0]])
    W("nn_dense", "doc-arrays", labels=a([[1.0, 0.0, 0.0], [0.0, 0.8, 0.2]]),
      logits=a([[4.0, 2.0, 1.0], [0.0, 5.0, 1.0]]))
    # §5.2 the reduction table of compat.v1 (weights as the document writes them)
    weights = {"default": None, "w[0.5,0,2]": [0.5, 0.0, 2.0], "scalar2.0": 2.0,
               "scalar0": 0.0, "zeros": [0.0, 0.0, 0.0], "w[-1,1,1]": [-1.0, 1.0, 1.0]}
    for wid, w in weights.items():
        for red in V1_REDUCTIONS:
            kw = {} if w is None else {"weights": w}
            W("v1_sparse", f"table/{wid}/{red}", labels=CANON_Y, logits=a(CANON_X),
              reduction=red, **kw)
        W("v1_sparse", f"table-lists/{wid}", labels=CANON_Y, logits=CANON_X,
          **({} if w is None else {"weights": w}))
    for red in V1_REDUCTIONS:
        W("v1_sparse", f"empty/{red}", labels=np.zeros((0,), np.int32),
          logits=np.zeros((0, 4), F32), reduction=red)
        W("v1_sparse", f"rank3-w[[1],[0]]/{red}", labels=RANK3_Y, logits=RANK3_X,
          weights=a([[1.0], [0.0]]), reduction=red)
    # §4 label smoothing
    W("v1_dense", "ls-doc", onehot_labels=K_ONEHOT, logits=a(K_PRED), weights=[0.3, 0.7],
      label_smoothing=0.2)
    W("v1_dense", "ls-doc-none", onehot_labels=K_ONEHOT, logits=a(K_PRED), label_smoothing=0.2,
      reduction="none")
    W("v1_dense", "ls-canonical-0.1", onehot_labels=np.eye(4, dtype=F32)[CANON_Y],
      logits=a(CANON_X), label_smoothing=0.1, reduction="none")
    # §6 Keras (seed 002: the SparseCategoricalCrossentropy docstring), with numpy arrays
    # (Keras 3 rejects a Python-list y_true; "doc-lists" records that as written)
    kt, k1h, kp = i32(K_TRUE), a(K_ONEHOT), a(K_PRED)
    for kv in ("keras2", "keras3"):
        W("cce", "ls-doc", kv, {"from_logits": True, "label_smoothing": 0.2},
          y_true=k1h, y_pred=kp, sample_weight=a([0.3, 0.7]))
        docs = {"default": ({}, None), "sample_weight[0.3,0.7]": ({}, a([0.3, 0.7])),
                "sum": ({"reduction": "sum"}, None), "none": ({"reduction": "none"}, None),
                "from_logits": ({"from_logits": True}, None),
                "from_logits-none": ({"from_logits": True, "reduction": "none"}, None)}
        for cid, (init, sw) in docs.items():
            W("scce", f"doc/{cid}", kv, init, y_true=kt, y_pred=kp, sample_weight=sw)
        W("scce", "doc-lists", kv, None, y_true=K_TRUE, y_pred=K_PRED)
        W("scce", "doc-lists-sample_weight", kv, None, y_true=K_TRUE, y_pred=K_PRED,
          sample_weight=[0.3, 0.7])
        for cid in ("default", "sample_weight[0.3,0.7]", "sum", "none"):
            init, sw = docs[cid]
            W("cce", f"doc/{cid}", kv, init, y_true=k1h, y_pred=kp, sample_weight=sw)
        W("scce", "ignore-class", kv, {"ignore_class": -1}, y_true=i32([1, -1, 2]),
          y_pred=a(IGN_PRED), sample_weight=a([0.5, 3.0, 2.0]))
        W("scce", "ignore-class-none", kv, {"ignore_class": -1, "reduction": "none"},
          y_true=i32([1, -1, 2]), y_pred=a(IGN_PRED))
        W("scce", "ignore-all", kv, {"ignore_class": -1}, y_true=i32([-1, -1]), y_pred=kp)
        for cid, row in (("all-zero-row", [0.0, 0.0, 0.0]), ("[2,1,1]", [2.0, 1.0, 1.0]),
                         ("[-1,1,1]", [-1.0, 1.0, 1.0]), ("[1e-9,.5,.5]", [1e-9, 0.5, 0.5]),
                         ("exact-one-hot", [0.0, 1.0, 0.0])):
            W("scce", f"clip/{cid}", kv, {"reduction": "none"},
              y_true=i32([1 if cid == "exact-one-hot" else 0]), y_pred=a([row]))
        W("cce", "normalises-before-clipping", kv, {"reduction": "none"},
          y_true=a([[1.0, 0.0, 0.0]]), y_pred=a([[2.0, 1.0, 1.0]]))
    W("scce", "reduction=None", "keras3", {"reduction": None}, y_true=kt, y_pred=kp)
    for sw in ([0.3, 0.7], [0.3, 0.2]):
        W("scce", f"mean_with_sample_weight/{sw}", "keras3",
          {"reduction": "mean_with_sample_weight"}, y_true=kt, y_pred=kp, sample_weight=a(sw))
    for red in ("sum", "sum_over_batch_size"):
        W("scce", f"empty/{red}", "keras3", {"reduction": red},
          y_true=np.zeros((0,), np.int32), y_pred=np.zeros((0, 3), F32))
    W("scce", "empty/default", "keras2", None, y_true=np.zeros((0,), np.int32),
      y_pred=np.zeros((0, 3), F32))
    return cs


# =========================================================================== the catalogue

#: (api, dtype, Keras variant) of every calibration group.
CALIBRATION_KEYS = [
    (api, dtype, None)
    for api in ("raw_sparse", "raw_dense", "nn_sparse", "nn_dense", "v1_sparse", "v1_dense")
    for dtype in DTYPES
] + [(api, dtype, kv) for api in ("scce", "cce") for kv in ("keras2", "keras3")
     for dtype in DTYPES]


#: Under XLA the calibration set is recorded up to this many classes (the edge cases and
#: worked numbers in full): XLA's semantics differ from eager's, its rounding does not
#: calibrate K (eager CPU does), and the files stay small.
XLA_CALIBRATION_MAX_C = 10


def recorded_in(mode: str, group: str, case: Case) -> bool:
    """Whether ``case`` of ``group`` is recorded in ``mode``."""
    if mode == "eager" or group != "calibration":
        return True
    x = case.args.get(DIFF_ARG[case.api])
    return np.shape(x)[-1] <= XLA_CALIBRATION_MAX_C


def all_cases() -> list[tuple[str, Case]]:
    """Every case, as (group, case): the calibration set, the edge cases, the worked
    numbers. Ids are unique."""
    out = [("calibration", c) for key in CALIBRATION_KEYS for c in calibration_cases(*key)]
    out += [("edge", c) for c in EDGE_CASES]
    out += [("worked", c) for c in worked_cases()]
    ids = [c.id for _, c in out]
    assert len(set(ids)) == len(ids), "duplicate case ids"
    return out


def logits_dtype(case: Case) -> str:
    """The dtype of the logits argument (``y_pred`` for Keras), as TensorFlow sees it."""
    x = case.args.get(DIFF_ARG[case.api])
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x).dtype.name
    return "float32"  # a Python list or scalar becomes a float32 tensor


# =========================================================================== fixture codec

def _hex(v: float) -> str:
    """A float as a short C99 hex string (``float.fromhex`` reads it back exactly)."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    mant, _, exp = float(v).hex().partition("p")
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}"


def encode_array(x) -> dict:
    """``{"dtype", "shape", "data"}``: flat row-major data, floats as hex strings."""
    x = np.asarray(x)
    dt = x.dtype
    if dt.kind == "f" or dt == BF16:
        data = [_hex(v) for v in x.astype(np.float64).ravel().tolist()]
    elif dt.kind in "iub":
        data = x.ravel().tolist()
    else:
        raise TypeError(f"cannot record an array of dtype {dt}")
    return {"dtype": dt.name, "shape": list(x.shape), "data": data}


def decode_array(d: dict) -> np.ndarray:
    """The array written by :func:`encode_array`, bit for bit (NaN payloads aside)."""
    name = d["dtype"]
    shape = tuple(d["shape"])
    if name in DTYPES:
        vals = np.array([float.fromhex(v) for v in d["data"]], dtype=np.float64)
        return vals.astype(DTYPES[name]).reshape(shape)
    return np.array(d["data"], dtype=np.dtype(name)).reshape(shape)


def _encode_plain(v):
    if isinstance(v, (np.ndarray, np.generic)):
        return encode_array(v)
    if isinstance(v, float) and not math.isfinite(v):
        raise TypeError("a non-finite Python float is not JSON; use an array")
    if isinstance(v, (list, tuple)):
        return [_encode_plain(e) for e in v]
    return v


def _decode_plain(v):
    if isinstance(v, dict):
        return decode_array(v)
    return v


def encode_case(case: Case, profile: str, upstream) -> dict:
    """The case as a case of ``xentconf oracle`` (its JSON format)."""
    out = {"api": API_IDS[case.api], "args": {k: _encode_plain(v) for k, v in case.args.items()},
           "profile": profile}
    if case.api in ("scce", "cce"):
        out["init"] = dict(case.init or {})
        out["keras"] = case.keras
    if upstream is not None:
        out["upstream"] = encode_array(upstream)
    return out


_SHORT = {v: k for k, v in API_IDS.items()}


def decode_case(d: dict, cid: str) -> tuple[Case, np.ndarray | None]:
    """(case, upstream) from :func:`encode_case`'s form."""
    api = _SHORT[d["api"]]
    case = Case(api, {k: _decode_plain(v) for k, v in d["args"].items()},
                d.get("init") if api in ("scce", "cce") else None, d.get("keras"), id=cid)
    up = d.get("upstream")
    return case, (decode_array(up) if up is not None else None)


def encode_result(res: TFResult) -> dict:
    if res.error is not None:
        return {"raises": {"error": res.error, "message": res.message}}
    return {"outputs": {k: encode_array(v) for k, v in res.outputs.items()},
            "grad_error": res.grad_error}


def decode_result(d: dict) -> TFResult:
    if "raises" in d:
        return TFResult(error=d["raises"]["error"], message=d["raises"]["message"])
    return TFResult(outputs={k: decode_array(v) for k, v in d["outputs"].items()},
                    grad_error=d.get("grad_error"))


@dataclass
class Recording:
    """One recorded call: the case, the upstream gradient sent, TensorFlow's answer."""

    group: str  # calibration | edge | worked
    mode: str  # eager | xla
    profile: str  # the oracle's profile for the mode
    case: Case
    upstream: np.ndarray | None
    result: TFResult
    raw: dict = field(repr=False, default_factory=dict)  # the case as stored


def fixture_path(mode: str) -> Path:
    return FIXTURES / f"{mode}.json.gz"


def read_fixture(mode: str) -> dict:
    with gzip.open(fixture_path(mode), "rt", encoding="utf-8") as f:
        return json.load(f)


def load_recordings(mode: str) -> tuple[dict, list[Recording]]:
    """(the file's header, its recordings) of one mode."""
    doc = read_fixture(mode)
    if doc.get("format") != FORMAT:
        raise ValueError(f"{fixture_path(mode).name}: format {doc.get('format')!r}, this "
                         f"reader knows {FORMAT}; regenerate with `nox -s record-tensorflow`")
    recs = []
    for entry in doc["cases"]:
        case, up = decode_case(entry["case"], entry["id"])
        recs.append(Recording(entry["group"], doc["mode"], doc["profile"], case, up,
                              decode_result(entry["result"]), entry["case"]))
    header = {k: v for k, v in doc.items() if k != "cases"}
    return header, recs

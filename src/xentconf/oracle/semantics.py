"""TensorFlow's semantics for the eight APIs, decided once.

Each ``plan_*`` function takes the arguments of one API, exactly as a user passes them
to TensorFlow (numpy arrays, bfloat16 as ``ml_dtypes.bfloat16``, Python scalars and
lists), and returns a :class:`~xentconf.oracle.plan.Plan` or a
:class:`~xentconf.oracle.plan.Raises`. They reproduce every pipeline fact that changes
the mathematical result (shapes, squeezes, broadcasting, transposes, label conversions,
label smoothing, Keras clipping, weights and reductions with ``div_no_nan``, the device
profile's bad-label rule) and nothing that only loses precision.

Sources: ``TF-SEMANTICS.md`` (TensorFlow 2.21, Keras 3.15.1, tf_keras 2.21) — section
numbers in comments refer to it.

Decisions where TensorFlow's pipeline rounds an *input* (documented conversions):
Keras 3 converts ``y_true``, ``y_pred`` and ``sample_weight`` to the loss dtype
(float32 by default), tf_keras casts ``sample_weight`` to the loss dtype, and the dense
ops cast labels to the dtype they compute in; the oracle rounds those inputs as TF does
and takes the rounded values as exact. Scalars TF uses only inside its arithmetic (a
label-smoothing ε, compat.v1's float32 weights) are taken exactly as given. Keras's clip
bounds are ``epsilon = 1e-7`` and ``1 − epsilon`` as TF materialises them in the dtype
the clip runs in.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from xentconf.vocabulary import DTYPES, KERAS_VARIANTS, PROFILES

from .exact import frac as _frac
from .formats import FORMATS, Format, round_fraction, round_to_format
from .plan import IdentityReduction, Plan, Precision, Raises, Reduction, Rows

__all__ = [
    "OracleInputError",
    "PROFILES",
    "COMPAT_V1_REDUCTIONS",
    "KERAS2_REDUCTIONS",
    "KERAS3_REDUCTIONS",
    "plan_raw_sparse",
    "plan_raw_dense",
    "plan_nn_sparse",
    "plan_nn_dense",
    "plan_v1_sparse",
    "plan_v1_dense",
    "plan_keras_sparse",
    "plan_keras_dense",
]

COMPAT_V1_REDUCTIONS = (
    "none",
    "weighted_sum",
    "weighted_mean",
    "weighted_sum_over_batch_size",
    "weighted_sum_by_nonzero_weights",
)
KERAS2_REDUCTIONS = ("auto", "none", "sum", "sum_over_batch_size")
KERAS3_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean",
                     "mean_with_sample_weight")
KERAS_EPSILON = 1e-7

F16, BF16, F32, F64 = (FORMATS[k] for k in DTYPES)
FLOAT_DTYPES = set(DTYPES)
INT_LABEL_DTYPES = {"int32", "int64"}
IAE = "InvalidArgumentError"

_TF_NAMES = {
    "float16": "half", "bfloat16": "bfloat16", "float32": "float", "float64": "double",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool",
    "complex64": "complex64", "complex128": "complex128",
}


class OracleInputError(ValueError):
    """Bad input to the oracle itself (not a TensorFlow error case)."""


def upstream_values(upstream, shape: tuple) -> np.ndarray:
    """The upstream gradient of a loss output of ``shape`` as float64 (ones when None),
    broadcast to that shape (a read-only view); OracleInputError when it is not numeric or
    does not fit."""
    if upstream is None:
        return np.broadcast_to(np.float64(1.0), shape)
    arr = np.asarray(upstream)
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise OracleInputError(f"upstream: must be numeric, got dtype {arr.dtype}")
    try:
        return np.broadcast_to(arr.astype(np.float64), shape)
    except ValueError:
        raise OracleInputError(f"upstream: shape {tuple(arr.shape)} does not match the "
                               f"output shape {tuple(shape)}") from None


# --------------------------------------------------------------------------- helpers


def _convert(value, name: str, *, dtype=None) -> np.ndarray:
    """Convert like ``tf.convert_to_tensor``: numpy keeps its dtype, Python floats → float32,
    Python ints → int32 (int64 when out of range)."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, np.generic):
        arr = np.asarray(value)
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise OracleInputError(f"{name}: cannot be read as a numeric array ({exc})") from None
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        elif arr.dtype.kind in "iu":
            info = np.iinfo(np.int32)
            arr = arr.astype(np.int32 if (arr.size == 0 or (
                arr.min() >= info.min and arr.max() <= info.max)) else np.int64)
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise OracleInputError(
            f"{name}: dtype {arr.dtype} is not numeric; pass a numpy array of numbers "
            "(float16, bfloat16, float32, float64 or an integer type)"
        )
    if dtype is not None:
        arr = arr.astype(dtype)
    return arr


def _fmt(arr: np.ndarray) -> Format | None:
    return FORMATS.get(arr.dtype.name)


def _tf_name(dtype) -> str:
    name = np.dtype(dtype).name
    return _TF_NAMES.get(name, name)


def kshape(shape) -> str:
    """TF kernel-style shape: ``[3,4]``."""
    return "[" + ",".join(str(d) for d in shape) + "]"


def pshape(shape) -> str:
    """Python-style TensorShape: ``(3, 4)``, ``(3,)``, ``()``."""
    return str(tuple(int(d) for d in shape))


def _round_array(arr: np.ndarray, fmt: Format) -> np.ndarray:
    """Round every element exactly to ``fmt`` (values as float64), vectorized."""
    if arr.dtype.name in FORMATS and FORMATS[arr.dtype.name].p <= fmt.p and (
            FORMATS[arr.dtype.name].emin >= fmt.emin):
        return arr.astype(np.float64)
    if arr.dtype.kind in "iu" and arr.size and np.abs(arr.astype(np.float64)).max() >= 2.0**53:
        # integers float64 cannot hold: round each exactly, once
        out = [round_fraction(Fraction(int(v)), fmt) for v in arr.ravel().tolist()]
        return np.array(out, dtype=np.float64).reshape(arr.shape)
    x = arr.astype(np.float32).astype(np.float64) if arr.dtype.name == "bfloat16" else \
        arr.astype(np.float64)  # exact: every other input dtype embeds in float64
    return round_to_format(x, fmt)


def _as_source(arr: np.ndarray) -> np.ndarray:
    """The values of a float array in float64, float32 or float16, exactly, without copying
    float32 and float16 arrays (``Rows.x`` converts them to float64 when asked)."""
    if arr.dtype in (np.float32, np.float16):
        return np.asarray(arr)
    if arr.dtype.name == "bfloat16":
        return arr.astype(np.float32)
    return _as_float64(arr)


def _as_float64(arr: np.ndarray) -> np.ndarray:
    """Exact float64 copy of a float array (every format here embeds in float64)."""
    return np.asarray(arr, dtype=np.float64) if arr.dtype.name != "bfloat16" else \
        arr.astype(np.float32).astype(np.float64)


def _labels_nan_rows(labels: np.ndarray, c: int) -> np.ndarray:
    return (labels < 0) | (labels >= c)


def _label_error(labels_flat: np.ndarray, c: int) -> Raises | None:
    """The CPU kernel's range check (§1.1): reports the minimum if negative, else the max."""
    if labels_flat.size == 0:
        return None
    if labels_flat.dtype == np.int64 and int(labels_flat.view(np.uint64).max()) < c:
        return None  # one pass: a negative label is at least 2**63 as unsigned
    lo, hi = int(labels_flat.min()), int(labels_flat.max())
    if lo < 0:
        bad = lo
    elif hi >= c:
        bad = hi
    else:
        return None
    values = " ".join(str(int(v)) for v in labels_flat.tolist())
    return Raises(IAE, f"Received a label value of {bad} which is outside the valid range of "
                       f"[0, {c}).  Label values: {values}")


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise OracleInputError(
            f"profile: {profile!r} is not one of {', '.join(PROFILES)}")


def _dtype_attr_error(features: np.ndarray, labels: np.ndarray | None) -> Raises | None:
    if features.dtype.name not in FLOAT_DTYPES:
        return Raises(IAE, f"Value for attr 'T' of {_tf_name(features.dtype)} is not in the list "
                           "of allowed values: half, bfloat16, float, double")
    if labels is not None and labels.dtype.name not in INT_LABEL_DTYPES:
        return Raises(IAE, f"Value for attr 'Tlabels' of {_tf_name(labels.dtype)} is not in the "
                           "list of allowed values: int32, int64")
    return None


def _nn_sparse_precision(fmt: Format) -> Precision:
    elem = F32 if fmt is F16 else fmt  # §2: float16 upcast to float32, bfloat16 native
    return Precision(elem, elem)


def _nn_dense_precision(fmt: Format) -> Precision:
    elem = F32 if fmt in (F16, BF16) else fmt  # §3: float16 and bfloat16 upcast
    return Precision(elem, elem)


# --------------------------------------------------------------------------- raw ops


def plan_raw_sparse(features, labels, *, profile="cpu") -> Plan | Raises:
    """``tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits`` (§1.1)."""
    _check_profile(profile)
    api = "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits"
    f = _convert(features, "features")
    lab = _convert(labels, "labels")
    contract = None
    if isinstance(labels, (np.ndarray, np.generic)) and lab.dtype.name not in INT_LABEL_DTYPES:
        # eager TF converts a numpy label array of any numeric dtype to Tlabels=int64,
        # truncating toward zero (NaN → INT64_MIN); only lists and tensors of another
        # dtype hit the attr check — which the op's documentation (int32/int64) states,
        # so raising it conforms too (SPEC §2, "Documented contract or binding coercion")
        contract = _dtype_attr_error(f if f.dtype.name in FLOAT_DTYPES else
                                     np.zeros(0, np.float32), lab)
        lab = _trunc_int64(_as_float64(lab)) if lab.dtype.kind == "f" or \
            lab.dtype.name == "bfloat16" else lab.astype(np.int64)
    err = _dtype_attr_error(f, lab)
    if err:
        return err
    if f.ndim != 2:
        return Raises(IAE, f"logits must be 2-D, but got shape {kshape(f.shape)}")
    if lab.ndim != 1:
        return Raises(IAE, f"labels must be 1-D, but got shape {kshape(lab.shape)}")
    if f.shape[0] != lab.shape[0]:
        return Raises(IAE, "logits and labels must have the same first dimension, got logits "
                           f"shape {kshape(f.shape)} and labels shape {kshape(lab.shape)}")
    if f.shape[1] == 0:
        return Raises(IAE, f"Must have at least one class, but got logits shape {kshape(f.shape)}")
    plan = _sparse_kernel_plan(api, f, lab, profile, Precision(_fmt(f), _fmt(f)),
                               loss_shape=(f.shape[0],), backprop=True)
    if isinstance(plan, Plan):
        plan.contract = contract
    return plan


def _sparse_kernel_plan(api, f2, lab1, profile, precision, *, loss_shape, backprop=False,
                        grad_shape=None, perm=None, moved=None) -> Plan | Raises:
    """The sparse kernel on ``[N, C]`` logits and ``[N]`` labels, under a device profile."""
    n, c = f2.shape
    lab64 = np.asarray(lab1, dtype=np.int64)  # int64 labels as they are (read, never written)
    nan_rows = None  # no NaN row on the CPU: Rows makes the all-false mask
    if profile == "cpu":
        err = _label_error(lab64, c)
        if err:
            return err
    else:
        nan_rows = _labels_nan_rows(lab64, c)
    fmt = _fmt(f2)
    rows = Rows("sparse", _as_source(f2), labels=lab64, nan_rows=nan_rows)
    return Plan(api, profile, rows, IdentityReduction(n, loss_shape), fmt, fmt, precision,
                grad_shape=tuple(grad_shape if grad_shape is not None else f2.shape),
                grad_format=fmt, grad_perm=perm, moved_shape=moved,
                backprop_shape=(n, c) if backprop else None)


def plan_raw_dense(features, labels, *, profile="cpu") -> Plan | Raises:
    """``tf.raw_ops.SoftmaxCrossEntropyWithLogits`` (§1.2)."""
    _check_profile(profile)
    api = "tf.raw_ops.SoftmaxCrossEntropyWithLogits"
    f = _convert(features, "features")
    err = _dtype_attr_error(f, None)
    if err:
        return err
    fmt = _fmt(f)
    lab = _convert(labels, "labels")
    # labels must have T; a numpy array of another dtype is converted to T (§1.2)
    y = _round_array(lab, fmt) if lab.dtype != f.dtype else _as_float64(lab)
    try:
        bshape = np.broadcast_shapes(f.shape, y.shape)
    except ValueError:
        return Raises(IAE, "logits and labels must be broadcastable: logits_size="
                           f"{kshape(f.shape)} labels_size={kshape(y.shape)}")
    if len(bshape) != 2:
        return Raises(IAE, "logits and labels must be either 2-dimensional, or broadcasted to be "
                           "2-dimensional")
    x = np.broadcast_to(_as_source(f), bshape)
    yb = np.broadcast_to(y, bshape)
    n, c = bshape
    rows = Rows("dense", np.ascontiguousarray(x), y=np.ascontiguousarray(yb),
                xla_zero_labels=(profile == "xla"))
    plan = Plan(api, profile, rows, IdentityReduction(n, (n,)), fmt, fmt,
                Precision(fmt, fmt), grad_shape=tuple(f.shape), grad_format=fmt,
                backprop_shape=(n, c))
    if tuple(f.shape) != tuple(bshape):
        # the op broadcast the features: TF's gradient would not match their shape (§(d) 5)
        plan.grad_available = False
        plan.notes.append("features were broadcast by the op; no gradient is defined")
    return plan


# --------------------------------------------------------------------------- tf.nn


def plan_nn_sparse(labels, logits, *, profile="cpu", api=None) -> Plan | Raises:
    """``tf.nn.sparse_softmax_cross_entropy_with_logits`` (§2)."""
    _check_profile(profile)
    api = api or "tf.nn.sparse_softmax_cross_entropy_with_logits"
    if labels is None or logits is None:
        return Raises("ValueError", "Attempt to convert a value (None) with an unsupported type "
                                    "(<class 'NoneType'>) to a Tensor.")
    z = _convert(logits, "logits")
    lab = _convert(labels, "labels")
    if z.ndim == 0:
        return Raises("ValueError", f"`logits` cannot be a scalar. Received logits={z!s}`")
    if lab.ndim != z.ndim - 1:
        return Raises("ValueError", "`labels.shape.rank` must equal `logits.shape.rank - 1`. "
                                    f"Received: labels.shape={pshape(lab.shape)} of rank "
                                    f"{lab.ndim} and logits.shape={pshape(z.shape)} of rank "
                                    f"{z.ndim}")
    if tuple(lab.shape) != tuple(z.shape[:-1]):
        return Raises("ValueError", "`labels.shape` must equal `logits.shape` except for the last "
                                    f"dimension. Received: labels.shape={pshape(lab.shape)} and "
                                    f"logits.shape={pshape(z.shape)}")
    err = _dtype_attr_error(z, lab)
    if err:
        return err
    c = z.shape[-1]
    if c == 0:
        if z.ndim == 2:
            return Raises(IAE, f"Must have at least one class, but got logits shape "
                               f"{kshape(z.shape)}")
        return Raises(IAE, "Reshape cannot infer the missing input size for an empty tensor "
                           "unless all specified input sizes are non-zero")
    n = int(np.prod(z.shape[:-1], dtype=np.int64))
    f2 = z.reshape(n, c)
    plan = _sparse_kernel_plan(api, f2, lab.reshape(n), profile,
                               _nn_sparse_precision(_fmt(z)), loss_shape=tuple(lab.shape),
                               grad_shape=z.shape)
    return plan


def plan_nn_dense(labels, logits, axis=-1, *, profile="cpu", api=None) -> Plan | Raises:
    """``tf.nn.softmax_cross_entropy_with_logits`` (§3)."""
    _check_profile(profile)
    api = api or "tf.nn.softmax_cross_entropy_with_logits"
    if labels is None or logits is None:
        return Raises("ValueError", "Attempt to convert a value (None) with an unsupported type "
                                    "(<class 'NoneType'>) to a Tensor.")
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise OracleInputError(f"axis: must be an int, got {axis!r}")
    z = _convert(logits, "logits")
    lab = _convert(labels, "labels")
    err = _dtype_attr_error(z, None)
    if err:
        return err
    fmt = _fmt(z)
    prec = _nn_dense_precision(fmt)
    if z.ndim == 0:
        return Raises(IAE, "Expected begin[0] == 0 (got -1) and size[0] == 0 (got 1) when "
                           "input.dim_size(0) == 0 [Op:Slice]")
    axis = int(axis)
    perm = None
    moved = None
    if axis != -1:
        if axis < 0:  # §3 step 2: TF does not normalise negative axes other than -1
            return Raises(IAE, f"Requires start <= limit when delta > 0: 0/{axis} [Op:Range]")
        if axis >= z.ndim:
            return Raises(IAE, f"Requires start <= limit when delta > 0: {axis + 1}/{z.ndim} "
                               "[Op:Range]")
        perm = tuple(list(range(axis)) + list(range(axis + 1, z.ndim)) + [axis])
        if lab.ndim != z.ndim:
            return Raises(IAE, "transpose expects a vector of size "
                               f"{lab.ndim}. But input(1) is a vector of size {z.ndim}")
        zt = np.transpose(z, perm)
        lab = np.transpose(lab, perm)
        moved = zt.shape
    else:
        zt = z
    # labels are cast to the (possibly upcast) compute dtype (§3 step 1)
    y = _round_array(lab, prec.elem)
    c = zt.shape[-1]
    n = int(np.prod(zt.shape[:-1], dtype=np.int64))
    x2 = _as_source(zt).reshape(n, c)
    if y.ndim == 0:
        return Raises(IAE, "Expected begin[0] == 0 (got -1) and size[0] == 0 (got 1) when "
                           "input.dim_size(0) == 0 [Op:Slice]")
    ly = y.shape[-1]
    y2 = y.reshape(int(np.prod(y.shape[:-1], dtype=np.int64)), ly)
    try:
        bshape = np.broadcast_shapes(x2.shape, y2.shape)
    except ValueError:
        return Raises(IAE, "logits and labels must be broadcastable: logits_size="
                           f"{kshape(x2.shape)} labels_size={kshape(y2.shape)}")
    if tuple(bshape) != tuple(x2.shape):
        return Raises(IAE, f"Input to reshape is a tensor with {bshape[0]} values, but the "
                           f"requested shape has {n}")
    yb = np.ascontiguousarray(np.broadcast_to(y2, bshape))
    rows = Rows("dense", x2, y=yb, xla_zero_labels=(profile == "xla"))
    loss_shape = tuple(zt.shape[:-1])
    return Plan(api, profile, rows, IdentityReduction(n, loss_shape), fmt, fmt, prec,
                grad_shape=tuple(z.shape), grad_format=fmt, grad_perm=perm, moved_shape=moved)


# --------------------------------------------------------------------------- compat.v1


def _weights_array(weights) -> tuple[np.ndarray, bool]:
    if isinstance(weights, bool):
        raise OracleInputError("weights: must be a number or a numeric array, not a bool")
    if isinstance(weights, (int, float)):
        return np.asarray(float(weights), dtype=np.float64), True
    arr = _convert(weights, "weights")
    if arr.dtype.kind == "b":
        raise OracleInputError("weights: must be numeric, got a bool array")
    return arr, False


def _v1_reduce(plan: Plan, weights, reduction: str, scope: str) -> Plan | Raises:
    """``compute_weighted_loss`` with ``Reduction`` (§5.2), on a per-element loss plan.

    Inside an XLA context (profile ``xla``) TensorFlow skips ``assert_broadcastable``: the
    weights meet the losses only in the multiply, by ordinary broadcasting, so ``[B, 1]``
    weights against ``[B]`` losses give ``[B, B]`` weighted elements, and the nonzero count
    and the sum of weights run over that broadcast too; ``size(losses)`` stays the losses'
    own size. Shapes that do not broadcast fail the multiply's shape inference (``scope`` is
    the loss's name scope in that message)."""
    loss_shape = plan.reduction.shape
    if weights is None:
        return Raises("ValueError", "Attempt to convert a value (None) with an unsupported type "
                                    "(<class 'NoneType'>) to a Tensor.")
    w, _ = _weights_array(weights)
    out_shape = tuple(loss_shape)
    if w.ndim != 0 and plan.profile == "xla":
        try:
            out_shape = tuple(np.broadcast_shapes(tuple(loss_shape), w.shape))
        except ValueError:
            a, b = next((a, b) for a, b in zip(reversed(loss_shape), reversed(w.shape))
                        if a != b and 1 not in (a, b))
            return Raises("ValueError", f"Dimensions must be equal, but are {a} and {b} for "
                                        f"'{{{{node {scope}/Mul}}}} = Mul[T=DT_FLOAT]' with input "
                                        f"shapes: {kshape(loss_shape)}, {kshape(w.shape)}.")
    elif w.ndim != 0:
        if w.ndim != len(loss_shape):
            return Raises("ValueError", "weights can not be broadcast to values. values.rank="
                                        f"{len(loss_shape)}. weights.rank={w.ndim}. values.shape="
                                        f"{pshape(loss_shape)}. weights.shape={pshape(w.shape)}.")
        for i, (a, b) in enumerate(zip(loss_shape, w.shape)):
            if b != 1 and b != a:
                return Raises("ValueError", "weights can not be broadcast to values. Mismatch at "
                                            f"dim {i}. values.shape={kshape(loss_shape)}, "
                                            f"weights.shape={kshape(w.shape)}.")
    wb = np.broadcast_to(_as_float64(w) if w.dtype.kind == "f" or w.dtype.name == "bfloat16"
                         else w.astype(np.float64), out_shape)
    n = int(np.prod(loss_shape, dtype=np.int64))
    coef = np.ascontiguousarray(wb, dtype=np.float64).ravel()  # exact float weights
    index = np.ascontiguousarray(np.broadcast_to(
        np.arange(n, dtype=np.int64).reshape(loss_shape), out_shape)).ravel()
    red = {"none": "none", "weighted_sum": "sum"}.get(reduction, "div")
    denom = None
    from_w = False
    if reduction == "weighted_sum_over_batch_size":
        denom = Fraction(n)
    elif reduction == "weighted_mean":
        denom = _exact_sum([_frac(v) for v in coef.tolist()])
        from_w = True
    elif reduction == "weighted_sum_by_nonzero_weights":
        denom = Fraction(int(np.count_nonzero(coef != 0)))
    plan.reduction = Reduction(red, index, coef, out_shape if red == "none" else (),
                               denom=denom, denom_from_weights=from_w)
    # compat.v1 casts losses and weights to float32 and reduces there (§5.2 (3)); the
    # per-element losses arrive rounded to the logits dtype
    plan.precision = Precision(plan.precision.elem, F32, inter=plan.loss_format)
    return plan


def _exact_sum(values):
    """Exact sum of Fractions and special floats, IEEE rules for the specials."""
    specials = [v for v in values if isinstance(v, float)]
    if specials:
        if any(math.isnan(v) for v in specials) or (math.inf in specials and
                                                    -math.inf in specials):
            return math.nan
        return specials[0]
    return sum(values, Fraction(0))


def _v1_validate_reduction(reduction) -> Raises | None:
    if not isinstance(reduction, str):
        raise OracleInputError(
            f"reduction: must be a string (one of {', '.join(COMPAT_V1_REDUCTIONS)}), got "
            f"{reduction!r}")
    if reduction not in COMPAT_V1_REDUCTIONS:
        keys = ("none", "weighted_sum", "weighted_mean", "weighted_sum_over_batch_size",
                "weighted_sum_by_nonzero_weights", "weighted_sum_by_nonzero_weights")
        return Raises("ValueError", f"Invalid Reduction Key {reduction}. Key should be one of "
                                    f"{keys}.")
    return None


def _v1_missing(**args) -> Raises | None:
    """compat.v1's first check: the first argument that is None, in the order given."""
    for name, value in args.items():
        if value is None:
            return Raises("ValueError", f"Argument `{name}` must not be None.")
    return None


def plan_v1_sparse(labels, logits, weights=1.0,
                   reduction="weighted_sum_by_nonzero_weights", *, profile="cpu") -> Plan | Raises:
    """``tf.compat.v1.losses.sparse_softmax_cross_entropy`` (§5)."""
    _check_profile(profile)
    api = "tf.compat.v1.losses.sparse_softmax_cross_entropy"
    missing = _v1_missing(labels=labels, logits=logits)
    if missing:
        return missing
    err = _v1_validate_reduction(reduction)
    lab = _convert(labels, "labels")
    z = _convert(logits, "logits")
    # remove_squeezable_dimensions with expected rank diff 1 (§5.1)
    if z.ndim - lab.ndim == 2 and z.shape[-1] == 1:
        z = z.reshape(z.shape[:-1])
    elif z.ndim - lab.ndim == 0 and lab.ndim > 0 and lab.shape[-1] == 1:
        lab = lab.reshape(lab.shape[:-1])
    if weights is not None and not isinstance(weights, (int, float)):
        w, _ = _weights_array(weights)
        if w.ndim - lab.ndim == 1:
            if w.shape[-1] != 1:
                return Raises(IAE, f"Can not squeeze dim[{w.ndim - 1}], expected a dimension of 1,"
                                   f" got {w.shape[-1]}")
            weights = w.reshape(w.shape[:-1])
    plan = plan_nn_sparse(lab, z, profile=profile, api=api)
    if isinstance(plan, Raises):
        return plan
    if err:
        return err
    plan.grad_shape = tuple(_convert(logits, "logits").shape)
    return _v1_reduce(plan, weights, reduction, "sparse_softmax_cross_entropy_loss")


def plan_v1_dense(onehot_labels, logits, weights=1.0, label_smoothing=0,
                  reduction="weighted_sum_by_nonzero_weights", *, profile="cpu") -> Plan | Raises:
    """``tf.compat.v1.losses.softmax_cross_entropy`` (§4)."""
    _check_profile(profile)
    api = "tf.compat.v1.losses.softmax_cross_entropy"
    missing = _v1_missing(onehot_labels=onehot_labels, logits=logits)
    if missing:
        return missing
    eps = _smoothing(label_smoothing)
    z = _convert(logits, "logits")
    lab = _convert(onehot_labels, "onehot_labels")
    err = _dtype_attr_error(z, None)
    if err:
        return err
    if tuple(z.shape) != tuple(lab.shape):
        return Raises("ValueError", f"Shapes {pshape(z.shape)} and {pshape(lab.shape)} are "
                                    "incompatible")
    rerr = _v1_validate_reduction(reduction)
    # onehot_labels are cast to the logits dtype (§4)
    y = _round_array(lab, _fmt(z))
    plan = plan_nn_dense(y.astype(np.float64), z, profile=profile, api=api)
    if isinstance(plan, Raises):
        return plan
    if rerr:
        return rerr
    if eps > 0:  # negative smoothing is silently ignored, > 1 accepted (§4)
        plan.rows.smoothing = eps
    return _v1_reduce(plan, weights, reduction, "softmax_cross_entropy_loss")


def _smoothing(value) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise OracleInputError(f"label_smoothing: must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise OracleInputError(f"label_smoothing: must be finite, got {value!r}")
    return Fraction(v)


# --------------------------------------------------------------------------- Keras


def keras_clip(fmt: Format, variant: str) -> tuple[Fraction, Fraction]:
    """Keras's clip bounds ``[ε, 1 − ε]`` (ε = 1e-7) as TF materialises them in ``fmt``."""
    lo = round_fraction(Fraction(KERAS_EPSILON), fmt)
    if variant == "keras2":  # tf_keras: 1 - epsilon_ computed in the tensor dtype
        hi = round_fraction(1 - Fraction(lo), fmt)
    else:  # Keras 3: the Python float 1 - 1e-7 converted to the tensor dtype
        hi = round_fraction(Fraction(1.0 - KERAS_EPSILON), fmt)
    return Fraction(lo), Fraction(hi)


def _keras_dtype(dtype) -> Format:
    if dtype is None:
        return F32
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name in ("mixed_float16",):
        name = "float16"
    if name in ("mixed_bfloat16",):
        name = "bfloat16"
    if name not in FORMATS:
        raise OracleInputError(f"dtype: {dtype!r} is not a float dtype Keras can compute in")
    return FORMATS[name]


def _to_keras3(arr: np.ndarray, fmt: Format) -> np.ndarray:
    """``ops.convert_to_tensor(x, dtype=loss dtype)``: values rounded to the loss dtype."""
    return _round_array(arr, fmt)


def _trunc_int64(y: np.ndarray) -> np.ndarray:
    """``tf.cast(float → int64)``: truncation toward zero (NaN/out of range → INT64_MIN)."""
    out = np.empty(y.shape, dtype=np.int64)
    flat = y.ravel()
    o = out.ravel()
    for i, v in enumerate(flat.tolist()):
        if isinstance(v, float) and (not math.isfinite(v) or abs(v) >= 2.0 ** 63):
            o[i] = np.iinfo(np.int64).min
        else:
            o[i] = int(v)
    return out


def _keras_weighted(plan: Plan, loss_shape: tuple, sample_weight, mask: np.ndarray | None,
                    reduction, variant: str, wfmt: Format) -> Plan | Raises:
    """Keras's weighting and reduction (§6.1 step 4 for Keras 3, §6.2 for tf_keras)."""
    n_loss = int(np.prod(loss_shape, dtype=np.int64))
    if reduction == "auto":
        reduction = "sum_over_batch_size"
    if sample_weight is not None:
        w, _ = _weights_array(sample_weight)
        w = _round_array(w, wfmt)  # cast to the loss dtype
    else:
        w = None
    valid = None
    if mask is not None:
        valid = mask.astype(np.float64)
        if reduction in ("mean", "sum_over_batch_size"):
            total = Fraction(valid.size)
            v = int(mask.sum())
            if v == 0:
                scale = Fraction(0) if variant == "keras3" else math.nan  # keras2: no div_no_nan
            else:
                scale = total / v
            fmask = [(_mul(scale, 1) if m else Fraction(0)) for m in mask.ravel().tolist()]
            if variant == "keras2" and v == 0:
                fmask = [math.nan] * len(fmask)  # 0 * (total/0) = NaN
        else:
            fmask = [Fraction(1) if m else Fraction(0) for m in mask.ravel().tolist()]
        fm = np.empty(mask.shape, dtype=object)
        fm.ravel()[:] = fmask
        if w is None:
            wobj = fm
        else:
            wobj_w = _obj_array(w)
            a, b = _align(fm, wobj_w, variant)
            try:
                wobj = _mul_arrays(a, b)
            except ValueError:
                return Raises(IAE, f"Incompatible shapes: {kshape(a.shape)} vs. {kshape(b.shape)} "
                                   "[Op:Mul]")
    else:
        wobj = None if w is None else _obj_array(w)
    losses_idx = np.arange(n_loss, dtype=np.int64).reshape(loss_shape)
    if wobj is None:
        coef_arr = np.empty(loss_shape, dtype=object)
        coef_arr.ravel()[:] = [Fraction(1)] * n_loss
        idx = losses_idx
        wsum = None
    else:
        if variant == "keras3":
            lv, wv = _squeeze_or_expand_k3(losses_idx, wobj)
        else:
            lv, wv = _squeeze_or_expand_k2(losses_idx, wobj)
            if isinstance(lv, Raises):
                return lv
        try:
            bshape = np.broadcast_shapes(lv.shape, wv.shape)
        except ValueError:
            return Raises(IAE, f"Incompatible shapes: {kshape(lv.shape)} vs. {kshape(wv.shape)} "
                               "[Op:Mul]")
        idx = np.broadcast_to(lv, bshape)
        coef_arr = np.broadcast_to(wv, bshape)
        wsum = _exact_sum(list(wv.ravel().tolist()))
    out_shape = tuple(idx.shape)
    m = int(np.prod(out_shape, dtype=np.int64))
    index = np.asarray(idx, dtype=np.int64).ravel()
    coef = list(np.asarray(coef_arr, dtype=object).ravel().tolist())
    unreduced = reduction in (None, "none") or (variant == "keras3" and out_shape in ((), (0,)))
    if unreduced:
        plan.reduction = Reduction("none", index, coef, out_shape)
    elif reduction == "sum":
        plan.reduction = Reduction("sum", index, coef, ())
    elif reduction == "mean_with_sample_weight" and wobj is not None:
        plan.reduction = Reduction("div", index, coef, (), denom=wsum, denom_from_weights=True)
    else:  # sum_over_batch_size, mean, mean_with_sample_weight without weights
        plan.reduction = Reduction("div", index, coef, (), denom=Fraction(m))
    return plan


def _mul(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return float(a) * float(b)
    return a * b


def _obj_array(w: np.ndarray) -> np.ndarray:
    out = np.empty(w.shape, dtype=object)
    out.ravel()[:] = [_frac(v) for v in np.asarray(w, dtype=np.float64).ravel().tolist()]
    return out


def _mul_arrays(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bshape = np.broadcast_shapes(a.shape, b.shape)
    aa, bb = np.broadcast_to(a, bshape), np.broadcast_to(b, bshape)
    out = np.empty(bshape, dtype=object)
    out.ravel()[:] = [_mul(x, y) for x, y in zip(aa.ravel().tolist(), bb.ravel().tolist())]
    return out


def _align(mask: np.ndarray, w: np.ndarray, variant: str):
    if variant == "keras3":
        return _squeeze_or_expand_k3(mask, w)
    lv, wv = _squeeze_or_expand_k2(mask, w)
    return lv, wv


def _squeeze_or_expand_k3(x1: np.ndarray, x2: np.ndarray):
    """Keras 3 ``squeeze_or_expand_to_same_rank(x1, x2)``."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1:
            x2 = x2[..., None]
        else:
            x1 = x1.reshape(x1.shape[:-1])
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1:
            x1 = x1[..., None]
        else:
            x2 = x2.reshape(x2.shape[:-1])
    return x1, x2


def _squeeze_or_expand_k2(losses: np.ndarray, w: np.ndarray):
    """tf_keras ``squeeze_or_expand_dimensions(losses, None, sample_weight)``."""
    if w.ndim == 0:
        return losses, w
    if w.ndim - losses.ndim == 1:
        if w.shape[-1] != 1:
            return Raises(IAE, f"Can not squeeze dim[{w.ndim - 1}], expected a dimension of 1, got"
                               f" {w.shape[-1]}"), None
        w = w.reshape(w.shape[:-1])
    elif losses.ndim - w.ndim == 1:
        w = w[..., None]
    return losses, w


def _keras_reduction_error(reduction, variant: str) -> Raises | None:
    if variant == "keras2":
        if reduction not in KERAS2_REDUCTIONS:
            return Raises("ValueError", f"Invalid Reduction Key: {reduction}. Expected keys are "
                                        "\"('auto', 'none', 'sum', 'sum_over_batch_size')\"")
        return None
    if reduction not in KERAS3_REDUCTIONS:
        allowed = "{'sum_over_batch_size', 'sum', None, 'none', 'mean', 'mean_with_sample_weight'}"
        return Raises("ValueError", f"Invalid value for argument `reduction`. Expected one of "
                                    f"{allowed}. Received: reduction={reduction}")
    return None


def _keras_validate(reduction, variant):
    if variant not in KERAS_VARIANTS:
        raise OracleInputError(f"keras: {variant!r} is not one of keras2, keras3")
    if reduction is not None and not isinstance(reduction, str):
        raise OracleInputError(f"reduction: must be a string or None, got {reduction!r}")
    return _keras_reduction_error(reduction, variant)


def plan_keras_sparse(y_true, y_pred, sample_weight=None, *, from_logits=False,
                      ignore_class=None, reduction="auto", axis=-1, dtype=None,
                      variant="keras2", profile="cpu") -> Plan | Raises:
    """``SparseCategoricalCrossentropy(...)(y_true, y_pred, sample_weight)`` (§6.1, §6.2)."""
    _check_profile(profile)
    api = "tf.keras.losses.SparseCategoricalCrossentropy"
    err = _keras_validate(reduction, variant)
    if err:
        return err
    if ignore_class is not None and (isinstance(ignore_class, bool) or
                                     not isinstance(ignore_class, (int, np.integer))):
        raise OracleInputError(f"ignore_class: must be an int or None, got {ignore_class!r}")
    yp0 = _convert(y_pred, "y_pred")
    yt0 = _convert(y_true, "y_true")
    if yp0.dtype.kind not in "f" and yp0.dtype.name != "bfloat16":
        if variant == "keras2":
            yp0 = yp0.astype(np.float32)
    if variant == "keras3":
        lfmt = _keras_dtype(dtype)
        yp = _to_keras3(yp0, lfmt)  # float64 values on the loss dtype's grid
        yt = _to_keras3(yt0, lfmt)
        compute = lfmt
        if axis != -1 and axis != yp.ndim - 1:
            return Raises("ValueError", f"Only axis=-1 is currently supported. Received: "
                                        f"axis={axis}")
        # LossFunctionWrapper.call: squeeze_or_expand_to_same_rank(y_true, y_pred)
        yt, yp = _squeeze_or_expand_k3(yt, yp)
        if yt.ndim == yp.ndim == 0:  # sparse_categorical_crossentropy reads target.shape[-1]
            return Raises("IndexError", "tuple index out of range")
        if yt.ndim == yp.ndim and yt.shape[-1] == 1:
            yt = yt.reshape(yt.shape[:-1])
        mask = None
        if ignore_class is not None:
            valid = yt != float(ignore_class)
            yt = np.where(valid, yt, 0.0)
            yp = np.where(valid[..., None], yp, 0.0) if yp.ndim == yt.ndim + 1 else yp
            mask = valid
        labels = _trunc_int64(yt)
        if yp.ndim < 1:
            return Raises("ValueError", f"Argument `output` must be at least rank 1. Received: "
                                        f"output.shape={pshape(yp.shape)}")
        if labels.ndim != yp.ndim - 1:
            return Raises("ValueError", "Argument `output` must have rank (ndim) `target.ndim - 1`"
                                        f". Received: target.shape={pshape(labels.shape)}, "
                                        f"output.shape={pshape(yp.shape)}")
        if tuple(labels.shape) != tuple(yp.shape[:-1]):
            return Raises("ValueError", "Arguments `target` and `output` must have the same shape "
                                        f"up until the last dimension: target.shape="
                                        f"{pshape(labels.shape)}, output.shape={pshape(yp.shape)}")
        out_fmt = lfmt
        grad_fmt = _fmt(yp0) or F32
        in_fmt = lfmt  # Keras 3 converts the inputs to the loss dtype: that's what it computes in
    else:
        if axis != -1:
            return Raises("TypeError", "SparseCategoricalCrossentropy.__init__() got an "
                                       "unexpected keyword argument 'axis'")
        fmt = _fmt(yp0)
        yp = _as_float64(yp0)
        if yp.ndim == 0:  # backend.sparse_categorical_crossentropy: axis % output_rank
            return Raises("ZeroDivisionError", "integer modulo by zero")
        compute = fmt
        yt = yt0
        if yt.dtype.kind == "f" or yt.dtype.name == "bfloat16":
            labels_full = _trunc_int64(_as_float64(yt))
        else:
            labels_full = yt.astype(np.int64)
        # LossFunctionWrapper.call: squeeze_or_expand_dimensions(y_pred, y_true)
        if not (yp.ndim - labels_full.ndim == 1 and yp.shape[-1] != 1):
            if labels_full.ndim > 0 and labels_full.ndim == yp.ndim and \
                    labels_full.shape[-1] == 1:
                labels_full = labels_full.reshape(labels_full.shape[:-1])
        if labels_full.ndim != yp.ndim - 1:  # backend flattens both (§6.2)
            c = yp.shape[-1] if yp.ndim else 0
            labels = labels_full.reshape(-1)
            yp_rows = yp.reshape(-1, c) if yp.ndim else yp
            if labels.shape[0] != yp_rows.shape[0]:
                return Raises("ValueError", "`labels.shape` must equal `logits.shape` except for "
                                            f"the last dimension. Received: labels.shape="
                                            f"{pshape(labels.shape)} and logits.shape="
                                            f"{pshape(yp_rows.shape)}")
            res_shape = tuple(yp.shape[:-1]) if yp.ndim >= 3 else (labels.shape[0],)
        else:
            labels = labels_full
            if tuple(labels.shape) != tuple(yp.shape[:-1]):
                return Raises("ValueError", "`labels.shape` must equal `logits.shape` except for "
                                            f"the last dimension. Received: labels.shape="
                                            f"{pshape(labels.shape)} and logits.shape="
                                            f"{pshape(yp.shape)}")
            res_shape = tuple(labels.shape)
        labels = labels.reshape(res_shape)
        mask = None
        if ignore_class is not None:
            mask = labels != int(ignore_class)
        out_fmt = fmt
        grad_fmt = fmt
        in_fmt = fmt
    c = yp.shape[-1]
    if c == 0:
        return Raises(IAE, f"Must have at least one class, but got logits shape "
                           f"{kshape((int(np.prod(yp.shape[:-1])), 0))}")
    n = int(np.prod(yp.shape[:-1], dtype=np.int64))
    x2 = yp.reshape(n, c)
    lab1 = labels.reshape(n)
    ignored = np.zeros(n, dtype=bool) if mask is None else ~mask.reshape(n)
    # Keras 3 replaces ignored labels by 0 before the op, so the kernel sees (and its error
    # message lists) them as 0; tf_keras removes the ignored entries first (§6.1, §6.2)
    check = lab1 if variant == "keras3" else lab1[~ignored]
    nan_rows = np.zeros(n, dtype=bool)
    if profile == "cpu":
        err = _label_error(check, c)
        if err:
            return err
    else:
        nan_rows = _labels_nan_rows(lab1, c) & ~ignored
    kind = "sparse" if from_logits else "sparse_probs"
    clip = None if from_logits else keras_clip(compute, variant)
    rows = Rows(kind, np.ascontiguousarray(x2, dtype=np.float64), labels=lab1,
                nan_rows=nan_rows, ignored=ignored, clip=clip)
    nn_prec = _nn_sparse_precision(compute)
    precision = Precision(nn_prec.elem, compute, None if from_logits else compute)
    loss_shape = tuple(yp.shape[:-1])
    plan = Plan(api, profile, rows, IdentityReduction(n, loss_shape), out_fmt,
                in_fmt, precision, grad_shape=tuple(yp0.shape), grad_format=grad_fmt)
    return _keras_weighted(plan, loss_shape, sample_weight, mask, reduction, variant, out_fmt)


def plan_keras_dense(y_true, y_pred, sample_weight=None, *, from_logits=False,
                     label_smoothing=0.0, reduction="auto", axis=-1, dtype=None,
                     variant="keras2", profile="cpu") -> Plan | Raises:
    """``CategoricalCrossentropy(...)(y_true, y_pred, sample_weight)`` (§6.4)."""
    _check_profile(profile)
    api = "tf.keras.losses.CategoricalCrossentropy"
    err = _keras_validate(reduction, variant)
    if err:
        return err
    eps = _smoothing(label_smoothing)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise OracleInputError(f"axis: must be an int, got {axis!r}")
    yp0 = _convert(y_pred, "y_pred")
    yt0 = _convert(y_true, "y_true")
    if variant == "keras3":
        lfmt = _keras_dtype(dtype)
        yp = _to_keras3(yp0, lfmt)
        yt = _to_keras3(yt0, lfmt)
        yt, yp = _squeeze_or_expand_k3(yt, yp)
        compute = lfmt
        if yt.ndim < 1:
            return Raises("ValueError", "Arguments `target` and `output` must be at least rank 1. "
                                        f"Received: target.shape={pshape(yt.shape)}, "
                                        f"output.shape={pshape(yp.shape)}")
        if yt.ndim != yp.ndim:
            return Raises("ValueError", "Arguments `target` and `output` must have the same rank "
                                        f"(ndim). Received: target.shape={pshape(yt.shape)}, "
                                        f"output.shape={pshape(yp.shape)}")
        if tuple(yt.shape) != tuple(yp.shape):
            return Raises("ValueError", "Arguments `target` and `output` must have the same shape. "
                                        f"Received: target.shape={pshape(yt.shape)}, "
                                        f"output.shape={pshape(yp.shape)}")
        smooth_c = yt.shape[-1]  # Keras 3.15.1 uses the last dim even when axis != -1 (§6.4)
        out_fmt = lfmt
        grad_fmt = _fmt(yp0) or F32
        in_fmt = lfmt
    else:
        if yp0.dtype.kind != "f" and yp0.dtype.name != "bfloat16":
            yp0 = yp0.astype(np.float32)
        compute = _fmt(yp0)
        yp = _as_float64(yp0)
        yt = _round_array(yt0, compute)  # y_true cast to y_pred's dtype
        if yp.ndim != yt.ndim or tuple(yp.shape) != tuple(yt.shape):
            # LossFunctionWrapper squeezes a trailing 1 first; then shapes must be compatible
            ytt, ypp = yt, yp
            if ypp.ndim - ytt.ndim != 1 or ypp.shape[-1] == 1:
                if ytt.ndim == ypp.ndim + 1 and ytt.shape[-1] == 1:
                    ytt = ytt.reshape(ytt.shape[:-1])
            if tuple(ytt.shape) != tuple(ypp.shape):
                return Raises("ValueError", f"Shapes {pshape(yt.shape)} and {pshape(yp.shape)} "
                                            "are incompatible")
            yt = ytt
        if yp.ndim == 0:
            return Raises("ValueError", "Shapes () and () are incompatible")
        ax = axis % yp.ndim if -yp.ndim <= axis < yp.ndim else None
        if ax is None:
            return Raises(IAE, f"Requires start <= limit when delta > 0: {axis + 1}/{yp.ndim} "
                               "[Op:Range]")
        smooth_c = yp.shape[ax]
        out_fmt = compute
        grad_fmt = compute
        in_fmt = compute
    # move the class axis last: from_logits goes through tf.nn (whose negative-axis bug
    # raises, §3), probabilities are reduced over `axis` (any valid axis works)
    nd = yp.ndim
    if axis != -1:
        if from_logits and axis < 0:
            return Raises(IAE, f"Requires start <= limit when delta > 0: 0/{axis} [Op:Range]")
        if axis < 0:
            if axis < -nd:
                return Raises(IAE, f"Requires start <= limit when delta > 0: 0/{axis} "
                                   "[Op:Range]")
            axis = axis % nd
        if axis >= nd:
            return Raises(IAE, f"Requires start <= limit when delta > 0: {axis + 1}/{nd} "
                               "[Op:Range]")
        perm = tuple(list(range(axis)) + list(range(axis + 1, nd)) + [axis])
    else:
        perm = None
    ypm = np.transpose(yp, perm) if perm else yp
    ytm = np.transpose(yt, perm) if perm else yt
    c = ypm.shape[-1]
    n = int(np.prod(ypm.shape[:-1], dtype=np.int64))
    x2 = np.ascontiguousarray(ypm.reshape(n, c), dtype=np.float64)
    if from_logits:
        prec = _nn_dense_precision(compute)
        ytm = _round_array(ytm, prec.elem)
        # labels are smoothed in y_pred's dtype, then the kernel upcasts
        precision = Precision(prec.elem, compute, inter=compute)
        kind, clip = "dense", None
    else:
        precision = Precision(compute, compute, compute)
        kind, clip = "dense_probs", keras_clip(compute, variant)
    y2 = np.ascontiguousarray(ytm.reshape(n, c), dtype=np.float64)
    rows = Rows(kind, x2, y=y2, clip=clip, xla_zero_labels=(profile == "xla" and from_logits))
    if eps:
        rows.smoothing = eps
        if smooth_c != c:
            rows.smoothing_classes = smooth_c  # Keras 3 bug: C from the last dim
    loss_shape = tuple(ypm.shape[:-1])
    plan = Plan(api, profile, rows, IdentityReduction(n, loss_shape), out_fmt,
                in_fmt, precision, grad_shape=tuple(yp0.shape), grad_format=grad_fmt,
                grad_perm=perm, moved_shape=tuple(ypm.shape) if perm else None)
    return _keras_weighted(plan, loss_shape, sample_weight, None, reduction, variant, out_fmt)


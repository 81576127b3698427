"""Callable targets that reproduce one of TensorFlow's mechanisms with numpy — and the same
with a bug planted on top — for the as-tensorflow verdict's tests.

Nothing here imports TensorFlow or xentconf: each function follows the API's TensorFlow
signature and documents which of TensorFlow's mechanisms (TF-SEMANTICS.md) it reproduces.
"""

import numpy as np

REDUCTIONS = ("none", "weighted_sum", "weighted_sum_over_batch_size", "weighted_mean",
              "weighted_sum_by_nonzero_weights")


def _sparse_rows(labels, logits):
    """Per-row sparse losses in float64, shifted by the row maximum (TF's kernel)."""
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if y.ndim == x.ndim:  # [B, 1] labels are squeezed
        y = y[..., 0]
    if np.any(y < 0) or np.any(y >= x.shape[-1]):
        raise ValueError("label out of range")
    m = x.max(axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        lse = np.log(np.exp(x - m).sum(axis=-1))
        picked = np.take_along_axis(x, y[..., None], -1)[..., 0]
        return lse + (m[..., 0] - picked)


def _v1_reduce(losses, weights, reduction, dtype):
    """compat.v1's compute_weighted_loss: losses and weights cast to float32, weighted and
    reduced there, the result cast back (TF-SEMANTICS §5.2 step 3)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"Invalid Reduction Key {reduction}")
    with np.errstate(over="ignore", invalid="ignore"):
        lo = losses.astype(dtype).astype(np.float32)
        w = np.broadcast_to(np.asarray(weights, dtype=np.float32), lo.shape)
        v = lo * w
        if reduction == "none":
            return v.astype(dtype)
        s = np.float32(v.sum(dtype=np.float32))
        if reduction == "weighted_sum":
            out = s
        else:
            den = {"weighted_sum_over_batch_size": np.float32(v.size),
                   "weighted_mean": np.float32(w.sum(dtype=np.float32)),
                   "weighted_sum_by_nonzero_weights": np.float32(np.count_nonzero(w))}[reduction]
            out = np.float32(s / den) if den != 0 else np.float32(0)
        return np.asarray(out).astype(dtype)


def v1_sparse_float32(labels, logits, weights=1.0, scope=None, loss_collection=None,
                      reduction="weighted_sum_by_nonzero_weights"):
    """tf.compat.v1.losses.sparse_softmax_cross_entropy as TensorFlow computes it: float64
    losses reduced in float32."""
    dtype = np.asarray(logits).dtype
    return _v1_reduce(_sparse_rows(labels, logits), weights, reduction, dtype)


def v1_sparse_float32_off(labels, logits, weights=1.0, scope=None, loss_collection=None,
                          reduction="weighted_sum_by_nonzero_weights"):
    """The same, with a bug: every result × (1 + 10⁻³)."""
    out = v1_sparse_float32(labels, logits, weights, scope, loss_collection, reduction)
    return (np.asarray(out, dtype=np.float64) * (1 + 1e-3)).astype(np.asarray(logits).dtype)


def _flushed(x, dtype):
    """Subnormal results of ``dtype`` flushed to zero (FTZ)."""
    tiny = np.finfo(dtype).tiny
    return np.where(np.abs(x) < tiny, 0, x).astype(dtype)


def raw_sparse_ftz(features, labels, name=None):
    """tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits with denormals flushed (FTZ/DAZ):
    a softmax element below the dtype's smallest normal comes out as 0."""
    dtype = np.asarray(features).dtype
    loss, backprop = raw_sparse_coerce(np.asarray(features, dtype=np.float64), labels)
    return _flushed(loss, dtype), _flushed(backprop, dtype)


def raw_sparse_ftz_gap_doubled(features, labels, name=None):
    """The same, with a bug: a row whose logits span a gap past exp's underflow (more than
    200 between its largest and smallest logit) has its loss doubled."""
    x = np.asarray(features, dtype=np.float64)
    loss, backprop = raw_sparse_ftz(features, labels)
    gap = (x.max(axis=-1) - x.min(axis=-1)) > 200
    return np.where(gap, 2 * loss, loss).astype(loss.dtype), backprop


class KerasSparseHeld:
    """tf_keras SparseCategoricalCrossentropy(from_logits=True) written with care in numpy:
    per-element losses in the y_pred dtype, then summed and divided — a row loss above the
    dtype's maximum is inf, so the mean is inf (TensorFlow does the same)."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="auto",
                 name="sparse_categorical_crossentropy"):
        if not from_logits or ignore_class is not None:
            raise NotImplementedError("from_logits=True, no ignore_class only")
        self.reduction = reduction

    def __call__(self, y_true, y_pred, sample_weight=None):
        dtype = np.asarray(y_pred).dtype
        losses = _sparse_rows(y_true, y_pred).astype(dtype)  # held in the dtype: may be inf
        if sample_weight is not None:
            losses = losses * np.asarray(sample_weight, dtype=dtype)
        if self.reduction == "none":
            return losses
        with np.errstate(over="ignore", invalid="ignore"):
            s = losses.sum(dtype=dtype)
            if self.reduction == "sum":
                return np.asarray(s, dtype=dtype)
            return np.asarray(s / dtype.type(losses.size) if losses.size else 0, dtype=dtype)


def raw_sparse_contract(features, labels, name=None):
    """The raw sparse op as documented: labels must be int32 or int64 (raises otherwise)."""
    labels = np.asarray(labels)
    if labels.dtype not in (np.int32, np.int64):
        raise TypeError(f"labels must be int32 or int64, got {labels.dtype}")
    return raw_sparse_coerce(features, labels)


def raw_sparse_coerce(features, labels, name=None):
    """The raw sparse op as TensorFlow's binding runs it: numpy labels of another dtype are
    truncated toward zero to int64."""
    x = np.asarray(features, dtype=np.float64)
    y = np.trunc(np.asarray(labels, dtype=np.float64)).astype(np.int64)
    loss = _sparse_rows(y, x)
    m = x.max(axis=-1, keepdims=True)
    e = np.exp(x - m)
    p = e / e.sum(axis=-1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    dtype = np.asarray(features).dtype
    return loss.astype(dtype), p.astype(dtype)


def raw_sparse_nan_rows(features, labels, name=None):
    """The raw sparse op as TensorFlow's XLA runs it on the CPU: no label check, NaN in the
    loss and the backprop row of an out-of-range label."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    bad = (y < 0) | (y >= x.shape[-1])
    loss, backprop = raw_sparse_coerce(features, np.where(bad, 0, y))
    loss = np.where(bad, np.nan, loss).astype(loss.dtype)
    backprop = np.where(bad[:, None], np.nan, backprop).astype(backprop.dtype)
    return loss, backprop


def raw_sparse_zero_rows(features, labels, name=None):
    """The same with 0 instead of NaN in the bad rows: not what TensorFlow does anywhere."""
    loss, backprop = raw_sparse_nan_rows(features, labels)
    return np.nan_to_num(loss, nan=0.0), np.nan_to_num(backprop, nan=0.0)

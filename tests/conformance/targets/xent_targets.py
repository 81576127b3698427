"""Callable targets for the conformance engine's own tests (tf.nn.sparse signature).

``good`` computes in float64 and rounds once (conforms); ``naive`` is the textbook float32
``-log(softmax)`` (fails on hard regimes); the others misbehave on purpose.
"""

import os
import time

import numpy as np

__version__ = "0.3.1"  # recorded as the callable's framework version


def good(labels, logits):
    x = np.asarray(logits, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(axis=-1)) + m[..., 0]
    picked = np.take_along_axis(x, np.asarray(labels)[..., None].astype(np.int64), -1)[..., 0]
    return (lse - picked).astype(np.asarray(logits).dtype)


def naive(labels, logits):
    x = np.asarray(logits, dtype=np.float32)
    p = np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)
    picked = np.take_along_axis(p, np.asarray(labels)[..., None].astype(np.int64), -1)[..., 0]
    return (-np.log(picked)).astype(np.asarray(logits).dtype)


def crash(labels, logits):
    if np.asarray(logits).size > 6:
        os.abort()
    return good(labels, logits)


def hang(labels, logits):
    time.sleep(3600)


def garbage(labels, logits):
    return "not an array"


def refuse(labels, logits):
    raise ValueError("this kernel takes no inputs")


def sloppy(labels, logits):
    """Finite and close, but 1e-4 off: outside every budget, never a wrong NaN or inf."""
    out = good(labels, logits).astype(np.float64)
    return (out * (1 + 1e-4) + 1e-4).astype(np.asarray(logits).dtype)


def two_bugs(labels, logits):
    """Two distinct bugs in out-of-range labels (TensorFlow raises for both on CPU): −1
    wraps around to the last class (Python indexing), and labels ≥ C are clamped to the
    last class. (NaN for labels ≥ C would not be a bug: TensorFlow's XLA gives exactly
    that, so it is as-tensorflow.)"""
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    c = x.shape[-1]
    m = x.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(axis=-1)) + m[..., 0]
    picked = np.take_along_axis(x, np.clip(np.where(y < 0, y + c, y), 0, c - 1)[..., None],
                                -1)[..., 0]
    return (lse - picked).astype(np.asarray(logits).dtype)


def wrong(labels, logits):
    """Wrong everywhere: the right loss plus one (never a wrong NaN or inf where the loss
    is finite); and returns for every input TensorFlow rejects."""
    y = np.asarray(labels).astype(np.int64)
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] == 0:
        return np.zeros(np.shape(labels), np.asarray(logits).dtype)
    y = np.clip(np.broadcast_to(y, x.shape[:-1]), 0, x.shape[-1] - 1)
    return (good(y, x) + 1.0).astype(np.asarray(logits).dtype)


def crash_far(labels, logits):
    """Wraps label −1 around to the last class, and aborts on labels far out of range."""
    if np.any(np.asarray(labels).astype(np.int64) >= 1000):
        os.abort()
    return two_bugs(np.where(np.asarray(labels) >= np.shape(logits)[-1], 0, labels), logits)


def two_kinds(labels, logits):
    """Wrong in two distinct ways: float64 losses when C > 6 (a wrong dtype), and the loss
    plus one otherwise (outside every budget)."""
    out = good(labels, logits)
    if np.shape(logits)[-1] > 6:
        return out.astype(np.float64)
    return (out.astype(np.float64) + 1.0).astype(np.asarray(logits).dtype)


def sentinel_gap(labels, logits):
    """Raises for out-of-range labels as TensorFlow does on the CPU, except at the label
    dtype's extremes, which it takes for "no label" sentinels (loss 0): wrong only on the
    last kind of bad label, ``extreme``."""
    y = np.asarray(labels)
    info = np.iinfo(y.dtype)
    sentinel = (y == info.max) | (y == info.min)
    if np.any(((y < 0) | (y >= np.shape(logits)[-1])) & ~sentinel):
        raise ValueError("label out of range")
    out = good(np.where(sentinel, 0, y), logits)
    return np.where(sentinel, 0, out).astype(out.dtype)


def ignore_minus_hundred(labels, logits):
    """Raises for out-of-range labels as TensorFlow does on the CPU, except -100, which it
    takes for an ignored row (loss 0), as many frameworks' default ``ignore_index`` does:
    wrong only on the kind of bad label ``minus_hundred``."""
    y = np.asarray(labels)
    ignored = y == -100
    if np.any(((y < 0) | (y >= np.shape(logits)[-1])) & ~ignored):
        raise ValueError("label out of range")
    out = good(np.where(ignored, 0, y), logits)
    return np.where(ignored, 0, out).astype(out.dtype)


def ignores_weights(labels, logits, weights=1.0, reduction="weighted_sum_by_nonzero_weights"):
    """compat.v1's sparse loss (``tf.compat.v1.losses.sparse_softmax_cross_entropy``) that
    takes every weight as 1: wrong for every kind of weights but ones, and accepts weights
    of any shape."""
    dtype = np.asarray(logits).dtype
    loss = np.asarray(good(labels, logits), dtype=np.float64)
    if reduction == "none":
        return loss.astype(dtype)
    total = loss.sum()
    return np.asarray(total if reduction == "weighted_sum" else total / max(loss.size, 1),
                      dtype=dtype)

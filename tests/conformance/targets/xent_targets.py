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

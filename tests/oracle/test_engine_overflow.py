"""The engine where ``x − max x`` overflows float64 (rows spanning more than the float64
maximum): its answers are the exact tier's, bit for bit. Found by the conformance suite's
``near_max`` regime, where the engine said NaN and the exact tier (and TensorFlow's
sparse op) 0."""

from __future__ import annotations

import numpy as np
import pytest

from xentconf.oracle import tf as exact
from xentconf.oracle.fast import tf as fast

X = np.array([[1.573e308, -1.151e308], [1.0e308, 1.7e308], [-1.7e308, 1.7e308],
              [1.573e308, -1.151e308], [1.0, -np.inf]], np.float64)
Y = np.array([0, 0, 1, 1, 0])
DENSE = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
UP = np.array([1.0, -2.0, 0.5, 1.0, 1.0])


def same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


@pytest.mark.parametrize("call", [
    lambda t: t.raw_ops.SparseSoftmaxCrossEntropyWithLogits(X, Y),
    lambda t: t.raw_ops.SoftmaxCrossEntropyWithLogits(X, DENSE),
    lambda t: t.nn.sparse_softmax_cross_entropy_with_logits(Y, X, upstream=UP),
    lambda t: t.nn.softmax_cross_entropy_with_logits(DENSE, X, upstream=UP),
], ids=["raw_sparse", "raw_dense", "nn_sparse", "nn_dense"])
def test_overflowing_shifts_agree_with_the_exact_tier(call):
    e, f = call(exact), call(fast)
    for name, o in e.outputs.items():
        assert same(f[name].rounded, o.rounded), name
    # the exact answers themselves: a zero loss where the label is the maximum
    assert e["loss"].rounded[0] == 0.0

"""A sparse expectation with every kind of TF row rule in it, for the engine's path tests."""

from __future__ import annotations

import numpy as np

from xentconf.oracle.fast import tf as fast_tf


def ruled_sparse(y: np.ndarray, x: np.ndarray, up: np.ndarray, scaled: bool):
    """``tf.nn``'s loss and gradient scaled by the upstream ``up`` (``scaled``), or the raw
    op's loss and backprop, on the gpu profile, where a label out of range makes a NaN
    row; a label of −1 makes an ignored row, set on the plan as Keras' ignore_class makes
    it (Keras' own plans are in float64). NaN or +inf logits make the other NaN rows."""
    with np.errstate(all="ignore"):
        if scaled:
            e = fast_tf.nn.sparse_softmax_cross_entropy_with_logits(y, x, profile="gpu",
                                                                    upstream=up)
        else:
            e = fast_tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=x, labels=y,
                                                                    profile="gpu")
    rows = e.engine.plan.rows
    rows.ignored = y == -1
    rows.nan_rows = rows.nan_rows & ~rows.ignored
    return e

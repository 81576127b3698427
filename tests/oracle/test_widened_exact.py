"""The vectorized tier's float64 rounding of the exact values of narrow outputs, taken from
the same call widened to float64 (``api.WIDE_EXACT``), against mpmath at 200 bits."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from xentconf.oracle.fast import oracle_call

CTX = mpmath.MPContext()
CTX.prec = 200


def _lse(row) -> mpmath.mpf:
    m = max(CTX.mpf(float(v)) for v in row)
    return m + CTX.log(CTX.fsum(CTX.exp(CTX.mpf(float(v)) - m) for v in row))


def _f64(v: mpmath.mpf) -> float:
    return float(CTX.mpf(v))  # mpmath rounds to nearest at conversion


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_sparse_loss_and_gradient_exact64_match_mpmath(dtype):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((40, 3)) * 6).astype(dtype)
    x[0] = [60000.0 if dtype == "float16" else 1e30, 0.0, -3.0]  # a dominant logit
    y = rng.integers(0, 3, 40).astype(np.int32)
    e = oracle_call("tf.nn.sparse_softmax_cross_entropy_with_logits",
                    {"labels": y, "logits": x})
    assert e["loss"].exact64_source is not None  # the widened road applies here
    loss = e["loss"].exact64
    for i, row in enumerate(x):
        want = _lse(row) - CTX.mpf(float(row[y[i]]))
        assert loss[i] == _f64(want), i
    g = e["grad_logits"].exact64
    for i, row in enumerate(x[:8]):
        lse = _lse(row)
        for j, v in enumerate(row):
            want = CTX.exp(CTX.mpf(float(v)) - lse) - (1 if j == y[i] else 0)
            assert g[i, j] == _f64(want), (i, j)


def test_raw_dense_backprop_exact64_matches_mpmath():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((10, 4)) * 4).astype(np.float32)
    lab = rng.dirichlet(np.ones(4), 10).astype(np.float32)
    e = oracle_call("tf.raw_ops.SoftmaxCrossEntropyWithLogits",
                    {"features": x, "labels": lab})
    b = e["backprop"].exact64
    for i, row in enumerate(x):
        lse = _lse(row)
        for j, v in enumerate(row):
            want = CTX.exp(CTX.mpf(float(v)) - lse) - CTX.mpf(float(lab[i, j]))
            assert b[i, j] == _f64(want), (i, j)


def test_apis_with_dtype_constants_do_not_take_the_widened_road():
    # Keras clips probabilities with an epsilon cast to the dtype: widening would change it
    x = np.array([[0.2, 0.8]], np.float16)
    e = oracle_call("tf.keras.losses.CategoricalCrossentropy", {"y_true": x, "y_pred": x})
    assert all(o.exact64_source is None for o in e.outputs.values())

"""Float64 results below float64's range, in the vectorized (double-double) tier.

When a label's logit exceeds the others by more than ~745, losses and probabilities fall
below the smallest subnormal: their float64 rounding is a zero whose sign the semantics
fix (positive losses and off-label probabilities, negative ``p_y − 1``, times the
coefficient). Scaled by a huge weight the same tiny value becomes an ordinary number.
Both must come out as mpmath says, and as the exact tier says, sign of zero included;
and a sweep's widened (float64) call must not fall back to the exact tier for them.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from xentconf.conformance.sweep import pair_rows
from xentconf.oracle import semantics as S
from xentconf.oracle.engine import evaluate_fast
from xentconf.oracle.evaluate import evaluate

CTX = mpmath.MPContext()
CTX.prec = 400


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    return np.where(np.isnan(a), -1, a.view(np.int64))


def _mp_probs(row) -> list:
    e = [CTX.exp(CTX.mpf(float(v))) for v in row]
    s = CTX.fsum(e)
    return [v / s for v in e]


def test_a_huge_weight_brings_a_vanished_probability_back_into_range():
    """γ = 1e300 times ``p_4 = e^−800 / (2 + …)`` is about 1.8e-48, a normal float64; the
    tier computed ``p_4`` with an error radius that underflowed to 0 and returned 0."""
    x = np.array([[-3000.0, 0.0, 0.0, -700.0, -800.0]])
    e = evaluate_fast(S.plan_v1_sparse([2], x, weights=np.array([1e300]), reduction="none"),
                      np.array([1.0]))
    p = _mp_probs(x[0])
    want = [float(CTX.mpf(1e300) * (p[j] - (j == 2))) for j in range(5)]
    got = e["grad_logits"].rounded64[0]
    assert got[4] != 0.0 and got.tolist() == want


@pytest.mark.parametrize("w,up", [(1.0, 1.0), (-2.5, 1.0), (1e-300, -1.0), (3.0, 1e-200)])
def test_vanishing_values_round_to_the_zero_of_their_sign(w, up):
    """Label logit 800 above the other: the loss ``w·L`` and gradient ``γ·(p − onehot)``
    (``γ = up·w``) are nonzero but below 2**-1075, so they round to ±0: the loss with w's
    sign, the label column with −γ's sign, the other column with γ's."""
    x = np.array([[800.0, 0.0]])
    plan = S.plan_v1_sparse([0], x, weights=np.array([w]), reduction="none")
    e = evaluate_fast(plan, np.array([up]))
    loss, grad = e["loss"].rounded64[0], e["grad_logits"].rounded64[0]
    g = up * w
    assert loss == 0 and np.signbit(loss) == (w < 0)
    assert grad.tolist() == [0.0, 0.0]
    assert np.signbit(grad).tolist() == [g > 0, g < 0]
    assert e.engine.fallbacks == 0


GRID = [-60000.0, -3000.0, -800.0, -746.0, -745.0, -700.0, 0.0, 1.0, 800.0, 3000.0, 60000.0]


@pytest.mark.parametrize("c", [2, 3, 5])
@pytest.mark.parametrize("reduction", ["none", "weighted_sum", "weighted_mean"])
def test_extreme_rows_agree_with_the_exact_tier_bit_for_bit(c, reduction):
    """Logit gaps across float64's exp range, weights and upstreams from 1e-300 to 1e300:
    every float64 loss and gradient element is the exact tier's, sign of zero included."""
    rng = np.random.default_rng(c)
    x = rng.choice(GRID, size=(300, c))
    y = rng.integers(0, c, 300)
    w = rng.choice([0.0, 1.0, -2.5, 1e-300, 1e300, 3.0], size=300)
    up = rng.choice([1.0, -1.0, 0.0, 1e-200], size=300) if reduction == "none" \
        else np.array(1.0)
    fast = evaluate_fast(S.plan_v1_sparse(y, x, weights=w, reduction=reduction), up)
    exact = evaluate(S.plan_v1_sparse(y, x, weights=w, reduction=reduction), up)
    for name in ("loss", "grad_logits"):
        a, b = fast[name].rounded64, exact[name].rounded64
        wrong = np.flatnonzero(_bits(a).ravel() != _bits(b).ravel())
        assert wrong.size == 0, (name, wrong[:5], a.ravel()[wrong[:5]], b.ravel()[wrong[:5]])


def test_float16_pairs_widened_to_float64_seldom_fall_back():
    """The float64 call a sweep makes for the exact values of its float16 rows: the rows
    whose loss vanishes (about a sixth of all pairs) are decided without the exact tier;
    only gaps between 745 and 786, where exp is subnormal, still fall back."""
    x, y = pair_rows("float16", 0, 65536)
    e = evaluate_fast(S.plan_nn_sparse(y, x.astype(np.float64)), np.ones(y.size))
    finite = np.isfinite(x.astype(np.float64)).all(axis=1)
    assert np.isfinite(e["loss"].rounded64[finite]).all()
    assert np.isfinite(e["grad_logits"].rounded64[finite]).all()
    assert e.engine.fallbacks < 0.005 * 3 * y.size

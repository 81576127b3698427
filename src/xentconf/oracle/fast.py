"""The vectorized tier's public API: the same entries as :mod:`xentconf.oracle`.

``from xentconf.oracle.fast import tf`` gives the same names, signatures and
expectation objects as ``from xentconf.oracle import tf``, carried out by
:mod:`xentconf.oracle.engine`: numpy arithmetic with per-element error bounds, and the
exact tier only for the elements whose bound straddles a rounding boundary. Both tiers
return the same correctly rounded values; this one is built for large batches, large C
and exhaustive sweeps.
"""

from xentconf.vocabulary import API_IDS

from .api import build
from .engine import evaluate_fast

FAST = build(evaluate_fast, "fast")
tf = FAST.tf
oracle_call = FAST.oracle_call
SparseCategoricalCrossentropy = FAST.SparseCategoricalCrossentropy
CategoricalCrossentropy = FAST.CategoricalCrossentropy

__all__ = ["API_IDS", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "oracle_call",
           "tf"]

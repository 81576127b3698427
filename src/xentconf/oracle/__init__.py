"""The oracle: what TensorFlow's semantics require for any input to any API of SPEC §1.

``tf`` mirrors TensorFlow's namespace; every entry returns an
:class:`~xentconf.oracle.expectation.Expectation` (exact values, correctly rounded values,
error budgets — or the error TensorFlow raises). ``oracle_call`` evaluates a call given as
data. This package imports nothing else of xentconf but its shared words
(:mod:`xentconf.vocabulary`).
"""

from xentconf.vocabulary import API_IDS, BUDGET_GRADES, GRADES, KERAS_APIS, PROFILES

from .api import (
    CategoricalCrossentropy,
    SoftmaxCrossEntropyWithLogits,
    SparseCategoricalCrossentropy,
    SparseSoftmaxCrossEntropyWithLogits,
    oracle_call,
    softmax_cross_entropy,
    softmax_cross_entropy_with_logits,
    sparse_softmax_cross_entropy,
    sparse_softmax_cross_entropy_with_logits,
    tf,
)
from .exact import OracleUncertain
from .expectation import Expectation, OutputExpectation
from .formats import FORMATS, Format
from .plan import Raises
from .semantics import OracleInputError

__all__ = [
    "API_IDS",
    "BUDGET_GRADES",
    "FORMATS",
    "GRADES",
    "KERAS_APIS",
    "PROFILES",
    "CategoricalCrossentropy",
    "Expectation",
    "Format",
    "OracleInputError",
    "OracleUncertain",
    "OutputExpectation",
    "Raises",
    "SoftmaxCrossEntropyWithLogits",
    "SparseCategoricalCrossentropy",
    "SparseSoftmaxCrossEntropyWithLogits",
    "oracle_call",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_logits",
    "sparse_softmax_cross_entropy",
    "sparse_softmax_cross_entropy_with_logits",
    "tf",
]

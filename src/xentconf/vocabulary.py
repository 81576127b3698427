"""The words every part of xentconf shares, each said once.

API ids (TensorFlow's own names) and their short names, dtypes, devices, device profiles,
Keras variants and grades. This module imports nothing, so every part — the self-contained
oracle, the protocol and results contracts, the adapters and the reports — may import it
(the import contracts in pyproject.toml allow exactly this). Adding an API, a dtype or a
grade starts here.
"""

from __future__ import annotations

__all__ = ["API_IDS", "API_SHORT", "BUDGET_GRADES", "DEVICES", "DTYPES", "GRADES",
           "KERAS_APIS", "KERAS_BACKENDS", "KERAS_VARIANTS", "MODES", "PROFILES", "RAW_OPS",
           "REQUIRED_GRADES"]

#: The APIs of SPEC §1, in their order, with the short names used in test ids and reports.
API_SHORT: dict[str, str] = {
    "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits": "raw_sparse",
    "tf.raw_ops.SoftmaxCrossEntropyWithLogits": "raw_dense",
    "tf.nn.sparse_softmax_cross_entropy_with_logits": "nn_sparse",
    "tf.nn.softmax_cross_entropy_with_logits": "nn_dense",
    "tf.compat.v1.losses.sparse_softmax_cross_entropy": "v1_sparse",
    "tf.compat.v1.losses.softmax_cross_entropy": "v1_dense",
    "tf.keras.losses.SparseCategoricalCrossentropy": "keras_sparse",
    "tf.keras.losses.CategoricalCrossentropy": "keras_dense",
}
API_IDS: tuple[str, ...] = tuple(API_SHORT)
RAW_OPS: tuple[str, ...] = API_IDS[:2]
KERAS_APIS: tuple[str, ...] = API_IDS[6:]

#: Floating-point dtypes of logits, in order of precision.
DTYPES = ("float16", "bfloat16", "float32", "float64")
DEVICES = ("cpu", "cuda")
#: Device profiles (SPEC §2): cpu raises on bad sparse labels; gpu and xla give NaN rows.
PROFILES = ("cpu", "gpu", "xla")
#: How a target executes in one of its modes (a mode is a device, a profile and one of
#: these): eager ops, XLA compilation (TensorFlow's ``jit_compile=True``, ``jax.jit``),
#: ``torch.compile`` (inductor), or — for Keras 3, whose calls run eagerly on whichever
#: backend it is configured with — the backend.
KERAS_BACKENDS = ("tensorflow", "torch", "jax")
MODES = ("eager", "xla", "compile", *KERAS_BACKENDS)
#: The Keras semantics: Keras 2 (tf_keras, the seed documents') and Keras 3.
KERAS_VARIANTS = ("keras2", "keras3")

#: Grades of SPEC §3, best first.
GRADES = ("exact", "faithful", "tf-precision", "stable", "fail")
#: The grades a run can require (every grade but ``fail``).
REQUIRED_GRADES = GRADES[:4]
#: The grades judged by an error budget.
BUDGET_GRADES = ("faithful", "tf-precision", "stable")

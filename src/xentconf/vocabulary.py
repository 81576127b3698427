"""The words every part of xentconf shares, each said once.

API ids (TensorFlow's own names) and their short names, dtypes, devices, device profiles,
Keras variants and grades. This module imports nothing, so every part — the self-contained
oracle, the protocol and results contracts, the adapters and the reports — may import it
(the import contracts in pyproject.toml allow exactly this). Adding an API, a dtype or a
grade starts here.
"""

from __future__ import annotations

__all__ = ["API_DOC", "API_IDS", "API_SHORT", "BUDGET_GRADES", "DEVICES", "DTYPES", "GRADES",
           "KERAS_APIS", "KERAS_BACKENDS", "KERAS_VARIANTS", "MODES", "PAIR_DTYPES", "PROFILES",
           "RAW_OPS", "REQUIRED_GRADES", "SWEEP_APIS", "api_id"]

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


def api_id(name: str) -> str | None:
    """The API id of a TF id or short name (``nn_sparse``), or None if it is neither."""
    if name in API_SHORT:
        return name
    return next((a for a, short in API_SHORT.items() if short == name), None)


#: What each API computes, as TensorFlow's documentation says it (one line each; for
#: bug reports that cite the documented semantics).
API_DOC: dict[str, str] = {
    API_IDS[0]: "Computes softmax cross entropy cost and gradients to backpropagate; labels "
                "are one class index per row of features, with values in [0, num_classes).",
    API_IDS[1]: "Computes softmax cross entropy cost and gradients to backpropagate; labels "
                "are a probability distribution per row of features.",
    API_IDS[2]: "Computes sparse softmax cross entropy between logits and labels; each entry "
                "in labels must be an index in [0, num_classes): other values raise an "
                "exception on CPU and give NaN loss and gradient rows on GPU.",
    API_IDS[3]: "Computes softmax cross entropy between logits and labels; each row of "
                "labels must be a valid probability distribution (axis: the class "
                "dimension, default -1).",
    API_IDS[4]: "Cross-entropy loss using tf.nn.sparse_softmax_cross_entropy_with_logits; "
                "weights act as a coefficient for the loss, reduced as `reduction` says "
                "(default: the weighted sum divided by the number of non-zero weights).",
    API_IDS[5]: "Cross-entropy loss using tf.nn.softmax_cross_entropy_with_logits_v2; with "
                "label_smoothing > 0 the labels become onehot_labels * (1 - label_smoothing) "
                "+ label_smoothing / num_classes; weights and reduction as in "
                "compute_weighted_loss.",
    API_IDS[6]: "Computes the crossentropy loss between integer labels and predictions "
                "(logits with from_logits=True, else probabilities), weighted by "
                "sample_weight and reduced as `reduction` says.",
    API_IDS[7]: "Computes the crossentropy loss between one-hot labels and predictions "
                "(logits with from_logits=True, else probabilities), with optional label "
                "smoothing, weighted by sample_weight and reduced as `reduction` says.",
}
RAW_OPS: tuple[str, ...] = API_IDS[:2]
KERAS_APIS: tuple[str, ...] = API_IDS[6:]
#: The APIs of the exhaustive sweeps: the C = 2 sparse losses (the raw op, tf.nn's).
SWEEP_APIS: tuple[str, ...] = (API_IDS[0], API_IDS[2])

#: Floating-point dtypes of logits, in order of precision.
DTYPES = ("float16", "bfloat16", "float32", "float64")
#: The dtypes of ``xentconf sweep``: every pair (16-bit) or every value against a grid (float32).
PAIR_DTYPES = DTYPES[:3]
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

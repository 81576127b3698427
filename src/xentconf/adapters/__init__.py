"""Adapters: thin translations from a TensorFlow-style call to one target implementation.

One module per built-in target framework (``tensorflow``, ``keras``, ``torch``, ``jax``,
``onnxruntime``), ``reference`` (the oracle as a target), ``callable`` (any Python callable
following one API's signature, SPEC §4) and ``registry``, which finds all of them — and
third-party adapters registered under the ``xentconf.adapters`` entry-point group — by
name::

    from xentconf.adapters import get_target
    target = get_target("onnxruntime")
    target = get_target("mypkg.losses:xent", api="tf.nn.sparse_softmax_cross_entropy_with_logits")

Adapters may import ``xentconf.protocol`` only (the reference target also wraps the oracle),
and import their framework lazily, inside functions.
"""

from .registry import BUILTINS, ENTRY_POINT_GROUP, available_targets, get_target, target_names

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "available_targets", "get_target", "target_names"]

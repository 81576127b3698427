"""Callables that take and return numpy, torch or JAX arrays (run with ``--array``).

Each follows ``tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)``. The
``*_good`` ones compute in float64 and round once to the logits' dtype (they conform on
float16, bfloat16 and float32 inputs, and on moderate float64 ones); ``*_sloppy`` ones are
wrong on purpose by 5% and 0.05 (outside every budget, bfloat16's too). ``SEEN``
records the type and dtypes of what each call received, for the in-process tests.
"""

__version__ = "0.1.0"

SEEN: list[tuple[str, str, str]] = []


def _seen(labels, logits) -> None:
    SEEN.append((type(logits).__module__.split(".")[0], str(logits.dtype),
                 str(labels.dtype)))


def numpy_good(labels, logits):
    import numpy as np

    assert isinstance(logits, np.ndarray) and isinstance(labels, np.ndarray)
    _seen(labels, logits)
    x = logits.astype(np.float64)
    m = x.max(-1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(-1)) + m[..., 0]
    picked = np.take_along_axis(x, labels.astype(np.int64)[..., None], -1)[..., 0]
    return (lse - picked).astype(logits.dtype)


def torch_good(labels, logits):
    import torch

    assert isinstance(logits, torch.Tensor) and isinstance(labels, torch.Tensor)
    _seen(labels, logits)
    x = logits.to(torch.float64)
    picked = x.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    return (torch.logsumexp(x, -1) - picked).to(logits.dtype)


def torch_sloppy(labels, logits):
    return (torch_good(labels, logits).double() * 1.05 + 0.05).to(logits.dtype)


def jax_good(labels, logits):
    import jax
    import jax.numpy as jnp

    assert isinstance(logits, jax.Array) and isinstance(labels, jax.Array)
    _seen(labels, logits)
    x = logits.astype(jnp.float64)
    picked = jnp.take_along_axis(x, labels.astype(jnp.int64)[..., None], axis=-1)[..., 0]
    return (jax.nn.logsumexp(x, axis=-1) - picked).astype(logits.dtype)


def jax_sloppy(labels, logits):
    import jax.numpy as jnp

    return (jax_good(labels, logits).astype(jnp.float64) * 1.05 + 0.05).astype(logits.dtype)

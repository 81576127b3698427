"""The engine's compiled row kernel (numba), with the numpy path's exact answers.

numba is a dependency wherever it publishes a wheel; without it (or with the environment
variable ``XENTCONF_ACCEL=0``) the engine uses its numpy path, which computes the very same float64
values: both evaluate :func:`xentconf.oracle.vexp.exp_nonpos`'s operation sequence (plain
``+ − ×``, no fastmath, no contraction into fused multiply-adds) and both sum in the
engine's fixed order (:data:`~xentconf.oracle.vexp.LANES`-wide chunks, a complete binary
tree over the chunks with zero padding, then the lanes pairwise; see ``rows.lane_sum``).
numba is imported only when the kernel is first asked for.

The kernel computes, per row of a float32 or float64 ``[N, C]`` array (and its labels): the
labelled logit ``x_y``, TF's bad-row rule
(a NaN, a +inf or no finite logit), the maximum ``m`` and its first index ``k``,
``t = Σ_{j≠k} exp(x_j − m)``, and ``terr = Σ_{j≠k} exp(x_j − m)·|lo_j|`` where ``lo_j`` is
the rounding error of ``x_j − m`` (``two_sum``; 0 for every ``j`` of a row whose shifts are
all exact, which is the rule for float32 logits). It reads each row from memory once
(the second pass over the row finds it in cache) and needs under 800 KB of scratch (the
most at C = 128, whose rows it takes 256 at a time, column by column).
"""

from __future__ import annotations

import os

_STATE: dict = {}


def enabled() -> bool:
    """Whether the compiled kernel may be used (numba importable, not switched off)."""
    return os.environ.get("XENTCONF_ACCEL", "1") != "0" and kernel() is not None


def kernel():
    """The compiled kernel ``run(x, labels) -> (bad, m, k, t, terr, x_y)``, or None without
    numba (compiled on first use; numba caches the machine code on disk)."""
    if "kernel" not in _STATE:
        try:
            from . import _kernels
        except ImportError:
            _STATE["kernel"] = None
        else:
            _STATE["kernel"] = _kernels.run
    return _STATE["kernel"]


def certifier():
    """The compiled :func:`xentconf.oracle.certify.certify_ball` (flat arrays, on the calling
    thread), or None without numba or with ``XENTCONF_ACCEL=0``."""
    if not enabled():
        return None
    from . import _kernels

    return _kernels.certify_rows


def sparse_loss_kernels():
    """The compiled ``rows.sparse_loss_rows`` with the row rules over a whole row range,
    written out or with the loss certified (``rows.sparse_loss_into``; see
    ``_kernels.sparse_loss_range``); numba must be there (the caller has checked)."""
    from . import _kernels

    return _kernels.sparse_loss_range, _kernels.sparse_loss_range_certified


def sparse_grad_kernel():
    """The compiled certified gradient rows of a sparse plan over a whole row range
    (``rows.sparse_grad_into``; see ``_kernels.sparse_grad_range``); numba must be there
    (the caller has checked)."""
    from . import _kernels

    return _kernels.sparse_grad_range


def dense_kernels():
    """The compiled dense loss (``rows._Rows.dense_loss`` with the row rules, over a whole
    row range: ``rows.dense_loss_into``, ``_kernels.dense_loss_range``) and its certified
    gradient rows (``rows.dense_grad_into``, ``_kernels.dense_grad_range``); numba must be
    there (the caller has checked)."""
    from . import _kernels

    return _kernels.dense_loss_range, _kernels.dense_grad_range


def two_class_kernels():
    """The compiled C = 2 closed form: ``rows.two_class_rows`` with the row rules over a
    whole row range, written out or with the loss certified (``rows.two_class_into``; see
    ``_kernels.two_class_range``), and the certified backprop rows (``engine``'s
    gradient); None without numba or with ``XENTCONF_ACCEL=0``."""
    if not enabled():
        return None
    from . import _kernels

    return (_kernels.two_class_range, _kernels.two_class_range_certified,
            _kernels.two_class_grad_range)

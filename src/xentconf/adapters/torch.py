"""PyTorch as a target: TensorFlow's softmax cross-entropy APIs through ``F.cross_entropy``.

The adapter translates calling conventions and nothing else (DESIGN "Adapters are thin"):

* **class axis** — TensorFlow puts classes last, ``torch.nn.functional.cross_entropy``
  at dim 1 (``[N, C, d1, ...]``; an unbatched ``[C]`` with a scalar target is its own
  form). Logits of rank ≥ 3 are moved with ``movedim(-1, 1)``; the loss comes back as
  ``[N, d1, ...]``, which is TensorFlow's layout already.
* **dtypes** — integer labels of TensorFlow's label dtypes (int32, int64) become int64
  (torch wants Long); any other label dtype is handed over unchanged and torch decides.
  Dense labels and compat.v1 weights are cast to the logits dtype (TensorFlow casts them
  too, and torch would otherwise promote the loss to the labels' dtype). bfloat16 crosses
  through float32, which holds every bfloat16 exactly.
* **device** — tensors are created on the runner's device (``cpu`` or ``cuda``).
* **gradients** — ``torch.autograd.grad`` of the loss output with respect to the logits
  tensor as the caller gave it (TensorFlow's layout), with the upstream gradient cast to
  the loss dtype.

Nothing is validated or patched. Whatever torch does with an input is the outcome: an
out-of-range label raises ``IndexError`` on CPU, except ``-100``, torch's default
``ignore_index``, which gives loss 0; torch has no way to switch ignoring off, so that is
torch's behaviour and the report shows it. ``label_smoothing`` outside ``[0, 1]`` raises
(torch's check); ``ε ≤ 0`` is not passed at all, because TensorFlow's compat.v1 API smooths
only ``if label_smoothing > 0``.

Where torch has no native form the adapter composes one from torch ops and declares the
feature ``composed`` in :meth:`TorchTarget.info`:

* the raw ops' ``backprop`` output: ``softmax(z) − one_hot(y)`` (sparse) or
  ``softmax(z) − y`` (dense);
* label broadcasting for the dense APIs (torch wants a target of the input's shape):
  labels flattened to ``[-1, C]`` and broadcast to the logits, as TensorFlow does;
* the ``axis`` of ``tf.nn.softmax_cross_entropy_with_logits``: ``movedim(axis, -1)``
  (torch normalises negative axes, so ``axis=-2`` computes where TensorFlow raises);
* compat.v1 weights and the five ``Reduction`` values (torch has no per-sample weights),
  evaluated in the loss dtype, with ``div_no_nan`` as ``where(d == 0, 0, S / d)`` on a
  safe denominator (so the gradient of a zero-denominator reduction is 0, not NaN);
  compat.v1's ``[B, 1]`` label and weight squeezes with ``squeeze(-1)``.

The Keras loss classes are unsupported: torch has no Keras losses.

Modes: eager and ``torch.compile`` (mode name ``compile``: inductor, ``dynamic=True``, so
that one graph serves every batch size and class count, and floats such as weights and ε
are graph inputs) on the CPU, and the same two on ``cuda:0`` when torch sees a device. The
compile mode hands the very function the eager mode runs to ``torch.compile``; a python
weight becomes a 0-d float64 tensor there (the same value once cast to the loss dtype), and
dynamo's recompile limit is raised so that it never falls back to eager unannounced.

Differences from TensorFlow that follow from this (findings, shown by the tests):
the gradient of the dense APIs is autograd's true derivative ``u·(p·Σy − y)``, whereas
TensorFlow's is ``u·(p − y)`` — they agree only for label rows summing to 1; float16
compat.v1 reductions whose sum passes 65504 overflow to inf (as torch's own
``reduction="mean"`` does), where TensorFlow reduces in float32; uint8 labels, raw ops
of rank ≠ 2, ``axis=-2`` and weights of a lower rank than the loss are accepted.
"""

from __future__ import annotations

import importlib.util
import textwrap
from typing import Any

import numpy as np

from ..protocol import (
    API_IDS,
    DTYPES,
    KERAS_APIS,
    RAW_OPS,
    ApiSupport,
    Call,
    Mode,
    Runner,
    Setup,
    Target,
    TargetError,
    TargetInfo,
)
from . import _source as src

__all__ = ["INSTALL_HINT", "TorchTarget"]

INSTALL_HINT = "torch is not installed (pip install torch==2.13.0)"

_BASE = {"rank1", "rank3+", "batch0", "special_values", "grad"}

#: How each API is realised: features torch computes itself, features the adapter
#: composes from torch ops, features torch lacks. Only features an API has are listed.
_SUPPORT: dict[str, tuple[set, set, set, str]] = {
    API_IDS[0]: (_BASE | {"bad_labels"}, {"backprop"}, set(),
                 "F.cross_entropy(reduction='none'); backprop = softmax − one_hot"),
    API_IDS[1]: (set(_BASE), {"backprop", "broadcast_labels"}, set(),
                 "F.cross_entropy with probability targets; backprop = softmax − labels"),
    API_IDS[2]: (_BASE | {"bad_labels"}, set(), set(),
                 "F.cross_entropy(reduction='none'), classes moved to dim 1"),
    API_IDS[3]: (set(_BASE), {"axis", "broadcast_labels"}, set(),
                 "F.cross_entropy with probability targets, classes moved to dim 1"),
    API_IDS[4]: (_BASE | {"bad_labels"}, {"weights", "reduction"}, set(),
                 "F.cross_entropy(reduction='none'); weights and reductions composed"),
    API_IDS[5]: (_BASE | {"label_smoothing"}, {"weights", "reduction"}, set(),
                 "F.cross_entropy(label_smoothing=ε if ε > 0); weights and reductions "
                 "composed"),
    API_IDS[6]: (set(), set(), _BASE | {"bad_labels", "weights", "reduction", "from_logits",
                                        "probabilities", "ignore_class"},
                 "torch has no Keras losses"),
    API_IDS[7]: (set(), set(), _BASE | {"weights", "reduction", "from_logits",
                                        "probabilities", "label_smoothing", "axis"},
                 "torch has no Keras losses"),
}

#: The torch device of each (device, profile) of a mode, and how a mode may execute.
_MODES = {("cpu", "cpu"): "cpu", ("cuda", "gpu"): "cuda"}
_EXECUTIONS = ("eager", "compile")

_NO_CUDA = "torch.cuda.is_available() is False (no CUDA device, or a CPU-only torch build)"
_BAD_LABELS_NOTE = ("bad labels: IndexError on CPU, except -100 (torch's default ignore_index: "
                    "loss 0); on CUDA a device-side assert that leaves the CUDA context "
                    "unusable")


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TargetError(f"{INSTALL_HINT}: {exc}") from exc
    return torch


# --------------------------------------------------------------------------- conversions


def _tf_array(value) -> np.ndarray:
    """``value`` as a numpy array: a numpy array keeps its dtype; Python numbers and lists
    convert as ``tf.convert_to_tensor`` converts them (floats to float32, integers to int32,
    or int64 when out of range)."""
    arr = np.asarray(value)
    if not isinstance(value, (np.ndarray, np.generic)):
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        elif arr.dtype.kind in "iu":
            i32 = np.iinfo(np.int32)
            small = arr.size == 0 or (arr.min() >= i32.min and arr.max() <= i32.max)
            arr = arr.astype(np.int32 if small else np.int64)
    return arr


def _tensor(torch, value, device: str):
    """A torch tensor holding ``value`` exactly (bfloat16 crosses via float32), converted
    as :func:`_tf_array` says."""
    arr = _tf_array(value)
    if arr.dtype.name == "bfloat16":
        return torch.tensor(arr.astype(np.float32), device=device).to(torch.bfloat16)
    return torch.tensor(np.array(arr, order="C"), device=device)  # 0-d stays 0-d


def _numpy(torch, t) -> np.ndarray:
    """Back to numpy in the tensor's own dtype (bfloat16 as ``ml_dtypes.bfloat16``)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.float().numpy().astype(ml_dtypes.bfloat16)
    return t.numpy()


def _int_labels(torch, y):
    """TensorFlow's label dtypes (int32, int64) as torch's Long; anything else unchanged."""
    return y.long() if y.dtype in (torch.int32, torch.int64) else y


def _class_dim1(t):
    """TensorFlow layout ``[N, d1, ..., C]`` to torch's ``[N, C, d1, ...]``."""
    return t.movedim(-1, 1) if t.dim() >= 3 else t


def _broadcast_labels(y, z):
    """Labels broadcast to the logits the way TensorFlow's dense wrapper does: both read
    as ``[-1, C]`` rows (composed from torch's ``reshape``/``broadcast_to``)."""
    if tuple(y.shape) == tuple(z.shape):
        return y
    c = z.shape[-1]
    return y.reshape(-1, y.shape[-1]).broadcast_to((z.numel() // c if c else 0, c)) \
        .reshape(z.shape)


# --------------------------------------------------------------------------- the APIs


def _sparse_loss(F, torch, labels, logits):
    # class-index targets have no class dim: [N, d1, ...] is torch's layout already
    return F.cross_entropy(_class_dim1(logits), _int_labels(torch, labels), reduction="none")


def _dense_loss(F, labels, logits, axis: int = -1, label_smoothing: float | None = None,
                broadcast: bool = True):
    y = labels.to(logits.dtype)
    z = logits
    if axis != -1:
        z, y = z.movedim(axis, -1), y.movedim(axis, -1)
    if broadcast:  # tf.nn's dense wrapper broadcasts labels; compat.v1 does not
        y = _broadcast_labels(y, z)
    kw: dict[str, Any] = {}
    if label_smoothing is not None:
        kw["label_smoothing"] = label_smoothing
    return F.cross_entropy(_class_dim1(z), _class_dim1(y), reduction="none", **kw)


def _div_no_nan(torch, num, den):
    """``tf.math.div_no_nan``: 0 where the denominator is 0 (even for a NaN numerator)."""
    zero = den == 0
    safe = torch.where(zero, torch.ones_like(den), den)
    return torch.where(zero, torch.zeros_like(num), num / safe)


def _weighted(torch, losses, weights, reduction: str):
    """compat.v1 ``compute_weighted_loss`` composed from torch ops, in the loss dtype."""
    device = losses.device
    if isinstance(weights, (int, float)) and not isinstance(weights, bool):
        w = torch.tensor(weights, dtype=losses.dtype, device=device)
    else:
        w = weights.to(losses.dtype)
    w = w.broadcast_to(losses.shape)  # weights broadcast *to* the losses, as TF does
    wl = w * losses
    if reduction == "none":
        return wl
    s = wl.sum()
    if reduction == "weighted_sum":
        return s
    if reduction == "weighted_sum_over_batch_size":
        den = torch.tensor(losses.numel(), device=device)
    elif reduction == "weighted_mean":
        den = w.sum()
    elif reduction == "weighted_sum_by_nonzero_weights":
        den = torch.count_nonzero(w)
    else:
        raise ValueError(f"no composition for the compat.v1 reduction {reduction!r}")
    return _div_no_nan(torch, s, den)


def _v1_sparse(F, torch, labels, logits, weights, reduction):
    z, y = logits, labels
    # compat.v1 remove_squeezable_dimensions (expected rank difference 1)
    if z.dim() - y.dim() == 2 and z.shape[-1] == 1:
        z = z.squeeze(-1)
    elif z.dim() == y.dim() and y.dim() > 0 and y.shape[-1] == 1:
        y = y.squeeze(-1)
    if not isinstance(weights, (int, float)) and weights.dim() - y.dim() == 1:
        weights = weights.squeeze(-1)
    return _weighted(torch, _sparse_loss(F, torch, y, z), weights, reduction)


# --------------------------------------------------------------------------- snippets
#
# The same translation written out as standalone torch source for one call (only the
# branch that call takes): see TorchTarget.snippet.

_SBNZ = "weighted_sum_by_nonzero_weights"


def _src_tensor(expr: str, value, device: str) -> tuple[str, np.dtype]:
    """Source for ``_tensor(torch, value, device)`` with ``value`` read from ``expr``, and
    the numpy dtype the tensor holds."""
    arr = _tf_array(value)
    if isinstance(value, np.ndarray):
        a = expr
    elif isinstance(value, np.generic) or arr.dtype == np.asarray(value).dtype:
        a = f"np.asarray({expr})"
    else:
        a = f"np.asarray({expr}, {src.numpy_dtype(arr.dtype)})"
    dev = f", device={device!r}" if device != "cpu" else ""
    if arr.dtype.name == "bfloat16":
        return f"torch.tensor({a}.astype(np.float32){dev}).to(torch.bfloat16)", arr.dtype
    return f"torch.tensor({a}{dev})", arr.dtype


def _src_long(dt: np.dtype) -> str:
    return ".long()" if dt in (np.dtype(np.int32), np.dtype(np.int64)) else ""


def _src_dim1(expr: str, ndim: int) -> str:
    return f"{expr}.movedim(-1, 1)" if ndim >= 3 else expr


def _moved_shape(shape: tuple, axis: int) -> tuple:
    shape = list(shape)
    shape.append(shape.pop(axis))  # IndexError for an axis torch rejects too
    return tuple(shape)


def _src_weighted(args: dict, device: str, labels_ndim: int | None) -> list[str]:
    """``_weighted(torch, losses, weights, reduction)`` (and, for the sparse API, the
    squeeze of weights one rank above the labels) as source; ``loss`` is the result."""
    weights = args.get("weights", 1.0)
    dev = f", device={device!r}" if device != "cpu" else ""
    lines = ["# compat.v1 weights and reduction, composed from torch ops"]
    if isinstance(weights, (int, float)) and not isinstance(weights, bool):
        w = src.value("weights", weights) if "weights" in args else "1.0"
        lines.append(f"w = torch.tensor({w}, dtype=losses.dtype{dev})"
                     ".broadcast_to(losses.shape)")
    else:
        expr, _ = _src_tensor("args['weights']", weights, device)
        lines.append(f"weights = {expr}")
        if labels_ndim is not None and np.ndim(weights) - labels_ndim == 1:
            lines.append("weights = weights.squeeze(-1)")
        lines.append("w = weights.to(losses.dtype).broadcast_to(losses.shape)")
    reduction = args.get("reduction", _SBNZ)
    if reduction == "none":
        return [*lines, "loss = w * losses"]
    lines.append("total = (w * losses).sum()")
    if reduction == "weighted_sum":
        return [*lines, "loss = total"]
    den = {"weighted_sum_over_batch_size": f"torch.tensor(losses.numel(){dev})",
           "weighted_mean": "w.sum()", _SBNZ: "torch.count_nonzero(w)"}.get(reduction)
    if den is None:
        message = f"no composition for the compat.v1 reduction {reduction!r}"
        return [*lines, f"raise ValueError({message!r})"]
    return [*lines, f"den = {den}", "# tf.math.div_no_nan, with a safe divisor",
            "loss = torch.where(den == 0, torch.zeros_like(total), "
            "total / torch.where(den == 0, torch.ones_like(den), den))"]


def _snippet(api: str, args: dict, upstream, device: str, compile: bool = False) -> str:
    """Standalone torch source computing what ``_TorchRunner.run`` returns for one call
    (with ``compile``, the computation runs through ``torch.compile`` as the compile mode
    runs it)."""
    zname = "features" if api in RAW_OPS else "logits"
    yname = "onehot_labels" if api == API_IDS[5] else "labels"
    z, y = args[zname], args[yname]
    zsrc, zdt = _src_tensor(f"args[{zname!r}]", z, device)
    ysrc, ydt = _src_tensor(f"args[{yname!r}]", y, device)
    zdim, ydim = np.ndim(z), np.ndim(y)
    grad = upstream is not None and (zdt.kind == "f" or zdt.name == "bfloat16")
    lines = [f"{zname} = {zsrc}" + (".requires_grad_()" if grad else ""),
             f"{yname} = {ysrc}"]
    names = ["loss"]
    if api == API_IDS[0]:
        lines += [f"loss = F.cross_entropy({_src_dim1('features', zdim)}, "
                  f"labels{_src_long(ydt)}, reduction='none')",
                  f"onehot = F.one_hot(labels{_src_long(ydt)}, features.shape[-1])",
                  "backprop = torch.softmax(features.detach(), dim=-1) - "
                  "onehot.to(features.dtype)"]
        names.append("backprop")
    elif api == API_IDS[1]:
        n = max(zdim, ydim)
        lines += ["zb, yb = torch.broadcast_tensors(features, labels.to(features.dtype))",
                  f"loss = F.cross_entropy({_src_dim1('zb', n)}, {_src_dim1('yb', n)}, "
                  "reduction='none')",
                  "backprop = torch.softmax(zb.detach(), dim=-1) - yb"]
        names.append("backprop")
    elif api == API_IDS[2]:
        lines.append(f"loss = F.cross_entropy({_src_dim1('logits', zdim)}, "
                     f"labels{_src_long(ydt)}, reduction='none')")
    elif api == API_IDS[3]:
        axis = int(args.get("axis", -1))
        lines.append("y = labels.to(logits.dtype)")
        x = "logits"
        zshape, yshape = np.shape(z), np.shape(y)
        if axis != -1:
            lines.append(f"x, y = logits.movedim({axis}, -1), y.movedim({axis}, -1)")
            x = "x"
            try:
                zshape, yshape = _moved_shape(zshape, axis), _moved_shape(yshape, axis)
            except IndexError:
                zshape = None
        if zshape != yshape:  # labels broadcast to the logits as [-1, C] rows
            lines += [f"c = {x}.shape[-1]",
                      f"y = y.reshape(-1, y.shape[-1]).broadcast_to(({x}.numel() // c if c "
                      f"else 0, c)).reshape({x}.shape)"]
            ydim = zdim
        lines.append(f"loss = F.cross_entropy({_src_dim1(x, zdim)}, {_src_dim1('y', ydim)}, "
                     "reduction='none')")
    elif api == API_IDS[4]:
        x, yy, xdim = "logits", "labels", zdim
        lines.append("# compat.v1's remove_squeezable_dimensions")
        if zdim - ydim == 2 and np.shape(z)[-1] == 1:
            lines.append("x = logits.squeeze(-1)")
            x, xdim = "x", zdim - 1
        elif zdim == ydim and ydim > 0 and np.shape(y)[-1] == 1:
            lines.append("y = labels.squeeze(-1)")
            yy, ydim = "y", ydim - 1
        else:
            lines.pop()
        lines.append(f"losses = F.cross_entropy({_src_dim1(x, xdim)}, {yy}{_src_long(ydt)}, "
                     "reduction='none')")
        lines += _src_weighted(args, device, ydim)
    elif api == API_IDS[5]:
        eps = args.get("label_smoothing", 0)
        smoothing = f", label_smoothing={float(eps)!r}" if eps > 0 else ""
        lines += ["y = onehot_labels.to(logits.dtype)",
                  f"losses = F.cross_entropy({_src_dim1('logits', zdim)}, "
                  f"{_src_dim1('y', ydim)}, reduction='none'{smoothing})"]
        lines += _src_weighted(args, device, None)
    else:
        raise TargetError(f"{api} is not supported by the torch target")
    if compile:  # the same computation as one function, compiled as the compile mode does
        body = textwrap.indent("\n".join(lines[2:]), "    ")
        lines = [*lines[:2], f"def forward({zname}, {yname}):", body,
                 "    return " + ", ".join(names) + ",", "",
                 f"# torch.compile (inductor), dynamic shapes; at most {RECOMPILE_LIMIT} graphs",
                 f"torch._dynamo.config.recompile_limit = {RECOMPILE_LIMIT}",
                 f"{', '.join(names)}, = torch.compile(forward, backend='inductor', "
                 f"dynamic=True)({zname}, {yname})"]
    if grad:
        up, _ = _src_tensor("upstream", upstream, device)
        lines += [f"(grad_logits,) = torch.autograd.grad(loss, {zname}, "
                  f"grad_outputs={up}.to(loss.dtype))"]
        names.append("grad_logits")
    cpu = ".cpu()" if device != "cpu" else ""
    if zdt.name == "bfloat16":  # numpy has no bfloat16: via float32, exactly
        convert = f".detach(){cpu}.float().numpy().astype(ml_dtypes.bfloat16)"
    else:
        convert = f".detach(){cpu}.numpy()"
    head = ["import ml_dtypes"] * (zdt.name == "bfloat16")
    head += ["import torch", "import torch.nn.functional as F", ""]
    return "\n".join([*head, *lines, "outputs = {" + ", ".join(
        f"{n!r}: {n}{convert}" for n in names) + "}"]) + "\n"


def _forward_fn(torch, F):
    """The outputs of one call (``loss``, and ``backprop`` for the raw ops) from tensors
    made as TensorFlow's arguments are, and the call's plain arguments: what the eager mode
    runs and the compile mode hands to ``torch.compile``."""

    def forward(api, z, y, weights, axis, eps, reduction):
        if api == API_IDS[0]:
            loss = _sparse_loss(F, torch, y, z)  # first: torch's own label check speaks
            onehot = F.one_hot(_int_labels(torch, y), z.shape[-1])
            return {"loss": loss,
                    "backprop": torch.softmax(z.detach(), dim=-1) - onehot.to(z.dtype)}
        if api == API_IDS[1]:
            zb, yb = torch.broadcast_tensors(z, y.to(z.dtype))
            return {"loss": F.cross_entropy(_class_dim1(zb), _class_dim1(yb),
                                            reduction="none"),
                    "backprop": torch.softmax(zb.detach(), dim=-1) - yb}
        if api == API_IDS[2]:
            return {"loss": _sparse_loss(F, torch, y, z)}
        if api == API_IDS[3]:
            return {"loss": _dense_loss(F, y, z, axis)}
        if api == API_IDS[4]:
            return {"loss": _v1_sparse(F, torch, y, z, weights, reduction)}
        if api == API_IDS[5]:
            loss = _dense_loss(F, y, z, label_smoothing=eps, broadcast=False)
            return {"loss": _weighted(torch, loss, weights, reduction)}
        raise TargetError(f"{api} is not supported by the torch target")

    return forward


#: torch.compile's limit on graphs per function (8 by default; past it dynamo falls back to
#: eager without saying so). Dtypes, ranks, reductions and gradients each need a graph of
#: their own, so the compile mode raises it far above what a run compiles.
RECOMPILE_LIMIT = 4096


def _compiled(torch, fn):
    """``fn`` under ``torch.compile`` (inductor, dynamic shapes: one graph serves every
    batch and class count; floats are dynamic too, so weights and ε do not recompile)."""
    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), RECOMPILE_LIMIT))
    return torch.compile(fn, backend="inductor", dynamic=True)


def _graph_inputs(torch, api, z, y, weights):
    """The casts ``forward`` makes first, made before it: int32 sparse labels become Long
    (``_int_labels``) and a weights tensor takes the dtype of floating logits (the loss
    dtype, which ``_weighted`` casts it to). The values ``forward`` computes with are the
    same; under ``torch.compile`` an input's dtype is part of a graph's guards, so int32 and
    int64 labels (or float32 and float64 weights) would otherwise each compile a graph of
    their own (profiled: label dtype was the first cause of recompilation)."""
    if api in (API_IDS[0], API_IDS[2], API_IDS[4]):
        y = _int_labels(torch, y)
    if isinstance(weights, torch.Tensor) and z.is_floating_point():
        weights = weights.to(z.dtype)
    return y, weights


class _TorchRunner(Runner):
    """Evaluates one API on one device, eagerly or through ``torch.compile``."""

    def __init__(self, setup: Setup, device: str):
        self.setup = setup
        self._device = device
        self._torch = _torch()
        import torch.nn.functional as F

        self._F = F
        forward = _forward_fn(self._torch, F)
        self._forward = _compiled(self._torch, forward) if setup.mode == "compile" else forward

    def _as_tensor(self, value, *, grad: bool = False):
        t = _tensor(self._torch, value, self._device)
        if grad and t.is_floating_point():
            t.requires_grad_(True)
        return t

    def run(self, call: Call) -> dict[str, np.ndarray]:
        if call.api != self.setup.api:
            raise TargetError(f"this runner was prepared for {self.setup.api}, not {call.api}")
        torch = self._torch
        api, args = call.api, dict(call.args)
        want_grad = call.upstream is not None
        with torch.enable_grad():
            logits = args["features" if api in RAW_OPS else "logits"]
            labels = args["onehot_labels" if api == API_IDS[5] else "labels"]
            z = self._as_tensor(logits, grad=want_grad)
            y = self._as_tensor(labels)
            weights = self._weights(args.get("weights", 1.0))
            y, weights = _graph_inputs(torch, api, z, y, weights)
            eps = args.get("label_smoothing", 0)
            out = self._forward(api, z, y, weights, int(args.get("axis", -1)),
                                # TF smooths only `if label_smoothing > 0`; torch checks ε ≤ 1
                                float(eps) if eps > 0 else None,
                                args.get("reduction", "weighted_sum_by_nonzero_weights"))
            loss = out["loss"]
            if want_grad and z.requires_grad:
                up = self._as_tensor(call.upstream).to(loss.dtype)
                out["grad_logits"], = torch.autograd.grad(loss, z, grad_outputs=up,
                                                          allow_unused=True)
                if out["grad_logits"] is None:  # the loss does not depend on the logits
                    out["grad_logits"] = torch.zeros_like(z)
        return {k: _numpy(torch, v) for k, v in out.items()}

    def _weights(self, w):
        if isinstance(w, (int, float)) and not isinstance(w, bool):
            if self.setup.mode == "compile":  # a 0-d float64 tensor: one graph for any value
                return self._torch.tensor(float(w), dtype=self._torch.float64,
                                          device=self._device)
            return w
        return self._as_tensor(w)


class TorchTarget(Target):
    """PyTorch (eager and torch.compile; CPU, and CUDA when torch sees a device)."""

    name = "torch"

    def info(self) -> TargetInfo:
        apis = {api: ApiSupport(native=frozenset(n), composed=frozenset(c),
                                unsupported=frozenset(u),
                                dtypes=() if api in KERAS_APIS else DTYPES,
                                notes=note if api in KERAS_APIS or "bad_labels" not in n
                                else f"{note}; {_BAD_LABELS_NOTE}")
                for api, (n, c, u, note) in _SUPPORT.items()}
        if importlib.util.find_spec("torch") is None:
            return TargetInfo(name=self.name, available=False, reason=INSTALL_HINT, apis=apis,
                              keras=None, modes=(
                                  Mode("cpu", "cpu", available=False, reason=INSTALL_HINT),
                                  Mode("cuda", "gpu", available=False, reason=INSTALL_HINT)))
        try:
            torch = _torch()
            cuda = bool(torch.cuda.is_available())
        except Exception as exc:  # a broken installation: say why, never raise
            return TargetInfo(name=self.name, available=False,
                              reason=f"torch failed to import: {exc}", apis=apis, keras=None)
        no_cuda = "" if cuda else _NO_CUDA
        modes = (
            Mode("cpu", "cpu", "eager on the CPU"),
            Mode("cpu", "cpu", "torch.compile (inductor, dynamic shapes) on the CPU",
                 name="compile"),
            Mode("cuda", "gpu", "eager on cuda:0 (bad labels trip a device-side assert, "
                 "not NaN rows)", available=cuda, reason=no_cuda),
            Mode("cuda", "gpu", "torch.compile (inductor, dynamic shapes) on cuda:0",
                 available=cuda, reason=no_cuda, name="compile"),
        )
        return TargetInfo(name=self.name, available=True, version=torch.__version__,
                          modes=modes, apis=apis, keras=None,
                          description=f"PyTorch {torch.__version__}: "
                          "torch.nn.functional.cross_entropy")

    def snippet(self, setup: Setup, call: Call) -> str | None:
        """torch source for ``call``: ``F.cross_entropy`` on tensors made as the runner
        makes them (on its device), and the compositions the runner uses for this call
        (raw-op backprop, label broadcasting, the axis, compat.v1 weights and the one
        reduction asked for); ``torch.autograd.grad`` for the gradient."""
        key = (setup.device, setup.profile)
        if call.api != setup.api or call.api not in API_IDS[:6] or key not in _MODES \
                or setup.mode not in _EXECUTIONS:
            return None
        try:
            return _snippet(call.api, dict(call.args), call.upstream, _MODES[key],
                            compile=setup.mode == "compile")
        except Exception:  # an input the runner rejects before torch sees it
            return None

    def prepare(self, setup: Setup) -> Runner:
        if setup.api not in API_IDS:
            raise TargetError(f"unknown API id {setup.api!r}; choose one of {', '.join(API_IDS)}")
        if setup.api in KERAS_APIS:
            raise TargetError(f"{setup.api} is not supported by the torch target: torch has "
                              "no Keras losses")
        key = (setup.device, setup.profile)
        if key not in _MODES or setup.mode not in _EXECUTIONS:
            raise TargetError(f"no torch mode runs on device {setup.device!r} with profile "
                              f"{setup.profile!r} executing {setup.mode!r}; modes: cpu/cpu, "
                              "cuda/gpu, each eager or compile")
        torch = _torch()
        if setup.device == "cuda" and not torch.cuda.is_available():
            raise TargetError(f"the torch cuda mode is unavailable: {_NO_CUDA}")
        return _TorchRunner(setup, _MODES[key])

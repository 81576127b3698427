"""Keras 3 as a target: its two cross-entropy loss classes on the configured backend.

``keras.losses.SparseCategoricalCrossentropy`` and ``keras.losses.CategoricalCrossentropy``
are constructed with the call's keyword arguments and called with the arrays as given;
Keras converts them itself. Keras 3's behaviour (the float32 loss dtype, its reductions
``mean`` / ``mean_with_sample_weight``, sample-weight alignment) is the target's declared
semantics variant ``keras3``. The backend is whatever Keras is configured with
(``KERAS_BACKEND``; TensorFlow by default): the gradient with respect to ``y_pred`` is
taken through that backend — ``tf.GradientTape`` for TensorFlow, ``jax.vjp`` for JAX,
``torch.autograd`` for PyTorch — with the upstream gradient as the output gradient.
Nothing is validated or patched; any exception is the target rejecting the input.

On the JAX backend each call runs under the scoped ``jax.enable_x64(True)``, as the ``jax``
target's calls do. JAX without its 64-bit flag cannot hold a float64 (or int64) array at
all: ``jnp.asarray`` narrows it to 32 bits before Keras sees it (JAX's "Default dtypes and
the X64 flag"), and enabling the flag is what JAX documents for users who want 64-bit
values; Keras 3.15 has no switch of its own (later Keras documents ``set_x64_mode``, which
turns the JAX flag on for the user). Without it a float64 case would judge JAX's array
creation, not Keras's loss. Float16, bfloat16 and float32 inputs keep their dtypes either
way. The target's info records this (:data:`JAX_X64_NOTE`).

Modes: eager on the CPU (profile ``cpu``) and, when the backend sees one, on the GPU
(profile ``gpu``). A mode is named by its backend (``--mode torch``); only the configured
backend's modes are available (Keras picks its backend once, at import).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from typing import Any

import numpy as np

from ..protocol import (
    KERAS_APIS,
    KERAS_BACKENDS,
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

__all__ = ["JAX_X64_NOTE", "KerasTarget"]

#: What the JAX backend's modes record in the target's info (module docstring).
JAX_X64_NOTE = "64-bit types enabled within each call (jax.enable_x64), as a float64 user must"

_CLASSES = {KERAS_APIS[0]: "SparseCategoricalCrossentropy",
            KERAS_APIS[1]: "CategoricalCrossentropy"}

_COMMON = {"rank1", "rank3+", "batch0", "special_values", "grad", "weights", "reduction",
           "from_logits", "probabilities"}
_FEATURES = {
    KERAS_APIS[0]: frozenset(_COMMON | {"bad_labels", "ignore_class"}),
    KERAS_APIS[1]: frozenset(_COMMON | {"label_smoothing", "axis"}),
}


def _keras():
    try:
        import keras
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TargetError(f"keras is not importable ({exc}); install it with "
                          "`pip install 'xentconf[keras]'`") from exc
    if not keras.__version__.startswith("3."):
        raise TargetError(f"keras {keras.__version__} is not Keras 3")
    return keras


def _has_gpu(backend: str) -> bool:
    """Whether the Keras backend sees a GPU."""
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        try:
            return bool(jax.devices("gpu"))
        except RuntimeError:  # no GPU backend in this jaxlib
            return False
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    return False


def _x64(backend: str):
    """``jax.enable_x64(True)`` on the JAX backend (module docstring), else nothing."""
    if backend != "jax":
        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(True)


def _floating(x) -> bool:
    dt = np.asarray(x).dtype if isinstance(x, (np.ndarray, np.generic)) else None
    return dt is not None and (dt.kind == "f" or dt.name == "bfloat16")


class _KerasRunner(Runner):
    def __init__(self, setup: Setup, device: str):
        self._keras = _keras()
        self.setup = setup
        self._device = device
        self._backend = self._keras.backend.backend()
        self._losses: dict[str, Any] = {}
        self._construct(dict(setup.init))  # once, when prepared

    def _construct(self, init: dict):
        """The loss object for one set of constructor kwargs (cached by their repr), or the
        exception Keras raised constructing it (kept, and raised when a call runs: it is
        Keras rejecting the input, not an impossible setup)."""
        key = repr(sorted(init.items()))
        if key not in self._losses:
            cls = getattr(self._keras.losses, _CLASSES[self.setup.api])
            try:
                self._losses[key] = cls(**init)
            except Exception as exc:
                self._losses[key] = exc
        return self._losses[key]

    def _loss_for(self, init: dict):
        obj = self._construct(init)
        if isinstance(obj, Exception):
            raise obj
        return obj

    def run(self, call: Call) -> dict[str, np.ndarray]:
        if call.api != self.setup.api:
            raise TargetError(f"this runner was prepared for {self.setup.api}, not {call.api}")
        loss_obj = self._loss_for(dict(call.init))
        keras = self._keras
        with keras.device(self._device), _x64(self._backend):
            out = getattr(self, f"_run_{self._backend}", self._run_other)(
                loss_obj, dict(call.args), call.upstream)
        return {k: np.asarray(keras.ops.convert_to_numpy(v)) for k, v in out.items()}

    def _run_tensorflow(self, loss_obj, args: dict, upstream) -> dict:
        import tensorflow as tf

        from .tensorflow import split_args, tape_call

        tensors, statics = split_args(tf, self.setup.api, args)
        up = None if upstream is None else tf.constant(np.asarray(upstream))
        return tape_call(tf, loss_obj, self.setup.api, tensors, statics, up)

    def _run_jax(self, loss_obj, args: dict, upstream) -> dict:
        import jax
        import jax.numpy as jnp

        yp = args.get("y_pred")
        if upstream is None or not _floating(yp):
            return {"loss": loss_obj(**args)}
        rest = {k: v for k, v in args.items() if k != "y_pred"}
        loss, vjp = jax.vjp(lambda p: loss_obj(y_pred=p, **rest), jnp.asarray(yp))
        (grad,) = vjp(jnp.asarray(np.asarray(upstream)).astype(loss.dtype))
        return {"loss": loss, "grad_logits": grad}

    def _run_torch(self, loss_obj, args: dict, upstream) -> dict:
        import torch

        yp = args.get("y_pred")
        if upstream is None or not _floating(yp):
            return {"loss": loss_obj(**args)}
        x = self._keras.ops.convert_to_tensor(yp)
        x.requires_grad_(True)
        loss = loss_obj(**{**args, "y_pred": x})
        up = torch.as_tensor(np.asarray(upstream, dtype=np.float64)).to(loss.dtype)
        (grad,) = torch.autograd.grad(loss, x, grad_outputs=up.to(loss.device))
        return {"loss": loss.detach(), "grad_logits": grad}

    def _run_other(self, loss_obj, args: dict, upstream) -> dict:
        if upstream is not None:
            raise TargetError(f"no gradient support for the {self._backend!r} Keras backend")
        return {"loss": loss_obj(**args)}


class KerasTarget(Target):
    """Keras 3's loss classes on the configured backend (semantics variant ``keras3``)."""

    name = "keras"

    def __init__(self, keras: str = "keras3"):
        if keras != "keras3":
            raise TargetError(f"keras: the keras target follows Keras 3 semantics ('keras3'), "
                              f"not {keras!r}; use the tensorflow target for keras2")
        self.keras = keras

    def info(self) -> TargetInfo:
        base = {"name": self.name, "keras": "keras3"}
        if importlib.util.find_spec("keras") is None:
            return TargetInfo(available=False, reason="keras is not installed: "
                              "`pip install 'xentconf[keras]'`", **base)
        try:
            keras = _keras()
            backend = keras.backend.backend()
            gpu = _has_gpu(backend)
        except Exception as exc:  # a broken installation: say why, never raise
            return TargetInfo(available=False, reason=f"keras failed to load: {exc}", **base)
        no_gpu = "" if gpu else f"the {backend} backend sees no GPU"
        x64 = f"; {JAX_X64_NOTE}" if backend == "jax" else ""
        # a mode per backend, named by it; only the configured one can run here
        modes = tuple(
            Mode("cpu", "cpu", f"eager on the {b} backend, cpu:0"
                 + (f"; {JAX_X64_NOTE}" if b == "jax" else ""), name=b,
                 available=b == backend,
                 reason="" if b == backend else f"Keras is configured for the {backend} "
                                                f"backend; KERAS_BACKEND={b} selects this one")
            for b in sorted(KERAS_BACKENDS, key=lambda b: b != backend)
        ) + (Mode("cuda", "gpu", f"eager on the {backend} backend, gpu:0{x64}", available=gpu,
                  reason=no_gpu, name=backend),)
        apis = {api: ApiSupport(native=_FEATURES[api],
                                notes=f"keras.losses.{_CLASSES[api]} ({backend} backend{x64})")
                for api in KERAS_APIS}
        return TargetInfo(available=True, version=keras.__version__, modes=modes, apis=apis,
                          description=f"Keras {keras.__version__} on the {backend} backend{x64}",
                          **base)

    def snippet(self, setup: Setup, call: Call) -> str | None:
        """Keras's own call for ``call`` on the configured backend: the loss class
        constructed with the call's kwargs, called under ``keras.device``, the gradient
        taken as the runner takes it on that backend (``tf.GradientTape``, ``jax.vjp``,
        ``torch.autograd.grad``)."""
        modes = {("cpu", "cpu"): "cpu:0", ("cuda", "gpu"): "gpu:0"}
        key = (setup.device, setup.profile)
        if call.api != setup.api or call.api not in KERAS_APIS or key not in modes:
            return None
        try:
            backend = _keras().backend.backend()
        except TargetError:
            return None
        args = dict(call.args)
        upstream = call.upstream
        grad = upstream is not None and _floating(args.get("y_pred"))
        if upstream is not None and backend not in ("tensorflow", "jax", "torch"):
            return None  # the runner raises: no gradients on this backend
        device = f"keras.device({modes[key]!r})"
        to_numpy = "keras.ops.convert_to_numpy({})"
        head = ["import os", "", f"os.environ['KERAS_BACKEND'] = {backend!r}", "import keras"]
        construct = ["", f"loss_fn = keras.losses.{_CLASSES[call.api]}"
                     f"({src.kwargs(dict(call.init), 'init')})", ""]
        if backend == "tensorflow":
            from .tensorflow import tape_source

            lines = [*head, "import tensorflow as tf", *construct,
                     *tape_source(call.api, args, upstream, "loss_fn", device,
                                  to_numpy=to_numpy)]
            return "\n".join(lines) + "\n"
        names = ["loss"]
        if not grad:
            body = [f"loss = loss_fn({src.kwargs(args, 'args')})"]
            lines = [*head, *["import jax"] * (backend == "jax"), *construct]
        elif backend == "jax":
            rest = src.kwargs({k: v for k, v in args.items() if k != "y_pred"}, "args")
            body = [f"loss, vjp = jax.vjp(lambda p: loss_fn(y_pred=p, {rest}), "
                    "jnp.asarray(args['y_pred']))",
                    "(grad_logits,) = vjp(jnp.asarray(upstream).astype(loss.dtype))"]
            lines = [*head, "import jax", "import jax.numpy as jnp", *construct]
            names.append("grad_logits")
        else:  # torch
            body = ["y_pred = keras.ops.convert_to_tensor(args['y_pred'])",
                    "y_pred.requires_grad_(True)",
                    f"loss = loss_fn({src.kwargs(args, 'args', y_pred='y_pred')})",
                    "up = torch.as_tensor(np.asarray(upstream, dtype=np.float64)).to(loss.dtype)",
                    "(grad_logits,) = torch.autograd.grad(loss, y_pred, "
                    "grad_outputs=up.to(loss.device))",
                    "loss = loss.detach()"]
            lines = [*head, "import torch", *construct]
            names.append("grad_logits")
        if backend == "jax":  # 64-bit types, as the runner (module docstring)
            device = f"jax.enable_x64(True), {device}"
        lines += [f"with {device}:", *src.indent(body),
                  "outputs = {" + ", ".join(f"{n!r}: {to_numpy.format(n)}" for n in names)
                  + "}"]
        return "\n".join(lines) + "\n"

    def prepare(self, setup: Setup) -> Runner:
        if setup.api not in KERAS_APIS:
            raise TargetError(f"the keras target has only the Keras APIs "
                              f"({', '.join(KERAS_APIS)}), not {setup.api!r}")
        modes = {("cpu", "cpu"): "cpu:0", ("cuda", "gpu"): "gpu:0"}
        key = (setup.device, setup.profile)
        if key not in modes:
            raise TargetError(f"no Keras mode runs on device {setup.device!r} with profile "
                              f"{setup.profile!r}; modes: cpu/cpu, cuda/gpu")
        keras = _keras()
        if setup.device == "cuda" and not _has_gpu(keras.backend.backend()):
            raise TargetError(f"the {keras.backend.backend()} Keras backend sees no GPU")
        return _KerasRunner(setup, modes[key])

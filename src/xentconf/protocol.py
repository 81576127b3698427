"""The contract between the conformance suite and the targets it judges.

A *target* is anything that computes the APIs of SPEC §1: a framework reached through a
built-in adapter, a third party's adapter registered under the entry-point group
``xentconf.adapters``, or a plain Python callable (:mod:`xentconf.adapters.callable`).
Every target speaks TensorFlow's calling convention here — the API id, TF's parameter
names, numpy arrays (bfloat16 as ``ml_dtypes.bfloat16``), Python scalars and TF's
reduction strings — and its adapter translates to the framework's own.

The life cycle follows ONNX's backend protocol: :meth:`Target.info` says what the target
is and can do (cheaply, without importing a heavy framework when it can be avoided);
:meth:`Target.prepare` builds a :class:`Runner` once per :class:`Setup` (a compiling
framework compiles there); :meth:`Runner.run` evaluates one :class:`Call`. Raising any
exception from ``run`` means "the target rejected this input" — that is an outcome to
judge, not a failure of the harness.

Only numpy and the standard library are used here; this module imports nothing else of
xentconf.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xentconf.vocabulary import (
    API_IDS,
    API_SHORT,
    DEVICES,
    DTYPES,
    KERAS_APIS,
    KERAS_BACKENDS,
    KERAS_VARIANTS,
    MODES,
    PROFILES,
    RAW_OPS,
    api_id,
)

if TYPE_CHECKING:  # numpy only in annotations: the pytest plugin imports this at start-up
    import numpy as np

__all__ = [
    "ARRAY_LIBRARIES",
    "API_IDS",
    "API_PARAMS",
    "API_SHORT",
    "DEVICES",
    "DTYPES",
    "FEATURES",
    "KERAS_APIS",
    "KERAS_BACKENDS",
    "KERAS_VARIANTS",
    "MODES",
    "OUTPUTS",
    "PROFILES",
    "RAW_OPS",
    "ApiSupport",
    "Call",
    "Mode",
    "Runner",
    "Setup",
    "Target",
    "TargetError",
    "TargetInfo",
    "TargetOutputError",
    "api_id",
    "array_dtypes",
    "array_problem",
    "array_scope",
    "array_source",
    "array_version",
    "is_callable_target",
    "to_array_library",
    "to_numpy",
]

#: TensorFlow's parameter names (and defaults) of each API; for the Keras classes the
#: first mapping is the constructor's, the second the call's.
API_PARAMS: dict[str, tuple[dict[str, Any], ...]] = {
    "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits": ({"features": None, "labels": None},),
    "tf.raw_ops.SoftmaxCrossEntropyWithLogits": ({"features": None, "labels": None},),
    "tf.nn.sparse_softmax_cross_entropy_with_logits": ({"labels": None, "logits": None},),
    "tf.nn.softmax_cross_entropy_with_logits": ({"labels": None, "logits": None,
                                                 "axis": -1},),
    "tf.compat.v1.losses.sparse_softmax_cross_entropy": (
        {"labels": None, "logits": None, "weights": 1.0,
         "reduction": "weighted_sum_by_nonzero_weights"},),
    "tf.compat.v1.losses.softmax_cross_entropy": (
        {"onehot_labels": None, "logits": None, "weights": 1.0, "label_smoothing": 0,
         "reduction": "weighted_sum_by_nonzero_weights"},),
    "tf.keras.losses.SparseCategoricalCrossentropy": (
        {"from_logits": False, "ignore_class": None, "reduction": "auto"},
        {"y_true": None, "y_pred": None, "sample_weight": None}),
    "tf.keras.losses.CategoricalCrossentropy": (
        {"from_logits": False, "label_smoothing": 0.0, "axis": -1, "reduction": "auto"},
        {"y_true": None, "y_pred": None, "sample_weight": None}),
}
assert tuple(API_PARAMS) == API_IDS

OUTPUTS = ("loss", "backprop", "grad_logits")

#: Features a call can exercise; a target declares each as native, composed or unsupported
#: (a feature it does not declare is taken as supported). ``basic`` is the plain call on
#: moderate inputs; ``regimes`` the hard finite logits (huge, tiny, ties, a dominant logit,
#: gaps past exp underflow, a large common offset); ``large_classes`` C >= 50,000;
#: ``invalid`` inputs TensorFlow rejects (shapes, ranks, dtypes, arguments).
FEATURES: tuple[str, ...] = (
    "basic", "regimes", "large_classes", "invalid", "rank1", "rank3+", "batch0",
    "bad_labels", "special_values", "weights", "reduction", "label_smoothing", "ignore_class",
    "from_logits", "probabilities", "axis", "broadcast_labels", "grad", "backprop",
)


def is_callable_target(name: str) -> bool:
    """Whether a target name is a generic callable, ``package.module:attr`` (SPEC §4)."""
    return ":" in name


class TargetError(Exception):
    """A target cannot be loaded or configured; the message says what to fix."""


class TargetOutputError(Exception):
    """A target returned something that is not an answer (not array-like, a tuple of the
    wrong length, ...). Unlike any other exception from :meth:`Runner.run`, which means
    "the target rejected the input", this is a malfunction: a verdict of "error"."""


@dataclass(frozen=True)
class Call:
    """One invocation in TensorFlow's terms.

    ``args`` maps TF's parameter names to numpy arrays, Python scalars or strings.
    ``init`` holds the Keras constructor's keyword arguments (empty for other APIs).
    ``upstream`` is the upstream gradient of the loss output (an array of the loss's
    shape; a 0-d array for a reduced loss): when given, the runner also returns
    ``grad_logits``, the gradient with respect to the logits (``y_pred`` for Keras).
    """

    api: str
    args: Mapping[str, Any]
    init: Mapping[str, Any] = field(default_factory=dict)
    upstream: np.ndarray | None = None


@dataclass(frozen=True)
class Setup:
    """What a runner is prepared for: one API on one device in one mode."""

    api: str
    device: str = "cpu"  # "cpu" or "cuda"
    profile: str = "cpu"  # "cpu", "gpu" or "xla": the device profile the mode follows
    mode: str = "eager"  # how the mode executes (Mode.name): eager, xla, compile, a backend
    init: tuple[tuple[str, Any], ...] = ()  # Keras constructor kwargs, as sorted items
    grad: bool = False


@dataclass(frozen=True)
class Mode:
    """A way a target runs: a device, the device profile its behaviour follows, and how it
    executes there (``name``, one of :data:`MODES`: eager, xla, compile, or a Keras 3
    backend)."""

    device: str
    profile: str
    description: str = ""
    available: bool = True
    reason: str = ""  # why unavailable (no GPU, no CUDA build, ...)
    name: str = "eager"

    @property
    def label(self) -> str:
        """``device/profile``, with the execution unless it is eager (``cpu/cpu/compile``)."""
        base = f"{self.device}/{self.profile}"
        return base if self.name == "eager" else f"{base}/{self.name}"


@dataclass(frozen=True)
class ApiSupport:
    """How a target implements one API."""

    native: frozenset[str] = frozenset()  # features computed by the framework's own ops
    composed: frozenset[str] = frozenset()  # features the adapter builds from those ops
    unsupported: frozenset[str] = frozenset()  # features the target lacks (skipped)
    dtypes: tuple[str, ...] = DTYPES
    notes: str = ""


@dataclass(frozen=True)
class TargetInfo:
    """What a target is and what it can do."""

    name: str
    available: bool
    reason: str = ""  # why unavailable: the framework is not installed, ...
    version: str | None = None  # the framework's version
    modes: tuple[Mode, ...] = ()
    apis: Mapping[str, ApiSupport] = field(default_factory=dict)
    keras: str | None = None  # the Keras semantics the target follows, if it has Keras APIs
    deviations: str | None = None  # path of the known-deviations file, if any
    description: str = ""


class Runner(abc.ABC):
    """Evaluates calls for one :class:`Setup`."""

    @abc.abstractmethod
    def run(self, call: Call) -> dict[str, np.ndarray]:
        """Outputs by name (``loss``; ``backprop`` for raw ops; ``grad_logits`` when
        ``call.upstream`` is given), as numpy arrays — the framework's values, unchanged.
        Raise to reject the input."""


class Target(abc.ABC):
    """A thing to judge. Subclasses are thin: they translate conventions, nothing else."""

    name: str = ""

    @abc.abstractmethod
    def info(self) -> TargetInfo:
        """Describe the target; never raises for a missing framework (say why instead)."""

    def snippet(self, setup: Setup, call: Call) -> str | None:
        """Python source that calls the framework *directly* for ``call``, for standalone
        reproducers (they must run without xentconf installed).

        The source runs where these names exist: ``np`` (numpy), ``args`` (TF's parameter
        names to numpy arrays / Python values, as in ``call.args``), ``init`` (the Keras
        constructor kwargs), ``upstream`` (a numpy array or None). It imports what it
        needs and assigns ``outputs``: output names (``loss``, ``backprop``,
        ``grad_logits`` when ``upstream`` is given) to numpy arrays — what :meth:`Runner.run`
        would return. ``None`` (the default) means the target cannot say; the reproducer
        then calls the target through xentconf."""
        return None

    @abc.abstractmethod
    def prepare(self, setup: Setup) -> Runner:
        """Build a runner for ``setup`` (compile here, once); raise TargetError if the
        setup is impossible (unknown API, unavailable device)."""


# ----------------------------------------------------------------------- array libraries
# A callable target may take (and return) another library's arrays than numpy's, on a
# device: the suite converts each numpy input before the call and every output after it.
# The conversions below are self-contained (each imports what it needs), so standalone
# reproducers embed their very source (:func:`array_source`) and build the same arrays.

ARRAY_LIBRARIES = ("numpy", "torch", "jax", "cupy")


def _to_numpy(x):
    """Any supported library's array (or a scalar, or a sequence) as a numpy array."""
    import numpy as np

    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        import torch

        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            import ml_dtypes

            return x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return x.numpy()
    if mod == "cupy":
        import cupy

        return cupy.asnumpy(x)
    return np.asarray(x)  # numpy, jax (ml_dtypes' bfloat16 included), Python values


def _to_torch(a, device):
    import numpy as np
    import torch

    if a.dtype.name == "bfloat16":  # DLPack has no bfloat16: reinterpret the bits
        t = torch.from_numpy(np.ascontiguousarray(a).view(np.int16).copy()).view(torch.bfloat16)
    else:
        t = torch.from_dlpack(np.ascontiguousarray(a).copy())
    return t.to(device)


def _to_jax(a, device):
    import jax

    return jax.device_put(a, jax.devices("gpu" if device == "cuda" else "cpu")[0])


def _to_cupy(a, device):
    import cupy

    return cupy.asarray(a)


def _jax_scope():
    # JAX narrows float64 to float32 and int64 to int32 unless 64-bit types are enabled:
    # enabled for the conversion and the call only (as the jax adapter does), so that the
    # arrays keep the generated dtypes and the process's own setting is left alone
    import jax

    return jax.enable_x64(True)


_TO = {"torch": _to_torch, "jax": _to_jax, "cupy": _to_cupy}
_SCOPE = {"jax": _jax_scope}


def to_array_library(a, library: str, device: str):
    """A numpy input as ``library``'s array on ``device`` (other values unchanged)."""
    import numpy as np

    if library == "numpy" or not isinstance(a, np.ndarray):
        return a
    return _TO[library](a, device)


def array_scope(library: str):
    """The context in which inputs are converted to ``library``'s arrays and the target is
    called: ``jax.enable_x64(True)`` for JAX, nothing for the others."""
    import contextlib

    return _SCOPE[library]() if library in _SCOPE else contextlib.nullcontext()


def to_numpy(x):
    """An output of any supported library as a numpy array (bfloat16 kept)."""
    return _to_numpy(x)


def array_problem(library: str, device: str) -> str | None:
    """Why ``library`` cannot hold arrays on ``device`` here (one line), or None."""
    import importlib

    if library not in ARRAY_LIBRARIES:
        return f"--array {library!r}: unknown array library; use one of " \
               f"{', '.join(ARRAY_LIBRARIES)}"
    if library == "numpy":
        return None if device == "cpu" else "--array numpy holds arrays on the cpu only; " \
            "give --array torch, jax or cupy for --device cuda"
    try:
        mod = importlib.import_module(library)
    except ImportError:
        return f"--array {library}: {library} is not installed (pip install {library})"
    if device == "cpu":
        return None if library != "cupy" else "--array cupy holds arrays on cuda only"
    seen = {"torch": lambda: mod.cuda.is_available(),
            "jax": lambda: any(d.platform == "gpu" for d in mod.devices()),
            "cupy": lambda: mod.cuda.runtime.getDeviceCount() > 0}[library]
    try:
        ok = seen()
    except Exception:
        ok = False
    return None if ok else f"--array {library} --device {device}: {library} sees no " \
                           "CUDA device here"


def array_dtypes(library: str, device: str) -> tuple[str, ...]:
    """The logits dtypes ``library`` can hold on ``device`` (cupy has no bfloat16)."""
    return tuple(d for d in DTYPES if not (library == "cupy" and d == "bfloat16"))


def array_version(library: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return None


def array_source(library: str, device: str) -> str:
    """Standalone source defining ``_to_lib(a)`` (numpy -> ``library`` on ``device``),
    ``_to_numpy(x)`` and ``_scope()`` (:func:`array_scope`) — the very conversions the
    suite uses — for reproducers."""
    import inspect

    parts = [inspect.getsource(_to_numpy)]
    if library == "numpy":
        parts.append("def _to_lib(a):\n    return a\n")
    else:
        parts.append(inspect.getsource(_TO[library]))
        parts.append(f"def _to_lib(a):\n    return {_TO[library].__name__}(a, {device!r}) "
                     "if isinstance(a, np.ndarray) else a\n")
    if library in _SCOPE:
        parts.append(inspect.getsource(_SCOPE[library]))
        parts.append(f"def _scope():\n    return {_SCOPE[library].__name__}()\n")
    else:
        parts.append("def _scope():\n    import contextlib\n\n"
                     "    return contextlib.nullcontext()\n")
    return "\n\n".join(parts)

"""TensorFlow itself as a target: every API of SPEC §1, called natively.

TensorFlow is the reference implementation, so this adapter only translates calling
conventions: the logits argument (``features`` for the raw ops, ``y_pred`` for Keras)
becomes a tensor with ``tf.constant`` (``ml_dtypes.bfloat16`` arrays included) so that
``tf.GradientTape`` can watch it; every other argument — numpy arrays included — reaches
the API exactly as given, and TensorFlow converts it as it converts any numpy argument.
The Keras classes are constructed with the call's keyword arguments; the gradient with
respect to the logits uses the upstream gradient as ``output_gradients`` (for the raw ops,
the gradient of the loss output only); each output comes back as ``.numpy()`` in
TensorFlow's own dtype. Nothing is validated or patched: any exception TensorFlow raises
is the target rejecting the input.

Under XLA the logits and the upstream gradient are the compiled function's inputs; the
other numpy arguments are handed to the traced function as Python values (so the API sees
the numpy array, as in eager mode), which retraces for each distinct value.

Modes: eager on ``/CPU:0`` (profile ``cpu``), ``tf.function(jit_compile=True)`` on
``/CPU:0`` (profile ``xla``), and — when TensorFlow sees a GPU — eager on ``/GPU:0``
(profile ``gpu``) and XLA on ``/GPU:0`` (profile ``xla``).

The Keras classes follow Keras 2 semantics (``tf_keras``, variant ``keras2``) when
``tf_keras`` is importable, or Keras 3 (``keras`` on its TensorFlow backend, variant
``keras3``) when asked for with ``TensorFlowTarget(keras="keras3")`` or when ``tf_keras``
is missing. TensorFlow's own precision artefacts (SPEC §2) are declared in
``deviations/tensorflow.toml``.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol import (
    API_IDS,
    API_SHORT,
    FEATURES,
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

__all__ = ["API_SHORT_NAMES", "DEVIATIONS", "DIFF_ARG", "TensorFlowTarget", "split_args",
           "tape_call", "tape_source"]

#: The known-deviations file of this target (SPEC §2: TensorFlow's precision artefacts).
DEVIATIONS = Path(__file__).resolve().with_name("deviations") / "tensorflow.toml"

#: Short API names used in test ids (``<target>-<device>-<dtype>-<api>-<feature>``).
API_SHORT_NAMES: dict[str, str] = dict(API_SHORT)

#: The argument the gradient is taken with respect to.
DIFF_ARG: dict[str, str] = {
    "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits": "features",
    "tf.raw_ops.SoftmaxCrossEntropyWithLogits": "features",
    "tf.nn.sparse_softmax_cross_entropy_with_logits": "logits",
    "tf.nn.softmax_cross_entropy_with_logits": "logits",
    "tf.compat.v1.losses.sparse_softmax_cross_entropy": "logits",
    "tf.compat.v1.losses.softmax_cross_entropy": "logits",
    "tf.keras.losses.SparseCategoricalCrossentropy": "y_pred",
    "tf.keras.losses.CategoricalCrossentropy": "y_pred",
}

_COMMON = {"rank1", "rank3+", "batch0", "special_values", "grad"}
_SPARSE = {"bad_labels"}
_DENSE = {"broadcast_labels"}
_V1 = {"weights", "reduction"}
_KERAS = {"weights", "reduction", "from_logits", "probabilities"}

#: Features each API exercises — all computed by TensorFlow's own ops (including its
#: rejections); features an API has no parameter for are not listed.
_FEATURES: dict[str, frozenset[str]] = {
    API_IDS[0]: frozenset(_COMMON | _SPARSE | {"backprop"}),
    API_IDS[1]: frozenset(_COMMON | _DENSE | {"backprop"}),
    API_IDS[2]: frozenset(_COMMON | _SPARSE),
    API_IDS[3]: frozenset(_COMMON | _DENSE | {"axis"}),
    API_IDS[4]: frozenset(_COMMON | _SPARSE | _V1),
    API_IDS[5]: frozenset(_COMMON | _V1 | {"label_smoothing"}),
    API_IDS[6]: frozenset(_COMMON | _SPARSE | _KERAS | {"ignore_class"}),
    API_IDS[7]: frozenset(_COMMON | _KERAS | {"label_smoothing", "axis"}),
}
assert all(f <= set(FEATURES) for f in _FEATURES.values())

_KERAS_MODULES = {"keras2": "tf_keras", "keras3": "keras"}
_KERAS_CLASSES = {KERAS_APIS[0]: "SparseCategoricalCrossentropy",
                  KERAS_APIS[1]: "CategoricalCrossentropy"}


def _tf():
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TargetError(f"tensorflow is not importable ({exc}); install it with "
                          "`pip install 'xentconf[tensorflow]'`") from exc
    return tf


def _gpus(tf) -> list:
    return tf.config.list_physical_devices("GPU")


def split_args(tf, api: str, args: dict) -> tuple[dict, dict]:
    """Split a call's arguments into the logits argument as a tensor (to differentiate
    with respect to) and everything else exactly as given: numpy arrays reach TensorFlow's
    API untouched, so TensorFlow converts them as it converts any numpy argument (with
    the op's dtype hints: a numpy float array of labels becomes int64 for the raw sparse
    op, where a float32 tensor would be rejected)."""
    diff = DIFF_ARG[api]
    x = args.get(diff)
    if isinstance(x, (np.ndarray, np.generic)):
        rest = {k: v for k, v in args.items() if k != diff}
        return {diff: tf.constant(x)}, rest
    return {}, dict(args)


class _Const:
    """A numpy argument handed to a ``tf.function`` as a Python value, so that the traced
    function passes the array itself to the API (converted there as in eager mode); equal
    by content, so an identical argument reuses the trace and a different one retraces."""

    __slots__ = ("value", "_key")

    def __init__(self, value):
        self.value = value
        self._key = (value.dtype.name, value.dtype.str, value.shape, value.tobytes())

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Const) and self._key == other._key


def _wrap(statics: dict) -> dict:
    return {k: _Const(v) if isinstance(v, (np.ndarray, np.generic)) else v
            for k, v in statics.items()}


def _unwrap(statics: dict) -> dict:
    return {k: v.value if isinstance(v, _Const) else v for k, v in statics.items()}


def _is_float(t) -> bool:
    return bool(t.dtype.is_floating)


def tape_call(tf, fn, api: str, tensors: dict, statics: dict, upstream) -> dict:
    """Call ``fn(**args)`` and, when ``upstream`` is given, differentiate the loss output
    w.r.t. the logits argument with ``output_gradients=upstream`` (cast to the loss's
    dtype). Shared by the TensorFlow and the Keras (TensorFlow backend) targets."""
    diff = DIFF_ARG[api]
    x = tensors.get(diff)
    differentiable = upstream is not None and x is not None and _is_float(x)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        if differentiable:
            tape.watch(x)
        out = fn(**statics, **tensors)
    if api in RAW_OPS:
        loss = out[0]
        result = {"loss": loss, "backprop": out[1]}
    else:
        loss = tf.convert_to_tensor(out)
        result = {"loss": loss}
    if differentiable:
        up = tf.cast(upstream, loss.dtype)
        result["grad_logits"] = tape.gradient(
            loss, x, output_gradients=up, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return result


def tape_source(api: str, args: dict, upstream, fn: str, device: str, jit: bool = False,
                to_numpy: str = "np.asarray({}.numpy())") -> list[str]:
    """Source lines doing what :func:`split_args` + :func:`tape_call` do for one call
    (eagerly under ``device``, or as one ``tf.function(jit_compile=True)`` called there):
    ``fn`` is the source of the API callable, ``device`` of the device context manager.
    The logits argument becomes a ``tf.constant``; the other arguments are passed as given
    (plain values written out, arrays as ``args[...]``). Assigns ``outputs``, each output
    converted with ``to_numpy`` (a format string)."""
    diff = DIFF_ARG[api]
    x = args.get(diff)
    tensor = isinstance(x, (np.ndarray, np.generic))
    grad = upstream is not None and tensor and src.is_floating(x)
    names = ["loss", "backprop"] if api in RAW_OPS else ["loss"]
    call_args = src.kwargs(args, "args", **({diff: diff} if tensor else {}))
    call = f"{', '.join(names)} = {fn}({call_args})"
    if grad:
        up = "upstream" if jit else "tf.constant(upstream)"
        body = ["with tf.GradientTape(watch_accessed_variables=False) as tape:",
                f"    tape.watch({diff})",
                f"    {call}",
                f"grad_logits = tape.gradient(loss, {diff}, output_gradients=tf.cast({up}, "
                "loss.dtype),",
                "                            unconnected_gradients=tf.UnconnectedGradients.ZERO)"]
        names.append("grad_logits")
    else:
        body = [call]
    lines: list[str] = []
    if jit:
        params = [diff] * tensor + ["upstream"] * grad
        lines += ["@tf.function(jit_compile=True)", f"def compute({', '.join(params)}):",
                  *src.indent(body), f"    return {', '.join(names)}", "", "",
                  f"with {device}:"]
        feeds = [f"tf.constant(args[{diff!r}])"] * tensor + ["tf.constant(upstream)"] * grad
        lines.append(f"    {', '.join(names)} = compute({', '.join(feeds)})")
    else:
        lines.append(f"with {device}:")
        if tensor:
            lines.append(f"    {diff} = tf.constant(args[{diff!r}])")
        lines += src.indent(body)
    lines.append("outputs = {" + ", ".join(f"{n!r}: {to_numpy.format(n)}" for n in names) + "}")
    return lines


class _TFRunner(Runner):
    """Runs one API on one device, eagerly or as one ``tf.function(jit_compile=True)``."""

    def __init__(self, target: TensorFlowTarget, setup: Setup, device: str, jit: bool):
        self._target = target
        self._tf = _tf()
        self.setup = setup
        self._device = device
        self._jit = jit
        self._fns: dict[str, Any] = {}
        self._fn_for(dict(setup.init))  # build once (Keras construction errors are kept)

    def _fn_for(self, init: dict):
        """The callable for one set of Keras constructor kwargs (cached by their repr, as
        a value may be a list)."""
        key = repr(sorted(init.items()))
        if key in self._fns:
            return self._fns[key]
        tf = self._tf
        api = self.setup.api
        try:
            api_fn = self._target._api_callable(api, init)
        except Exception as exc:  # TF rejected the constructor arguments: raise on run
            err = exc

            def api_fn(**_kw):
                raise err

        def body(tensors, statics, upstream):
            return tape_call(tf, api_fn, api, tensors, _unwrap(statics), upstream)

        fn = tf.function(body, jit_compile=True) if self._jit else body
        self._fns[key] = fn
        return fn

    def run(self, call: Call) -> dict[str, np.ndarray]:
        if call.api != self.setup.api:
            raise TargetError(f"this runner was prepared for {self.setup.api}, not {call.api}")
        tf = self._tf
        fn = self._fn_for(dict(call.init) if call.api in KERAS_APIS else {})
        with tf.device(self._device):
            tensors, statics = split_args(tf, call.api, dict(call.args))
            up = None if call.upstream is None else tf.constant(np.asarray(call.upstream))
            out = fn(tensors, _wrap(statics) if self._jit else statics, up)
        return {k: np.asarray(v.numpy()) for k, v in out.items()}


class TensorFlowTarget(Target):
    """TensorFlow 2 (eager, XLA; CPU, and GPU when present) — the reference implementation.

    ``keras`` picks the Keras the two Keras APIs use: ``"keras2"`` (``tf_keras``, the
    semantics of the seed documents), ``"keras3"`` (``keras`` 3 on its TensorFlow backend,
    TensorFlow ≥ 2.16's ``tf.keras``), or ``None``: ``keras2`` when ``tf_keras`` is
    importable, else ``keras3``.
    """

    name = "tensorflow"

    def __init__(self, keras: str | None = None):
        if keras not in (None, "keras2", "keras3"):
            raise TargetError(f"keras: {keras!r} is not one of 'keras2', 'keras3' (or None "
                              "for keras2 when tf_keras is installed)")
        if keras is None:
            keras = "keras2" if importlib.util.find_spec("tf_keras") else "keras3"
        self.keras = keras

    # ------------------------------------------------------------------ info

    def info(self) -> TargetInfo:
        base = {"name": self.name, "keras": self.keras, "deviations": str(DEVIATIONS)}
        if importlib.util.find_spec("tensorflow") is None:
            return TargetInfo(available=False, reason="tensorflow is not installed: "
                              "`pip install 'xentconf[tensorflow]'`", **base)
        try:
            tf = _tf()
            gpus = _gpus(tf)
        except Exception as exc:  # a broken installation: say why, never raise
            return TargetInfo(available=False, reason=f"tensorflow failed to import: {exc}",
                              **base)
        no_gpu = "" if gpus else ("TensorFlow sees no GPU "
                                  "(tf.config.list_physical_devices('GPU') is empty)")
        modes = (
            Mode("cpu", "cpu", "eager on /CPU:0"),
            Mode("cpu", "xla", "tf.function(jit_compile=True) on /CPU:0", name="xla"),
            Mode("cuda", "gpu", "eager on /GPU:0", available=bool(gpus), reason=no_gpu),
            Mode("cuda", "xla", "tf.function(jit_compile=True) on /GPU:0",
                 available=bool(gpus), reason=no_gpu, name="xla"),
        )
        keras_mod = _KERAS_MODULES[self.keras]
        keras_ok = importlib.util.find_spec(keras_mod) is not None
        apis = {}
        for api in API_IDS:
            if api in KERAS_APIS and not keras_ok:
                apis[api] = ApiSupport(unsupported=frozenset(_FEATURES[api]), dtypes=(),
                                       notes=f"{keras_mod} is not installed")
                continue
            notes = ""
            if api in KERAS_APIS:
                notes = f"{keras_mod}.losses.{_KERAS_CLASSES[api]} ({self.keras} semantics)"
            apis[api] = ApiSupport(native=_FEATURES[api], notes=notes)
        return TargetInfo(available=True, version=tf.__version__, modes=modes, apis=apis,
                          description=f"TensorFlow {tf.__version__}, Keras APIs through "
                          f"{keras_mod} ({self.keras})", **base)

    # ------------------------------------------------------------------ snippet

    def snippet(self, setup: Setup, call: Call) -> str | None:
        """TensorFlow's own call for ``call``: the API (or the Keras class, constructed with
        the call's kwargs) on the runner's device, eagerly or inside one
        ``tf.function(jit_compile=True)``, with ``tf.GradientTape`` for the gradient."""
        modes = {("cpu", "cpu"): ("/CPU:0", False), ("cpu", "xla"): ("/CPU:0", True),
                 ("cuda", "gpu"): ("/GPU:0", False), ("cuda", "xla"): ("/GPU:0", True)}
        key = (setup.device, setup.profile)
        if call.api != setup.api or call.api not in API_IDS or key not in modes:
            return None
        device, jit = modes[key]
        lines = ["import tensorflow as tf"]
        if call.api in KERAS_APIS:
            init = dict(call.init)
            if self.keras == "keras3":
                lines[:0] = ["import os", "", "os.environ['KERAS_BACKEND'] = 'tensorflow'",
                             "import keras"]
            else:
                lines.append("import tf_keras")
            module = _KERAS_MODULES[self.keras]
            lines += ["", f"loss_fn = {module}.losses.{_KERAS_CLASSES[call.api]}("
                      f"{src.kwargs(init, 'init')})"]
            fn = "loss_fn"
        else:
            fn = call.api  # the API id is TensorFlow's own name of the function
        lines.append("")
        lines += tape_source(call.api, dict(call.args), call.upstream, fn,
                             f"tf.device({device!r})", jit)
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ prepare

    def prepare(self, setup: Setup) -> Runner:
        if setup.api not in API_IDS:
            raise TargetError(f"unknown API id {setup.api!r}; choose one of {', '.join(API_IDS)}")
        modes = {("cpu", "cpu"): ("/CPU:0", False), ("cpu", "xla"): ("/CPU:0", True),
                 ("cuda", "gpu"): ("/GPU:0", False), ("cuda", "xla"): ("/GPU:0", True)}
        key = (setup.device, setup.profile)
        if key not in modes:
            raise TargetError(f"no TensorFlow mode runs on device {setup.device!r} with "
                              f"profile {setup.profile!r}; modes: cpu/cpu, cpu/xla, cuda/gpu, "
                              "cuda/xla")
        tf = _tf()
        if setup.device == "cuda" and not _gpus(tf):
            raise TargetError("TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') "
                              "is empty); install a CUDA build of tensorflow")
        if setup.api in KERAS_APIS:
            self._keras_module()  # fail now if the chosen Keras is missing
        device, jit = modes[key]
        return _TFRunner(self, setup, device, jit)

    def _keras_module(self):
        name = _KERAS_MODULES[self.keras]
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            raise TargetError(f"{name} is not importable ({exc}); it provides the "
                              f"{self.keras} Keras semantics") from exc
        if self.keras == "keras3":
            if not mod.__version__.startswith("3."):
                raise TargetError(f"keras {mod.__version__} is not Keras 3")
            backend = mod.backend.backend()
            if backend != "tensorflow":
                raise TargetError(f"Keras 3 runs on the {backend!r} backend; set "
                                  "KERAS_BACKEND=tensorflow (or use the 'keras' target)")
        return mod

    def _api_callable(self, api: str, init: dict):
        """TensorFlow's own callable for ``api`` (a constructed loss object for Keras)."""
        tf = _tf()
        if api == API_IDS[0]:
            return tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits
        if api == API_IDS[1]:
            return tf.raw_ops.SoftmaxCrossEntropyWithLogits
        if api == API_IDS[2]:
            return tf.nn.sparse_softmax_cross_entropy_with_logits
        if api == API_IDS[3]:
            return tf.nn.softmax_cross_entropy_with_logits
        if api == API_IDS[4]:
            return tf.compat.v1.losses.sparse_softmax_cross_entropy
        if api == API_IDS[5]:
            return tf.compat.v1.losses.softmax_cross_entropy
        cls = getattr(self._keras_module().losses, _KERAS_CLASSES[api])
        return cls(**init)

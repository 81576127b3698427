"""The generic callable target (SPEC §4): any Python callable that follows one API's signature.

A user names ``package.module:attr`` and the id of the TensorFlow API whose signature the
callable follows. The runner calls it with TensorFlow's keyword names and values (numpy
arrays, Python scalars, TF's reduction strings): for the raw ops the result must be a
``(loss, backprop)`` pair, otherwise one array. For the Keras APIs ``attr`` is the class
(or a factory): it is constructed with the constructor's keyword arguments, and the
instance is called as ``obj(y_true, y_pred, sample_weight=...)`` (``sample_weight``
omitted when None). Results are converted with :func:`numpy.asarray` and never changed.
With ``array="torch"``, ``"jax"`` or ``"cupy"`` the array inputs are that library's arrays
on ``device`` instead (:func:`~xentconf.protocol.to_array_library`, inside
:func:`~xentconf.protocol.array_scope`), and its arrays come back through
:func:`~xentconf.protocol.to_numpy`.

Any exception the callable raises propagates: it means "rejected the input". A result that
is not an answer at all (None, a string, a tuple of the wrong length) raises
:class:`~xentconf.protocol.TargetOutputError`, which a verdict treats as an error of the
target, not as a rejection. The callable has no gradients here ("grad" is unsupported).

:func:`load_attribute` and :func:`check_signature` are shared with the registry, which
resolves built-in and entry-point adapters through the same one-line errors.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Iterable
from typing import Any

import numpy as np

from xentconf.protocol import (
    API_IDS,
    API_PARAMS,
    ARRAY_LIBRARIES,
    DEVICES,
    DTYPES,
    FEATURES,
    KERAS_APIS,
    KERAS_VARIANTS,
    PROFILES,
    RAW_OPS,
    ApiSupport,
    Call,
    Mode,
    Runner,
    Setup,
    Target,
    TargetError,
    TargetInfo,
    TargetOutputError,
    array_dtypes,
    array_problem,
    array_scope,
    array_version,
    to_array_library,
    to_numpy,
)

from . import _source as src

__all__ = [
    "CallableTarget",
    "TargetOutputError",
    "check_api",
    "check_signature",
    "load_attribute",
    "one_line",
]


def one_line(text: object) -> str:
    """``text`` on one line (exception messages may span several)."""
    return " ".join(str(text).split()) or "(no message)"


def check_api(api: object) -> str:
    """Return ``api`` if it is an API id of SPEC §1, else raise TargetError listing them."""
    if not isinstance(api, str) or api not in API_IDS:
        raise TargetError(f"unknown API id {api!r}; use one of: {', '.join(API_IDS)}")
    return api


def load_attribute(spec: str) -> Any:
    """Import ``package.module:attr`` (``attr`` may be dotted) and return the attribute."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise TargetError(f"{spec!r} is not of the form package.module:attr")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises while importing
        raise TargetError(
            f"module {module_name!r} does not import ({type(exc).__name__}: {one_line(exc)}); "
            "install it or put it on sys.path") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attr!r}; check the "
                              "name after the ':'") from None
    return obj


def _signature(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and extension types may not say
        return None


def _call_signature(cls: type) -> inspect.Signature | None:
    """The signature of ``cls``'s instances' ``__call__``, without ``self``."""
    for klass in cls.__mro__:
        if "__call__" in vars(klass):
            raw = vars(klass)["__call__"]
            break
    else:
        raise TargetError(f"instances of {cls.__qualname__} are not callable; a Keras-style "
                          "target needs a __call__(y_true, y_pred, sample_weight=None)")
    sig = _signature(cls.__call__)
    if sig is None or isinstance(raw, staticmethod):
        return sig
    params = list(sig.parameters.values())
    if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    return sig.replace(parameters=params)


def _fit(sig: inspect.Signature | None, args: tuple, kwargs: dict, what: str) -> None:
    if sig is None:
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TargetError(f"{what} ({one_line(exc)})") from None


def check_signature(obj: Any, api: str, spec: str = "") -> None:
    """Raise TargetError unless ``obj`` can be called the way the runner calls it for ``api``.

    Non-Keras APIs: every TF parameter name of ``API_PARAMS[api]`` must bind as a keyword.
    Keras APIs: ``obj`` (a class or factory) must accept the constructor's parameters as
    keywords, and — when ``obj`` is a class — its instances' ``__call__`` must accept
    ``(y_true, y_pred, sample_weight=...)``.
    """
    name = spec or getattr(obj, "__qualname__", repr(obj))
    if not callable(obj):
        raise TargetError(f"{name} is not callable (it is a {type(obj).__name__}); name a "
                          f"function, or a class for the Keras APIs")
    params = API_PARAMS[api]
    if api not in KERAS_APIS:
        names = list(params[0])
        _fit(_signature(obj), (), dict.fromkeys(names),
             f"{name} does not fit {api}: it must accept the keyword arguments "
             f"{', '.join(names)}")
        return
    init, call = params
    _fit(_signature(obj), (), dict.fromkeys(init),
         f"{name} does not fit {api}: its constructor must accept the keyword arguments "
         f"{', '.join(init)}")
    if inspect.isclass(obj):
        _fit(_call_signature(obj), (None, None), {"sample_weight": None},
             f"{name} does not fit {api}: its instances must be callable as "
             f"obj({', '.join(call)}=...)")


def _check_choice(value: object, choices: Iterable[str], what: str) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise TargetError(f"unknown {what} {value!r}; use one of: {', '.join(choices)}")


def _version_of(spec: str) -> str | None:
    """The version of the callable's top-level package: its installed distribution's, else
    its ``__version__``, else None."""
    top = spec.partition(":")[0].split(".")[0]
    try:
        return importlib.metadata.version(top)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        pass
    try:
        version = getattr(importlib.import_module(top), "__version__", None)
    except Exception:  # the callable's own import error is reported by resolve()
        return None
    return None if version is None else str(version)


def _as_array(value: Any, what: str) -> np.ndarray:
    """``np.asarray(value)``, or TargetOutputError when that is not a numeric array."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged sequences, objects refusing conversion, ...
        raise TargetOutputError(f"{what} is not array-like: {type(value).__name__} "
                                f"({type(exc).__name__}: {one_line(exc)})") from exc
    kind = arr.dtype.kind
    # ml_dtypes' bfloat16 (and other extension floats) have kind "V" but no fields
    extension_float = kind == "V" and arr.dtype.names is None and not \
        arr.dtype.name.startswith("void")
    if kind not in "biufc" and not extension_float:
        raise TargetOutputError(f"{what} is not a numeric array: got {type(value).__name__} "
                                f"(numpy dtype {arr.dtype})")
    return arr


def outputs_of(api: str, result: Any, who: str = "the target") -> dict[str, np.ndarray]:
    """Convert what a callable returned for ``api`` into the runner's outputs."""
    if api in RAW_OPS:
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            got = (f"a {type(result).__name__} of length {len(result)}"
                   if isinstance(result, (tuple, list)) else f"a {type(result).__name__}")
            raise TargetOutputError(f"{who} must return a (loss, backprop) pair for {api}; "
                                    f"got {got}")
        return {"loss": _as_array(result[0], f"{who}'s loss"),
                "backprop": _as_array(result[1], f"{who}'s backprop")}
    return {"loss": _as_array(result, f"{who}'s result")}


class _CallableRunner(Runner):
    def __init__(self, target: CallableTarget, obj: Any, setup: Setup):
        self._target = target
        self._obj = obj
        self._setup = setup

    def run(self, call: Call) -> dict[str, np.ndarray]:
        api = self._setup.api
        if call.api != api:
            raise TargetError(f"this runner was prepared for {api}, not {call.api}")
        if call.upstream is not None:
            raise TargetError(f"{self._target.name} has no gradients (feature 'grad' is "
                              "unsupported); do not pass an upstream gradient")
        lib, device = self._target.array, self._target.device
        with array_scope(lib):
            args = {k: to_array_library(v, lib, device) for k, v in call.args.items()}
            if api in KERAS_APIS:
                init = dict(call.init) if call.init else dict(self._setup.init)
                loss = self._obj(**init)
                y_true = args.pop("y_true")
                y_pred = args.pop("y_pred")
                if args.get("sample_weight", 0) is None:
                    del args["sample_weight"]
                result = loss(y_true, y_pred, **args)
            else:
                result = self._obj(**args)
            if lib != "numpy":  # the library's arrays back to numpy (bfloat16 kept)
                result = tuple(map(to_numpy, result)) if isinstance(result, tuple | list) \
                    else to_numpy(result)
        return outputs_of(api, result, self._target.name)


class CallableTarget(Target):
    """A Python callable ``package.module:attr`` that follows the signature of ``api``.

    ``profile`` is the device profile its behaviour follows (it runs on the CPU); ``keras``
    the Keras semantics (Keras APIs only); ``unsupported`` features and dtypes are skipped
    (declared, never failed); ``deviations`` is the path of a known-deviations file.
    """

    def __init__(self, spec: str, api: str, profile: str = "cpu", keras: str = "keras2",
                 unsupported: Iterable[str] = (), deviations: str | None = None,
                 array: str = "numpy", device: str = "cpu"):
        if not isinstance(spec, str) or ":" not in spec:
            raise TargetError(f"{spec!r} is not of the form package.module:attr")
        self.name = spec
        self.api = check_api(api)
        _check_choice(profile, PROFILES, "profile")
        _check_choice(keras, KERAS_VARIANTS, "Keras variant")
        unsupported = frozenset(unsupported)
        for name in sorted(unsupported):
            _check_choice(name, FEATURES + DTYPES, "feature or dtype")
        self.profile = profile
        self.keras = keras
        _check_choice(array, ARRAY_LIBRARIES, "array library")
        _check_choice(device, DEVICES, "device")
        self.array, self.device = array, device
        self.dtypes = tuple(d for d in array_dtypes(array, device) if d not in unsupported)
        self.unsupported = (unsupported - set(DTYPES)) | {"grad"}
        self.deviations = deviations
        self._obj: Any = None

    def resolve(self) -> Any:
        """Import the callable and check its signature (once); raise TargetError if it cannot
        serve ``api``."""
        if self._obj is None:
            obj = load_attribute(self.name)
            check_signature(obj, self.api, self.name)
            self._obj = obj
        return self._obj

    def info(self) -> TargetInfo:
        try:
            problem = array_problem(self.array, self.device)
            if problem:
                raise TargetError(problem)
            self.resolve()
            available, reason = True, ""
        except TargetError as exc:
            available, reason = False, str(exc)
        native = frozenset(FEATURES) - self.unsupported
        return TargetInfo(
            name=self.name,
            available=available,
            reason=reason,
            version=_version_of(self.name),
            modes=(Mode(self.device, self.profile,
                        f"the callable, called in this process on {self.array} arrays",
                        available, reason),),
            apis={self.api: ApiSupport(native=native, unsupported=self.unsupported,
                                       dtypes=self.dtypes)},
            keras=self.keras if self.api in KERAS_APIS else None,
            deviations=self.deviations,
            description=f"generic callable following {self.api}"
                        + (f", on {self.array} {array_version(self.array)} arrays "
                           f"({self.device})" if self.array != "numpy" else ""),
        )

    def snippet(self, setup: Setup, call: Call) -> str | None:
        """The callable imported from its module and called as the runner calls it (for
        the Keras APIs: constructed with the kwargs, then called with ``y_true``,
        ``y_pred`` and the other call arguments, ``sample_weight`` left out when None)."""
        module, _, attr = self.name.partition(":")
        top, _, rest = attr.partition(".")
        if call.api != self.api or call.upstream is not None or not all(
                p.isidentifier() for p in [*module.split("."), *attr.split(".")]):
            return None
        lines = [f"from {module} import {top}", ""]
        args = dict(call.args)
        if self.api in KERAS_APIS:
            if "y_true" not in args or "y_pred" not in args:
                return None  # the runner fails before calling it
            init = dict(call.init) if call.init else dict(setup.init)
            if not call.init and any(src.literal(v) is None for v in init.values()):
                return None  # the setup's kwargs are not in the snippet's namespace
            del args["y_true"], args["y_pred"]
            if args.get("sample_weight", 0) is None:
                del args["sample_weight"]
            extra = src.kwargs(args, "args")
            lines += [f"loss_fn = {attr}({src.kwargs(init, 'init')})",
                      f"result = loss_fn(args['y_true'], args['y_pred']"
                      f"{', ' + extra if extra else ''})"]
        else:
            lines.append(f"result = {attr}({src.kwargs(args, 'args')})")
        if self.api in RAW_OPS:
            lines.append("outputs = {'loss': np.asarray(result[0]), "
                         "'backprop': np.asarray(result[1])}")
        else:
            lines.append("outputs = {'loss': np.asarray(result)}")
        return "\n".join(lines) + "\n"

    def prepare(self, setup: Setup) -> Runner:
        if setup.api != self.api:
            raise TargetError(f"{self.name} follows {self.api}, not {setup.api}")
        if setup.device != self.device or setup.profile != self.profile:
            raise TargetError(f"{self.name} runs as {self.device}/{self.profile}, not "
                              f"{setup.device}/{setup.profile}")
        if setup.grad:
            raise TargetError(f"{self.name} has no gradients (feature 'grad' is unsupported)")
        return _CallableRunner(self, self.resolve(), setup)

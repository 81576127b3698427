"""Find targets by name: the built-in adapters, third-party adapters, generic callables.

* Built-ins are named here as ``module:attr`` strings and imported only when asked for, so
  listing targets never imports a framework an adapter does not need to import.
* Third parties register under the entry-point group ``xentconf.adapters``; the entry point
  loads a :class:`~xentconf.protocol.Target` subclass or a factory returning a Target.
  A built-in name cannot be taken over by an entry point.
* Anything containing ``":"`` is a generic callable ``package.module:attr`` following the
  signature of the API given as ``api=`` (SPEC §4, :mod:`xentconf.adapters.callable`).

Every failure is a :class:`~xentconf.protocol.TargetError` whose one-line message says what
to fix.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import asdict
from typing import Any

from xentconf.protocol import Target, TargetError, TargetInfo, is_callable_target

from .callable import CallableTarget, load_attribute, one_line

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "available_targets",
    "get_target",
    "info_to_dict",
    "target_names",
]

ENTRY_POINT_GROUP = "xentconf.adapters"

#: The built-in adapters, by name: where each one's Target class lives.
BUILTINS: dict[str, str] = {
    "tensorflow": "xentconf.adapters.tensorflow:TensorFlowTarget",
    "keras": "xentconf.adapters.keras:KerasTarget",
    "torch": "xentconf.adapters.torch:TorchTarget",
    "jax": "xentconf.adapters.jax:JaxTarget",
    "onnxruntime": "xentconf.adapters.onnxruntime:OnnxRuntimeTarget",
    "reference": "xentconf.adapters.reference:ReferenceTarget",
}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Third-party adapters by name (the first distribution on sys.path wins a clash)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def target_names() -> list[str]:
    """Names of the built-in targets, then of the registered entry points."""
    return list(BUILTINS) + sorted(n for n in _entry_points() if n not in BUILTINS)


def _load_builtin(name: str) -> Any:
    spec = BUILTINS[name]
    module = spec.partition(":")[0]
    try:
        return load_attribute(spec)
    except TargetError as exc:
        cause = exc.__cause__
        if isinstance(cause, ModuleNotFoundError) and cause.name == module:
            raise TargetError(f"built-in target {name!r} is not part of this xentconf "
                              f"(module {module} does not exist); choose another target") \
                from cause
        raise TargetError(f"built-in target {name!r}: {exc}") from exc


def _load_entry_point(name: str, ep: importlib.metadata.EntryPoint) -> Any:
    where = f"entry point {name!r} ({ep.value}, group {ENTRY_POINT_GROUP})"
    try:
        return ep.load()
    except AttributeError as exc:
        raise TargetError(f"{where}: attribute does not exist ({one_line(exc)}); fix the "
                          "entry point or reinstall its distribution") from exc
    except Exception as exc:
        raise TargetError(f"{where} does not import ({type(exc).__name__}: {one_line(exc)}); "
                          "install what it needs or fix the entry point") from exc


def _instantiate(what: str, factory: Any, options: dict[str, Any]) -> Target:
    if isinstance(factory, Target):
        if options:
            raise TargetError(f"{what} is a ready-made target and takes no options "
                              f"(got {', '.join(sorted(options))})")
        return factory
    if not callable(factory):
        raise TargetError(f"{what} is not callable; it must be a Target subclass or a "
                          "factory returning a Target")
    try:
        target = factory(**options)
    except TargetError:
        raise
    except TypeError as exc:
        raise TargetError(f"{what} does not take these options ({one_line(exc)})") from exc
    if not isinstance(target, Target):
        raise TargetError(f"{what} returned a {type(target).__name__}, not a "
                          "xentconf.protocol.Target")
    return target


def get_target(name_or_spec: str, **options: Any) -> Target:
    """The target named ``name_or_spec``: a built-in, an entry point, or a generic callable
    ``package.module:attr`` (which needs ``api=``); ``options`` go to its constructor."""
    if not isinstance(name_or_spec, str) or not name_or_spec:
        raise TargetError(f"target must be a name or package.module:attr, not {name_or_spec!r}")
    if is_callable_target(name_or_spec):
        if "api" not in options:
            raise TargetError(f"{name_or_spec} is a generic callable: give the id of the API "
                              "whose signature it follows (api=...)")
        try:
            target = CallableTarget(name_or_spec, **options)
        except TypeError as exc:
            raise TargetError(f"generic callable {name_or_spec}: {one_line(exc)}") from exc
        target.resolve()
        return target
    if name_or_spec in BUILTINS:
        return _instantiate(f"built-in target {name_or_spec!r}", _load_builtin(name_or_spec),
                            options)
    eps = _entry_points()
    if name_or_spec in eps:
        factory = _load_entry_point(name_or_spec, eps[name_or_spec])
        return _instantiate(f"entry point {name_or_spec!r}", factory, options)
    raise TargetError(f"unknown target {name_or_spec!r}; known targets: "
                      f"{', '.join(target_names())} (or package.module:attr with an API id)")


def _unavailable(name: str, reason: str) -> TargetInfo:
    return TargetInfo(name=name, available=False, reason=reason)


def _describe(name: str) -> TargetInfo:
    try:
        target = get_target(name)
    except TargetError as exc:
        return _unavailable(name, str(exc))
    try:
        info = target.info()
    except Exception as exc:  # info() must not raise; say so instead of crashing a listing
        return _unavailable(name, f"info() raised {type(exc).__name__}: {one_line(exc)}")
    if info.name != name:
        info = TargetInfo(**{**_fields(info), "name": name})
    return info


def _fields(info: TargetInfo) -> dict[str, Any]:
    return {k: getattr(info, k) for k in info.__dataclass_fields__}


def available_targets() -> list[TargetInfo]:
    """Every known target — built-ins, then entry points — each described by its info()
    (or as unavailable, with the reason, when it cannot be loaded)."""
    infos = [_describe(name) for name in BUILTINS]
    for name, ep in sorted(_entry_points().items()):
        if name in BUILTINS:
            infos.append(_unavailable(
                f"{name} ({ep.value})",
                f"entry point {name!r} clashes with the built-in target of that name and is "
                "ignored; register it under another name"))
        else:
            infos.append(_describe(name))
    return infos


def info_to_dict(info: TargetInfo) -> dict[str, Any]:
    """A TargetInfo as JSON-ready data (feature sets as sorted lists)."""
    data = _fields(info)
    data["modes"] = [asdict(m) for m in info.modes]
    data["apis"] = {api: {"native": sorted(sup.native), "composed": sorted(sup.composed),
                          "unsupported": sorted(sup.unsupported), "dtypes": list(sup.dtypes),
                          "notes": sup.notes}
                    for api, sup in info.apis.items()}
    return data

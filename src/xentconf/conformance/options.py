"""The options of a conformance run, each defined once.

:data:`OPTIONS` is the table: an option ``NAME`` is ``--NAME`` on ``xentconf run`` and
``--xentconf-NAME`` in the pytest plugin, with the same type, choices, default, help and
repetition. :func:`add_run_arguments` and :func:`add_plugin_options` generate both
command lines from it; :func:`validate` turns the values given either way into a
:class:`RunConfig`, or raises :class:`UsageError` with one line naming the option the way
the user spelled it. ``xentconf run`` validates (and resolves the target) before pytest
starts and hands the plugin the finished config; the plugin validates its own options
the same way when pytest is started directly.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from xentconf.protocol import (
    ARRAY_LIBRARIES,
    DEVICES,
    DTYPES,
    FEATURES,
    KERAS_VARIANTS,
    MODES,
    PROFILES,
    api_id,
    is_callable_target,
)
from xentconf.results import REQUIRED_GRADES

__all__ = ["HYPOTHESIS_PROFILES", "OPTIONS", "Option", "RunConfig", "UsageError",
           "add_plugin_options", "add_run_arguments", "resolve_target", "validate"]

#: Example profiles: hypothesis settings (registered as ``xentconf-<name>`` profiles by the
#: checker) and the seconds a test may spend shrinking its failures.
HYPOTHESIS_PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 20, "derandomize": True},
    "dev": {"max_examples": 50, "derandomize": False},
    "thorough": {"max_examples": 400, "derandomize": False},
}
SHRINK_SECONDS = {"ci": 20.0, "dev": 60.0, "thorough": 300.0}


class UsageError(Exception):
    """A wrong option value; the message is one line that says what to fix."""


@dataclass(frozen=True)
class Option:
    """One option of a conformance run (see the module docstring)."""

    name: str
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    type: Callable[[str], Any] = str
    default: Any = None
    repeat: bool = False  # may be given several times (the values are collected)
    flag: bool = False  # takes no value: given means on

    def full_help(self) -> str:
        text = self.help
        if self.choices:
            text += f"; one of: {', '.join(self.choices)}"
        if self.default not in (None, "", [], False):
            text += f" (default: {self.default})"
        if self.repeat:
            text += "; repeatable"
        return text


OPTIONS: tuple[Option, ...] = (
    Option("target", "the target to judge: a built-in (tensorflow, keras, torch, jax, "
           "onnxruntime, reference), an entry-point name, or package.module:attr (a callable, "
           "with one --api naming the API whose signature it follows)", metavar="T"),
    Option("api", "an API to test, TF id or short name (raw_sparse, raw_dense, nn_sparse, "
           "nn_dense, v1_sparse, v1_dense, keras_sparse, keras_dense); default: every API the "
           "target implements", metavar="ID", repeat=True),
    Option("device", "the device of the target's mode", choices=DEVICES, default="cpu"),
    Option("profile", "the device profile of the target's mode (default: its first mode on "
           "the device)", choices=PROFILES),
    Option("mode", "how the target's mode executes: eager, xla, compile (torch.compile), or "
           "the Keras 3 backend (default: the target's first usable mode on the device and "
           "profile)", choices=MODES),
    Option("accuracy", "the grade every element must reach", choices=REQUIRED_GRADES,
           default="stable"),
    Option("strict", "count as-tensorflow (a difference only as TensorFlow's own mechanisms "
           "make it: flushed denormals, float32 reductions, overflow) as a failure",
           flag=True, default=False),
    Option("deviations", "a known-deviations file (TOML) besides the target's own",
           metavar="FILE", repeat=True),
    Option("dtype", "a logits dtype to test (default: all four)", choices=DTYPES, repeat=True),
    Option("feature", "a feature to test (basic, regimes, special_values, weights, ...; "
           "default: all)", metavar="F", repeat=True),
    Option("keras", "the Keras semantics the target follows", choices=KERAS_VARIANTS),
    Option("array", "the array library a callable target takes and returns, on --device "
           "(inputs converted through DLPack where it can; bfloat16 as the library's own)",
           choices=ARRAY_LIBRARIES, default="numpy"),
    Option("unsupported", "comma-separated features and dtypes a callable target lacks "
           "(declared: skipped, never failed), e.g. weights,large_classes,bfloat16",
           metavar="LIST", default=""),
    Option("hypothesis", "the example profile (ci: derandomized, bounded shrinking)",
           choices=tuple(HYPOTHESIS_PROFILES), default="ci"),
    Option("examples", "examples per test (default: the profile's, 20 in ci)", metavar="N",
           type=int),
    Option("seed", "random seed (default: derandomized, the same cases every run)",
           metavar="S", type=int),
    Option("timeout", "per-case time limit in seconds before a call counts as a timeout",
           metavar="SECONDS", type=float, default=60.0),
    Option("isolate", "process: the target runs in a child process, so crashes and hangs "
           "become outcomes; none: in this process", choices=("process", "none"),
           default="process"),
    Option("sweep", "the exhaustive float16/bfloat16 sweeps of the C = 2 sparse losses",
           choices=("on", "off"), default="on"),
    Option("pairs", "the exhaustive pair sweep of the C = 2 sparse losses: every float16 x "
           "float16 and bfloat16 x bfloat16 pair of bit patterns, both labels; all, or a "
           "slice START:STOP of pair indices (a << 16 | b, decimal or 0x hex; xentconf "
           "sweep's float32 pairs are value_bits * 8 + grid index). A run (or "
           "pytest) judges it only when this is given, as tests of feature 'pairs'; xentconf "
           "sweep sweeps all pairs by default", metavar="all|START:STOP"),
)
_BY_NAME = {o.name: o for o in OPTIONS}


def _add(add: Callable[..., Any], flag: str, o: Option) -> None:
    kwargs: dict[str, Any] = {"help": o.full_help(), "metavar": o.metavar or o.name.upper()}
    if o.flag:
        kwargs = {"help": kwargs["help"], "action": "store_true", "default": False}
    elif o.repeat:
        kwargs.update(action="append", default=[])
    else:
        kwargs.update(default=o.default, type=o.type)
    add(flag, **kwargs)


def add_run_arguments(parser: argparse.ArgumentParser,
                      only: tuple[str, ...] | None = None,
                      narrowed: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """``--NAME`` for every option (or those named in ``only``), on ``xentconf run``'s
    parser (``xentconf sweep`` takes the subset that applies to a sweep, ``narrowed``:
    the help, choices and default of an option whose values a sweep restricts)."""
    for o in OPTIONS:
        if only is None or o.name in only:
            _add(parser.add_argument, f"--{o.name}",
                 replace(o, **(narrowed or {}).get(o.name, {})))


def add_plugin_options(group) -> None:
    """``--xentconf-NAME`` for every option, on the plugin's pytest option group."""
    for o in OPTIONS:
        _add(group.addoption, f"--xentconf-{o.name}", o)


@dataclass
class RunConfig:
    """The validated options of one conformance run."""

    spec: Any  # a sandbox.TargetSpec
    target_name: str
    apis: list[str]
    dtypes: list[str]
    features: list[str]
    device: str
    profile: str | None
    accuracy: str
    keras: str | None
    hypothesis: str
    examples: int | None
    seed: int | None
    timeout: float
    isolate: bool
    sweep: bool
    results: str | None
    pairs: tuple[int, int] | None  # the slice of the pair sweep to judge as tests
    deviation_files: list[str]
    deviations: list = field(default_factory=list)
    info: Any = None  # the target's TargetInfo (filled by resolve_target)
    flag_prefix: str = "--"  # how the user spells options: "--" (run) or "--xentconf-"
    strict: bool = False  # as-tensorflow counts as a failure
    mode: str | None = None  # Mode.name: eager, xla, compile, a Keras backend

    @property
    def callable_target(self) -> bool:
        return is_callable_target(self.spec.name)

    @property
    def max_examples(self) -> int:
        return self.examples if self.examples is not None else \
            HYPOTHESIS_PROFILES[self.hypothesis]["max_examples"]

    @property
    def shrink_seconds(self) -> float:
        return SHRINK_SECONDS[self.hypothesis]

    @property
    def derandomize(self) -> bool:
        return self.seed is None and HYPOTHESIS_PROFILES[self.hypothesis]["derandomize"]

    def flag(self, name: str) -> str:
        return self.flag_prefix + name


def validate(values: Mapping[str, Any], *, flag_prefix: str = "--",
             results: str | None = None) -> RunConfig:
    """The :class:`RunConfig` of option ``values`` (keyed by option name; missing ones take
    their defaults), or :class:`UsageError` naming the option as ``flag_prefix + name``."""
    flag = lambda name: flag_prefix + name  # noqa: E731

    def value(name: str) -> Any:
        v = values.get(name)
        o = _BY_NAME[name]
        if v is None:
            return [] if o.repeat else o.default
        return v

    def choice(name: str, v: str, choices=None, what: str | None = None) -> str:
        choices = choices if choices is not None else _BY_NAME[name].choices
        if v not in choices:
            raise UsageError(f"{flag(name)} {v!r}: unknown {what or name}; use one of "
                             f"{', '.join(choices)}")
        return v

    target = value("target")
    if not target:
        given = [flag(o.name) for o in OPTIONS
                 if o.name != "target" and values.get(o.name) not in (None, [], o.default)]
        what = f"{given[0]} needs {flag('target')}" if given else \
            f"{flag('target')} is required"
        raise UsageError(f"{what}: name the target to judge (e.g. reference, or "
                         "package.module:attr)")
    from .sandbox import TargetSpec
    from .strategies import FEATURES_OF

    apis = []
    for a in value("api"):
        full = api_id(a)
        if full is None:
            raise UsageError(f"{flag('api')} {a!r}: unknown API; use a TF id (e.g. "
                             f"tf.nn.sparse_softmax_cross_entropy_with_logits) or a short name "
                             f"(raw_sparse, nn_dense, ...)")
        apis.append(full)
    apis = list(dict.fromkeys(apis))
    dtypes = list(dict.fromkeys(choice("dtype", d) for d in value("dtype")))
    all_features = tuple(sorted({f for fs in FEATURES_OF.values() for f in fs} |
                                {"sweep", "pairs"}))
    features = list(dict.fromkeys(choice("feature", f, all_features)
                                  for f in value("feature")))
    device = choice("device", value("device"))
    profile = value("profile")
    if profile is not None:
        choice("profile", profile)
    mode = value("mode")
    if mode is not None:
        choice("mode", mode)
    accuracy = choice("accuracy", value("accuracy"), what="grade")
    keras = value("keras")
    if keras is not None:
        choice("keras", keras, what="Keras variant")
    hyp = choice("hypothesis", value("hypothesis"), what="example profile")
    examples = value("examples")
    if examples is not None and examples < 1:
        raise UsageError(f"{flag('examples')} {examples}: give at least 1")
    timeout = value("timeout")
    if not timeout > 0:
        raise UsageError(f"{flag('timeout')} {timeout}: give a positive number of seconds")
    isolate = choice("isolate", value("isolate"), what="isolation mode") == "process"
    sweep = choice("sweep", value("sweep"), what="sweep setting") == "on"
    pairs = None
    if value("pairs") is not None:
        from .sweep import parse_pairs

        try:
            pairs = parse_pairs(value("pairs"), "float16")  # both 16-bit spaces: 2^32 pairs
        except ValueError as exc:
            raise UsageError(f"{flag('pairs')} {exc}") from None
    elif "pairs" in features:
        raise UsageError(f"{flag('feature')} pairs needs {flag('pairs')} (all, or a slice "
                         "START:STOP of pair indices)")
    unsupported = [u.strip() for u in (value("unsupported") or "").split(",") if u.strip()]
    for u in unsupported:
        choice("unsupported", u, FEATURES + DTYPES, "feature or dtype")
    array = choice("array", value("array"), what="array library")

    dev_files = []
    for f in value("deviations"):
        p = Path(f)
        if not p.is_file():
            raise UsageError(f"{flag('deviations')} {f}: no such file")
        dev_files.append(str(p.resolve()))
    options: dict[str, Any] = {}
    if is_callable_target(target):
        if len(apis) != 1:
            raise UsageError(f"{flag('target')} {target} is a generic callable: give exactly "
                             f"one {flag('api')}, the API whose signature it follows")
        options = {"api": apis[0], "profile": profile or "cpu",
                   "keras": keras or "keras2", "unsupported": tuple(unsupported)}
        if array != "numpy" or device != "cpu":
            options.update(array=array, device=device)
    else:
        if array != "numpy":
            raise UsageError(f"{flag('array')} is for a callable target (package.module:attr); "
                             "an adapter converts to its own framework's arrays")
        if unsupported:
            raise UsageError(f"{flag('unsupported')} is for a callable target "
                             "(package.module:attr); an adapter declares its own")
        if keras is not None:
            options["keras"] = keras
    if results and Path(results).is_dir():
        raise UsageError(f"{flag('results')} {results}: is a directory; give a file path "
                         "such as results.json")
    from . import deviations as devmod

    deviations = []
    for f in dev_files:
        try:
            deviations += devmod.load(f)
        except devmod.DeviationsError as exc:
            raise UsageError(str(exc)) from None
    return RunConfig(
        spec=TargetSpec(target, tuple(sorted(options.items()))),
        target_name=target.replace(":", "."), apis=apis, dtypes=dtypes or list(DTYPES),
        features=features, device=device, profile=profile, accuracy=accuracy, keras=keras,
        hypothesis=hyp, examples=examples, seed=value("seed"), timeout=timeout,
        isolate=isolate, sweep=sweep, results=results, pairs=pairs, deviation_files=dev_files,
        deviations=deviations, flag_prefix=flag_prefix, strict=bool(value("strict")),
        mode=mode)


def resolve_target(run: RunConfig, sandbox) -> None:
    """Load the target's info through ``sandbox``, pick the mode, read its own deviations
    file, and fill ``run.apis``; :class:`UsageError` when the target cannot serve."""
    from xentconf.protocol import API_SHORT

    from . import deviations as devmod

    try:
        info = sandbox.info()
    except RuntimeError as exc:
        raise UsageError(f"{run.flag('target')} {run.spec.name}: {exc}") from None
    if not info.available:
        raise UsageError(f"{run.flag('target')} {run.spec.name} is not available: "
                         f"{info.reason}")
    modes = [m for m in info.modes if m.device == run.device]
    if run.profile is not None:
        modes = [m for m in modes if m.profile == run.profile]
    if run.mode is not None:
        modes = [m for m in modes if m.name == run.mode]
    if not modes:
        have = ", ".join(m.label for m in info.modes) or "none"
        raise UsageError(f"target {info.name} has no mode on device {run.device!r}"
                         f"{' with profile ' + repr(run.profile) if run.profile else ''}"
                         f"{' executing ' + repr(run.mode) if run.mode else ''}"
                         f"; its modes (device/profile[/execution]): {have}")
    usable = [m for m in modes if m.available]
    if not usable:
        raise UsageError(f"target {info.name}: mode {modes[0].label} is unavailable here: "
                         f"{modes[0].reason}")
    run.profile = usable[0].profile
    run.mode = usable[0].name
    run.info = info
    if info.deviations and info.deviations not in run.deviation_files:
        try:
            run.deviations = devmod.load(info.deviations) + run.deviations
        except devmod.DeviationsError as exc:
            raise UsageError(f"target {info.name}'s own {exc}") from None
        run.deviation_files.insert(0, info.deviations)
    if not run.apis:
        run.apis = [a for a, s in info.apis.items() if s.dtypes]
    else:
        missing = [a for a in run.apis if a not in info.apis or not info.apis[a].dtypes]
        if missing:
            raise UsageError(f"target {info.name} does not implement "
                             f"{API_SHORT[missing[0]]} ({missing[0]}); it implements "
                             f"{', '.join(API_SHORT[a] for a in info.apis) or 'nothing'}")

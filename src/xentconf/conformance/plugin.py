"""The pytest plugin (entry point ``pytest11``: ``xentconf``): conformance runs in pytest.

Inert unless ``--xentconf-target`` is given. Then it adds the conformance suite
(:mod:`xentconf.conformance.suite`) to the run — alone when no test paths were given on
the command line — with one test per API × dtype × feature of the target, a test per
pinned known deviation, and the exhaustive 16-bit sweeps. Each test records an outcome
(``xentconf.results``) in its report's ``user_properties``; the process that owns the
session (the xdist controller, or the only process) gathers them and, with
``--xentconf-results PATH``, writes the results file once at the end — also when the run
is interrupted.

Verdicts map onto pytest's: ``pass`` and ``as-tensorflow`` pass (``as-tensorflow`` fails
under ``--xentconf-strict``), ``deviation`` is an expected failure
(xfail, with the deviation's id), ``skip`` skips, and ``fail``/``crash``/``timeout``/
``error`` fail the test with a one-line message (the reproducer is in the results).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from xentconf import __version__, results

# The plugin is loaded by every pytest run where xentconf is installed; it stays inert,
# and cheap, unless --xentconf-target is given: numpy, hypothesis and the oracle are
# imported only then (inside the functions below).

GRADES_REQUIRED = ("exact", "faithful", "tf-precision", "stable")
GRADES_ALL = (*GRADES_REQUIRED, "fail")
HYPOTHESIS_PROFILES = {
    # name: (max_examples, shrink seconds, derandomize)
    "ci": (20, 20.0, True),
    "dev": (50, 60.0, False),
    "thorough": (400, 300.0, False),
}
SUITE = Path(__file__).with_name("suite.py")
_KEY = "xentconf"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("xentconf", "xentconf conformance (inert without --xentconf-target)")
    g.addoption("--xentconf-target", metavar="NAME",
                help="target to judge: a built-in (tensorflow, keras, torch, jax, onnxruntime, "
                     "reference), an entry-point name, or package.module:attr (with "
                     "--xentconf-api)")
    g.addoption("--xentconf-api", action="append", default=[], metavar="ID",
                help="API to test (TF id or short name such as raw_sparse); repeatable; "
                     "default: every API the target implements. Required for a callable.")
    g.addoption("--xentconf-device", default="cpu", metavar="DEVICE",
                help="cpu (default) or cuda")
    g.addoption("--xentconf-profile", default=None, metavar="PROFILE",
                help="device profile of the mode to run: cpu, gpu or xla (default: the "
                     "target's first mode on the device)")
    g.addoption("--xentconf-accuracy", default="stable", metavar="GRADE",
                help="grade every element must reach: exact, faithful, tf-precision or "
                     "stable (default)")
    g.addoption("--xentconf-strict", action="store_true", default=False,
                help="count as-tensorflow (a difference only as TensorFlow's own mechanisms "
                     "make it) as a failure")
    g.addoption("--xentconf-deviations", action="append", default=[], metavar="FILE",
                help="known-deviations file (TOML) to apply besides the target's own; "
                     "repeatable")
    g.addoption("--xentconf-dtype", action="append", default=[], metavar="DTYPE",
                help="logits dtype to test (float16, bfloat16, float32, float64); repeatable")
    g.addoption("--xentconf-feature", action="append", default=[], metavar="FEATURE",
                help="feature to test (basic, regimes, weights, ...); repeatable")
    g.addoption("--xentconf-keras", default=None, metavar="VARIANT",
                help="Keras semantics of the target: keras2 or keras3")
    g.addoption("--xentconf-unsupported", default="", metavar="FEATURES",
                help="comma-separated features a callable target lacks (they are skipped)")
    g.addoption("--xentconf-hypothesis", default="ci", metavar="PROFILE",
                help="example profile: ci (derandomized, default), dev or thorough")
    g.addoption("--xentconf-examples", type=int, default=None, metavar="N",
                help="examples per test (overrides the profile)")
    g.addoption("--xentconf-seed", type=int, default=None, metavar="S",
                help="seed for the examples (default: derandomized under ci)")
    g.addoption("--xentconf-timeout", type=float, default=60.0, metavar="SECONDS",
                help="per-case time limit before a call counts as a timeout (default 60)")
    g.addoption("--xentconf-isolate", default="process", metavar="MODE",
                help="process (default: the target runs in a child process, so crashes and "
                     "hangs become outcomes) or none (in this process)")
    g.addoption("--xentconf-sweep", default="on", metavar="WHEN",
                help="exhaustive float16/bfloat16 sweeps of C = 2 sparse losses: on "
                     "(default) or off")
    g.addoption("--xentconf-results", default=None, metavar="PATH",
                help="write the results file (JSON) here at the end of the session")


# ----------------------------------------------------------------------------- options


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
    deviation_files: list[str]
    deviations: list = field(default_factory=list)
    strict: bool = False  # as-tensorflow fails
    info: Any = None  # the target's TargetInfo (filled when the target is loaded)

    @property
    def max_examples(self) -> int:
        return self.examples if self.examples is not None else \
            HYPOTHESIS_PROFILES[self.hypothesis][0]

    @property
    def shrink_seconds(self) -> float:
        return HYPOTHESIS_PROFILES[self.hypothesis][1]

    @property
    def derandomize(self) -> bool:
        return self.seed is None and HYPOTHESIS_PROFILES[self.hypothesis][2]


def _choice(value: str, choices, what: str, flag: str) -> str:
    if value not in choices:
        raise pytest.UsageError(f"{flag} {value!r}: unknown {what}; use one of "
                                f"{', '.join(choices)}")
    return value


def _api(value: str) -> str:
    from xentconf.protocol import API_IDS, API_SHORT

    if value in API_IDS:
        return value
    short_to_api = {v: k for k, v in API_SHORT.items()}
    if value in short_to_api:
        return short_to_api[value]
    raise pytest.UsageError(f"--xentconf-api {value!r}: unknown API; use a TF id ("
                            f"{API_IDS[0]}, ...) or a short name ({', '.join(API_SHORT.values())})")


def parse_options(config: pytest.Config) -> RunConfig | None:
    """Validate the --xentconf-* options (UsageError with a clear message when wrong)."""
    opt = config.getoption
    target = opt("--xentconf-target")
    if not target:
        used = [n for n in ("--xentconf-api", "--xentconf-dtype", "--xentconf-feature",
                            "--xentconf-deviations") if opt(n)]
        if used or opt("--xentconf-results"):
            raise pytest.UsageError(f"{(used or ['--xentconf-results'])[0]} needs "
                                    "--xentconf-target: name the target to judge")
        return None
    from xentconf.protocol import DTYPES, FEATURES, KERAS_VARIANTS, PROFILES

    from . import deviations as devmod
    from .sandbox import TargetSpec
    from .strategies import FEATURES_OF

    apis = list(dict.fromkeys(_api(a) for a in opt("--xentconf-api")))
    dtypes = list(dict.fromkeys(_choice(d, DTYPES, "dtype", "--xentconf-dtype")
                                for d in opt("--xentconf-dtype")))
    all_features = sorted({f for fs in FEATURES_OF.values() for f in fs} | {"sweep"})
    features = list(dict.fromkeys(_choice(f, all_features, "feature", "--xentconf-feature")
                                  for f in opt("--xentconf-feature")))
    device = _choice(opt("--xentconf-device"), ("cpu", "cuda"), "device", "--xentconf-device")
    profile = opt("--xentconf-profile")
    if profile is not None:
        _choice(profile, PROFILES, "profile", "--xentconf-profile")
    accuracy = _choice(opt("--xentconf-accuracy"), GRADES_REQUIRED, "grade",
                       "--xentconf-accuracy")
    keras = opt("--xentconf-keras")
    if keras is not None:
        _choice(keras, KERAS_VARIANTS, "Keras variant", "--xentconf-keras")
    hyp = _choice(opt("--xentconf-hypothesis"), tuple(HYPOTHESIS_PROFILES),
                  "example profile", "--xentconf-hypothesis")
    examples = opt("--xentconf-examples")
    if examples is not None and examples < 1:
        raise pytest.UsageError(f"--xentconf-examples {examples}: give at least 1")
    timeout = opt("--xentconf-timeout")
    if not timeout > 0:
        raise pytest.UsageError(f"--xentconf-timeout {timeout}: give a positive number of "
                                "seconds")
    isolate = _choice(opt("--xentconf-isolate"), ("process", "none"), "isolation mode",
                      "--xentconf-isolate") == "process"
    sweep = _choice(opt("--xentconf-sweep"), ("on", "off"), "sweep setting",
                    "--xentconf-sweep")
    unsupported = [u.strip() for u in opt("--xentconf-unsupported").split(",") if u.strip()]
    for u in unsupported:
        _choice(u, FEATURES, "feature", "--xentconf-unsupported")
    dev_files = []
    for f in opt("--xentconf-deviations"):
        p = Path(f)
        if not p.is_file():
            raise pytest.UsageError(f"--xentconf-deviations {f}: no such file")
        dev_files.append(str(p.resolve()))
    options: dict[str, Any] = {}
    if ":" in target:
        if len(apis) != 1:
            raise pytest.UsageError(f"--xentconf-target {target} is a generic callable: give "
                                    "exactly one --xentconf-api, the API whose signature it "
                                    "follows")
        options = {"api": apis[0], "profile": profile or "cpu",
                   "keras": keras or "keras2", "unsupported": tuple(unsupported)}
    else:
        if unsupported:
            raise pytest.UsageError("--xentconf-unsupported is for a callable target "
                                    "(package.module:attr); an adapter declares its own")
        if keras is not None:
            options["keras"] = keras
    results_path = opt("--xentconf-results")
    if results_path and Path(results_path).is_dir():
        raise pytest.UsageError(f"--xentconf-results {results_path}: is a directory; give a "
                                "file path such as results.json")
    deviations = []
    for f in dev_files:
        try:
            deviations += devmod.load(f)
        except devmod.DeviationsError as exc:
            raise pytest.UsageError(str(exc)) from None
    return RunConfig(
        spec=TargetSpec(target, tuple(sorted(options.items()))),
        target_name=target.replace(":", "."), apis=apis, dtypes=dtypes or list(DTYPES),
        features=features, device=device, profile=profile, accuracy=accuracy, keras=keras,
        hypothesis=hyp, examples=examples, seed=opt("--xentconf-seed"), timeout=timeout,
        isolate=isolate, sweep=sweep == "on",
        results=results_path, deviation_files=dev_files, deviations=deviations,
        strict=bool(opt("--xentconf-strict")))


def resolve_target(run: RunConfig, sandbox) -> None:
    """Load the target's info, pick the mode, and read its own deviations file."""
    from xentconf.protocol import API_SHORT

    from . import deviations as devmod

    try:
        info = sandbox.info()
    except RuntimeError as exc:
        raise pytest.UsageError(f"--xentconf-target {run.spec.name}: {exc}") from None
    if not info.available:
        raise pytest.UsageError(f"--xentconf-target {run.spec.name} is not available: "
                                f"{info.reason}")
    modes = [m for m in info.modes if m.device == run.device]
    if run.profile is not None:
        modes = [m for m in modes if m.profile == run.profile]
    if not modes:
        have = ", ".join(f"{m.device}/{m.profile}" for m in info.modes) or "none"
        raise pytest.UsageError(f"target {info.name} has no mode on device {run.device!r}"
                                f"{' with profile ' + repr(run.profile) if run.profile else ''}"
                                f"; its modes (device/profile): {have}")
    usable = [m for m in modes if m.available]
    if not usable:
        raise pytest.UsageError(f"target {info.name}: mode {modes[0].device}/"
                                f"{modes[0].profile} is unavailable here: {modes[0].reason}")
    run.profile = usable[0].profile
    run.info = info
    if info.deviations and info.deviations not in run.deviation_files:
        try:
            run.deviations = devmod.load(info.deviations) + run.deviations
        except devmod.DeviationsError as exc:
            raise pytest.UsageError(f"target {info.name}'s own {exc}") from None
        run.deviation_files.insert(0, info.deviations)
    if not run.apis:
        run.apis = [a for a, s in info.apis.items() if s.dtypes]
    else:
        missing = [a for a in run.apis if a not in info.apis or not info.apis[a].dtypes]
        if missing:
            raise pytest.UsageError(f"target {info.name} does not implement "
                                    f"{API_SHORT[missing[0]]} ({missing[0]}); it implements "
                                    f"{', '.join(API_SHORT[a] for a in info.apis) or 'nothing'}")


# ----------------------------------------------------------------------------- hooks


class _State:
    """What the session-owning process gathers."""

    def __init__(self, run: RunConfig):
        self.run = run
        self.started = time.time()
        self.started_iso = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.outcomes: dict[str, dict] = {}
        self.pinned: dict[str, dict] = {}
        self.interrupted = False


_STATE = pytest.StashKey[_State]()
_RUN = pytest.StashKey[RunConfig]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xentconf: a conformance test generated by xentconf")
    run = parse_options(config)
    if run is None:
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _KEY in workerinput:
        run = pickle.loads(base64.b64decode(workerinput[_KEY]))  # resolved by the controller
    else:
        # validate the target once, up front, in the process the user started
        from .sandbox import Sandbox

        probe = Sandbox(run.spec, timeout=run.timeout, isolate=run.isolate)
        try:
            resolve_target(run, probe)
        finally:
            probe.close()
    config.stash[_RUN] = run
    config.stash[_STATE] = _State(run)
    suite = str(SUITE)
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [suite]
    elif not any(Path(a.split("::")[0]).resolve() == SUITE.resolve() for a in config.args):
        config.args.append(suite)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: hand the resolved run (target info, mode, deviations) to each worker."""
    if _RUN in node.config.stash:
        node.workerinput[_KEY] = base64.b64encode(
            pickle.dumps(node.config.stash[_RUN])).decode("ascii")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Drop the suite's tests that have nothing to run here (no pinned deviations, no
    sweeps) instead of reporting them as skipped."""
    if _RUN not in config.stash:
        return
    keep = []
    for item in items:
        empty = any(m.name == "skip" and str(m.kwargs.get("reason", "")).startswith(
            "got empty parameter set") for m in item.own_markers)
        if not (empty and Path(str(item.fspath)).resolve() == SUITE.resolve()):
            keep.append(item)
    items[:] = keep


def get_run(config: pytest.Config) -> RunConfig:
    return config.stash[_RUN]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in getattr(report, "user_properties", ()):
        if key not in (_KEY, _KEY + "-pinned"):
            continue
        state = _CURRENT.get("state")
        if state is None:
            return
        data = json.loads(value)
        if key == _KEY:
            state.outcomes[data["id"]] = data
        else:
            state.pinned[data["id"]] = data


_CURRENT: dict[str, Any] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    if _STATE in session.config.stash:
        _CURRENT["state"] = session.config.stash[_STATE]


def pytest_keyboard_interrupt(excinfo) -> None:
    state = _CURRENT.get("state")
    if state is not None:
        state.interrupted = True


def build_document(state: _State, exitstatus: int) -> dict:
    """The results document of the session so far."""
    run = state.run
    info = run.info
    target = {"name": run.target_name, "version": getattr(info, "version", None),
              "description": getattr(info, "description", None) or None,
              "keras": getattr(info, "keras", None), "available": True}
    doc = results.new_document({
        "xentconf_version": __version__,
        "target": target,
        "frameworks": {run.target_name: getattr(info, "version", None)},
        "device": run.device, "profile": run.profile or "cpu", "accuracy": run.accuracy,
        "strict": run.strict,
        "hypothesis_profile": run.hypothesis, "seed": run.seed,
        "examples": run.max_examples,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "started": state.started_iso,
        "duration_s": round(time.time() - state.started, 3),
        "interrupted": bool(state.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED),
        "command": [os.path.basename(sys.argv[0]), *sys.argv[1:]],
    })
    doc["outcomes"] = sorted(state.outcomes.values(), key=lambda o: o["id"])
    matched: dict[str, int] = {}
    for o in doc["outcomes"]:
        for k, v in (o.get("deviation_matches") or {}).items():
            matched[k] = matched.get(k, 0) + v
    for d in run.deviations:
        entry = {**d.to_dict(), "matched": matched.get(d.id, 0), "pinned": None,
                 "pinned_message": None}
        pin = state.pinned.get(d.id)
        if pin is not None:
            entry["pinned"] = pin["status"]
            entry["pinned_message"] = pin["message"]
        doc["deviations"].append(entry)
    return doc


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _CURRENT.pop("state", None)
    if state is None or hasattr(session.config, "workerinput"):
        return
    if state.run.results:
        doc = build_document(state, exitstatus)
        results.write(doc, state.run.results)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _STATE not in config.stash or hasattr(config, "workerinput"):
        return
    state = config.stash[_STATE]
    tr = terminalreporter
    counts: dict[str, int] = {}
    for o in state.outcomes.values():
        counts[o["verdict"]] = counts.get(o["verdict"], 0) + 1
    if not counts:
        return
    tr.section("xentconf")
    run = state.run
    tr.write_line(f"target {run.target_name} on {run.device}/{run.profile}, required grade "
                  f"{run.accuracy}: " + ", ".join(f"{v} {counts[v]}" for v in results.VERDICTS
                                                  if v in counts))
    # an entry declaring a grade at least as good as the required one never applies
    needed = [d for d in run.deviations
              if GRADES_ALL.index(d.grade) > GRADES_ALL.index(run.accuracy)]
    stale = [d.id for d in needed
             if not any(d.id in (o.get("deviation_matches") or {})
                        for o in state.outcomes.values())]
    passing = [k for k, v in state.pinned.items() if v["status"] == "passes"]
    for d in stale:
        tr.write_line(f"known deviation {d!r} matched no case in this run", yellow=True)
    for d in passing:
        tr.write_line(f"known deviation {d!r}: its pinned case passes now (remove the entry?)",
                      yellow=True)
    if run.results:
        tr.write_line(f"results: {run.results}")

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
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from xentconf import __version__, results

if TYPE_CHECKING:
    from .options import RunConfig

# The plugin is loaded by every pytest run where xentconf is installed; it stays inert,
# and cheap, unless --xentconf-target is given: numpy, hypothesis and the oracle are
# imported only then (inside the functions below).

SUITE = Path(__file__).with_name("suite.py")
_KEY = "xentconf"


def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import add_plugin_options

    g = parser.getgroup("xentconf", "xentconf conformance (inert without --xentconf-target)")
    add_plugin_options(g)
    g.addoption("--xentconf-results", default=None, metavar="PATH",
                help="write the results file (JSON) here at the end of the session")


class Carried:
    """A validated, resolved :class:`~xentconf.conformance.options.RunConfig` handed to
    pytest as a plugin object (``xentconf run`` does this), so the plugin need not parse
    command-line options."""

    def __init__(self, run: RunConfig):
        self.run = run


def parse_options(config: pytest.Config) -> RunConfig | None:
    """The run the --xentconf-* options ask for, or None when they ask for none (the plugin
    stays inert); a wrong value is a pytest usage error with one line saying what to fix."""
    from .options import OPTIONS, UsageError, validate

    values = {o.name: config.getoption(f"--xentconf-{o.name}") for o in OPTIONS}
    results_path = config.getoption("--xentconf-results")
    given = [o for o in OPTIONS if o.name != "target"
             and values[o.name] not in (None, [], o.default)]
    if not values["target"] and not given and not results_path:
        return None
    try:
        run = validate(values, flag_prefix="--xentconf-", results=results_path)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    problem = results_path and results.writable_folder(Path(results_path).absolute().parent)
    if problem:  # now, not after the run: a results file that cannot be written is lost
        raise pytest.UsageError(f"--xentconf-results {results_path}: its folder {problem}")
    return run


# ----------------------------------------------------------------------------- hooks


class _State:
    """What the session-owning process gathers; registered as a plugin of its own, so its
    hooks reach the state without a module global."""

    def __init__(self, run: RunConfig):
        self.run = run
        self.started = time.time()
        self.started_iso = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.outcomes: dict[str, dict] = {}
        self.pinned: dict[str, dict] = {}
        self.sweeps: dict[tuple[str, str], list[dict]] = {}  # (api, dtype) -> pair slices
        self.interrupted = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in getattr(report, "user_properties", ()):
            if key == _KEY:
                data = json.loads(value)
                self.outcomes[data["id"]] = data
            elif key == _KEY + "-pinned":
                data = json.loads(value)
                self.pinned[data["id"]] = data
            elif key == _KEY + "-sweep" and report.when == "call":  # not again at teardown
                data = json.loads(value)
                self.sweeps.setdefault((data["api"], data["dtype"]), []).append(data)

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        self.interrupted = True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.run.results and not hasattr(session.config, "workerinput"):
            try:
                results.write(build_document(self, exitstatus), self.run.results)
            except (OSError, results.ResultsError) as exc:  # e.g. the disk filled up
                print(f"xentconf: the results file {self.run.results} could not be "
                      f"written ({exc}); the verdicts above stand", file=sys.stderr)
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR  # a harness failure


_STATE = pytest.StashKey[_State]()
_RUN = pytest.StashKey["RunConfig"]()


def _carried(config: pytest.Config) -> RunConfig | None:
    for p in config.pluginmanager.get_plugins():
        if isinstance(p, Carried):
            return p.run
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xentconf: a conformance test generated by xentconf")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _KEY in workerinput:
        run = pickle.loads(base64.b64decode(workerinput[_KEY]))  # resolved by the controller
    else:
        run = _carried(config)
        if run is None:
            run = parse_options(config)
            if run is None:
                return
            # validate the target once, up front, in the process the user started
            from .options import UsageError, resolve_target
            from .sandbox import Sandbox

            probe = Sandbox(run.spec, timeout=run.timeout, isolate=run.isolate)
            try:
                resolve_target(run, probe)
            except UsageError as exc:
                raise pytest.UsageError(str(exc)) from None
            finally:
                probe.close()
    config.stash[_RUN] = run
    state = config.stash[_STATE] = _State(run)
    config.pluginmanager.register(state, "xentconf-state")
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


def _frameworks(run: RunConfig) -> dict:
    """The target's version, and a callable's array library with its version."""
    from xentconf.protocol import array_version

    out = {run.target_name: getattr(run.info, "version", None)}
    array = run.spec.kwargs.get("array", "numpy")
    if run.callable_target and array != "numpy":
        out[array] = array_version(array)
    return out


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
        "frameworks": _frameworks(run),
        "device": run.device, "profile": run.profile or "cpu", "mode": run.mode or "eager",
        "accuracy": run.accuracy,
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
    if state.sweeps:
        from .sweeper import BLOCK_PAIRS, SweepPlan, chunk_jobs, merge_chunks

        plan = SweepPlan.of(run)
        # the tests judge their slices block by block and count each block as a chunk
        # done (sweeper.judge_slice): the chunks to do are counted in blocks too
        doc["sweeps"] = [merge_chunks(plan, api, dtype, *run.pairs, chunks,
                                      len(chunk_jobs(api, dtype, *run.pairs,
                                                     chunk=BLOCK_PAIRS)))
                         for (api, dtype), chunks in sorted(state.sweeps.items())]
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


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _STATE not in config.stash or hasattr(config, "workerinput"):
        return
    state = config.stash[_STATE]
    tr = terminalreporter
    counts: dict[str, int] = {}
    for o in state.outcomes.values():
        counts[o["verdict"]] = counts.get(o["verdict"], 0) + 1
    if not counts and not state.sweeps:
        return
    tr.section("xentconf")
    run = state.run
    mode = "" if run.mode in (None, "eager") else f"/{run.mode}"
    if counts:
        tr.write_line(f"target {run.target_name} on {run.device}/{run.profile}{mode}, "
                      f"required grade {run.accuracy}: " + ", ".join(
                          f"{v} {counts[v]}" for v in results.VERDICTS if v in counts))
    # an entry declaring a grade at least as good as the required one never applies
    needed = [d for d in run.deviations
              if results.GRADES.index(d.grade) > results.GRADES.index(run.accuracy)]
    stale = [d.id for d in needed
             if not any(d.id in (o.get("deviation_matches") or {})
                        for o in state.outcomes.values())]
    passing = [k for k, v in state.pinned.items() if v["status"] == "passes"]
    for d in stale:
        tr.write_line(f"known deviation {d!r} matched no case in this run", yellow=True)
    for d in passing:
        tr.write_line(f"known deviation {d!r}: its pinned case passes now (remove the entry?)",
                      yellow=True)
    for (api, dtype), chunks in sorted(state.sweeps.items()):
        rows = sum(c["rows"] for c in chunks)
        verdicts: dict[str, int] = {}
        for c in chunks:
            for k, n in c["verdicts"].items():
                verdicts[k] = verdicts.get(k, 0) + n
        tr.write_line(f"pair sweep {dtype} {api}: {rows} rows: " +
                      ", ".join(f"{v} {verdicts[v]}" for v in results.VERDICTS
                                if v in verdicts))
    if run.results:
        tr.write_line(f"results: {run.results}")

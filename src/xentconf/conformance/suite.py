"""The conformance suite: the tests the plugin adds when ``--xentconf-target`` is given.

Test ids read like a table: ``test_conformance[<target>-<device>-<dtype>-<api>-<feature>]``
(one per API × dtype × feature the target implements), ``test_pinned_deviation[<id>]``
(one per known deviation with a pinned case), ``test_sweep[...]`` (the exhaustive
16-bit sweeps, sharded so that xdist workers split them) and, when ``pairs`` is given,
``test_pair_sweep[<target>-<device>-<dtype>-<api>-pairs-<start>-<stop>]`` (a slice of
every float16/bfloat16 pair, as ``xentconf sweep`` judges it, :data:`TEST_PAIRS` pairs a
test). Capabilities decide skips at collection; tests never branch on the device.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass

import pytest

from xentconf.protocol import API_SHORT

from .checker import Checker, TestSpec
from .checker import support as _support
from .plugin import get_run
from .sandbox import Sandbox
from .strategies import FEATURES_OF
from .sweep import SWEEP_APIS, SWEEP_DTYPES, sweep_shards
from .sweeper import BAD_VERDICTS, SweepPlan, chunk_jobs, judge_slice

# numpy's warnings about casting the generated NaN/inf/huge values are expected noise
pytestmark = [pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")]


def _specs(run) -> list[TestSpec]:
    info = run.info
    out = []
    for api in run.apis:
        sup = info.apis[api]
        for dtype in run.dtypes:
            for feature in FEATURES_OF[api]:
                if run.features and feature not in run.features:
                    continue
                tid = f"{run.target_name}-{run.device}-{dtype}-{API_SHORT[api]}-{feature}"
                support = _support(info, api, feature)
                reason = ""
                if dtype not in sup.dtypes:
                    reason = f"{run.target_name} declares {dtype} unsupported for " \
                             f"{API_SHORT[api]}"
                elif support == "unsupported":
                    reason = f"{run.target_name} declares {feature} unsupported for " \
                             f"{API_SHORT[api]}"
                out.append(TestSpec(tid, api, dtype, feature, support, reason))
    return out


def _pins(run) -> list:
    return [d for d in run.deviations if d.pinned is not None and _pin_applies(run, d)]


def _shards(run) -> list:
    shards = []
    if run.sweep and (not run.features or "sweep" in run.features):
        for api in SWEEP_APIS:
            if api not in run.apis:
                continue
            for dtype in SWEEP_DTYPES:
                if dtype in run.dtypes and dtype in run.info.apis[api].dtypes:
                    shards += sweep_shards(run.target_name, run.device, api, dtype)
    return shards


#: Pairs one test of the pair sweep judges (2^24: 256 chunks, a few minutes a test).
TEST_PAIRS = 1 << 24


@dataclass(frozen=True)
class PairSlice:
    id: str
    api: str
    dtype: str
    start: int
    stop: int


def _pair_slices(run) -> list[PairSlice]:
    if run.pairs is None or (run.features and "pairs" not in run.features):
        return []
    out = []
    for api in SWEEP_APIS:
        if api not in run.apis:
            continue
        for dtype in SWEEP_DTYPES:
            if dtype in run.dtypes and dtype in run.info.apis[api].dtypes:
                for _, _, lo, hi in chunk_jobs(api, dtype, *run.pairs, chunk=TEST_PAIRS):
                    out.append(PairSlice(f"{run.target_name}-{run.device}-{dtype}-"
                                         f"{API_SHORT[api]}-pairs-{lo:08x}-{hi:08x}",
                                         api, dtype, lo, hi))
    return out


def _parametrized():
    """Each test function's fixture and what it is parametrized by (items with an ``id``)."""
    return (("xentconf_test", _specs), ("xentconf_pinned", _pins),
            ("xentconf_shard", _shards), ("xentconf_pairs", _pair_slices))


def planned(run) -> int:
    """How many tests a resolved run will collect (0: the selection is empty)."""
    return sum(len(items(run)) for _fixture, items in _parametrized())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run = get_run(metafunc.config)
    for fixture, items in _parametrized():
        if fixture in metafunc.fixturenames:
            got = items(run)
            metafunc.parametrize(fixture, got, ids=[g.id for g in got])


def _pin_applies(run, d) -> bool:
    """The pinned case's target, device and dtype fields match this run."""
    fields = d.id.split("-", 4)
    if len(fields) < 4:
        return True
    case = d.pinned
    if d.keras is not None and (run.info.keras or "keras2") != d.keras:
        return False
    if d.profile is not None and d.profile != run.profile:
        return False
    diff = {"features", "logits", "y_pred"} & set(case["args"])
    dtype = case["args"][diff.pop()].dtype.name if diff else "*"
    api_short = API_SHORT.get(case["api"], "*")
    return all(fnmatch.fnmatchcase(v, p) for v, p in
               zip((run.target_name, run.device, dtype, api_short), fields[:4])) and \
        case["api"] in run.apis


@pytest.fixture(scope="session")
def xentconf_checker(request):
    run = get_run(request.config)
    sandbox = Sandbox(run.spec, timeout=run.timeout, isolate=run.isolate)
    if run.info is None:  # an xdist worker: load the target's info in this process
        from .options import resolve_target

        resolve_target(run, sandbox)
    checker = Checker(
        sandbox=sandbox, target_name=run.target_name, device=run.device,
        profile=run.profile, keras=run.info.keras, accuracy=run.accuracy,
        deviations=run.deviations,
        support_of=lambda api, feature: _support(run.info, api, feature),
        callable_spec=run.callable_target, target_options=run.spec.kwargs,
        strict=run.strict, mode=run.mode or "eager")
    yield checker
    sandbox.close()


def _finish(request, outcome: dict) -> None:
    request.node.user_properties.append(("xentconf", json.dumps(outcome)))
    verdict = outcome["verdict"]
    if verdict in ("pass", "as-tensorflow"):  # as-tensorflow is a fail under --strict
        return
    if verdict == "skip":
        pytest.skip(outcome["message"])
    if verdict == "deviation":
        pytest.xfail(outcome["message"][:500])
    pytest.fail(f"{verdict}: {outcome['message']}"[:2000], pytrace=False)


@pytest.mark.xentconf
def test_conformance(xentconf_test: TestSpec, xentconf_checker: Checker, request) -> None:
    run = get_run(request.config)
    outcome = xentconf_checker.run_test(
        xentconf_test, max_examples=run.max_examples, shrink_seconds=run.shrink_seconds,
        derandomize=run.derandomize, seed=run.seed)
    _finish(request, outcome)


@pytest.mark.xentconf
def test_pinned_deviation(xentconf_pinned, xentconf_checker: Checker, request) -> None:
    """The pinned case of a known deviation still shows it (and is no worse)."""
    d = xentconf_pinned
    status, message = xentconf_checker.check_pinned(d)
    request.node.user_properties.append(
        ("xentconf-pinned", json.dumps({"id": d.id, "status": status, "message": message})))
    if status == "error":
        pytest.fail(f"known deviation {d.id}: {message}", pytrace=False)
    if status == "passes":
        pytest.xfail(f"known deviation {d.id}: the pinned case passes now — {message}")


@pytest.mark.xentconf
def test_sweep(xentconf_shard, xentconf_checker: Checker, request) -> None:
    outcome = xentconf_checker.run_sweep(xentconf_shard)
    _finish(request, outcome)



@pytest.mark.xentconf
def test_pair_sweep(xentconf_pairs: PairSlice, xentconf_checker: Checker, request) -> None:
    """A slice of the pair sweep; the plugin merges the slices into the results' sweeps."""
    s = xentconf_pairs
    got = judge_slice(SweepPlan.of(get_run(request.config)), xentconf_checker, s.api,
                      s.dtype, s.start, s.stop)
    request.node.user_properties.append(("xentconf-sweep", json.dumps(got)))
    bad = sum(n for v, n in got["verdicts"].items() if v in BAD_VERDICTS)
    if bad:
        first = max(got["kinds"].items(), key=lambda kv: kv[1]["count"], default=None)
        what = f"; most: {first[0]} ({first[1]['count']} rows)" if first else \
            "; " + "; ".join(c["message"] for c in got["crashed"])[:500]
        pytest.fail(f"{bad} of {got['rows']} rows do not conform{what}", pytrace=False)
    if got["verdicts"].get("deviation"):
        pytest.xfail(f"{got['verdicts']['deviation']} rows are known deviations")

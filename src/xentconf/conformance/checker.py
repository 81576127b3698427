"""Checking a target on generated cases: one test (API × dtype × feature) at a time.

:class:`Checker` runs the property "the target conforms on every case" with hypothesis:
each example is a :class:`~xentconf.conformance.strategies.Case`; the oracle (vectorized
tier) gives the expectation; the target answers through the :class:`Sandbox`; the
verdict grades it. A case that misses the required grade but is covered by a known
deviation is recorded, not raised. A real failure is classified by its kind
(:data:`~xentconf.results.FAILURE_KINDS`) and case tags, and raises an exception class of
its own per distinct (kind, tags), so that hypothesis (``report_multiple_bugs``) shrinks
each distinct failure separately: a crash or a timeout is never hidden behind another
failure. Every kind gets a class of its own, and another for each category of the feature
(the kind of bad label, regime, ...) it shows up in, while fewer than :data:`FAILURES_CAP`
classes exist; without categories, for other case tags, at most :data:`PER_KIND`. Once
:data:`HYPOTHESIS_SHARE` of the shrink budget is spent (counting, after a timeout, the
time limit the next try may cost), new examples are rejected and only the failures
already seen are replayed (their outcome is remembered, so a crash is not re-run). Each
minimal failure is then shrunk on its arrays (:mod:`.shrink`) for the rest of the budget,
and becomes one entry of the outcome's ``failures``, with its own counterexample and
reproducer.
"""

from __future__ import annotations

import builtins
import functools
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import seed as hyp_seed
from hypothesis import target as hyp_target
from hypothesis.errors import Flaky, InvalidArgument, Unsatisfiable

from xentconf import results
from xentconf.oracle import GRADES, OracleInputError
from xentconf.oracle.fast import oracle_call
from xentconf.protocol import API_SHORT, KERAS_APIS, RAW_OPS, Call, Setup
from xentconf.results import FAILURE_KINDS

from . import deviations as devmod
from .reproducer import array_json, case_json, script
from .sandbox import Result, Sandbox
from .shrink import simplify
from .strategies import Case, cases, categories, upstream_for
from .verdict import CaseVerdict, Raised, grade_index, judge, worse

__all__ = ["CaseFailure", "Checker", "TestSpec", "support"]

ARRAY_LIMIT = 4096  # elements of an array kept in a results file
SAMPLES_LIMIT = 400
FAILURES_CAP = 6  # distinct failures shown per test: one for each kind of bad label
PER_KIND = 2  # of them, at most this many of one kind told apart by case tags alone
HYPOTHESIS_SHARE = 0.6  # of the shrink budget for hypothesis; the rest shrinks arrays
MIN_CLASSES = {"large_classes": 50_000}  # the feature's floor of classes
MIN_BATCH_RANK = {"rank3+": 2, "rank1": 0}  # the feature's floor of batch dimensions
_FAILING = ("fail", "crash", "timeout", "error")
_VERDICT_OF = {"crash": "crash", "timeout": "timeout", "error": "error"}


@dataclass(frozen=True)
class TestSpec:
    """One conformance test: the id, API, dtype, feature and how the target supports it."""

    __test__ = False  # not a pytest test class

    id: str
    api: str
    dtype: str
    feature: str
    support: str  # native | composed | unsupported
    skip_reason: str = ""


def support(info, api: str, feature: str) -> str:
    """How target ``info`` supports ``feature`` of ``api``: native, composed or unsupported."""
    s = info.apis.get(api)
    if s is None:
        return "unsupported"
    if feature in s.unsupported:
        return "unsupported"
    if feature in s.composed:
        return "composed"
    return "native"


class CaseFailure(AssertionError):
    """A case the target fails (raised inside the hypothesis test so that it shrinks);
    each distinct failure of a test raises a subclass of its own."""

    def __init__(self, kind: str, message: str, seen: _Seen | None = None):
        super().__init__(message)
        self.kind = kind
        self.seen = seen


def _failure_class(kind: str, tags: tuple) -> type[CaseFailure]:
    name = f"CaseFailure[{kind}{'|' + ','.join(tags) if tags else ''}]"
    return type(name, (CaseFailure,), {"__qualname__": name})


@dataclass
class _Seen:
    """What one checked case left behind (kept for failures and the worst case)."""

    case: Case
    kind: str  # pass | deviation | fail | crash | timeout | error
    verdict: CaseVerdict | None
    message: str
    upstream: Any = None
    expected: dict | None = None
    actual: dict | None = None
    setup: Setup | None = None
    call: Call | None = None
    failure: str | None = None  # the kind of failure (FAILURE_KINDS) when it fails
    returned: str | None = None  # what a failing target gave: "nan", "values" or "raised"


@dataclass
class _Record:
    examples: int = 0
    grade: str | None = None
    worst_ulps: float = 0.0
    worst_budget: float = 0.0
    worst_output: str | None = None
    samples: list = field(default_factory=list)
    deviation_matches: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)  # case key -> _Seen
    first_failure_at: float | None = None
    timed_out: float = 0.0  # seconds of the longest call that ran into the time limit
    drawn: set = field(default_factory=set)  # case tags of the examples checked
    deviation_seen: _Seen | None = None
    classes: dict = field(default_factory=dict)  # (kind, tags) -> CaseFailure subclass
    last_of_class: dict = field(default_factory=dict)  # class -> the last _Seen raised
    as_tensorflow_seen: _Seen | None = None
    mechanisms: dict = field(default_factory=dict)  # mechanism -> cases it explained
    contract: dict = field(default_factory=dict)  # "raised"/"coerced" -> cases


def _budget_spent(rec: _Record, shrink_seconds: float) -> bool:
    """Whether hypothesis's part of the shrink budget is spent, counting the try it would
    make next: after a timeout, a try may cost the whole time limit again (a target that
    hangs would otherwise be called once more after its budget, for the full limit)."""
    if rec.first_failure_at is None:
        return False
    spent = time.perf_counter() - rec.first_failure_at
    return spent + rec.timed_out > shrink_seconds * HYPOTHESIS_SHARE


def _excused(v: CaseVerdict, d) -> bool:
    """Whether deviation ``d`` covers verdict ``v``: the grade reached is no worse than
    declared, and nothing structural is wrong (a wrong NaN or inf only with nonfinite)."""
    if v.grade is None or grade_index(v.grade) > grade_index(d.grade):
        return False
    return not v.structural or (v.special_only and d.nonfinite)


def _kind_of(exp, answer, v: CaseVerdict) -> str:
    """The kind of a failing verdict (one of FAILURE_KINDS)."""
    if exp.raises is not None:
        return "tf-raises"
    if isinstance(answer, Raised):
        return "target-raises"
    if v.structural and not v.special_only:
        return "dtype-shape"  # also an output missing
    if v.special_only:
        return "nan-inf"
    return "outside-budget"


def _returned(answer) -> str:
    """What the target gave, as far as telling two bugs of one kind apart goes: it raised,
    returned NaN somewhere, or returned values."""
    if isinstance(answer, Raised):
        return "raised"
    with np.errstate(all="ignore"):
        nan = any(np.isnan(np.asarray(v, dtype=np.float64)).any() for v in answer.values()
                  if np.asarray(v).dtype.kind in "fcV")
    return "nan" if nan else "values"


def _key(case: Case) -> tuple:
    shapes = tuple((k, np.shape(v), str(np.asarray(v).dtype)) if isinstance(
        v, np.ndarray | np.generic) else (k, repr(v)) for k, v in case.args.items())
    return (case.seed, case.tags, shapes, repr(sorted(case.init.items())))


_GROUP = getattr(builtins, "BaseExceptionGroup", None)
if _GROUP is None:  # Python 3.10: hypothesis depends on the backport
    from exceptiongroup import BaseExceptionGroup as _GROUP

_VERDICTS_ORDER = ("fail", "crash", "timeout", "error")  # the worse, the later


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc`` (an exception group, flattened), or ``exc``."""
    if isinstance(exc, _GROUP):
        out = []
        for e in exc.exceptions:
            out += _leaves(e)
        return out
    return [exc]


def _base_settings() -> settings:
    """The hypothesis profile every conformance test starts from (registered once): no
    deadline or example database, every health check off (cases are generated cheaply by
    numpy), every distinct failure reported."""
    try:
        return settings.get_profile("xentconf")
    except InvalidArgument:
        settings.register_profile("xentconf", deadline=None, database=None,
                                  suppress_health_check=list(HealthCheck), print_blob=False,
                                  report_multiple_bugs=True)
        return settings.get_profile("xentconf")


#: The largest case (array elements) a conforming outcome (deviation, as-tensorflow)
#: keeps as its example: those cases are not shrunk, and an unshrunk large-classes case
#: is a megabyte of results for an outcome that needs no reproducer.
EXAMPLE_ELEMENTS = 4096


def _elements(case) -> int:
    return sum(int(np.size(v)) for v in case.args.values() if hasattr(v, "shape"))


class Checker:
    """Holds one target to the oracle over generated cases."""

    def __init__(self, *, sandbox: Sandbox, target_name: str, device: str, profile: str,
                 keras: str | None, accuracy: str, deviations: list, support_of,
                 callable_spec: bool = False, target_options: dict | None = None,
                 strict: bool = False, mode: str = "eager"):
        self.sandbox = sandbox
        self.mode = mode  # how the target's mode executes (Mode.name)
        self.target_name = target_name
        self.device = device
        self.profile = profile
        self.keras = keras or "keras2"
        self.accuracy = accuracy
        self.deviations = deviations
        self.support_of = support_of  # (api, feature) -> "native"|"composed"|"unsupported"
        self.callable_spec = callable_spec
        self.target_options = target_options or {}
        self.strict = strict  # as-tensorflow is a failure

    # ------------------------------------------------------------------ one case

    def expectation(self, api: str, args: dict, init: dict, upstream=None):
        return oracle_call(api, dict(args), dict(init) if api in KERAS_APIS else None,
                           profile=self.profile, keras=self.keras, upstream=upstream)

    def wants_grad(self, api: str) -> bool:
        return self.support_of(api, "grad") != "unsupported"

    def output_names(self, api: str, exp, grad: bool) -> tuple[str, ...]:
        """The outputs to judge: the oracle always offers grad_logits (for an upstream of
        ones when none is given); it is judged only when an upstream was sent."""
        names = [n for n in exp.outputs if grad or n != "grad_logits"]
        if api in RAW_OPS and self.support_of(api, "backprop") == "unsupported":
            names = [n for n in names if n != "backprop"]
        return tuple(names)

    def check_case(self, spec: TestSpec, case: Case, rec: _Record) -> _Seen:
        """Evaluate one case; record it; return what was seen (raising is the caller's)."""
        api = case.api
        try:
            exp0 = self.expectation(api, case.args, case.init)
            up = None
            if exp0.raises is None and self.wants_grad(api) and "loss" in exp0.outputs:
                lo = exp0.outputs["loss"]
                up = upstream_for(lo.shape, lo.dtype, case.seed)
                exp = self.expectation(api, case.args, case.init, up)
            else:
                exp = exp0
        except OracleInputError as exc:  # a generator bug: the oracle refuses the input
            return self._note(rec, _Seen(case, "error", None,
                                         f"the oracle cannot take this case: {exc}"))
        setup = Setup(api, device=self.device, profile=self.profile, mode=self.mode,
                      init=tuple(sorted(case.init.items())), grad=up is not None)
        call = Call(api, dict(case.args), dict(case.init), upstream=up)
        res: Result = self.sandbox.call(setup, call)
        if res.kind == "timeout":
            rec.timed_out = max(rec.timed_out, res.seconds)
        if res.kind in ("crash", "timeout", "error"):
            return self._note(rec, _Seen(case, res.kind, None, res.text, up, setup=setup,
                                         call=call, expected=self._expected(exp),
                                         failure=res.kind))
        answer: dict | Raised = res.outputs if res.kind == "ok" else res.raised
        names = self.output_names(api, exp, up is not None) if exp.raises is None else None
        v = judge(exp, answer, self.accuracy, names)
        cid = devmod.case_id(spec.id, (*case.tags, *v.tags))
        seen = _Seen(case, "pass", v, v.message, up, setup=setup, call=call)
        if v.as_tensorflow:
            seen.kind = "fail" if self.strict else "as-tensorflow"
            seen.message = f"{cid}: {v.message}" + (" (--strict)" if self.strict else "")
            if self.strict:
                seen.failure, seen.returned = _kind_of(exp, answer, v), _returned(answer)
        elif not v.ok:
            matches = devmod.matching(self.deviations, cid, self.keras, self.profile)
            lenient = next((d for d in matches if _excused(v, d)), None)
            if lenient is not None:
                seen.kind = "deviation"
                seen.message = f"known deviation {lenient.id}: {v.message}"
                for d in matches:
                    rec.deviation_matches[d.id] = rec.deviation_matches.get(d.id, 0) + 1
            else:
                seen.kind = "fail"
                seen.message = f"{cid}: {v.message}"
                seen.failure = _kind_of(exp, answer, v)
                seen.returned = _returned(answer)
        if seen.kind != "pass":
            seen.expected = self._expected(exp)
            seen.actual = self._actual(answer)
        return self._note(rec, seen)

    def _note(self, rec: _Record, seen: _Seen) -> _Seen:
        rec.examples += 1
        v = seen.verdict
        if v is not None:
            rec.grade = worse(rec.grade, v.grade)  # what was reached, declared or not
            for m in v.mechanisms if seen.kind == "as-tensorflow" else ():
                rec.mechanisms[m] = rec.mechanisms.get(m, 0) + 1
            if v.contract is not None:
                rec.contract[v.contract] = rec.contract.get(v.contract, 0) + 1
            if v.worst_budget is not None:
                if v.worst_budget >= rec.worst_budget:
                    rec.worst_output = v.worst_output or rec.worst_output
                rec.worst_budget = max(rec.worst_budget, v.worst_budget)
                rec.worst_ulps = max(rec.worst_ulps, v.worst_ulps or 0.0)
                if len(rec.samples) < SAMPLES_LIMIT:
                    rec.samples.append(results.json_number(v.worst_budget))
        elif seen.kind in ("crash", "timeout", "error"):
            rec.grade = worse(rec.grade, "fail")
        if seen.kind == "deviation" and rec.deviation_seen is None:
            rec.deviation_seen = seen
        if seen.kind == "as-tensorflow" and rec.as_tensorflow_seen is None:
            rec.as_tensorflow_seen = seen
        return seen

    @staticmethod
    def _expected(exp) -> dict | None:
        if exp.raises is not None:
            return {"raises": {"error": exp.raises.error, "message": exp.raises.message}}
        out = {}
        for name, o in exp.outputs.items():
            a = array_json(o.rounded, ARRAY_LIMIT)
            out[name] = a
        return out

    @staticmethod
    def _actual(answer) -> dict:
        if isinstance(answer, Raised):
            return {"raises": {"error": answer.error, "message": answer.message}}
        return {k: array_json(np.asarray(v), ARRAY_LIMIT) for k, v in answer.items()}

    # ------------------------------------------------------------------ one test

    def _raise(self, rec: _Record, seen: _Seen) -> CaseFailure:
        """The exception of ``seen``'s distinct failure, a class per (kind, tags): every
        kind — and within a kind, every way of getting it wrong (returning NaN, returning
        values, raising) — gets a class of its own (so a crash or a timeout, or a second
        bug, is never hidden); a kind gets another for each category of the feature, or
        without one for other case tags while it has fewer than :data:`PER_KIND`, while
        fewer than :data:`FAILURES_CAP` classes exist; past that, its first class. (Two
        bugs that fail alike are told apart only by the category they show up in: capping
        categories per kind would report an arbitrary few of them, and hide the rest.)"""
        kind = seen.failure if seen.returned is None else f"{seen.failure}/{seen.returned}"
        cats = categories(seen.case.api, seen.case.feature, self.keras)
        # a feature's category (the kind of bad label, regime, ...) tells bugs apart
        category = tuple(t for t in seen.case.tags if t in cats)
        key = (kind, category or seen.case.tags)
        cls = rec.classes.get(key)
        if cls is None:
            same = [c for (k, _), c in rec.classes.items() if k == kind]
            if not same or (len(set(rec.classes.values())) < FAILURES_CAP and
                            (category or len(set(same)) < PER_KIND)):
                cls = _failure_class(*key)
            else:
                cls = same[0]
            rec.classes[key] = cls
        rec.last_of_class[cls] = seen
        return cls(seen.kind, seen.message, seen)

    def run_test(self, spec: TestSpec, *, max_examples: int, shrink_seconds: float,
                 derandomize: bool, seed: int | None) -> dict:
        """Run one test's property; return its outcome record (results schema)."""
        t0 = time.perf_counter()
        rec = _Record()
        if spec.skip_reason:
            return self._outcome(spec, rec, "skip", spec.skip_reason, t0)
        n = max(2, max_examples // 5) if spec.feature == "large_classes" else max_examples

        def prop(case: Case) -> None:
            key = _key(case)
            known = rec.failures.get(key)
            if known is not None:  # a replay of a failure: do not run it again
                raise self._raise(rec, known)
            if _budget_spent(rec, shrink_seconds):
                assume(False)  # hypothesis's part of the shrink budget is spent
            seen = self.check_case(spec, case, rec)
            rec.drawn.update(case.tags)
            v = seen.verdict
            if v is not None and v.worst_budget is not None and math.isfinite(v.worst_budget):
                hyp_target(float(min(v.worst_budget, 1e12)), label="error / stable budget")
            if seen.kind in _FAILING:
                rec.failures[key] = seen
                if rec.first_failure_at is None:
                    rec.first_failure_at = time.perf_counter()
                raise self._raise(rec, seen)

        harness: BaseException | None = None
        minimal: dict = {}  # class -> the minimal _Seen hypothesis reported

        def explore(category: str | None, examples: int) -> None:
            nonlocal harness
            test = settings(_base_settings(), max_examples=examples, derandomize=derandomize)(
                given(cases(spec.api, spec.dtype, spec.feature, keras=self.keras,
                            category=category))(prop))
            if seed is not None:
                test = hyp_seed(seed)(test)
            try:
                test()
            except (CaseFailure, Flaky, _GROUP) as exc:
                for e in _leaves(exc):
                    if isinstance(e, CaseFailure) and e.seen is not None:
                        minimal[type(e)] = e.seen
                    elif not isinstance(e, Flaky | CaseFailure):
                        harness = harness or e
            except Unsatisfiable:
                pass  # every example was turned away: the shrink budget is spent
            except BaseException as exc:  # noqa: BLE001 - a harness error is an outcome too
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                harness = exc

        explore(None, n)
        # Every category of the feature (each kind of bad label, regime, invalid input, ...)
        # is checked, whatever the draws: one the examples missed gets a few of its own.
        # Hypothesis also stops looking soon after a first bug, and a second bug in another
        # category would stay hidden: then each category no failure has shown yet gets
        # them, drawn before or not.
        for category in categories(spec.api, spec.feature, self.keras):
            if harness is not None or _budget_spent(rec, shrink_seconds):
                break
            failed = any(category in s.case.tags for s in rec.failures.values())
            if not failed and (rec.failures or category not in rec.drawn):
                explore(category, max(2, n // 5))
        for cls, seen in rec.last_of_class.items():  # a class hypothesis did not report
            minimal.setdefault(cls, seen)
        if minimal:
            return self._failing(spec, rec, list(minimal.values()), t0, shrink_seconds)
        if harness is not None:
            return self._outcome(spec, rec, "error", f"the harness failed: "
                                 f"{type(harness).__name__}: {harness}", t0)
        if rec.deviation_seen is not None:
            d = rec.deviation_seen
            return self._outcome(spec, rec, "deviation", d.message, t0, d)
        if rec.as_tensorflow_seen is not None:
            a = rec.as_tensorflow_seen
            return self._outcome(spec, rec, "as-tensorflow", a.message, t0, a)
        if rec.examples == 0:
            return self._outcome(spec, rec, "error", "no example could be generated", t0)
        return self._outcome(spec, rec, "pass", f"{rec.examples} examples conform", t0)

    def _failing(self, spec: TestSpec, rec: _Record, found: list[_Seen], t0: float,
                 shrink_seconds: float) -> dict:
        """The outcome of a failing test: each distinct failure shrunk on its arrays (a
        timeout is not: every try would cost the time limit), worst first."""
        start = time.perf_counter()
        first = rec.first_failure_at if rec.first_failure_at is not None else start
        deadline = max(first + shrink_seconds,
                       start + shrink_seconds * (1 - HYPOTHESIS_SHARE) / 2)
        order = {k: i for i, k in enumerate(FAILURE_KINDS)}
        found = sorted(found, key=lambda s: order.get(s.failure or "error", 0))
        shrunk = []
        for i, seen in enumerate(found):
            share = start + (deadline - start) * (i + 1) / len(found)
            if seen.failure != "timeout" and time.perf_counter() < share:
                seen = self._simplify(spec, seen, share)
            shrunk.append(seen)
        failures, cases = [], set()
        for s in shrunk:  # two case tags of one kind may shrink to the same case
            same = (s.failure, json.dumps(case_json(s.case.api, s.case.args, s.case.init,
                                                    profile=self.profile, keras=self.keras)))
            if same not in cases:
                cases.add(same)
                failures.append(self._failure_record(spec, s))
        failures.sort(key=lambda f: (-_VERDICTS_ORDER.index(f["verdict"]), order[f["kind"]]))
        worst = failures[0]
        message = worst["message"] if len(failures) == 1 else \
            f"{len(failures)} distinct failures: " + "; ".join(
                f"[{f['kind']}] {f['message']}" for f in failures)
        # past FAILURES_CAP a category's failures are not shrunk or shown, but still named
        cats = categories(spec.api, spec.feature, self.keras)
        shown = {t for s in found for t in s.case.tags}
        unshown = [c for c in cats if c not in shown and
                   any(c in s.case.tags for s in rec.failures.values())]
        if unshown:
            message += (f"; it also fails in {', '.join(unshown)} (past the {FAILURES_CAP} "
                        f"failures a test shows)")
        return self._outcome(spec, rec, worst["verdict"], message, t0, failures=failures,
                             **{k: worst[k] for k in ("counterexample", "expected", "actual",
                                                      "reproducer")})

    def _simplify(self, spec: TestSpec, seen: _Seen, deadline: float) -> _Seen:
        """``seen``'s case shrunk on its arrays while the same kind of failure persists."""
        scratch = _Record()

        def fails(case: Case):
            s = self.check_case(spec, case, scratch)
            return s if s.kind in _FAILING and (s.failure, s.returned) == \
                (seen.failure, seen.returned) else None

        first_row = None
        v = seen.verdict
        if v is not None and v.failing:
            name, flat = next(iter(v.failing.items()))
            lay_logits = next((a for k, a in seen.case.args.items()
                               if k in ("features", "logits", "y_pred")), None)
            if name == "loss" and lay_logits is not None and np.ndim(lay_logits) == 2:
                first_row = int(flat)
        try:
            _, got = simplify(seen.case, fails, deadline, first_row=first_row,
                              min_classes=MIN_CLASSES.get(spec.feature, 1),
                              min_rank=MIN_BATCH_RANK.get(spec.feature, 1))
        except Exception:  # noqa: BLE001 - the case hypothesis found stands
            return seen
        return got if got is not None else seen

    def _counterexample(self, seen: _Seen) -> dict:
        """The case of ``seen`` in the case format; it stays readable by ``xentconf oracle``
        (whose description is free text)."""
        c = seen.case
        out = case_json(c.api, c.args, c.init, profile=self.profile, keras=self.keras,
                        upstream=seen.upstream)
        if c.tags:
            out["description"] = "case tags: " + ", ".join(c.tags)
        return out

    def _failure_record(self, spec: TestSpec, seen: _Seen) -> dict:
        kind = seen.failure or "error"
        return results.failure(
            kind=kind, verdict=_VERDICT_OF.get(kind, "fail"), message=seen.message,
            tags=list(seen.case.tags), grade=seen.verdict.grade if seen.verdict else None,
            counterexample=self._counterexample(seen), expected=seen.expected,
            actual=seen.actual, reproducer=self.reproducer(spec, seen))

    def _outcome(self, spec: TestSpec, rec: _Record, verdict: str, message: str, t0: float,
                 seen: _Seen | None = None, **found: Any) -> dict:
        """The outcome record; the counterexample's fields come from ``seen``, or are given
        in ``found`` (a failing test's worst of several distinct failures)."""
        grade = rec.grade  # None when only error semantics were judged
        conforming = verdict in ("deviation", "as-tensorflow")
        if seen is not None and not (conforming and _elements(seen.case) > EXAMPLE_ELEMENTS):
            found = {"counterexample": self._counterexample(seen), "expected": seen.expected,
                     "actual": seen.actual}
            if not conforming:
                found["reproducer"] = self.reproducer(spec, seen)
                if seen.failure is not None:
                    found["failures"] = [self._failure_record(spec, seen)]
        return results.outcome(
            id=spec.id, target=self.target_name, device=self.device, profile=self.profile,
            api=spec.api, api_short=API_SHORT[spec.api], dtype=spec.dtype,
            feature=spec.feature, support=spec.support, verdict=verdict,
            grade=grade if grade in GRADES else None, required=self.accuracy,
            examples=rec.examples,
            worst_ulps=results.json_number(rec.worst_ulps) if rec.examples else None,
            worst_budget=results.json_number(rec.worst_budget) if rec.examples else None,
            worst_output=rec.worst_output, message=message,
            deviation=", ".join(sorted(rec.deviation_matches)) or None,
            deviation_matches=dict(rec.deviation_matches) or None,
            duration_s=round(time.perf_counter() - t0, 4), samples=rec.samples or None,
            mechanisms=dict(rec.mechanisms) or None, contract=dict(rec.contract) or None,
            **found)

    def reproducer(self, spec: TestSpec, seen: _Seen) -> str | None:
        c = seen.case
        try:
            exp = self.expectation(c.api, c.args, c.init, seen.upstream)
        except Exception:
            return None
        expected = {}
        if exp.raises is None:
            for name in self.output_names(c.api, exp, seen.upstream is not None):
                o = exp.outputs[name]
                budget = np.zeros(o.shape) if self.accuracy == "exact" else \
                    o.budgets[self.accuracy]
                expected[name] = (o.rounded, budget)
        snippet = None
        if not self.callable_spec and seen.setup is not None:
            snippet = self.sandbox.snippet(seen.setup, seen.call)
        message = seen.message
        if exp.raises is not None:
            message += f" (TensorFlow raises {exp.raises.error}: the target must raise too)"
        return script(test_id=spec.id, target=self.sandbox.spec.name,
                      target_options=self.target_options, api=c.api, profile=self.profile,
                      mode=self.mode, device=self.device, args=c.args, init=c.init,
                      upstream=seen.upstream,
                      expected=expected, message=message, snippet=snippet,
                      callable_spec=self.callable_spec,
                      raises=exp.raises.error if exp.raises is not None else None)

    # ------------------------------------------------------------------ pinned, sweeps


    def check_pinned(self, d) -> tuple[str, str]:
        """Re-run a deviation's pinned case: ``shows`` (fails the required grade, reaches the
        declared one), ``passes`` (conforms now: the entry may be stale) or ``error``."""
        case = d.pinned
        api = case["api"]
        init = dict(case["init"] or {})
        up = case.get("upstream")
        try:
            exp = self.expectation(api, case["args"], init, up)
        except Exception as exc:  # noqa: BLE001
            return "error", f"the oracle cannot take the pinned case: {exc}"
        setup = Setup(api, device=self.device, profile=self.profile, mode=self.mode,
                      init=tuple(sorted(init.items())), grad=up is not None)
        res = self.sandbox.call(setup, Call(api, dict(case["args"]), init, upstream=up))
        if res.kind in ("crash", "timeout", "error"):
            return "error", f"{res.kind}: {res.text}"
        answer = res.outputs if res.kind == "ok" else res.raised
        names = self.output_names(api, exp, up is not None) if exp.raises is None else None
        # the deviation is real when the case misses the grade just better than declared
        better = GRADES[max(grade_index(d.grade) - 1, 0)]
        v = judge(exp, answer, better, names)
        if v.ok:
            return "passes", f"reaches {v.grade or 'the error semantics'}, better than the " \
                             f"declared {d.grade}"
        if not _excused(v, d):
            return "error", f"worse than declared ({d.grade}): {v.message}"
        return "shows", f"reaches {v.grade}: {v.message}"


    def sweep_expectation(self, api: str, x: np.ndarray, labels: np.ndarray, seed: int):
        """The expectation of sweep rows ``x`` [N, 2] with ``labels`` [N] in one vectorized
        call: (argument names, args, expectation, upstream or None). The exact values the
        verdict consults come from the same rows in float64 (the oracle's
        ``exact64_source``: the engine's double-double path is cheap there), and only for
        the rows that hold the elements asked about: the rows are independent, and about 1%
        of a chunk's elements of a real target need their exact value."""
        names = ("features", "labels") if api == RAW_OPS[0] else ("logits", "labels")
        args = {names[0]: x, names[1]: labels}
        up = None
        if api not in RAW_OPS and self.wants_grad(api):  # the loss is [N] of the logits' dtype
            up = upstream_for(labels.shape, x.dtype, seed)
        exp = self.expectation(api, args, {}, up)

        held: list = []  # the last subset: (its rows, its expectation)

        def subset(flat: np.ndarray, name: str, per: int):
            rows = np.unique(flat // per)
            if not held or not np.isin(rows, held[0]).all():
                sub = self.expectation(api, {k: v[rows] for k, v in args.items()}, {},
                                       None if up is None else up[rows])
                held[:] = rows, sub
            return held[1].outputs[name], np.searchsorted(held[0], flat // per) * per + \
                flat % per

        for o in exp.outputs.values():
            if o.size and o.shape[0] == labels.size:
                o.subset = functools.partial(subset, name=o.name, per=o.size // labels.size)
        return names, args, exp, up

    def run_sweep(self, shard) -> dict:
        """Judge one shard of an exhaustive sweep in one call."""
        from .strategies import Case
        from .sweep import shard_rows

        t0 = time.perf_counter()
        rec = _Record()
        spec = TestSpec(shard.id, shard.api, shard.dtype, "sweep", "native")
        x, labels = shard_rows(shard)
        names, args, exp, up = self.sweep_expectation(shard.api, x, labels, shard.index)
        setup = Setup(shard.api, device=self.device, profile=self.profile, mode=self.mode,
                      grad=up is not None)
        res = self.sandbox.call(setup, Call(shard.api, args, {}, upstream=up),
                                timeout=max(self.sandbox.timeout * 10, 300.0))
        rec.examples = int(labels.size)
        if res.kind in ("crash", "timeout", "error"):
            return self._outcome(spec, rec, res.kind, res.text, t0)
        answer = res.outputs if res.kind == "ok" else res.raised
        v = judge(exp, answer, self.accuracy, self.output_names(shard.api, exp, up is not None))
        rec.examples = int(labels.size)
        rec.grade = v.grade
        rec.worst_ulps, rec.worst_budget = v.worst_ulps or 0.0, v.worst_budget or 0.0
        rec.worst_output = v.worst_output
        if v.ok:
            return self._outcome(spec, rec, "pass", f"{labels.size} rows conform", t0)
        if v.as_tensorflow and not self.strict:
            rec.mechanisms = {m: 1 for m in v.mechanisms}
            return self._outcome(spec, rec, "as-tensorflow", v.message, t0)
        # the worst row becomes an ordinary one-row case: counterexample and reproducer
        row = 0
        if v.failing:
            name, flat = next(iter(v.failing.items()))
            row = flat if name == "loss" else flat // 2
        one = {names[0]: x[row:row + 1], names[1]: labels[row:row + 1]}
        case = Case(shard.api, shard.dtype, "sweep", one, {}, ("sweep",), row)
        seen = self.check_case(spec, case, _Record())
        seen.kind = "fail" if seen.kind == "pass" else seen.kind
        seen.failure = seen.failure or _kind_of(exp, answer, v)  # the row alone may pass
        rec.samples = [results.json_number(v.worst_budget)]
        cid = devmod.case_id(spec.id, v.tags)
        matches = devmod.matching(self.deviations, cid, self.keras, self.profile)
        lenient = next((d for d in matches if _excused(v, d)), None)
        if lenient is not None:
            rec.deviation_matches = {m.id: 1 for m in matches}
            return self._outcome(spec, rec, "deviation", f"known deviation {lenient.id}: "
                                 f"{v.message}", t0, seen)
        return self._outcome(spec, rec, "fail", f"{cid}: {v.message}", t0, seen)

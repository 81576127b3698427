"""Verdicts: a target's answer to one case, held to the oracle's expectation (SPEC §2–3).

:func:`judge` compares what a target did — returned outputs, raised, or malfunctioned —
with the :class:`~xentconf.oracle.Expectation` for the same call, and says:

* the **grade** every element reached, worst first (``exact`` … ``stable``, ``fail``);
* whether the case **passes** at a required grade, with the error semantics of the
  profile (an input TensorFlow rejects must be rejected; any exception counts);
* the **worst error**, in ulps of the output dtype and in units of the ``stable`` budget,
  and a uniform message naming the element.

Errors are measured from the correctly rounded value ``r`` (exactly representable), so
"ulps" counts format steps. A grade is decided on the exact value ``x``: since
``|r − x| ≤ ½ ulp``, the answer ``g`` is within a budget ``b`` for certain when
``|g − r| + ½ ulp ≤ b`` and outside it when ``|g − r| − ½ ulp > b``; only the elements in
between (and the one-ulp neighbours, for ``faithful``) consult the exact value. NaN
expected means NaN required (any payload); ±inf must match; the sign of zero is not
judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xentconf.oracle import GRADES, Expectation, OutputExpectation
from xentconf.oracle.exact import compare_to
from xentconf.oracle.formats import ulp_array

__all__ = ["CaseVerdict", "Raised", "grade_index", "judge", "worse"]

_ORDER = {g: i for i, g in enumerate(GRADES)}  # exact=0 … fail=4


def grade_index(grade: str) -> int:
    return _ORDER[grade]


def worse(a: str | None, b: str | None) -> str | None:
    """The worse of two grades (None = nothing graded)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _ORDER[a] >= _ORDER[b] else b


@dataclass(frozen=True)
class Raised:
    """The target raised ``error`` (its class name) with ``message``."""

    error: str
    message: str


@dataclass
class CaseVerdict:
    """The judgement of one case."""

    ok: bool  # reached the required grade with the right error semantics
    grade: str | None  # worst grade of any element (None: nothing numeric to grade)
    structural: bool = False  # wrong error semantics, output set, dtype, shape, NaN or inf
    special_only: bool = False  # structural only through a wrong NaN or inf
    worst_ulps: float | None = None
    worst_budget: float | None = None
    worst_output: str | None = None
    message: str = ""
    tags: tuple[str, ...] = ()  # facts of the expectation (``underflow``)
    failing: dict = field(default_factory=dict)  # output -> flat index of its worst element
    # not ok, but every element that misses the required grade holds a value one of
    # TensorFlow's mechanisms allows there (oracle.mechanisms): the mechanisms needed
    mechanisms: tuple[str, ...] = ()
    # the input breaks the documented contract and TF's binding coerces it: "raised" or
    # "coerced", what the target did (both conform)
    contract: str | None = None

    @property
    def as_tensorflow(self) -> bool:
        """Differs from the truth only as TensorFlow's own mechanisms do."""
        return not self.ok and bool(self.mechanisms)
    #: output -> (grade index, wrong NaN/inf, error in stable-budget units) of every
    #: element, flat
    elements: dict = field(default_factory=dict)


def _fmt(v: float) -> str:
    if np.isnan(v) or np.isinf(v):
        return repr(float(v))
    return f"{float(v).hex()} ({float(v):.9g})"


def _exact_side(o: OutputExpectation, flat: np.ndarray, r: np.ndarray,
                x: np.ndarray) -> np.ndarray:
    """sign(exact − r) at ``flat``: from ``x`` (the exact values rounded to float64) when
    the output format is narrower than float64 — rounding to float64 cannot cross a
    narrower format's value ``r`` unless it lands on it — else from the exact forms."""
    side = np.sign(x - r)
    if o.format.p < 53:
        return side
    forms = o.forms
    return np.array([compare_to(forms[int(i)], float(v)) for i, v in zip(flat, r)])


@dataclass
class _Graded:
    grade: str
    worst_ulps: float
    worst_budget: float
    message: str
    wrong_special: bool = False  # a NaN or inf where there must be none, or missing
    index: int = -1  # flat index of the worst element (-1: none below the required grade)
    missed: np.ndarray | None = None  # flat indices of the elements below the required grade
    grades: np.ndarray | None = None  # the grade index of every element (flat)
    wrong: np.ndarray | None = None  # a wrong NaN or inf at every element (flat)
    units: np.ndarray | None = None  # each element's error in units of its stable budget


def grade_output(o: OutputExpectation, got: np.ndarray, required: str) -> _Graded:
    """Grade every element of one output (shape and dtype already checked)."""
    r = o.rounded64.ravel()
    g = np.asarray(got).astype(np.float64).ravel()
    n = r.size
    if n == 0:
        return _Graded("exact", 0.0, 0.0, "", grades=np.zeros(0, np.int8),
                       wrong=np.zeros(0, bool), units=np.zeros(0))
    idx = np.zeros(n, np.int8)  # per-element grade index
    nan_r = np.isnan(r)
    if ((g == r) | (nan_r & np.isnan(g))).all():  # every element exact: no budget to consult
        return _Graded("exact", 0.0, 0.0, "", index=-1, missed=np.zeros(0, np.intp),
                       grades=idx, wrong=np.zeros(n, bool), units=np.zeros(n))
    inf_r = np.isinf(r)
    fin_r = ~(nan_r | inf_r)
    wrong = (nan_r & ~np.isnan(g)) | (inf_r & (g != r)) | (fin_r & ~np.isfinite(g))
    idx[wrong] = _ORDER["fail"]
    step = np.nan_to_num(ulp_array(r, o.format), nan=1.0)
    with np.errstate(invalid="ignore"):
        d = np.where(fin_r & np.isfinite(g), np.abs(g - r), 0.0)
    half = 0.5 * step
    live = fin_r & ~wrong & (d > 0)
    # the budgets of the elements that are not exact (often a few in a sweep's chunk)
    tfp, stable = np.zeros(n), np.zeros(n)
    at = np.flatnonzero(live)
    tfp[at] = o.budget_at("tf-precision", at)
    stable[at] = o.budget_at("stable", at)
    # faithful: r itself, or its neighbour on the side of the exact value (and r != x)
    neighbour = live & (d <= step)
    # tf-precision / stable: certain inside, certain outside, or ask the exact value
    need = neighbour | (live & (d - half <= stable) & (d + half > tfp)) | \
        (live & (d - half <= stable) & (d + half > stable))
    err = d.copy()
    if need.any():
        where = np.flatnonzero(need)
        x = o.exact64_at(where)
        err[where] = np.abs(g[where] - x)
        side = _exact_side(o, where, r[where], x)
        neighbour[where] &= np.sign(g[where] - r[where]) == side
    certain_in = lambda b: live & ~need & (d + half <= b)
    within = lambda b: certain_in(b) | (need & (err <= b))
    faithful_ok = neighbour
    tfp_ok = within(tfp)
    stable_ok = within(stable)
    g_live = np.where(faithful_ok, 1, np.where(tfp_ok, 2, np.where(stable_ok, 3, 4)))
    idx[live] = g_live[live]
    worst = int(idx.max())
    with np.errstate(divide="ignore", invalid="ignore"):
        ulps = np.where(fin_r & ~wrong, d / step, np.inf)
        units = np.where(fin_r & ~wrong, d / np.where(stable > 0, stable, np.inf), np.inf)
        units = np.where(fin_r & ~wrong & (stable == 0) & (d > 0), np.inf, units)
    ulps = np.where(nan_r & np.isnan(g), 0.0, ulps)
    units = np.where(nan_r & np.isnan(g), 0.0, units)
    ulps = np.where(inf_r & (g == r), 0.0, ulps)
    units = np.where(inf_r & (g == r), 0.0, units)
    message = ""
    k = -1
    if worst > _ORDER[required] or worst == _ORDER["fail"]:
        k = int(np.argmax(np.where(idx == worst, np.nan_to_num(units, posinf=1e300), -1.0)))
        pos = [int(i) for i in np.unravel_index(k, o.shape)] if o.shape else []
        kind = ("expected NaN" if nan_r[k] else "expected " + repr(float(r[k]))
                if inf_r[k] else "correctly rounded " + _fmt(r[k]))
        if wrong[k]:
            message = f"{o.name}{pos}: got {_fmt(g[k])}, {kind}"
        else:
            message = (f"{o.name}{pos}: got {_fmt(g[k])}, {kind}: {ulps[k]:.4g} ulps, "
                       f"{units[k]:.3g} × the stable budget ({stable[k]:.3g}); "
                       f"grade {GRADES[worst]}")
    missed = np.flatnonzero((idx > _ORDER[required]) | wrong)
    return _Graded(GRADES[worst], float(np.max(ulps)), float(np.max(units)), message,
                   bool(wrong.any()), k, missed, idx, wrong, units)


def _summary(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}{list(np.shape(v))}:{np.asarray(v).dtype}"
                         for k, v in value.items())
    return type(value).__name__


def expectation_tags(exp: Expectation) -> tuple[str, ...]:
    """Facts of the expected results that known deviations can name: ``underflow`` when
    an expected finite non-zero value is below the dtype's smallest normal."""
    if exp.raises is not None:
        return ("raises",)
    for o in exp.outputs.values():
        r = o.rounded64
        with np.errstate(invalid="ignore"):
            if np.any(np.isfinite(r) & (r != 0) & (np.abs(r) < o.format.min_normal)):
                return ("underflow",)
    return ()


def judge(exp: Expectation, result: dict | Raised, required: str = "stable",
          outputs: tuple[str, ...] | None = None) -> CaseVerdict:
    """Judge one case: ``result`` is the target's outputs by name, or :class:`Raised`.

    ``outputs`` names the outputs to check (default: every expected output); the target
    may return more. ``required`` is the grade every element must reach.
    """
    tags = expectation_tags(exp)
    if exp.raises is not None:
        if isinstance(result, Raised):
            return CaseVerdict(True, None, tags=tags,
                               message=f"rejected as TensorFlow does ({result.error})")
        alt = _xla_alternative(exp, result, required)
        if alt is not None:
            return alt
        return CaseVerdict(False, "fail", structural=True, tags=tags,
                           message=f"TensorFlow raises {exp.raises.error}: "
                                   f"{exp.raises.message} — the target returned "
                                   f"{_summary(result)}")
    contract = getattr(exp, "contract", None)
    if isinstance(result, Raised) and contract is not None:
        return CaseVerdict(True, None, tags=tags, contract="raised",
                           message=f"rejected as the documented contract says "
                                   f"({contract.error}: {contract.message}); TensorFlow's "
                                   f"binding coerces it — both conform")
    if isinstance(result, Raised):
        outs = ", ".join(f"{k}{list(o.shape)}:{o.dtype}" for k, o in exp.outputs.items())
        return CaseVerdict(False, "fail", structural=True, tags=tags,
                           message=f"the target raised {result.error}: {result.message} — "
                                   f"TensorFlow returns {outs}")
    names = outputs if outputs is not None else tuple(exp.outputs)
    missing = [n for n in names if n not in result]
    if missing:
        return CaseVerdict(False, "fail", structural=True, tags=tags,
                           message=f"the target did not return {', '.join(missing)} "
                                   f"(returned {', '.join(result) or 'nothing'})")
    grade: str | None = None
    worst_ulps = worst_budget = 0.0
    worst_output = None
    messages = []
    failing: dict = {}
    elements: dict = {}
    structural = False
    missed: dict = {}
    for name in names:
        o = exp.outputs[name]
        got = np.asarray(result[name])
        if got.shape != o.shape or got.dtype != o.dtype:
            what = "shape" if got.shape != o.shape else "dtype"
            return CaseVerdict(False, "fail", structural=True, tags=tags, worst_output=name,
                               message=f"{name}: {what} {list(got.shape)}:{got.dtype}, "
                                       f"expected {list(o.shape)}:{o.dtype}")
        g = grade_output(o, got, required)
        if g.worst_budget > worst_budget or worst_output is None:
            worst_output = name
        worst_ulps = max(worst_ulps, g.worst_ulps)
        worst_budget = max(worst_budget, g.worst_budget)
        grade = worse(grade, g.grade)
        structural |= g.wrong_special
        if g.index >= 0:
            failing[name] = g.index
        elements[name] = (g.grades, g.wrong, g.units)
        if g.message:
            messages.append(g.message)
        if g.missed is not None and g.missed.size:
            missed[name] = (got, g.missed)
    ok = grade is None or _ORDER[grade] <= _ORDER[required]
    mechs = () if ok else _mechanisms(exp, missed, required)
    message = "; ".join(messages)
    if mechs:
        message = f"as TensorFlow ({', '.join(mechs)}): {message}"
    return CaseVerdict(ok, grade, structural=structural, special_only=structural,
                       worst_ulps=worst_ulps,
                       worst_budget=worst_budget, worst_output=worst_output,
                       message=message, tags=tags, failing=failing,
                       mechanisms=mechs, contract="coerced" if contract is not None else None,
                       elements=elements)


def _xla_alternative(exp: Expectation, result: dict, required: str) -> CaseVerdict | None:
    """TF's eager CPU kernel raises for out-of-range labels; XLA on the same CPU returns NaN
    rows (mechanism ``xla-nan-rows``): an answer that is that is as TensorFlow."""
    from xentconf.oracle.mechanisms import xla_nan_rows

    alt = xla_nan_rows(exp)
    if alt is None:
        return None
    names = tuple(n for n in alt.outputs if n != "grad_logits" and
                  (n != "backprop" or n in result))
    v = judge(alt, result, required, names)
    if not (v.ok or v.as_tensorflow):
        return None
    return CaseVerdict(False, v.grade, worst_ulps=v.worst_ulps, worst_budget=v.worst_budget,
                       worst_output=v.worst_output, tags=v.tags,
                       mechanisms=("xla-nan-rows", *v.mechanisms),
                       message=f"as TensorFlow (xla-nan-rows): TensorFlow's eager CPU kernel "
                               f"raises {exp.raises.error}: {exp.raises.message} — the target "
                               f"returned NaN rows as TensorFlow's XLA does")


def _mechanisms(exp: Expectation, missed: dict, required: str) -> tuple[str, ...]:
    """The TensorFlow mechanisms that allow every element of ``missed`` (output →
    (answer, flat indices below the required grade)); () when any element is left over."""
    if not missed or getattr(exp, "plan", None) is None:
        return ()
    from xentconf.oracle.mechanisms import excused

    allowed = exp.mechanisms(tuple(missed))
    used: list[str] = []
    for name, (got, where) in missed.items():
        o = exp.outputs[name]
        if not allowed.get(name):
            return ()
        n = o.size
        exact = np.full(n, np.nan)
        exact[where] = o.exact64_at(where)
        slack = np.zeros(n)
        if required != "exact":
            slack[where] = o.budget_at(required, where)
        ok, names = excused(allowed[name], got, exact, slack, where)
        if not ok.all():
            return ()
        used += names
    return tuple(dict.fromkeys(used))

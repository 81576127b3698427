"""Merge results documents into one board: rows are target runs, columns API × dtype.

Several results files (typically one per target, or per target and device) become one
:class:`Board`. A row is a *target run*: the target's name with the device and device
profile it ran under (an outcome's own ``target``/``device``/``profile`` fields win over
the run's). Columns are grouped by API, in the order of SPEC §1, then by dtype; a
:class:`Cell` summarises one row × API × dtype across the features tested there.

Only :mod:`xentconf.results` is imported: the board is built from validated documents,
never from the conformance machinery itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xentconf.results import GRADES, VERDICTS
from xentconf.results import number as _number
from xentconf.vocabulary import API_SHORT, DTYPES

__all__ = [
    "API_SHORT",
    "FAILING",
    "PASSING",
    "SEVERITY",
    "Board",
    "Cell",
    "ReportError",
    "Row",
    "api_label",
    "merge",
    "outcome_map",
    "qualified_outcomes",
    "run_mode",
]


class ReportError(Exception):
    """The inputs cannot make a report; the one-line message says what is wrong."""


_DTYPE_ORDER = DTYPES

#: Verdicts meaning "the target got it wrong or did not answer".
FAILING = frozenset({"fail", "crash", "timeout", "error"})
#: Verdicts meaning "accepted" (a covered deviation is accepted, and shown as such; an
#: answer that differs only as TensorFlow's own mechanisms do is ``as-tensorflow``).
PASSING = frozenset({"pass", "as-tensorflow", "deviation"})
#: Verdicts from the one that colours a mixed cell first to the last.
SEVERITY = ("crash", "timeout", "error", "fail", "deviation", "as-tensorflow", "pass", "skip")
assert set(SEVERITY) == set(VERDICTS)


def api_label(api: str, short: str | None = None) -> str:
    """The short name of an API for column headers (``raw_sparse``, ``keras_dense``, ...)."""
    if api in API_SHORT:
        return API_SHORT[api]
    if short:
        return short
    return api.rsplit(".", 1)[-1]


def worst_grade(grades: Iterable[str | None]) -> str | None:
    """The worst of ``grades`` in the order of :data:`~xentconf.results.GRADES`."""
    known = [g for g in grades if g in GRADES]
    return max(known, key=GRADES.index) if known else None


def finite_max(values: Iterable[Any]) -> float | None:
    """The largest number among ``values`` (inf counts; NaN and non-numbers do not)."""
    best = None
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
            continue
        if best is None or v > best:
            best = float(v)
    return best


_NUMERIC_FIELDS = ("worst_ulps", "worst_budget", "duration_s")




def normalized(outcome: dict[str, Any]) -> dict[str, Any]:
    """``outcome`` with its error, timing and sample fields as numbers (a copy if changed)."""
    fixes = {k: _number(outcome[k]) for k in _NUMERIC_FIELDS
             if isinstance(outcome.get(k), str)}
    if isinstance(outcome.get("samples"), list) and any(isinstance(v, str)
                                                        for v in outcome["samples"]):
        fixes["samples"] = [_number(v) for v in outcome["samples"]]
    return {**outcome, **fixes} if fixes else outcome


class _Tally:
    """Counts over ``self.outcomes`` (shared by a board cell and a board row)."""

    outcomes: list[dict[str, Any]]

    @property
    def counts(self) -> dict[str, int]:
        """Outcomes per verdict, in the order of :data:`~xentconf.results.VERDICTS`."""
        counts = dict.fromkeys(VERDICTS, 0)
        for o in self.outcomes:
            counts[o["verdict"]] += 1
        return counts

    @property
    def tested(self) -> int:
        """Outcomes that were judged (everything but skips)."""
        return sum(1 for o in self.outcomes if o["verdict"] != "skip")

    @property
    def accepted(self) -> int:
        """Outcomes that passed, or deviated as declared."""
        return sum(1 for o in self.outcomes if o["verdict"] in PASSING)


@dataclass
class Cell(_Tally):
    """One row × API × dtype: the outcomes of every feature tested there."""

    row: int
    api: str
    dtype: str
    outcomes: list[dict[str, Any]] = field(default_factory=list)


    @property
    def verdict(self) -> str | None:
        """The verdict that colours the cell: the most severe one present."""
        present = {o["verdict"] for o in self.outcomes}
        return next((v for v in SEVERITY if v in present), None)

    @property
    def grade(self) -> str | None:
        """The worst grade reached by any judged outcome of the cell."""
        return worst_grade(o.get("grade") for o in self.outcomes if o["verdict"] != "skip")

    @property
    def summary(self) -> str:
        """``8 pass · 2 fail · worst grade stable`` (for tooltips)."""
        parts = [f"{n} {v}" for v, n in self.counts.items() if n]
        if self.grade:
            parts.append(f"worst grade {self.grade}")
        return " · ".join(parts) or "not run"

    @property
    def status(self) -> str:
        """CSS status of the cell: ``g-<grade>`` when everything passed, else ``v-<verdict>``
        (``empty`` when nothing was tested here)."""
        v = self.verdict
        if v is None:
            return "empty"
        if v == "pass":
            return f"g-{self.grade}" if self.grade else "g-none"
        return f"v-{v}"

    @property
    def worst_budget(self) -> float | None:
        return finite_max(o.get("worst_budget") for o in self.outcomes)

    @property
    def worst_ulps(self) -> float | None:
        return finite_max(o.get("worst_ulps") for o in self.outcomes)

    @property
    def samples(self) -> list[float]:
        """Every example's worst error (budget units) over the cell's outcomes."""
        out: list[float] = []
        for o in self.outcomes:
            for s in o.get("samples") or ():
                if isinstance(s, int | float) and not isinstance(s, bool) and not math.isnan(s):
                    out.append(float(s))
        return out


@dataclass
class Row(_Tally):
    """One target run: a target on one device under one device profile, executing in one
    way (``mode``: eager, xla, compile, a Keras backend)."""

    index: int
    target: str
    device: str
    profile: str
    mode: str = "eager"
    runs: list[int] = field(default_factory=list)  # indices into Board.runs
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.target, self.device, self.profile, self.mode)

    @property
    def label(self) -> str:
        """``device/profile``, with the mode unless it is eager (``cpu/xla/xla``)."""
        base = f"{self.device}/{self.profile}"
        return base if self.mode == "eager" else f"{base}/{self.mode}"


@dataclass
class Run:
    """One results document as it enters the board."""

    index: int
    source: str
    run: dict[str, Any]
    deviations: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    rows: list[int] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.run["target"]["name"]


@dataclass
class Board:
    """Merged results: runs, rows, the API × dtype columns and the cells."""

    runs: list[Run]
    rows: list[Row]
    apis: list[str]
    dtypes: dict[str, list[str]]  # per API, the dtypes tested, in display order
    features: list[str]
    cells: dict[tuple[int, str, str], Cell]
    feature_cells: dict[tuple[int, str], Cell]  # row × feature, across APIs and dtypes
    outcomes: dict[str, dict[str, Any]]  # by id, in board order
    row_of: dict[str, int]  # outcome id -> row index

    def cell(self, row: int, api: str, dtype: str) -> Cell:
        """The cell at ``row`` × ``api`` × ``dtype`` (empty if nothing ran there)."""
        return self.cells.get((row, api, dtype)) or Cell(row, api, dtype)

    def feature_cell(self, row: int, feature: str) -> Cell:
        """The outcomes of ``feature`` in ``row``, across APIs and dtypes."""
        return self.feature_cells.get((row, feature)) or Cell(row, "", "")

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(VERDICTS, 0)
        for o in self.outcomes.values():
            counts[o["verdict"]] += 1
        return counts

    short_names: dict[str, str] = field(default_factory=dict)  # API id -> column header

    def api_short(self, api: str) -> str:
        """The column header of ``api`` (``nn_sparse``, ...)."""
        return self.short_names.get(api) or api_label(api)


def _dtype_key(dtype: str) -> tuple[int, str]:
    return (_DTYPE_ORDER.index(dtype) if dtype in _DTYPE_ORDER else len(_DTYPE_ORDER), dtype)


def _api_key(api: str, first_seen: Mapping[str, int]) -> tuple[int, int]:
    order = list(API_SHORT)
    return (order.index(api) if api in order else len(order), first_seen[api])


def run_mode(run: Mapping[str, Any]) -> str:
    """How a run's mode executed (``eager`` for results written before modes had names)."""
    return run.get("mode") or "eager"


def qualified_outcomes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The outcomes of ``doc``, their ids qualified by the run's mode unless it is eager
    (``torch-cpu-float32-nn_sparse-basic@compile``): one target's runs in several modes
    (eager and XLA, eager and torch.compile, Keras on each backend) share test ids, and
    merge side by side under these."""
    mode = run_mode(doc["run"])
    if mode == "eager":
        return list(doc["outcomes"])
    return [{**o, "id": f"{o['id']}@{mode}"} for o in doc["outcomes"]]


def outcome_map(docs: Sequence[dict[str, Any]],
                sources: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """All outcomes of ``docs`` by (mode-qualified) id; an id in two places is an error
    (say which)."""
    sources = list(sources) if sources is not None else [f"results #{i + 1}"
                                                         for i in range(len(docs))]
    seen: dict[str, str] = {}
    out: dict[str, dict[str, Any]] = {}
    for doc, source in zip(docs, sources):
        for o in qualified_outcomes(doc):
            if o["id"] in seen:
                where = ("twice in " + source if seen[o["id"]] == source
                         else f"in both {seen[o['id']]} and {source}")
                raise ReportError(f"outcome {o['id']!r} appears {where}; give each target "
                                  "run's results once")
            seen[o["id"]] = source
            out[o["id"]] = o
    return out


def merge(docs: Sequence[dict[str, Any]], sources: Sequence[str] | None = None) -> Board:
    """Merge validated results documents into one :class:`Board`.

    Rows follow the order the target runs first appear in ``docs``; APIs follow SPEC §1,
    dtypes float16, bfloat16, float32, float64; features their first appearance. An
    outcome id present twice is a :class:`ReportError`.
    """
    sources = list(sources) if sources is not None else [f"results #{i + 1}"
                                                         for i in range(len(docs))]
    if len(sources) != len(docs):
        raise ValueError("give one source name per document")
    outcome_map(docs, sources)  # raises on duplicate ids

    runs: list[Run] = []
    rows: list[Row] = []
    row_index: dict[tuple[str, str, str, str], int] = {}
    api_seen: dict[str, int] = {}
    dtypes: dict[str, set[str]] = {}
    features: dict[str, None] = {}
    cells: dict[tuple[int, str, str], Cell] = {}
    feature_cells: dict[tuple[int, str], Cell] = {}
    row_of: dict[str, int] = {}
    for i, (doc, source) in enumerate(zip(docs, sources)):
        meta = doc["run"]
        outcomes = [normalized(o) for o in qualified_outcomes(doc)]
        run = Run(i, source, meta, list(doc["deviations"]), outcomes)
        runs.append(run)
        for o in outcomes:
            key = (o.get("target") or meta["target"]["name"], o.get("device") or meta["device"],
                   o.get("profile") or meta["profile"], run_mode(meta))
            if key not in row_index:
                row_index[key] = len(rows)
                rows.append(Row(len(rows), *key))
            row = rows[row_index[key]]
            if i not in row.runs:
                row.runs.append(i)
            if row.index not in run.rows:
                run.rows.append(row.index)
            row.outcomes.append(o)
            row_of[o["id"]] = row.index
            api_seen.setdefault(o["api"], len(api_seen))
            dtypes.setdefault(o["api"], set()).add(o["dtype"])
            features.setdefault(o["feature"], None)
            cell = cells.setdefault((row.index, o["api"], o["dtype"]),
                                    Cell(row.index, o["api"], o["dtype"]))
            cell.outcomes.append(o)
            fcell = feature_cells.setdefault((row.index, o["feature"]), Cell(row.index, "", ""))
            fcell.outcomes.append(o)

    apis = sorted(api_seen, key=lambda a: _api_key(a, api_seen))
    feature_order = list(features)

    def order(o: dict[str, Any]) -> tuple[int, tuple[int, str], int]:
        return (apis.index(o["api"]), _dtype_key(o["dtype"]), feature_order.index(o["feature"]))

    ordered: dict[str, dict[str, Any]] = {}
    for row in rows:
        row.outcomes.sort(key=order)
        for o in row.outcomes:
            ordered[o["id"]] = o
    for cell in [*cells.values(), *feature_cells.values()]:
        cell.outcomes.sort(key=order)
    shorts: dict[str, str] = {}
    for o in ordered.values():
        if o.get("api_short") and o["api"] not in shorts:
            shorts[o["api"]] = o["api_short"]
    return Board(
        short_names={a: api_label(a, shorts.get(a)) for a in apis},
        runs=runs,
        rows=rows,
        apis=apis,
        dtypes={a: sorted(dtypes[a], key=_dtype_key) for a in apis},
        features=list(features),
        cells=cells,
        feature_cells=feature_cells,
        outcomes=ordered,
        row_of=row_of,
    )

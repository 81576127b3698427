"""Render results documents as one self-contained HTML page, and write it atomically.

The page has no external resource (inline CSS, JavaScript and SVG only) and a Content
Security Policy that forbids loading anything: ``default-src 'none'``, inline styles, and
only the page's own script, pinned by its SHA-256 hash — so even a string from a target
that slipped through escaping could not run. All markup lives in the Jinja2 templates
under ``templates/`` with autoescaping on; this module only prepares plain values.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from xentconf.results import (
    GRADES,
    VERDICTS,
    ResultsError,
    atomic_write,
    expand_arrays,
    load,
    validate,
    writable_folder,
)

from . import views
from .diff import Diff, diff
from .merge import SEVERITY, Board, ReportError, Row, api_label, merge, outcome_map
from .plots import (
    MAP_COLOURINGS,
    Strip,
    StripPlot,
    fmt_num,
    log_domain,
    strip_plot,
    sweep_map,
)

__all__ = ["render", "write_report"]

#: Verdicts that get a drill-down, most severe first.
DRILL_VERDICTS = ("crash", "timeout", "error", "fail", "deviation", "as-tensorflow")
INDEX = "index.html"


# --------------------------------------------------------------------- formatting


def fmt_duration(seconds: float | int | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 03 s``, ``2 h 05 min``."""
    if seconds is None or not isinstance(seconds, int | float) or math.isnan(seconds):
        return "–"
    if seconds < 1:
        return f"{seconds:.2g} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def first_line(text: str | None, limit: int = 140) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("xentconf.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = fmt_num
    env.filters["duration"] = fmt_duration
    env.filters["first_line"] = first_line
    return env


def _static(env: jinja2.Environment, name: str) -> str:
    assert env.loader is not None
    return env.loader.get_source(env, name)[0]


def _csp_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()


# --------------------------------------------------------------------- view model


def row_label(target: str, device: str, profile: str, mode: str = "eager") -> str:
    """``torch · cuda (gpu profile)``, or ``torch · cpu`` when device and profile agree;
    a mode other than eager follows (``torch · cpu · compile``)."""
    where = device if device == profile else f"{device} ({profile} profile)"
    return f"{target} · {where}" + ("" if mode == "eager" else f" · {mode}")


@dataclass
class RowView:
    row: Row
    label: str
    target: str
    where: str
    version: str | None
    keras: str | None
    interrupted: bool


@dataclass
class FailureView:
    """One distinct failure of an outcome (or its only counterexample): its kind, inputs,
    expected against actual and reproducer."""

    anchor: str
    kind: str | None
    tags: list[str]
    message: str
    case: Mapping[str, Any] | None
    args: list[views.ArgView]
    case_extra: list[tuple[str, str]]  # api, profile, keras, init, upstream
    case_json: str
    case_cut: bool
    comparisons: list[views.Comparison]
    reproducer: str | None
    reproducer_cut: bool


@dataclass
class DrillDown:
    """Everything shown for one failing (or crashing, erroring, deviating) outcome."""

    anchor: str
    outcome: Mapping[str, Any]
    row: int
    api: str
    message: str
    failures: list[FailureView]


@dataclass
class DeviationView:
    entry: Mapping[str, Any]
    href: str | None  # the link when it is a web address (never javascript: and the like)
    status: str  # live, stale or check
    why: list[str] = field(default_factory=list)


@dataclass
class RunView:
    index: int
    source: str
    label: str
    run: Mapping[str, Any]
    deviations: list[DeviationView]
    outcomes: int
    outcome_time: float
    slowest: list[Mapping[str, Any]]


def _failure_view(anchor: str, f: Mapping[str, Any], worst_output: str | None) -> FailureView:
    case = expand_arrays(f.get("counterexample"))
    extra: list[tuple[str, str]] = []
    args: list[views.ArgView] = []
    case_json, cut = "", False
    if isinstance(case, Mapping):
        args = views.arg_views(case.get("args") if isinstance(case.get("args"), Mapping)
                               else None)
        for key in ("api", "profile", "keras"):
            if case.get(key) is not None:
                extra.append((key, str(case[key])))
        for key in ("init", "upstream"):
            if case.get(key) not in (None, {}):
                value = case[key]
                text = (views.nested_text(value["data"], str(value["dtype"]))
                        if views.is_array(value) else json.dumps(value))
                extra.append((key, text))
        case_json, cut = views.truncate(json.dumps(f.get("counterexample"), indent=1,
                                                   default=str))
    reproducer, rcut = (views.truncate(f["reproducer"]) if f.get("reproducer")
                        else (None, False))
    tags = f.get("tags")
    return FailureView(
        anchor=anchor, kind=f.get("kind"),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        message=f.get("message") or "", case=case if isinstance(case, Mapping) else None,
        args=args, case_extra=extra, case_json=case_json, case_cut=cut,
        comparisons=views.comparisons(expand_arrays(f.get("expected")),
                                      expand_arrays(f.get("actual")), worst_output),
        reproducer=reproducer, reproducer_cut=rcut)


def _drilldown(anchor: str, o: Mapping[str, Any], row: int, board: Board) -> DrillDown:
    listed = o.get("failures")
    if not isinstance(listed, list) or not listed:
        listed = [o]  # one counterexample (a deviation, or an older results file)
    failures = [_failure_view(anchor if i == 0 else f"{anchor}-f{i + 1}",
                              f if isinstance(f, Mapping) else {}, o.get("worst_output"))
                for i, f in enumerate(listed)]
    return DrillDown(anchor=anchor, outcome=o, row=row, api=board.api_short(o["api"]),
                     message=o.get("message") or "", failures=failures)


def _deviation_view(entry: Mapping[str, Any]) -> DeviationView:
    link = entry.get("link")
    href = link if isinstance(link, str) and link.startswith(("https://", "http://")) else None
    why = []
    if entry.get("matched", 0) == 0:
        why.append("matched no case in this run")
    if entry.get("pinned") == "passes":
        why.append("its pinned case passes now")
    status = "stale" if why else "live"
    if entry.get("pinned") == "error":
        why.append("its pinned case could not be run"
                   + (f": {entry['pinned_message']}" if entry.get("pinned_message") else ""))
        status = "stale" if status == "stale" else "check"
    return DeviationView(entry=entry, href=href, status=status, why=why)


def _plots(board: Board) -> list[StripPlot]:
    values: list[float] = []
    for cell in board.cells.values():
        values.extend(cell.samples)
        if cell.worst_budget is not None:
            values.append(cell.worst_budget)
    domain = log_domain(values)
    plots = []
    for api in board.apis:
        groups = []
        for row in board.rows:
            strips = []
            for dtype in board.dtypes[api]:
                cell = board.cell(row.index, api, dtype)
                if not cell.tested:
                    continue
                strips.append(Strip(dtype, cell.samples, cell.worst_budget, cell.worst_ulps))
            if strips:
                groups.append((row_label(*row.key), strips))
        if groups:
            plots.append(strip_plot(board.api_short(api), api, groups, domain))
    return plots


def _run_label(run: Mapping[str, Any]) -> str:
    t = run["target"]
    return row_label(t["name"], run["device"], run["profile"])


def _validated(docs: Sequence[Any], sources: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for doc, source in zip(docs, sources):
        try:
            out.append(validate(doc, source))
        except ResultsError as exc:
            raise ReportError(str(exc)) from exc
    return out


def _sweep_maps(docs: Sequence[dict[str, Any]]):
    """(run label, sweep, [(file name, map)] by each colouring) of every sweep of ``docs``."""
    k = 0
    for doc in docs:
        label = _run_label(doc["run"])
        for sw in doc.get("sweeps") or []:
            k += 1
            stem = f"sweep-{k}-{doc['run']['target']['name']}-{sw['api_short']}-{sw['dtype']}"
            stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
            # a file written before cells kept their worst error has only the failure map
            recorded = any(len(c) > 4 and c[4] is not None for c in sw["map"]["cells"])
            yield label, sw, [(f"{stem}-{by}.svg",
                               sweep_map(f"{sw['api_short']} {sw['dtype']}", label, sw, by))
                              for by in MAP_COLOURINGS if by != "error" or recorded]


def render(docs: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]] | None = None,
           *, sources: Sequence[str] | None = None,
           baseline_sources: Sequence[str] | None = None,
           title: str = "xentconf conformance report") -> str:
    """The report page for the results documents ``docs`` (merged: one board row per
    target run), compared with ``baseline`` (documents merged the same way) if given.

    ``sources`` name the documents in messages and in the page (file names, say).
    Raises :class:`ReportError` for documents that are not valid results, an outcome id
    given twice, or no outcomes at all.
    """
    sources = list(sources) if sources is not None else [f"results #{i + 1}"
                                                         for i in range(len(docs))]
    docs = _validated(docs, sources)
    if not any(doc["outcomes"] or doc.get("sweeps") for doc in docs):
        names = ", ".join(sources) if sources else "no results given"
        raise ReportError(f"no outcomes in {names}: nothing to report (did the run collect "
                          "any test?)")
    board = merge(docs, sources)

    changes: Diff | None = None
    baseline_board: Board | None = None
    if baseline is not None:
        baseline_sources = (list(baseline_sources) if baseline_sources is not None
                            else [f"baseline #{i + 1}" for i in range(len(baseline))])
        baseline = _validated(baseline, baseline_sources)
        changes = diff(outcome_map(baseline, baseline_sources), board.outcomes)
        baseline_board = merge(baseline, baseline_sources)

    rows = []
    for row in board.rows:
        run = board.runs[row.runs[0]].run
        rows.append(RowView(
            row=row, label=row_label(*row.key), target=row.target,
            where=(row.device if row.device == row.profile
                   else f"{row.device} · {row.profile} profile")
            + ("" if row.mode == "eager" else f" · {row.mode}"),
            version=run["target"].get("version"), keras=run["target"].get("keras"),
            interrupted=any(board.runs[i].run["interrupted"] for i in row.runs)))

    anchors = {oid: f"o-{k}" for k, oid in enumerate(board.outcomes)}
    drills: dict[int, list[DrillDown]] = {}
    for oid, o in board.outcomes.items():
        if o["verdict"] in DRILL_VERDICTS:
            row = board.row_of[oid]
            drills.setdefault(row, []).append(_drilldown(anchors[oid], o, row, board))
    for items in drills.values():
        items.sort(key=lambda d: DRILL_VERDICTS.index(d.outcome["verdict"]))
    drilled = {d.outcome["id"] for items in drills.values() for d in items}

    run_views = []
    for run in board.runs:
        timed = [o for o in run.outcomes if isinstance(o.get("duration_s"), int | float)]
        slowest = sorted(timed, key=lambda o: -o["duration_s"])[:3]
        run_views.append(RunView(
            index=run.index, source=run.source, label=_run_label(run.run), run=run.run,
            deviations=[_deviation_view(e) for e in run.deviations],
            outcomes=len(run.outcomes),
            outcome_time=sum(o["duration_s"] for o in timed), slowest=slowest))
    stale = sum(1 for r in run_views for d in r.deviations if d.status == "stale")

    def baseline_label(oid: str) -> str:
        if baseline_board is not None and oid in baseline_board.row_of:
            return row_label(*baseline_board.rows[baseline_board.row_of[oid]].key)
        return ""

    sweeps = [{"label": label, "sweep": sw, "maps": [(m, file) for file, m in maps]}
              for label, sw, maps in _sweep_maps(docs)]

    env = _environment()
    css = _static(env, "report.css")
    script = _static(env, "report.js")
    template = env.get_template("report.html.j2")
    return template.render(
        title=title,
        board=board,
        rows=rows,
        grades=GRADES,
        verdicts=VERDICTS,
        severity=SEVERITY,
        drills=drills,
        drilled=drilled,
        anchors=anchors,
        n_drills=sum(len(v) for v in drills.values()),
        plots=_plots(board),
        sweeps=sweeps,
        runs=run_views,
        stale=stale,
        diff=changes,
        baseline_sources=baseline_sources if baseline is not None else None,
        baseline_label=baseline_label,
        row_label=row_label,
        api_label=api_label,
        sources=sources,
        quote=shlex.join,
        css=Markup(css),
        script=Markup(script),
        script_hash=_csp_hash(script),
    )


# --------------------------------------------------------------------- files


def _load_all(paths: Sequence[str | os.PathLike], what: str) -> list[dict[str, Any]]:
    docs = []
    for path in paths:
        try:
            docs.append(load(path))
        except ResultsError as exc:
            raise ReportError(f"{what}{exc}") from exc
    return docs


def write_markdown(paths: Sequence[str | os.PathLike], target: str | os.PathLike,
                   baseline_paths: Sequence[str | os.PathLike] | None = None) -> str:
    """Write the standing table of the results files ``paths`` (Markdown) to ``target``
    (``-``: return it only) and return it; with ``baseline_paths``, a column says what
    changed since those results. :class:`ReportError` for unusable input."""
    from .markdown import standing_table

    if not paths:
        raise ReportError("no results files given: name at least one results.json written "
                          "by xentconf run")
    baseline = _load_all(baseline_paths, "baseline: ") if baseline_paths else None
    text = standing_table(_load_all(paths, ""), [str(p) for p in paths], baseline,
                          [str(p) for p in baseline_paths] if baseline_paths else None)
    if str(target) != "-":
        problem = writable_folder(Path(target).absolute().parent)
        if problem:
            raise ReportError(f"{target}: its folder {problem}")
        try:
            atomic_write(target, text.encode("utf-8"))
        except OSError as exc:
            raise ReportError(f"{target}: cannot write the table ({exc.strerror or exc})") \
                from exc
    return text


def write_issue_reports(paths: Sequence[str | os.PathLike],
                        out_dir: str | os.PathLike) -> list[Path]:
    """Write a ready-to-file Markdown bug report per distinct finding of the results files
    ``paths`` into ``out_dir`` (see :mod:`xentconf.reports.issues`); return their paths."""
    from .issues import write_issues

    if not paths:
        raise ReportError("no results files given: name at least one results.json written "
                          "by xentconf run")
    return write_issues(_load_all(paths, ""), out_dir, [str(p) for p in paths])


def write_report(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                 baseline_paths: Sequence[str | os.PathLike] | None = None) -> Path:
    """Render the results files ``paths`` (compared with ``baseline_paths`` if given) into
    ``out_dir/index.html`` and return that path.

    The page is rendered whole in memory, then written to a temporary file in ``out_dir``
    and renamed over ``index.html``: a failure at any point leaves an existing report as
    it was. Raises :class:`ReportError` (one-line message) for unusable input.
    """
    if not paths:
        raise ReportError("no results files given: name at least one results.json written "
                          "by xentconf run")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: exists and is not a folder; --out names the folder to "
                          f"write {INDEX} into")
    target = out / INDEX
    if target.is_dir():
        raise ReportError(f"{target}: is a folder; remove it or choose another --out")
    for group, what in ((paths, ""), (baseline_paths or [], "baseline ")):
        seen: set[Path] = set()
        for p in group:
            key = Path(p).resolve()
            if key in seen:
                raise ReportError(f"{what}{p} is named twice; give each results file once")
            seen.add(key)
    docs = _load_all(paths, "")
    baseline = (_load_all(baseline_paths, "baseline ") if baseline_paths is not None
                else None)
    html = render(docs, baseline, sources=[str(p) for p in paths],
                  baseline_sources=([str(p) for p in baseline_paths]
                                    if baseline_paths is not None else None))
    svg = _environment().get_template("sweep_map.svg.j2")
    try:
        for _, _, maps in _sweep_maps(docs):  # each map also as a file of its own
            for file, m in maps:
                atomic_write(out / file, svg.render(map=m).encode("utf-8"))
        return atomic_write(target, html.encode("utf-8"))
    except OSError as exc:
        raise ReportError(f"{target}: cannot write the report ({exc.strerror or exc})") from exc

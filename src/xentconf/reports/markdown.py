"""The standing table in Markdown: one row per target run, counted from results files.

``xentconf report RESULTS... --markdown FILE`` writes it; the README includes it between
``<!-- standing:begin -->`` and ``<!-- standing:end -->``, and a test holds that copy to
the committed results it was generated from. Every count comes from the outcomes of the
results files (the same tally as the HTML scoreboard), so the table, the report and the
run's own summary count one way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from xentconf.results import VERDICTS

from .diff import CATEGORIES, diff
from .merge import FAILING, api_label, merge, outcome_map

__all__ = ["BEGIN", "END", "standing_table", "sweep_table"]

BEGIN = "<!-- standing:begin -->"
END = "<!-- standing:end -->"
#: Verdicts shown as columns (the rest, all failing, are summed into "fail").
_COLUMNS = tuple(v for v in VERDICTS if v not in FAILING or v == "fail")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _failing_features(outcomes: list[dict[str, Any]], most: int = 6) -> str:
    """The API/feature pairs that failed most often, as ``api feature`` (count)."""
    counts = Counter(f"{api_label(o['api'])} {o['feature']}" for o in outcomes
                     if o["verdict"] in FAILING)
    if not counts:
        return "nothing"
    shown = [f"{k} ({v})" if v > 1 else k for k, v in counts.most_common(most)]
    more = len(counts) - len(shown)
    return ", ".join(shown) + (f", and {more} more" if more > 0 else "")


def _changes(board, baseline: Sequence[dict[str, Any]],
             baseline_sources: Sequence[str] | None) -> dict[int, str]:
    """Per row of ``board``, what changed since ``baseline`` (the report's diff
    categories, counted; a removed test counts in the row of the same target run), or
    ``no change``."""
    changes = diff(outcome_map(baseline, baseline_sources), board.outcomes)
    before = merge(baseline, baseline_sources)
    row_of_key = {row.key: row.index for row in board.rows}
    per_row: dict[int, Counter] = {row.index: Counter() for row in board.rows}
    for name, _, items in changes.categories():
        for c in items:
            if c.id in board.row_of:
                per_row[board.row_of[c.id]][name] += 1
            else:  # removed: only in the baseline
                key = before.rows[before.row_of[c.id]].key
                if key in row_of_key:
                    per_row[row_of_key[key]][name] += 1
    return {i: ", ".join(f"{counts[n]} {CATEGORIES[n].lower()}" for n in CATEGORIES
                         if counts[n]) or "no change"
            for i, counts in per_row.items()}


def standing_table(docs: Sequence[dict[str, Any]], sources: Sequence[str] | None = None,
                   baseline: Sequence[dict[str, Any]] | None = None,
                   baseline_sources: Sequence[str] | None = None) -> str:
    """The Markdown standing table of validated results documents: a row per target run
    (target, its version, the mode as ``device/profile[/execution]`` with the Keras
    variant, the verdict counts, the most frequent failures, the run's date, marked when
    the run was cut short); with
    ``baseline`` (earlier results), a last column says what changed since."""
    board = merge(docs, sources)
    since = _changes(board, baseline, baseline_sources) if baseline else None
    head = ["target", "version", "mode", *_COLUMNS, "failing (API feature)", "run"]
    if since is not None:
        head.append("since baseline")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in board.rows:
        run = board.runs[row.runs[0]].run
        counts = row.counts
        counts["fail"] = sum(counts[v] for v in FAILING)
        target = run["target"]
        mode = row.label
        if target.get("keras"):
            mode += f", {target['keras']}"
        cells = [f"`{row.target}`", target.get("version") or "-", mode,
                 *(str(counts[v]) for v in _COLUMNS), _failing_features(row.outcomes),
                 (run.get("started") or "")[:10]
                 + (" (cut short)" if any(board.runs[i].run["interrupted"] for i in row.runs)
                    else "")]
        if since is not None:
            cells.append(since[row.index])
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    table = "\n".join(lines) + "\n"
    sweeps = sweep_table(docs)
    if sweeps and not board.rows:  # sweep results only
        return sweeps
    return table + ("\n" + sweeps if sweeps else "")


def sweep_table(docs: Sequence[dict[str, Any]]) -> str:
    """The exhaustive sweeps of the results documents, one Markdown row each: target,
    version, API, dtype, the space swept, rows judged (of all), rows per verdict (failing
    verdicts summed as ``fail``), rows graded ``exact``, distinct failure kinds, the worst
    error as a fraction of its budget, the date (marked when the sweep is unfinished);
    ``""`` when no document has a sweep."""
    lines = []
    for doc in docs:
        run = doc["run"]
        target = run["target"]
        for sw in doc.get("sweeps") or []:
            verdicts = Counter(sw.get("verdicts") or {})
            fail = sum(n for v, n in verdicts.items() if v in FAILING)
            done, rows = sw["rows_done"], sw["rows"]
            cells = [f"`{target['name']}`", target.get("version") or "-",
                     api_label(sw["api"]), sw["dtype"], sw.get("space") or "-",
                     f"{done:,}" + ("" if done == rows else f" of {rows:,}"),
                     f"{verdicts['pass']:,}", f"{verdicts['as-tensorflow']:,}", f"{fail:,}",
                     f"{(sw.get('grades') or {}).get('exact', 0):,}",
                     str(len(sw.get("failures") or [])), f"{sw.get('worst_budget') or 0:.3g}",
                     (run.get("started") or "")[:10] + ("" if done == rows else " (unfinished)")]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if not lines:
        return ""
    head = ["target", "version", "API", "dtype", "swept", "rows", "pass", "as-tensorflow",
            "fail", "exact", "failure kinds", "worst / budget", "run"]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + " --- |" * len(head), *lines]) + "\n"

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

from .merge import FAILING, api_label, merge

__all__ = ["BEGIN", "END", "standing_table"]

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


def standing_table(docs: Sequence[dict[str, Any]], sources: Sequence[str] | None = None) -> str:
    """The Markdown standing table of validated results documents."""
    board = merge(docs, sources)
    head = ["target", "version", "mode", *_COLUMNS, "failing (API feature)", "run"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in board.rows:
        run = board.runs[row.runs[0]].run
        counts = row.counts
        counts["fail"] = sum(counts[v] for v in FAILING)
        target = run["target"]
        mode = f"{row.device}/{row.profile}"
        if target.get("keras"):
            mode += f", {target['keras']}"
        cells = [f"`{row.target}`", target.get("version") or "-", mode,
                 *(str(counts[v]) for v in _COLUMNS), _failing_features(row.outcomes),
                 (run.get("started") or "")[:10]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"

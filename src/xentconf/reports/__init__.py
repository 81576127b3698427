"""Reports: results files in, one self-contained HTML page out; merge and diff of runs.

Reads :mod:`xentconf.results` documents only (never the conformance machinery)::

    from xentconf.reports import render, write_report
    html = render([doc_a, doc_b], baseline=[old_doc])      # a str: the whole page
    path = write_report(["torch.json", "jax.json"], "reports", baseline_paths=["old.json"])

:func:`merge` builds the scoreboard (rows: target runs; columns: API × dtype) and
:func:`diff` compares two sets of outcomes by id. Bad input raises :class:`ReportError`
with a one-line message.
"""

from .diff import CATEGORIES, Change, Diff, diff
from .merge import Board, Cell, ReportError, Row, merge, outcome_map
from .render import render, write_issue_reports, write_markdown, write_report

__all__ = [
    "CATEGORIES",
    "Board",
    "Cell",
    "Change",
    "Diff",
    "ReportError",
    "Row",
    "diff",
    "merge",
    "outcome_map",
    "render",
    "write_issue_reports",
    "write_markdown",
    "write_report",
]

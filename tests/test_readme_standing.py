"""The README's standing table is generated, not copied: it equals what `xentconf report
--markdown` renders from the committed results of the scoreboard run (scoreboard/), so
the counts are the results files' own (pass / as-tensorflow / deviation / fail / skip)."""

from __future__ import annotations

from pathlib import Path

from xentconf import results
from xentconf.reports.markdown import BEGIN, END, standing_table

ROOT = Path(__file__).resolve().parents[1]


def test_readme_table_is_the_committed_results_table():
    files = sorted((ROOT / "scoreboard").glob("*.json.gz"))
    assert files, "no committed results in scoreboard/ (nox -s scoreboard standing)"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    in_readme = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")
    rendered = standing_table([results.load(p) for p in files]).strip("\n")
    assert in_readme == rendered, "README's table is stale: run `nox -s standing`"


def test_committed_results_are_small():
    # the verdicts cap a run's results (issue 11: <= 2 MB per API uncompressed)
    for p in (ROOT / "scoreboard").glob("*.json.gz"):
        assert p.stat().st_size < 512 * 1024, p.name


def test_the_committed_sweep_maps_are_drawn_from_the_committed_results(tmp_path):
    from xentconf.reports import write_report

    files = sorted((ROOT / "scoreboard").glob("*.json.gz"))
    write_report(files, tmp_path)
    drawn = {p.name: p.read_bytes() for p in tmp_path.glob("*.svg")}
    committed = {p.name: p.read_bytes() for p in (ROOT / "scoreboard" / "maps").glob("*.svg")}
    assert drawn, "the committed results hold no sweep"
    assert sorted(committed) == sorted(drawn), "scoreboard/maps is stale: run `nox -s standing`"
    for name, svg in drawn.items():
        assert committed[name] == svg, f"{name} is stale: run `nox -s standing`"

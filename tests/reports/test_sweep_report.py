"""A results file that carries a sweep (``xentconf sweep``): it validates, and the report
draws its failure map and failure kinds, alone or merged with an ordinary run."""

import re
import xml.etree.ElementTree as ET

from xentconf import results
from xentconf.reports import render, write_report
from xentconf.reports.markdown import standing_table

NN = "tf.nn.sparse_softmax_cross_entropy_with_logits"


def sweep_doc() -> dict:
    doc = results.new_document({
        "xentconf_version": "0", "target": {"name": "gamma"}, "device": "cpu",
        "profile": "cpu", "accuracy": "stable", "python": "3", "platform": "x",
        "started": "2026-01-01T00:00:00Z", "duration_s": 1.0, "interrupted": False})
    bins = [f"b{k}" for k in range(64)]
    doc["sweeps"] = [{
        "id": "gamma-cpu-float16-nn_sparse-sweep", "api": NN, "api_short": "nn_sparse",
        "dtype": "float16", "rows": 4096, "rows_done": 4096, "chunks": 2, "chunks_done": 2,
        "grades": {"exact": 2048, "fail": 2048}, "verdicts": {"pass": 2048, "fail": 2048},
        "failures": [{"kind": "loss: fail, wrong NaN/inf; logits (normal, zero)",
                      "count": 2048, "examples": [{"pair": 1, "logits": ["0x1.ffcp+15",
                                                                         "0x0.0p+0"],
                                                   "label": 0, "got": ["nan"],
                                                   "expected": ["0x0.0p+0"]}],
                      "reproducer": "print(1)"}],
        "map": {"x_bins": bins, "y_bins": bins,
                "cells": [[30, 0, 2048, 2048], [15, 0, 2048, 0]]},
    }]
    return doc


def _svg(html: str) -> ET.Element:
    text = re.search(r'<svg class="plot sweepmap".*?</svg>', html, re.S).group(0)
    return ET.fromstring(text)


def test_a_sweep_document_validates_and_renders_alone():
    doc = results.validate(sweep_doc())
    html = render([doc])
    svg = _svg(html)
    ns = "{http://www.w3.org/2000/svg}"
    cells = [r for r in svg.iter(ns + "rect") if r.find(ns + "title") is not None]
    titles = sorted(r.find(ns + "title").text for r in cells)
    assert titles == ["logit 0 b15, logit 1 b0: 0 of 2048 rows fail (0%)",
                      "logit 0 b30, logit 1 b0: 2048 of 2048 rows fail (100%)"]
    fills = {r.find(ns + "title").text.split(":")[0]: r.get("fill") for r in cells}
    assert fills["logit 0 b15, logit 1 b0"] != fills["logit 0 b30, logit 1 b0"]
    assert "loss: fail, wrong NaN/inf; logits (normal, zero)" in html


def test_a_sweep_merges_with_an_ordinary_run(docs):
    alone = render(docs)
    html = render([*docs, sweep_doc()])
    assert 'id="sweeps"' in html and 'id="sweeps"' not in alone
    shown = [o["id"] for d in docs for o in d["outcomes"] if o["id"] in alone]
    assert shown and all(oid in html for oid in shown)  # the ordinary runs are all there
    _svg(html)


def _md_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith(("| target", "| ---"))]


def test_the_markdown_table_counts_a_sweep_from_its_record():
    """A sweep-only results file gives a sweep row (not an empty standing table): rows
    judged, per verdict, exact, failure kinds; an unfinished sweep says so."""
    doc = sweep_doc()
    doc["sweeps"][0]["space"] = "every pair of bit patterns"
    (row,) = _md_rows(standing_table([results.validate(doc)]))
    assert row[:6] == ["`gamma`", "-", "nn_sparse", "float16", "every pair of bit patterns",
                       "4,096"]
    assert row[6:11] == ["2,048", "0", "2,048", "2,048", "1"] and row[-1] == "2026-01-01"
    half = sweep_doc()
    half["sweeps"][0].update(rows_done=2048, chunks_done=1)
    assert _md_rows(standing_table([results.validate(half)]))[0][4] == "-"  # no space given
    (row,) = _md_rows(standing_table([results.validate(half)]))
    assert row[5] == "2,048 of 4,096" and row[-1] == "2026-01-01 (unfinished)"


def test_the_markdown_of_a_run_and_a_sweep_has_both_tables(docs):
    text = standing_table([*docs, sweep_doc()])
    assert text.startswith(standing_table(docs)) and "| nn_sparse | float16 |" in text


def test_the_second_map_colours_each_cell_by_its_worst_error_and_both_are_files(tmp_path):
    doc = sweep_doc()
    # a wrong NaN (inf, as a results file holds it), an error within the budget, exact
    doc["sweeps"][0]["map"]["cells"] = [[30, 0, 2048, 2048, "inf"], [15, 0, 2048, 0, 0.5],
                                        [16, 0, 2048, 0, 0.0]]
    path = results.write(results.validate(doc), tmp_path / "r.json")
    index = write_report([path], tmp_path / "out")
    files = sorted(p.name for p in index.parent.glob("*.svg"))
    assert files == ["sweep-1-gamma-nn_sparse-float16-error.svg",
                     "sweep-1-gamma-nn_sparse-float16-failures.svg"]
    html = index.read_text()
    assert all(f'href="{f}"' in html for f in files)
    ns = "{http://www.w3.org/2000/svg}"
    for f in files:  # each file stands alone: an SVG document with its own style
        svg = ET.parse(index.parent / f).getroot()
        assert svg.tag == ns + "svg" and svg.find(ns + "style") is not None
    # a file draws one path per colour: the error map has three, the failure map two
    colours = {f: {e.get("fill") for e in ET.parse(index.parent / f).getroot().iter(ns + "path")}
               for f in files}
    assert len(colours[files[0]]) == 3 and len(colours[files[1]]) == 2
    # the page draws the same maps, each cell with its numbers
    failures, error = (ET.fromstring(t) for t in
                       re.findall(r'<svg class="plot sweepmap".*?</svg>', html, re.S))
    by_cell = {r.find(ns + "title").text.split(":")[0]: (r.find(ns + "title").text,
                                                         r.get("fill"))
               for r in error.iter(ns + "rect") if r.find(ns + "title") is not None}
    assert "worst error inf × the budget" in by_cell["logit 0 b30, logit 1 b0"][0]
    assert "worst error 0.5 × the budget" in by_cell["logit 0 b15, logit 1 b0"][0]
    assert "worst error 0 × the budget" in by_cell["logit 0 b16, logit 1 b0"][0]
    assert len({fill for _, fill in by_cell.values()}) == 3
    assert {fill for _, fill in by_cell.values()} == colours[files[0]]
    # the failure map cannot tell the exact cell from the one within the budget
    fills = {r.find(ns + "title").text.split(":")[0]: r.get("fill")
             for r in failures.iter(ns + "rect") if r.find(ns + "title") is not None}
    assert fills["logit 0 b15, logit 1 b0"] == fills["logit 0 b16, logit 1 b0"]


def test_a_sweep_without_recorded_errors_gets_the_failure_map_alone(tmp_path):
    path = results.write(results.validate(sweep_doc()), tmp_path / "r.json")
    index = write_report([path], tmp_path / "out")
    assert [p.name for p in index.parent.glob("*.svg")] == \
        ["sweep-1-gamma-nn_sparse-float16-failures.svg"]

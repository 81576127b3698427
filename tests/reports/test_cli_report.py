"""``xentconf report``: run as a user runs it (a subprocess), success and every bad input.

Bad input gets one line on stderr and exit status 2, and leaves an existing report (and
everything else in the output folder) exactly as it was.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xentconf import results
from xentconf.reports import ReportError, write_report

OLD_REPORT = "<!-- the previous report -->\n"


def run_report(*args: str | os.PathLike, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xentconf", "report", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output folder holding a previous report."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "index.html").write_text(OLD_REPORT)
    return folder


def assert_untouched(folder: Path) -> None:
    assert (folder / "index.html").read_text() == OLD_REPORT
    assert sorted(p.name for p in folder.iterdir()) == ["index.html"]  # no temp files left


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("xentconf report: ")
    for word in words:
        assert word in lines[0]


def test_writes_the_report_and_prints_its_path(results_files, out, tmp_path):
    proc = run_report(*results_files["current"], "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / "index.html")
    text = (out / "index.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and 'id="diff"' not in text
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]


def test_with_a_baseline_into_a_new_folder(results_files, tmp_path):
    proc = run_report(*results_files["current"], "--baseline", *results_files["baseline"],
                      "--out", "new/sub", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(Path("new/sub/index.html"))
    assert 'id="diff-newly_failing"' in (tmp_path / "new/sub/index.html").read_text()


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("case, words", [
    ("missing", ["nope.json", "no such file"]),
    ("directory", ["is a directory"]),
    ("not-json", ["not valid JSON"]),
    ("not-utf8", ["not a text file"]),
    ("foreign", ["not an xentconf results file"]),
    ("newer", ["newer", "upgrade xentconf"]),
    ("invalid", ["outcomes[0].verdict"]),
    ("empty", ["nothing to report"]),
])
def test_bad_results_file(case, words, results_files, out, tmp_path):
    good = results_files["current"][0]
    bad = tmp_path / "bad.json"
    doc = json.loads(good.read_text())
    if case == "missing":
        bad = tmp_path / "nope.json"
    elif case == "directory":
        bad.mkdir()
    elif case == "not-json":
        _write(bad, '{"schema": "xentconf-results",')
    elif case == "not-utf8":
        _write(bad, b"\xff\xfe\x00\x00garbage")
    elif case == "foreign":
        _write(bad, json.dumps({"name": "some other tool", "version": 3}))
    elif case == "newer":
        _write(bad, json.dumps(dict(doc, schema_version=results.SCHEMA_VERSION + 1)))
    elif case == "invalid":
        doc["outcomes"][0]["verdict"] = "maybe"
        _write(bad, json.dumps(doc))
    elif case == "empty":
        _write(bad, results.dumps(results.new_document(doc["run"])))
    args = [bad] if case == "empty" else [good, bad]
    proc = run_report(*args, "--out", out, cwd=tmp_path)
    assert_one_line_error(proc, *words)
    assert_untouched(out)


def test_output_path_is_a_file(results_files, tmp_path):
    target = tmp_path / "report.html"
    target.write_text(OLD_REPORT)
    proc = run_report(*results_files["current"], "--out", target, cwd=tmp_path)
    assert_one_line_error(proc, "exists and is not a folder")
    assert target.read_text() == OLD_REPORT


def test_a_markdown_table_under_a_file_names_the_folder(results_files, tmp_path):
    (tmp_path / "afile").write_text(OLD_REPORT)
    proc = run_report(*results_files["current"], "--markdown", "afile/standing.md",
                      cwd=tmp_path)
    assert_one_line_error(proc, "afile/standing.md: its folder is a file")
    assert (tmp_path / "afile").read_text() == OLD_REPORT


def test_index_html_is_a_folder(results_files, tmp_path):
    (tmp_path / "out" / "index.html").mkdir(parents=True)
    proc = run_report(*results_files["current"], "--out", tmp_path / "out", cwd=tmp_path)
    assert_one_line_error(proc, "is a folder")


def test_missing_baseline(results_files, out, tmp_path):
    proc = run_report(*results_files["current"], "--baseline", tmp_path / "old.json",
                      "--out", out, cwd=tmp_path)
    assert_one_line_error(proc, "baseline", "old.json", "no such file")
    assert_untouched(out)


def test_duplicate_results(results_files, out, tmp_path):
    alpha = results_files["current"][0]
    proc = run_report(alpha, alpha, "--out", out, cwd=tmp_path)
    assert_one_line_error(proc, "alpha.json is named twice")
    copy = tmp_path / "copy.json"
    copy.write_text(alpha.read_text())
    proc = run_report(alpha, copy, "--out", out, cwd=tmp_path)
    assert_one_line_error(proc, "appears in both", "alpha.json", "copy.json")
    assert_untouched(out)


def test_no_results_argument(out, tmp_path):
    proc = run_report("--out", out, cwd=tmp_path)
    assert_one_line_error(proc, "no RESULTS given")
    assert_untouched(out)


def test_results_swallowed_by_baseline(results_files, out, tmp_path):
    proc = run_report("--baseline", *results_files["baseline"], "--out", out, cwd=tmp_path)
    assert_one_line_error(proc, "no RESULTS given", "put RESULTS first")
    assert_untouched(out)


def test_no_out_argument(results_files, tmp_path):
    proc = run_report(*results_files["current"], cwd=tmp_path)
    assert_one_line_error(proc, "--out DIR")
    assert list(tmp_path.glob("**/index.html")) == []


# --------------------------------------------------------------------- in process


def test_write_report_failing_rename_keeps_the_old_report(results_files, out, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ReportError, match="cannot write the report .No space left on device"):
        write_report(results_files["current"], out)
    assert_untouched(out)


def test_bad_input_creates_no_folder(results_files, tmp_path):
    with pytest.raises(ReportError):
        write_report([tmp_path / "missing.json"], tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(ReportError, match="no results files given"):
        write_report([], tmp_path / "fresh")
    path = write_report(results_files["current"], tmp_path / "fresh")
    assert path == tmp_path / "fresh" / "index.html" and path.stat().st_size > 10_000

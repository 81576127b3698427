"""The standing table in Markdown (``xentconf report --markdown``), counted from results."""

from __future__ import annotations

import subprocess
import sys

from xentconf import results
from xentconf.reports.markdown import standing_table


def _rows(text: str) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_one_row_per_target_run_with_counts_from_the_outcomes(docs):
    head, rule, alpha, beta = _rows(standing_table(docs))
    assert head[:9] == ["target", "version", "mode", "pass", "as-tensorflow", "deviation",
                        "fail", "skip", "failing (API feature)"]
    assert set(rule) == {"---"}
    col = {name: i for i, name in enumerate(head)}
    # alpha: every API x 3 dtypes x 3 features; of those 2 deviations, 2 skips and four
    # failing verdicts (fail, crash, timeout, error), as the fixture declares them
    total = len(docs[0]["outcomes"])
    assert alpha[col["target"]] == "`alpha`" and alpha[col["mode"]] == "cpu/cpu, keras2"
    assert (alpha[col["deviation"]], alpha[col["skip"]], alpha[col["fail"]]) == ("2", "2", "4")
    assert int(alpha[col["pass"]]) == total - 8
    assert "raw_sparse basic" in alpha[col["failing (API feature)"]]
    assert "keras_sparse basic" in alpha[col["failing (API feature)"]]
    assert beta[col["mode"]] == "cuda/gpu, keras2"
    assert (beta[col["pass"]], beta[col["fail"]]) == ("7", "1")
    assert beta[col["failing (API feature)"]] == "nn_sparse special_values"
    assert alpha[col["run"]] == "2026-01-02"


def test_the_command_writes_the_table(tmp_path, docs):
    path = tmp_path / "alpha.json"
    results.write(docs[0], path)
    out = tmp_path / "standing.md"
    proc = subprocess.run([sys.executable, "-m", "xentconf", "report", str(path), "--markdown",
                           str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == standing_table([docs[0]], [str(path)])
    assert not (tmp_path / "index.html").exists()  # --markdown alone writes no page


def test_baseline_column_counts_each_rows_changes(docs, baseline, expected_changes):
    """With a baseline, the last column counts the report's change categories per row,
    from the fixture's planted changes (independent of the table's code)."""
    head, _, alpha, beta = _rows(standing_table(docs, baseline=baseline))
    col = head.index("since baseline")
    assert col == len(head) - 1
    alpha_changes = {k: len([i for i in v if i.startswith("alpha-")])
                     for k, v in expected_changes.items()}
    want = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in [
        ("newly_failing", alpha_changes["newly_failing"]),
        ("newly_passing", alpha_changes["newly_passing"]),
        ("grade_worse", alpha_changes["grade_worse"]),
        ("grade_better", alpha_changes["grade_better"]),
        ("other verdict changes", alpha_changes["verdict_changed"]),
        ("removed tests", alpha_changes["removed"])] if n)
    assert alpha[col] == want
    assert beta[col] == "1 added tests"


def test_the_command_reads_gzipped_results_and_a_baseline(tmp_path, docs, baseline):
    import gzip

    paths = []
    for name, doc in [("alpha.json.gz", docs[0]), ("old-alpha.json", baseline[0])]:
        p = results.write(doc, tmp_path / "plain.json")
        if name.endswith(".gz"):
            (tmp_path / name).write_bytes(gzip.compress(p.read_bytes()))
        else:
            p.rename(tmp_path / name)
        paths.append(str(tmp_path / name))
    proc = subprocess.run([sys.executable, "-m", "xentconf", "report", paths[0], "--markdown",
                           "-", "--baseline", paths[1]], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == standing_table([docs[0]], baseline=[baseline[0]])
    assert proc.stdout.splitlines()[0].endswith("| since baseline |")


def test_a_run_cut_short_says_so(docs):
    import copy

    cut = copy.deepcopy(docs[0])
    cut["run"]["interrupted"] = True
    head, _, row = _rows(standing_table([cut]))
    assert row[head.index("run")] == "2026-01-02 (cut short)"

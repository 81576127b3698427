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

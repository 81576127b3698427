"""``xentconf report --issues DIR``: each distinct finding as a ready-to-file bug report.

The results come from a real run of a deliberately wrong callable
(tests/conformance/targets/xent_targets.py: ``two_bugs`` wraps label −1 around to the
last class and clamps labels ≥ C, where TensorFlow raises InvalidArgumentError on the CPU
for both — TF-SEMANTICS §2), in two dtypes, so each bug shows in two tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xentconf import results
from xentconf.conformance.strategies import BAD_LABELS
from xentconf.reports.issues import findings
from xentconf.vocabulary import API_DOC

pytestmark = pytest.mark.slow  # one real conformance run, then the command

TARGETS = Path(__file__).parents[1] / "conformance" / "targets"
NN = "tf.nn.sparse_softmax_cross_entropy_with_logits"


def _env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TARGETS), e.get("PYTHONPATH", "")])
    e.pop("PYTEST_ADDOPTS", None)
    e.pop("PYTEST_XDIST_WORKER", None)
    return e


def _xentconf(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xentconf", *args], capture_output=True,
                          text=True, env=_env(), cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def run_results(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("two_bugs")
    r = _xentconf("run", "--target", "xent_targets:two_bugs", "--api", NN, "--dtype",
                  "float32", "--dtype", "float64", "--feature", "bad_labels", "--feature",
                  "basic", "--examples", "20", "--out", str(tmp / "out"), "--no-report",
                  cwd=tmp)
    assert r.returncode == 1, r.stdout + r.stderr
    return tmp / "out" / "results.json"


def test_each_kind_of_bad_label_is_one_finding_across_dtypes(run_results):
    found = findings([results.load(run_results)])
    # the two bugs fail alike: they are told apart by the kind of bad label (each is a
    # finding: -1 shows the wrapping, the others the clamping); each shows in both dtypes
    assert len(found) == len(BAD_LABELS), [f.title for f in found]
    assert sorted(t for f in found for t in f.tags if t in BAD_LABELS) == \
        sorted(BAD_LABELS), [f.title for f in found]
    for f in found:
        assert f.kind == "tf-raises" and f.api == NN
        assert sorted(t.split("-")[2] for t in f.tests) == ["float32", "float64"]
        args = f.failure["counterexample"]["args"]
        assert args["logits"]["shape"][0] == 1  # the minimal case: one row
    labels = {f.failure["counterexample"]["args"]["labels"]["data"][0] for f in found}
    assert any(y < 0 for y in labels) and any(y >= 0 for y in labels)  # wraps, clamps


def test_the_command_writes_ready_to_file_reports(run_results, tmp_path):
    out = tmp_path / "issues"
    r = _xentconf("report", str(run_results), "--issues", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{len(BAD_LABELS)} findings:")
    files = sorted(p for p in out.glob("*.md") if p.name != "README.md")
    assert len(files) == len(BAD_LABELS)
    index = (out / "README.md").read_text()
    for path in files:
        text = path.read_text()
        assert f"]({path.name})" in index
        assert text.startswith("# xent_targets")
        # what TensorFlow's documented semantics say: the API's line and its error
        assert API_DOC[NN] in text
        assert "For this input TensorFlow raises `InvalidArgumentError`" in text
        # the minimal input, as a case for `xentconf oracle`
        case = json.loads(re.search(r"```json\n(.*?)\n```", text, re.S).group(1))
        assert case["api"] == NN and case["args"]["logits"]["shape"][0] == 1
        # what the framework returns: a loss, where it must have raised
        assert "## What xent_targets.two_bugs returns" in text and "- `loss`:" in text
        # the standalone reproducer, which fails while the bug is there
        script = re.search(r"```python\n(.*?)\n```", text, re.S).group(1)
        (tmp_path / "repro.py").write_text(script)
        p = subprocess.run([sys.executable, "-c", "import sys; sys.modules['xentconf'] = None;"
                            " exec(open(sys.argv[1]).read())", str(tmp_path / "repro.py")],
                           capture_output=True, text=True, env=_env(), timeout=120)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "TensorFlow raises InvalidArgumentError" in p.stdout


def test_bad_input_is_one_line_and_exit_2(run_results, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    r = _xentconf("report", str(run_results), "--issues", str(blocker / "sub"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--issues" in r.stderr and "cannot write there" in r.stderr
    r = _xentconf("report", str(run_results), "--issues", str(blocker), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"--issues {blocker}: is a file" in r.stderr and blocker.read_text() == "keep"
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = _xentconf("report", str(bad), "--issues", str(tmp_path / "i"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not valid JSON" in r.stderr
    assert not (tmp_path / "i").exists()

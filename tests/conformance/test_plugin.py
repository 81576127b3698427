"""The pytest plugin: inert unless asked, option errors, sweeps, pinned deviations.

Every run is ``python -m pytest`` in a subprocess in an empty folder, as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# every test here runs pytest in a subprocess (seconds each)
pytestmark = pytest.mark.slow

RAW = "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits"


def pytest_run(tmp_path, *args):
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)


def test_inert_without_a_target(tmp_path):
    (tmp_path / "test_mine.py").write_text("def test_one():\n    assert True\n")
    r = pytest_run(tmp_path, "-q")
    assert r.returncode == 0 and "1 passed" in r.stdout
    assert "xentconf" not in r.stdout.split("passed")[0].lower().replace("plugins:", "")


def test_options_need_a_target(tmp_path):
    r = pytest_run(tmp_path, "--xentconf-api", "raw_sparse")
    assert r.returncode == 4  # pytest's usage error
    assert "--xentconf-api needs --xentconf-target" in r.stderr


def test_given_paths_run_beside_the_suite(tmp_path):
    (tmp_path / "test_mine.py").write_text("def test_one():\n    assert True\n")
    r = pytest_run(tmp_path, "-q", "test_mine.py", "--xentconf-target", "reference",
                   "--xentconf-api", "raw_sparse", "--xentconf-dtype", "float64",
                   "--xentconf-feature", "basic", "--xentconf-examples", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout  # the user's test and one conformance test


@pytest.mark.parametrize("path, says", [
    ("afile/r.json", "its folder is a file"),
    ("afile/sub/r.json", "its folder cannot write there (Not a directory)"),
])
def test_a_results_path_that_cannot_be_written_is_a_usage_error_before_the_run(
        tmp_path, path, says):
    (tmp_path / "afile").write_text("a file, not a folder")
    r = pytest_run(tmp_path, "-q", "--xentconf-target", "reference", "--xentconf-api",
                   "raw_sparse", "--xentconf-dtype", "float64", "--xentconf-feature", "basic",
                   "--xentconf-results", path)
    assert r.returncode == 4, r.stdout + r.stderr  # pytest's usage error, before any test
    assert f"--xentconf-results {path}: {says}" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "passed" not in r.stdout


def test_a_results_file_that_cannot_be_written_at_the_end_is_a_harness_failure(tmp_path):
    # the user's own test takes the results file's name as a folder while the run goes on
    (tmp_path / "test_mine.py").write_text(
        "import os\n\ndef test_takes_the_name():\n    os.mkdir('r.json')\n")
    r = pytest_run(tmp_path, "-q", "test_mine.py", "--xentconf-target", "reference",
                   "--xentconf-api", "raw_sparse", "--xentconf-dtype", "float64",
                   "--xentconf-feature", "basic", "--xentconf-examples", "2",
                   "--xentconf-results", "r.json")
    assert r.returncode == 3, r.stdout + r.stderr  # not 0 (conforms) nor 1 (does not)
    assert "2 passed" in r.stdout
    (line,) = [x for x in r.stderr.splitlines() if "r.json could not be written" in x]
    assert "is a directory" in line


def test_a_sweep_shard_judges_every_row(tmp_path):
    r = pytest_run(tmp_path, "-q", "--xentconf-target", "reference", "--xentconf-api",
                   "raw_sparse", "--xentconf-dtype", "bfloat16", "--xentconf-feature", "sweep",
                   "-k", "sweep3of8", "--xentconf-results", "r.json")
    assert r.returncode == 0, r.stdout + r.stderr
    (o,) = json.loads((tmp_path / "r.json").read_text())["outcomes"]
    assert o["verdict"] == "pass" and o["grade"] == "exact"
    assert o["examples"] == 65536 // 8 * 8 * 2  # bit patterns x grid x labels


def test_pinned_deviation_that_passes_now_is_reported(tmp_path):
    case = {"api": RAW, "args": {"features": {"dtype": "float32", "data": [[1.0, 2.0]]},
                                 "labels": {"dtype": "int32", "data": [0]}}}
    (tmp_path / "devs.toml").write_text(
        '[[deviation]]\nid = "reference-cpu-float32-raw_sparse-*"\n'
        'reason = "a deviation the reference does not have"\ngrade = "stable"\n'
        "[deviation.pinned]\n" + "\n".join(_toml(case)) + "\n")
    r = pytest_run(tmp_path, "-q", "-rx", "--xentconf-target", "reference", "--xentconf-api",
                   "raw_sparse", "--xentconf-dtype", "float32", "--xentconf-feature", "basic",
                   "--xentconf-examples", "2", "--xentconf-deviations", "devs.toml",
                   "--xentconf-results", "r.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pinned case passes now" in r.stdout
    (entry,) = json.loads((tmp_path / "r.json").read_text())["deviations"]
    assert entry["pinned"] == "passes" and entry["matched"] == 0


def test_a_broken_deviations_file_is_a_usage_error(tmp_path):
    (tmp_path / "devs.toml").write_text('[[deviation]]\nid = "x"\n')
    r = pytest_run(tmp_path, "--xentconf-target", "reference", "--xentconf-deviations",
                   "devs.toml")
    assert r.returncode == 4
    assert "give 'reason' as a non-empty string" in r.stderr


def test_an_array_library_the_plugin_cannot_use_is_a_usage_error(tmp_path):
    r = pytest_run(tmp_path, "--xentconf-target", "mylosses:xent", "--xentconf-api",
                   "nn_sparse", "--xentconf-array", "tensor")
    assert r.returncode == 4
    assert "--xentconf-array 'tensor': unknown array library" in r.stderr


def _toml(case: dict) -> list[str]:
    lines = [f'api = "{case["api"]}"']
    for name, arr in case["args"].items():
        lines.append(f'args.{name} = {{ dtype = "{arr["dtype"]}", data = {arr["data"]} }}')
    return lines

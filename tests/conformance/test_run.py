"""``xentconf run`` end to end: verdicts, reproducers, isolation, interruption, usage errors.

Each run is a real subprocess on deliberately good, wrong, crashing, hanging and
garbage-returning callables (tests/conformance/targets), with few examples so the whole
file stays quick. Expected outcomes follow from what each callable does, not from the
code under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TARGETS = Path(__file__).parent / "targets"
NN = "tf.nn.sparse_softmax_cross_entropy_with_logits"


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TARGETS), e.get("PYTHONPATH", "")])
    e.pop("PYTEST_ADDOPTS", None)
    e.pop("PYTEST_XDIST_WORKER", None)
    return e


def xrun(tmp_path, *args, timeout=300):
    cmd = [sys.executable, "-m", "xentconf", "run", "--out", str(tmp_path / "out"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=timeout,
                          cwd=tmp_path)


def outcomes(tmp_path) -> dict:
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    return {o["feature"]: o for o in doc["outcomes"]}


def callable_args(name, *features, examples=4):
    args = ["--target", f"xent_targets:{name}", "--api", NN, "--dtype", "float32",
            "--examples", str(examples)]
    for f in features:
        args += ["--feature", f]
    return args


def test_a_conforming_callable_passes_and_writes_every_file(tmp_path):
    r = xrun(tmp_path, *callable_args("good", "basic", "rank3+"))
    assert r.returncode == 0, r.stdout + r.stderr
    got = outcomes(tmp_path)
    assert {f: o["verdict"] for f, o in got.items()} == {"basic": "pass", "rank3+": "pass"}
    assert all(o["examples"] >= 4 for o in got.values())
    for name in ("results.json", "junit.xml", "index.html"):
        assert (tmp_path / "out" / name).is_file(), name
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert "xent_targets.good-cpu-float32-nn_sparse-basic" in junit


def test_a_wrong_callable_fails_with_a_standalone_reproducer(tmp_path):
    r = xrun(tmp_path, *callable_args("naive", "regimes", examples=20))
    assert r.returncode == 1, r.stdout + r.stderr
    o = outcomes(tmp_path)["regimes"]
    assert o["verdict"] == "fail" and o["grade"] == "fail"
    assert o["counterexample"]["api"] == NN and o["reproducer"]
    assert o["expected"]["loss"]["dtype"] == "float32"
    script = tmp_path / "repro.py"
    script.write_text(o["reproducer"])
    # the reproducer must run without xentconf: make importing it fail outright
    blocker = "import sys; sys.modules['xentconf'] = None; "
    p = subprocess.run([sys.executable, "-c", blocker + "exec(open(sys.argv[1]).read())",
                        str(script)], capture_output=True, text=True, env=env(), timeout=120)
    assert p.returncode == 0, p.stderr
    assert "MISMATCH" in p.stdout and "<-- outside" in p.stdout


@pytest.mark.parametrize("name, verdict, text", [
    ("crash", "crash", "SIGABRT"),
    ("hang", "timeout", "no answer within"),
    ("garbage", "error", "not"),
])
def test_misbehaving_targets_become_outcomes_and_the_run_goes_on(tmp_path, name, verdict,
                                                                 text):
    r = xrun(tmp_path, *callable_args(name, "basic", "batch0", examples=3), "--timeout", "3")
    assert r.returncode == 1, r.stdout + r.stderr
    got = outcomes(tmp_path)
    assert set(got) == {"basic", "batch0"}  # both tests ran and were recorded
    assert got["basic"]["verdict"] == verdict, got["basic"]["message"]
    assert text in got["basic"]["message"]
    if name == "crash":  # an empty batch has 0 elements: the callable does not abort
        assert got["batch0"]["verdict"] == "pass"


def test_a_refusing_target_fails_on_valid_input_but_passes_the_invalid_ones(tmp_path):
    r = xrun(tmp_path, *callable_args("refuse", "basic", "invalid"))
    assert r.returncode == 1
    got = outcomes(tmp_path)
    assert got["basic"]["verdict"] == "fail"
    assert "the target raised ValueError" in got["basic"]["message"]
    assert got["invalid"]["verdict"] == "pass"  # TF rejects these too: any error counts


def test_declared_deviations_excuse_a_failure_and_unmatched_entries_are_reported(tmp_path):
    dev = tmp_path / "devs.toml"
    dev.write_text('''
[[deviation]]
id = "xent_targets.sloppy-cpu-float32-nn_sparse-basic*"
reason = "this kernel is 1e-4 off everywhere"
grade = "fail"

[[deviation]]
id = "xent_targets.sloppy-cpu-float64-*"
reason = "never exercised in this run"
''')
    r = xrun(tmp_path, *callable_args("sloppy", "basic"), "--deviations", str(dev))
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    (o,) = doc["outcomes"]
    assert o["verdict"] == "deviation" and o["deviation_matches"]
    assert o["grade"] == "fail"  # the grade reached (1e-4 off), not the one declared
    matched = {d["id"]: d["matched"] for d in doc["deviations"]}
    assert matched["xent_targets.sloppy-cpu-float64-*"] == 0
    assert matched["xent_targets.sloppy-cpu-float32-nn_sparse-basic*"] >= 1
    assert "'xent_targets.sloppy-cpu-float64-*' matched no case" in r.stdout
    # without the file the same run fails
    r2 = xrun(tmp_path, *callable_args("sloppy", "basic"))
    assert r2.returncode == 1


def test_as_tensorflow_conforms_and_fails_under_strict(tmp_path):
    """compat.v1's float64 reduced in float32, as TensorFlow does: exit 0 and the verdict
    as-tensorflow; with --strict the same run exits 1."""
    args = ["--target", "tf_mechanisms:v1_sparse_float32", "--api", "v1_sparse",
            "--dtype", "float64", "--feature", "basic", "--examples", "3", "--no-report"]
    r = xrun(tmp_path, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    (o,) = outcomes(tmp_path).values()
    assert o["verdict"] == "as-tensorflow" and set(o["mechanisms"]) == {"compat-v1-float32"}
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["run"]["strict"] is False
    r = xrun(tmp_path, *args, "--strict")
    assert r.returncode == 1, r.stdout + r.stderr
    (o,) = outcomes(tmp_path).values()
    assert o["verdict"] == "fail" and "--strict" in o["message"]


def test_reference_conforms_on_every_api_with_two_workers(tmp_path):
    r = xrun(tmp_path, "--target", "reference", "--dtype", "float32", "--examples", "2",
             "--feature", "basic", "--feature", "invalid", "-n", "2", "--no-report")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    apis = {o["api_short"] for o in doc["outcomes"]}
    assert len(apis) == 8 and len(doc["outcomes"]) == 16
    assert all(o["verdict"] == "pass" for o in doc["outcomes"])
    assert not (tmp_path / "out" / "index.html").exists()


def test_ctrl_c_keeps_the_results_so_far(tmp_path):
    cmd = [sys.executable, "-m", "xentconf", "run", "--out", str(tmp_path / "out"),
           *callable_args("hang", "basic", "batch0", "rank1"), "--timeout", "600"]
    p = subprocess.Popen(cmd, env=env(), cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    time.sleep(8)  # batch0 finishes at once; basic hangs
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 130, out
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["run"]["interrupted"] is True


@pytest.mark.parametrize("args, message", [
    (["--target", "no_such_target"], "unknown target 'no_such_target'"),
    (["--target", "xent_targets:good"], "exactly one --xentconf-api"),
    (["--target", "reference", "--api", "nope"], "unknown API"),
    (["--target", "reference", "--feature", "colour"], "unknown feature"),
    (["--target", "reference", "--examples", "0"], "at least 1"),
    (["--target", "reference", "--accuracy", "perfect"], "invalid choice"),
    (["--target", "reference", "--deviations", "missing.toml"], "no such file"),
    (["--target", "reference", "--api", "raw_sparse", "--feature", "ignore_class"],
     "no tests selected"),
])
def test_usage_errors_exit_2_with_a_clear_message(tmp_path, args, message):
    r = xrun(tmp_path, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stdout + r.stderr


def test_out_must_not_be_a_file(tmp_path):
    (tmp_path / "out").write_text("keep me")
    r = xrun(tmp_path, "--target", "reference")
    assert r.returncode == 2 and "is a file" in r.stderr
    assert (tmp_path / "out").read_text() == "keep me"

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

from xentconf.conformance.checker import FAILURES_CAP
from xentconf.conformance.strategies import BAD_LABELS, categories

# every test here runs `xentconf run` in a subprocess (seconds each)
pytestmark = pytest.mark.slow

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
    assert p.returncode == 1, p.stderr  # it shows a discrepancy: it fails
    assert "MISMATCH" in p.stdout and "<-- outside" in p.stdout


# hang: a time limit above the ci profile's hypothesis share of the shrink budget (0.6 x
# 20 s), so that a second try, which would cost the whole limit again, is not made
@pytest.mark.parametrize("name, verdict, text, timeout", [
    ("crash", "crash", "SIGABRT", 3),
    ("hang", "timeout", "no answer within", 13),
    ("garbage", "error", "not", 3),
])
def test_misbehaving_targets_become_outcomes_and_the_run_goes_on(tmp_path, name, verdict,
                                                                 text, timeout):
    r = xrun(tmp_path, *callable_args(name, "basic", "batch0", examples=8),
             "--timeout", str(timeout))
    assert r.returncode == 1, r.stdout + r.stderr
    got = outcomes(tmp_path)
    assert set(got) == {"basic", "batch0"}  # both tests ran and were recorded
    assert got["basic"]["verdict"] == verdict, got["basic"]["message"]
    assert text in got["basic"]["message"]
    if name == "crash":  # an empty batch has 0 elements: the callable does not abort
        assert got["batch0"]["verdict"] == "pass"
    if name == "hang":  # each test called the target once: a second try would time out too
        assert [got[f]["examples"] for f in ("basic", "batch0")] == [1, 1]


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
            "--dtype", "float64", "--feature", "basic", "--examples", "10", "--no-report"]
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


def _sigint_default() -> None:
    # A shell runs a background job with SIGINT ignored, and an ignored signal stays
    # ignored across exec: Python then installs no KeyboardInterrupt handler. Give the
    # child the default disposition, as an interactive Ctrl-C would find it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_the_results_so_far(tmp_path):
    cmd = [sys.executable, "-m", "xentconf", "run", "--out", str(tmp_path / "out"),
           *callable_args("hang", "basic", "batch0", "rank1"), "--timeout", "600"]
    p = subprocess.Popen(cmd, env=env(), cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, preexec_fn=_sigint_default,
                         start_new_session=True)  # its own group: killed whole on failure
    try:
        time.sleep(8)  # batch0 finishes at once; basic hangs
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=120)
    finally:
        try:  # whatever the run left behind (its sandbox child), or the run itself
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    assert p.returncode == 130, out
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["run"]["interrupted"] is True


# Every bad input of `xentconf run`: one line on stderr naming run's own option, exit 2.
# Each is caught before pytest starts (pytest would print dots or a summary).
USAGE_ERRORS = [
    (["--target", "no_such_target"], "unknown target 'no_such_target'"),
    (["--api", "nn_sparse"], "--api needs --target"),
    (["--target", "xent_targets:good"], "exactly one --api"),
    (["--target", "reference", "--api", "nope"], "--api 'nope': unknown API"),
    (["--target", "reference", "--feature", "colour"], "--feature 'colour': unknown feature"),
    (["--target", "reference", "--examples", "0"], "--examples 0: give at least 1"),
    (["--target", "reference", "--examples", "many"], "--examples: invalid int value"),
    (["--target", "reference", "--accuracy", "perfect"], "--accuracy 'perfect': unknown grade"),
    (["--target", "reference", "--dtype", "float8"], "--dtype 'float8': unknown dtype"),
    (["--target", "reference", "--timeout", "0"], "--timeout 0.0: give a positive number"),
    (["--target", "reference", "--deviations", "missing.toml"], "no such file"),
    (["--target", "reference", "--device", "cuda"], "has no mode on device 'cuda'"),
    (["--target", "reference", "--mode", "warp"], "--mode 'warp': unknown"),
    (["--target", "reference", "--mode", "compile"], "has no mode on device 'cpu' executing "
     "'compile'"),
    (["--target", "xent_targets:good", "--api", NN, "--unsupported", "teleport"],
     "--unsupported 'teleport': unknown feature"),
    (["--target", "reference", "-n", "lots"], "-n lots: give a number of workers"),
    (["--target", "xent_targets:good", "--api", NN, "--array", "tensor"],
     "--array 'tensor': unknown array library"),
    (["--target", "reference", "--array", "jax"], "--array is for a callable target"),
    (["--target", "reference", "--pairs", "9:3"], "--pairs '9:3': need 0 <= START < STOP"),
    (["--target", "reference", "--feature", "pairs"], "--feature pairs needs --pairs"),
    (["--target", "xent_targets:good", "--api", NN, "--array", "cupy"],
     "--array cupy: cupy is not installed"),
    (["--target", "xent_targets:good", "--api", NN, "--device", "cuda"],
     "--array numpy holds arrays on the cpu only"),
    (["--target", "reference", "--out", "/proc/xentconf-out"], "--out /proc/xentconf-out: "
     "cannot write there"),
    (["--target", "reference", "--out", "a-file/sub"], "--out a-file/sub: cannot write there"),
    (["--target", "reference", "--api", "raw_sparse", "--feature", "ignore_class"],
     "no tests selected"),
]


@pytest.mark.parametrize("args, message", USAGE_ERRORS, ids=[m for _, m in USAGE_ERRORS])
def test_usage_errors_exit_2_with_a_clear_message(tmp_path, args, message):
    (tmp_path / "a-file").write_text("keep me")
    r = xrun(tmp_path, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr  # one line
    assert r.stdout == "", r.stdout  # before pytest started
    assert "--xentconf-" not in r.stderr  # run's own option names
    assert (tmp_path / "a-file").read_text() == "keep me"
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_an_array_library_that_sees_no_gpu_is_a_usage_error(tmp_path, monkeypatch, library):
    import importlib.util

    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed (the test command installs it)")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU is visible, on any machine
    r = xrun(tmp_path, "--target", "xent_targets:good", "--api", NN, "--array", library,
             "--device", "cuda")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"--array {library} --device cuda: {library} sees no CUDA device here" in r.stderr
    assert r.stderr.count("\n") == 1 and r.stdout == "", r.stdout + r.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_out_must_not_be_a_file(tmp_path):
    (tmp_path / "out").write_text("keep me")
    r = xrun(tmp_path, "--target", "reference")
    assert r.returncode == 2 and "is a file" in r.stderr
    assert (tmp_path / "out").read_text() == "keep me"


def test_every_output_file_gets_an_ordinary_mode(tmp_path):
    r = xrun(tmp_path, *callable_args("good", "batch0"))
    assert r.returncode == 0, r.stdout + r.stderr
    mask = os.umask(0)
    os.umask(mask)
    for name in ("results.json", "junit.xml", "index.html"):
        assert (tmp_path / "out" / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_declared_dtypes_are_skipped_and_the_callables_version_is_recorded(tmp_path):
    r = xrun(tmp_path, *callable_args("good", "batch0", examples=2),
             "--dtype", "float16", "--dtype", "bfloat16", "--unsupported", "bfloat16")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    verdicts = {o["dtype"]: (o["verdict"], o["message"]) for o in doc["outcomes"]}
    assert verdicts["float16"][0] == verdicts["float32"][0] == "pass"
    assert verdicts["bfloat16"][0] == "skip" and "declares bfloat16 unsupported" in \
        verdicts["bfloat16"][1]
    assert doc["run"]["target"]["version"] == "0.3.1"  # the module's __version__


def run_script(tmp_path, text: str, name: str = "repro.py", replace: tuple = ()):
    """Run a reproducer without xentconf importable; ``replace`` edits its text first."""
    for old, new in replace:
        assert old in text
        text = text.replace(old, new)
    script = tmp_path / name
    script.write_text(text)
    blocker = "import sys; sys.modules['xentconf'] = None; "
    return subprocess.run([sys.executable, "-c", blocker + "exec(open(sys.argv[1]).read())",
                           str(script)], capture_output=True, text=True, env=env(),
                          timeout=120)


def test_two_bugs_in_one_feature_give_a_minimal_counterexample_each(tmp_path):
    # two_bugs wraps label -1 around AND clamps labels >= C; TensorFlow raises for both
    # (TF-SEMANTICS: out-of-range labels raise on CPU). Both fail alike (a loss where TF
    # raises): only the kind of bad label tells them apart, so each kind is reported, not
    # whichever two were drawn first
    r = xrun(tmp_path, *callable_args("two_bugs", "bad_labels", examples=20))
    assert r.returncode == 1, r.stdout + r.stderr
    o = outcomes(tmp_path)["bad_labels"]
    assert o["verdict"] == "fail"
    fs = o["failures"]
    assert {f["kind"] for f in fs} == {"tf-raises"}, o["message"]
    shown = [set(BAD_LABELS) & set(
        f["counterexample"]["description"].removeprefix("case tags: ").split(", "))
        for f in fs]
    # a category each, as many as a test shows; the rest are named in the message
    assert all(len(s) == 1 for s in shown), o["message"]
    shown_all = set().union(*shown)
    assert len(shown_all) == len(fs) == min(len(BAD_LABELS), FAILURES_CAP), o["message"]
    unshown = [b for b in BAD_LABELS if b not in shown_all]
    assert all(b in o["message"].split("also fails in ")[-1] for b in unshown), o["message"]
    assert ("also fails in" in o["message"]) == bool(unshown)
    assert f"{len(fs)} distinct failures" in o["message"]
    assert o["counterexample"] == fs[0]["counterexample"]
    bugs = set()
    for f in fs:
        args = f["counterexample"]["args"]
        (label,) = args["labels"]["data"]  # one row
        c = args["logits"]["shape"][-1]
        assert args["logits"]["shape"] == [1, c]
        assert label < 0 or label >= c
        bugs.add("wraps" if label < 0 else "clamps")
        assert f["expected"]["raises"]["error"] == "InvalidArgumentError"
        # the reproducer shows "TensorFlow raises ..., the target returned ...": it fails
        p = run_script(tmp_path, f["reproducer"])
        assert p.returncode == 1, p.stdout + p.stderr
        assert "TensorFlow raises InvalidArgumentError; the target returned loss" in p.stdout
        # a target that raises as TensorFlow does agrees: the same script exits 0
        p = run_script(tmp_path, f["reproducer"],
                       replace=[("import two_bugs as target", "import refuse as target")])
        assert p.returncode == 0, p.stdout + p.stderr
    assert bugs == {"wraps", "clamps"}  # a counterexample of each bug
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert f"{len(fs)} distinct failures" in junit
    report = (tmp_path / "out" / "index.html").read_text()
    assert f"{len(fs)} distinct failures" in report and f"Failure {len(fs)}:" in report


def test_categories_past_the_failures_a_test_shows_are_named(tmp_path):
    # ignores_weights takes every weight as 1 (compat.v1's sparse loss): wrong for zero,
    # NaN, negative, per-row... weights, and it accepts weights TensorFlow refuses to
    # broadcast; more categories fail than a test shows, and none may go unsaid
    v1 = "tf.compat.v1.losses.sparse_softmax_cross_entropy"
    r = xrun(tmp_path, "--target", "xent_targets:ignores_weights", "--api", v1, "--dtype",
             "float32", "--examples", "20", "--feature", "weights")
    assert r.returncode == 1, r.stdout + r.stderr
    o = outcomes(tmp_path)["weights"]
    fs = o["failures"]
    assert len(fs) == FAILURES_CAP, o["message"]
    kinds = set(categories(v1, "weights"))
    shown = [kinds & set(f["counterexample"]["description"].removeprefix("case tags: ")
                         .split(", ")) for f in fs]
    assert all(len(s) == 1 for s in shown), o["message"]
    assert o["message"].endswith(f"(past the {FAILURES_CAP} failures a test shows)")
    named = o["message"].split("; it also fails in ")[-1].split(" (past")[0].split(", ")
    assert named and set(named) <= kinds - set().union(*shown), o["message"]


@pytest.mark.parametrize("target, category", [("sentinel_gap", "extreme"),
                                               ("ignore_minus_hundred", "minus_hundred")])
def test_every_category_is_checked_even_when_the_draws_miss_it(tmp_path, target, category):
    # each target is wrong on one kind of bad label only (the label dtype's extremes; -100,
    # which torch's default ignore_index takes): two examples rarely draw it, so the
    # checker gives each category the draws missed examples of its own
    r = xrun(tmp_path, *callable_args(target, "bad_labels", examples=2))
    assert r.returncode == 1, r.stdout + r.stderr
    o = outcomes(tmp_path)["bad_labels"]
    assert o["verdict"] == "fail", o["message"]
    assert [f["counterexample"]["description"] for f in o["failures"]] == \
        [f"case tags: {category}"], o["message"]


def test_two_kinds_of_failure_in_one_feature_are_both_reported(tmp_path):
    r = xrun(tmp_path, *callable_args("two_kinds", "basic", examples=20))
    assert r.returncode == 1, r.stdout + r.stderr
    fs = outcomes(tmp_path)["basic"]["failures"]
    kinds = {f["kind"]: f for f in fs}
    assert set(kinds) == {"dtype-shape", "outside-budget"}, [f["message"] for f in fs]
    wide = kinds["dtype-shape"]["counterexample"]["args"]["logits"]["shape"]
    narrow = kinds["outside-budget"]["counterexample"]["args"]["logits"]["shape"]
    assert wide == [1, 7] and narrow == [1, 1]  # the smallest C of each branch, one row
    for f in fs:
        p = run_script(tmp_path, f["reproducer"])
        assert p.returncode == 1 and "MISMATCH" in p.stdout, p.stdout + p.stderr


def test_a_crash_is_reported_beside_another_failure(tmp_path):
    # crash_far wraps -1 around and aborts on labels far out of range: the abort is a
    # failure of its own (kind crash), never hidden behind the wrapping
    r = xrun(tmp_path, *callable_args("crash_far", "bad_labels", examples=30))
    assert r.returncode == 1, r.stdout + r.stderr
    o = outcomes(tmp_path)["bad_labels"]
    kinds = [f["kind"] for f in o["failures"]]
    assert o["verdict"] == "crash" and kinds[0] == "crash", o["message"]
    assert "tf-raises" in kinds
    crash = o["failures"][0]
    (label,) = crash["counterexample"]["args"]["labels"]["data"]
    assert label >= 1000
    p = run_script(tmp_path, crash["reproducer"])
    assert p.returncode != 0


def test_a_value_bug_shrinks_to_one_row_and_simple_values(tmp_path):
    # sloppy is wrong on every row: one row shows it, with every logit 0 or a small integer
    r = xrun(tmp_path, *callable_args("sloppy", "basic", "large_classes", examples=10))
    assert r.returncode == 1, r.stdout + r.stderr
    got = outcomes(tmp_path)
    for feature in ("basic", "large_classes"):
        for f in got[feature]["failures"]:  # one per case tags (the regime drawn)
            assert f["kind"] == "outside-budget"
            logits = f["counterexample"]["args"]["logits"]
            assert logits["shape"][0] == 1, logits["shape"]
            p = run_script(tmp_path, f["reproducer"])
            assert p.returncode == 1 and "<-- outside" in p.stdout, p.stdout + p.stderr
            p = run_script(tmp_path, f["reproducer"],
                           replace=[("import sloppy as target", "import good as target")])
            assert p.returncode == 0, p.stdout + p.stderr
    for f in got["basic"]["failures"]:
        small = f["counterexample"]["args"]["logits"]["data"]
        assert all(float.fromhex(v).is_integer() for v in small), small
    for f in got["large_classes"]["failures"]:
        big = f["counterexample"]["args"]["logits"]
        assert big["shape"][1] >= 50_000  # the feature's floor stays
        assert "fill" in big and len(big["entries"]) <= 8, big.get("entries")


def test_a_target_wrong_everywhere_writes_small_results(tmp_path):
    r = xrun(tmp_path, "--target", "xent_targets:wrong", "--api", NN, "--examples", "5",
             "-n", "2", "--no-report", timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    failing = [o for o in doc["outcomes"] if o["verdict"] == "fail"]
    assert len(failing) >= 30  # every dtype x feature but the empty batch
    assert all(o["failures"] and o["reproducer"] for o in failing)
    for name in ("results.json", "junit.xml"):
        size = (tmp_path / "out" / name).stat().st_size
        assert size <= 2_000_000, (name, size)
    # every reproducer of every failure shows the discrepancy and exits 1
    scripts = [f["reproducer"] for o in failing for f in o["failures"]]
    codes = run_scripts(tmp_path, scripts)
    assert codes == [1] * len(scripts), codes


def run_scripts(tmp_path, scripts: list[str]) -> list:
    """The exit status of each script, run one after another in one process without
    xentconf importable (each in a fresh namespace, as ``python script.py`` would)."""
    (tmp_path / "scripts.json").write_text(json.dumps(scripts))
    driver = """
import contextlib, io, json, sys
sys.modules['xentconf'] = None
codes = []
for text in json.load(open(sys.argv[1])):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(text, "reproducer.py", "exec"), {"__name__": "__main__"})
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code)
    except BaseException as exc:
        codes.append(repr(exc))
print(json.dumps(codes))
"""
    p = subprocess.run([sys.executable, "-c", driver, str(tmp_path / "scripts.json")],
                       capture_output=True, text=True, env=env(), timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])

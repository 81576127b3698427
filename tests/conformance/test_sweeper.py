"""``xentconf sweep`` on a real 2-worker Dask LocalCluster: small slices of the float16 pair
sweep against the reference target and against deliberately wrong callables
(tests/conformance/targets), a worker killed mid-sweep, resuming, and the bad-input
messages. What each slice must give follows from the pair-index layout (``a << 16 | b``)
and what each callable does, not from the code under test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from xentconf import results  # noqa: E402
from xentconf.conformance import sweeper  # noqa: E402
from xentconf.conformance.sandbox import TargetSpec  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]

TARGETS = Path(__file__).parent / "targets"
NN = "tf.nn.sparse_softmax_cross_entropy_with_logits"
RAW = "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits"
ONE = 0x3C00  # float16 1.0
MAX = 0x7BFF  # float16 65504, the largest finite value


def plan_for(target: str, api: str = NN) -> sweeper.SweepPlan:
    if ":" in target:
        spec = TargetSpec(target, (("api", api), ("keras", "keras2"), ("profile", "cpu"),
                                   ("unsupported", ())))
    else:
        spec = TargetSpec(target)
    return sweeper.SweepPlan(spec=spec, target_name=target.replace(":", "."), device="cpu",
                             profile="cpu", accuracy="stable", keras=None, timeout=60.0,
                             isolate=True, callable_target=":" in target,
                             path=(str(TARGETS),))


@pytest.fixture(scope="module")
def client():
    c, cluster = sweeper.connect(None, 2)
    yield c
    c.close()
    cluster.close()


def test_reference_conforms_on_a_slice_of_both_apis(client, tmp_path):
    start = ONE << 16  # a = 1.0, b = the first 1024 bit patterns (+0 and subnormals)
    jobs = [(NN, "float16", start, start + 1024), (RAW, "float16", start, start + 1024)]
    got = sweeper.execute(plan_for("reference"), jobs, tmp_path, client=client, chunk=512)
    assert got.code == 0
    assert (got.computed, got.reused) == (4, 0)
    doc = results.load(tmp_path / "results.json")  # the shipped schema takes it
    assert [s["api"] for s in doc["sweeps"]] == [NN, RAW]
    for s in doc["sweeps"]:
        assert s["rows"] == s["rows_done"] == 2048  # 1024 pairs, both labels
        assert s["verdicts"] == {"pass": 2048}
        assert sum(s["grades"].values()) == 2048
        assert s["failures"] == []
        # a = 1.0 is x bin 0x3c00 >> 10 = 15; b = +0 and subnormals is y bin 0; the
        # oracle is every row's correctly rounded answer: its worst error is 0
        assert s["map"]["cells"] == [[15, 0, 2048, 0, 0.0]]
    assert len(list((tmp_path / "chunks").glob("*.json"))) == 4


def test_a_wrong_callable_fails_where_float32_exp_overflows(client, tmp_path):
    # naive takes exp in float32: exp(65504) is inf, inf / inf is NaN, so every row with
    # a = 65504 and b tiny returns NaN where TensorFlow's loss is finite
    start = MAX << 16
    got = sweeper.execute(plan_for("xent_targets:naive"), [(NN, "float16", start,
                                                             start + 1024)],
                          tmp_path, client=client, chunk=512)
    assert got.code == 1
    assert got.document["run"]["target"]["version"] == "0.3.1"  # xent_targets.__version__
    s = got.document["sweeps"][0]
    assert s["verdicts"] == {"fail": 2048}
    assert sum(f["count"] for f in s["failures"]) == 2048
    assert all("wrong NaN/inf" in f["kind"] for f in s["failures"])
    kinds = {f["kind"].split("logits ")[1] for f in s["failures"]}
    assert kinds == {"(normal, zero)", "(normal, subnormal)"}
    for f in s["failures"]:
        ex = f["examples"][0]
        assert ex["logits"][0] == float(65504).hex()
        assert ex["got"] == ["nan"] and ex["expected"][0] != "nan"
        assert "xent_targets" in f["reproducer"]
    # every row fails, with a NaN where the loss is finite: the worst error is infinite
    assert s["map"]["cells"] == [[MAX >> 10, 0, 2048, 2048, float("inf")]]


def test_a_map_cell_holds_the_worst_error_of_its_rows_in_budget_units():
    # sloppy answers loss·(1 + 1e-4) + 1e-4: in float16 that moves some losses by an ulp,
    # within the stable budget (every row passes) but not always exact
    plan = dataclasses.replace(plan_for("xent_targets:sloppy"), isolate=False)
    c = sweeper.run_chunk(plan, NN, "float16", ONE << 16, (ONE << 16) + 4096)
    assert c["verdicts"] == {"pass": 8192} and c["grades"].get("exact", 0) < 8192
    worst = [w for *_, w in c["cells"]]
    assert all(0 <= w <= 1 for w in worst) and max(worst) > 0
    assert max(worst) == float(f"{c['worst_budget']:.3g}")


def test_a_chunk_of_several_blocks_says_what_one_block_would(monkeypatch):
    # a chunk is judged in blocks (the engine's working set) and folded into one record:
    # the counts, the failure kinds with their smallest examples and the map are those of
    # judging the whole chunk at once (naive fails where a = 65504 and b is tiny)
    plan = dataclasses.replace(plan_for("xent_targets:naive"), isolate=False)
    lo, hi = (MAX << 16) - 1536, (MAX << 16) + 2560
    whole = sweeper.run_chunk(plan, NN, "float16", lo, hi)
    monkeypatch.setattr(sweeper, "BLOCK_PAIRS", 1024)
    blocks = sweeper.run_chunk(plan, NN, "float16", lo, hi)
    # the failures (b = +0 and subnormal with a = 65504, 2048 rows, at least) lie in
    # several blocks, and there is more than one kind of them
    assert whole["verdicts"]["fail"] >= 2048 and whole["verdicts"]["pass"] > 0
    assert len(whole["kinds"]) >= 2
    for key in ("start", "stop", "rows", "status", "grades", "verdicts", "kinds", "cells",
                "worst_budget"):
        assert blocks[key] == whole[key], key
    assert "chunks" not in blocks and "crashed" not in blocks


def test_a_sweep_resumes_with_the_chunks_its_folder_holds(client, tmp_path):
    start = (ONE << 16) + (1 << 16) - 256  # crosses a multiple of 65536, not of 262144
    jobs = [(NN, "float16", start, start + 512)]
    plan = plan_for("reference")
    first = sweeper.execute(plan, jobs, tmp_path / "a", client=client, chunk=256)
    again = sweeper.execute(plan, jobs, tmp_path / "a", client=client)
    assert (first.computed, again.computed, again.reused) == (2, 0, 2)
    with pytest.raises(sweeper.SweepError, match="--chunk 256"):
        sweeper.execute(plan, jobs, tmp_path / "a", client=client, chunk=512)
    # a folder from before sweep.json said its chunk size holds chunks of 65536 pairs
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "sweep.json").write_text(json.dumps(plan.fingerprint()))
    old = sweeper.execute(plan, jobs, tmp_path / "b", client=client)
    assert old.computed == 2 and old.document["sweeps"][0]["chunks"] == 2
    assert sweeper.execute(plan, jobs, tmp_path / "c", client=client).computed == 1


def test_a_target_that_crashes_in_a_worker_is_an_outcome_and_the_sweep_goes_on(client,
                                                                             tmp_path):
    start = ONE << 16
    got = sweeper.execute(plan_for("xent_targets:crash"), [(NN, "float16", start,
                                                             start + 512)],
                          tmp_path, client=client, chunk=256)
    s = got.document["sweeps"][0]
    assert got.code == 1
    assert s["chunks_done"] == s["chunks"] == 2  # both chunks recorded, neither lost
    assert s["verdicts"] == {"crash": 1024}
    assert all(c["verdict"] == "crash" for c in s["crashed_chunks"])
    # a malfunction is not a judgement: the next run tries those chunks again
    again = sweeper.execute(plan_for("xent_targets:crash"), [(NN, "float16", start,
                                                               start + 512)],
                            tmp_path, client=client, chunk=256)
    assert (again.computed, again.reused) == (2, 0)


def test_a_killed_worker_loses_no_chunk_and_a_rerun_recomputes_nothing(client, tmp_path):
    start = ONE << 16
    jobs = [(NN, "float16", start, start + 6 * 256)]
    persisted = []

    def kill_one(job, n):
        persisted.append(job)
        if n == 1:  # a worker dies with a chunk in hand
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)

    got = sweeper.execute(plan_for("reference"), jobs, tmp_path, client=client, chunk=256,
                          on_persist=kill_one)
    assert got.code == 0
    assert len(persisted) == len(set(persisted)) == 6  # each chunk persisted once
    assert got.document["sweeps"][0]["verdicts"] == {"pass": 6 * 512}
    files = sorted((tmp_path / "chunks").glob("*.json"))
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    again = sweeper.execute(plan_for("reference"), jobs, tmp_path, client=client, chunk=256)
    assert (again.computed, again.reused) == (0, 6)
    assert {f.name: f.stat().st_mtime_ns for f in files} == stamps
    assert again.document["sweeps"] == got.document["sweeps"]


def test_a_stopped_sweep_resumes_where_it_was(client, tmp_path):
    start = ONE << 16
    jobs = [(NN, "float16", start, start + 4 * 256)]

    def stop(job, n):
        if n == 2:
            raise KeyboardInterrupt

    first = sweeper.execute(plan_for("reference"), jobs, tmp_path, client=client, chunk=256,
                            on_persist=stop)
    assert first.code == 130 and first.document["run"]["interrupted"]
    assert first.document["sweeps"][0]["chunks_done"] == 2
    rest = sweeper.execute(plan_for("reference"), jobs, tmp_path, client=client, chunk=256)
    assert (rest.computed, rest.reused) == (2, 2)
    assert rest.document["sweeps"][0]["verdicts"] == {"pass": 4 * 512}


def test_an_unwritable_chunk_stops_the_sweep_and_keeps_what_was_done(client, tmp_path):
    start = ONE << 16
    jobs = [(NN, "float16", start, start + 3 * 256)]
    blocked = sweeper.chunk_jobs(*jobs[0], chunk=256)[2]
    (tmp_path / "chunks" / sweeper.chunk_name(blocked)).mkdir(parents=True)
    with pytest.raises(sweeper.SweepError) as info:
        sweeper.execute(plan_for("reference"), jobs, tmp_path, client=client, chunk=256,
                        window=1)
    message = str(info.value)
    assert "cannot write chunk" in message and "\n" not in message
    kept = [p.name for p in (tmp_path / "chunks").glob("*.json") if p.is_file()]
    assert len(kept) == 2


# ------------------------------------------------------------------ the command line


def xsweep(tmp_path, *args, timeout=120):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TARGETS), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "xentconf", "sweep", *args],
                          capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=tmp_path)


@pytest.mark.parametrize("address, says", [
    ("tcp://127.0.0.1:1", "cannot connect"),
    ("127.0.0.1:8786", "not a scheduler address"),
])
def test_a_bad_scheduler_address_is_one_line_and_exit_2(tmp_path, address, says):
    r = xsweep(tmp_path, "--target", "reference", "--scheduler", address, "--out", "o",
               timeout=30)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and says in r.stderr and "--scheduler" in r.stderr


@pytest.mark.parametrize("args, says", [
    (["--target", "reference", "--dtype", "float64"], "--dtype float64"),
    (["--target", "reference", "--pairs", "5:3"], "--pairs"),
    (["--target", "reference", "--api", "nn_dense"], "--api nn_dense"),
    (["--dtype", "float16"], "--dtype needs --target"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, args, says):
    r = xsweep(tmp_path, "--out", "o", *args, timeout=30)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and says in r.stderr


def test_the_help_offers_only_what_a_sweep_takes(capsys):
    # a sweep covers the C = 2 sparse APIs in float16, bfloat16 and float32 (the issue's
    # scope); the options shared with `xentconf run` must not offer run's wider choices
    from xentconf.cli import main

    assert main(["sweep", "--help"]) == 0
    entries = " ".join(capsys.readouterr().out.split()).split(" --")
    api = next(e for e in entries if e.startswith("api ID"))
    dtype = next(e for e in entries if e.startswith("dtype DTYPE"))
    assert "raw_sparse" in api and "nn_sparse" in api
    assert not any(other in api for other in ("dense", "v1_", "keras_"))
    assert all(d in dtype for d in ("float16", "bfloat16", "float32"))
    assert "float64" not in dtype and "all four" not in dtype


def test_an_output_folder_that_is_a_file_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "o").write_text("not a folder")
    r = xsweep(tmp_path, "--target", "reference", "--out", "o", timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--out o" in r.stderr


def test_the_command_runs_on_a_given_scheduler_and_resumes(client, tmp_path):
    args = ["--target", "reference", "--api", "nn_sparse", "--dtype", "float16",
            "--pairs", f"{ONE << 16}:{(ONE << 16) + 512}", "--chunk", "512",
            "--scheduler", client.scheduler.address, "--out", "o"]
    r = xsweep(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert "rows/s" in r.stderr and "1 computed, 0 reused" in r.stdout
    doc = results.load(tmp_path / "o" / "results.json")
    assert doc["sweeps"][0]["verdicts"] == {"pass": 1024}
    again = xsweep(tmp_path, *args)
    assert again.returncode == 0 and "0 computed, 1 reused" in again.stdout


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest with the plugin's options in a fresh process (the opt-in pair sweep)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TARGETS),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--xentconf-results", str(tmp_path / "r.json"), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_pytest_judges_a_slice_of_the_pair_sweep_when_asked(tmp_path):
    # opt-in: --xentconf-pairs adds test_pair_sweep tests; the results carry the sweep as
    # xentconf sweep writes it. Pairs 1.0 x (every bit pattern 0x0000..0x03ff) conform.
    start = ONE << 16
    r = _pytest(tmp_path, "--xentconf-target", "reference", "--xentconf-api", "nn_sparse",
                "--xentconf-dtype", "float16", "--xentconf-feature", "pairs",
                "--xentconf-pairs", f"{start:#x}:{start + 1024:#x}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
    (s,) = results.load(tmp_path / "r.json")["sweeps"]
    assert (s["api"], s["dtype"], s["start"], s["stop"]) == (NN, "float16", start, start + 1024)
    assert s["rows"] == s["rows_done"] == 2048 and s["verdicts"] == {"pass": 2048}
    assert s["map"]["cells"] == [[15, 0, 2048, 0, 0.0]]


def test_pytest_pair_sweep_counts_the_chunks_it_judges_as_it_plans_them(tmp_path):
    # a slice across a block boundary (a multiple of 65,536 pairs, not of the sweep's
    # chunk): two blocks judged, two to do, in the results of a whole run
    start = (ONE << 16) + (1 << 16) - 512
    r = _pytest(tmp_path, "--xentconf-target", "reference", "--xentconf-api", "nn_sparse",
                "--xentconf-dtype", "float16", "--xentconf-feature", "pairs",
                "--xentconf-pairs", f"{start:#x}:{start + 1024:#x}")
    assert r.returncode == 0, r.stdout + r.stderr
    (s,) = results.load(tmp_path / "r.json")["sweeps"]
    assert s["chunks"] == s["chunks_done"] == 2 and s["rows_done"] == s["rows"] == 2048


def test_pytest_pair_sweep_fails_a_wrong_callable_with_a_reproducer(tmp_path):
    # naive overflows exp in float32 at a = 65504 (see above): every row fails, the test
    # fails (exit 1), and each failure kind has a reproducer that exits 1
    start = MAX << 16
    r = _pytest(tmp_path, "--xentconf-target", "xent_targets:naive", "--xentconf-api",
                "nn_sparse", "--xentconf-dtype", "float16", "--xentconf-feature", "pairs",
                "--xentconf-pairs", f"{start:#x}:{start + 1024:#x}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2048 of 2048 rows do not conform" in r.stdout
    (s,) = results.load(tmp_path / "r.json")["sweeps"]
    assert s["verdicts"] == {"fail": 2048}
    for f in s["failures"]:
        script = tmp_path / "repro.py"
        script.write_text(f["reproducer"])
        p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(TARGETS)}, timeout=300)
        assert p.returncode == 1, p.stdout + p.stderr


@pytest.mark.parametrize("args, says", [
    (["--xentconf-feature", "pairs"], "--xentconf-feature pairs needs --xentconf-pairs"),
    (["--xentconf-pairs", "9:3"], "--xentconf-pairs '9:3': need 0 <= START < STOP"),
    (["--xentconf-pairs", "some"], "--xentconf-pairs 'some': give all, or START:STOP"),
])
def test_bad_pair_options_are_a_usage_error(tmp_path, args, says):
    r = _pytest(tmp_path, "--xentconf-target", "reference", *args)
    assert r.returncode == 4, r.stdout + r.stderr  # pytest's usage-error status
    assert says in r.stderr

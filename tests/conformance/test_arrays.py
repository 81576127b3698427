"""``xentconf run --array torch|jax``: kernels judged on their own arrays, end to end.

Each run is a real subprocess on a correct function and on one wrong on purpose
(tests/conformance/targets/array_targets.py), and on the Triton example kernel under
Triton's interpreter; reproducers run in a subprocess without xentconf importable.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import pytest
from tests.conformance.test_run import NN, outcomes, run_script, xrun

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parents[2] / "examples"


def need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (the test command installs it: extra 'kernels')")


def array_args(name, library, *features, dtypes=("float32",), examples=4):
    args = ["--target", f"array_targets:{name}", "--api", NN, "--array", library,
            "--examples", str(examples)]
    for d in dtypes:
        args += ["--dtype", d]
    for f in features:
        args += ["--feature", f]
    return args


def run_doc(tmp_path) -> dict:
    return json.loads((tmp_path / "out" / "results.json").read_text())["run"]


@pytest.mark.parametrize("library, dtypes, features", [
    ("torch", ("bfloat16", "float32"), ("basic", "rank3+")),
    ("jax", ("bfloat16", "float64"), ("basic",)),  # float64: JAX narrows it unless 64-bit
])
def test_a_correct_function_on_its_own_arrays_conforms(tmp_path, library, dtypes, features):
    need(library)
    r = xrun(tmp_path, *array_args(f"{library}_good", library, *features, dtypes=dtypes,
                                   examples=3))
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads((tmp_path / "out" / "results.json").read_text())["outcomes"]
    assert {(o["dtype"], o["feature"]) for o in got} == {
        (d, f) for d in dtypes for f in features}
    assert all(o["verdict"] == "pass" for o in got), [o["message"] for o in got]
    run = run_doc(tmp_path)  # the array library, its version and the device are recorded
    version = importlib.metadata.version(library)
    assert run["frameworks"][library] == version
    assert run["device"] == "cpu"
    assert f"on {library} {version} arrays (cpu)" in run["target"]["description"]


@pytest.mark.parametrize("library, dtype", [("torch", "float32"), ("jax", "float64")])
def test_a_wrong_function_fails_and_its_reproducer_builds_the_same_arrays(tmp_path, library,
                                                                           dtype):
    need(library)
    r = xrun(tmp_path, *array_args(f"{library}_sloppy", library, "basic", dtypes=(dtype,),
                                   examples=3))
    assert r.returncode == 1, r.stdout + r.stderr
    o = outcomes(tmp_path)["basic"]
    assert o["verdict"] == "fail" and o["dtype"] == dtype, o["message"]
    script = o["reproducer"]
    assert f"_to_{library}(" in script  # the suite's own conversion, embedded
    p = run_script(tmp_path, script)
    assert p.returncode == 1 and "MISMATCH" in p.stdout, p.stdout + p.stderr
    # the same script calling the correct function agrees: it got the same arrays and
    # dtypes (a float64 narrowed to float32 would mismatch)
    p = run_script(tmp_path, script, replace=[
        (f"import {library}_sloppy as target", f"import {library}_good as target")])
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_triton_example_is_judged_under_the_interpreter(tmp_path, monkeypatch):
    """examples/triton_xent.py through --array torch on Triton's interpreter (CPU): its
    verdicts are findings about the kernel, recorded whatever they are; the run completes
    (exit 0 or 1, never a usage error or a harness failure)."""
    need("torch")
    need("triton")
    monkeypatch.setenv("PYTHONPATH", str(EXAMPLES))  # xrun's subprocess inherits these
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    r = xrun(tmp_path, "--target", "triton_xent:sparse_xent", "--api", "raw_sparse",
             "--array", "torch", "--dtype", "float32", "--dtype", "bfloat16",
             "--feature", "basic", "--feature", "regimes", "--examples", "3")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    got = json.loads((tmp_path / "out" / "results.json").read_text())["outcomes"]
    assert {(o["dtype"], o["feature"]) for o in got} == {
        (d, f) for d in ("float32", "bfloat16") for f in ("basic", "regimes")}
    assert all(o["verdict"] in ("pass", "as-tensorflow", "fail") for o in got), got
    assert (r.returncode == 0) == all(o["verdict"] != "fail" for o in got)
    assert run_doc(tmp_path)["frameworks"]["torch"] == importlib.metadata.version("torch")

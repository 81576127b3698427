"""Keras 3 on its JAX backend, 64-bit types (skipped without keras and jax).

Keras picks its backend once, at import, so these calls run in a child process started
with ``KERAS_BACKEND=jax``; the parent judges its outputs against the oracle's ``keras3``
semantics. JAX without its 64-bit flag narrows a float64 ``y_pred`` to float32 before
Keras sees it, so the adapter enables ``jax.enable_x64`` around each call, as a float64
user of Keras on JAX must (the module docstring of ``xentconf.adapters.keras``): a float64
gradient comes back as float64, and float32 stays float32.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from tests.adapters.conftest import judge, require, run_snippets, snippet_mismatch

from xentconf.protocol import KERAS_APIS, Call, Setup

require("keras", "keras")
require("keras", "jax")

SCCE, CCE = KERAS_APIS

_CHILD = """
import pickle, sys
from xentconf.adapters.keras import JAX_X64_NOTE, KerasTarget
target = KerasTarget()
info = target.info()
with open(sys.argv[1], "rb") as f:
    cases = pickle.load(f)
outputs = {name: target.prepare(setup).run(call) for name, (setup, call) in cases.items()}
snippets = {name: target.snippet(setup, call) for name, (setup, call) in cases.items()}
with open(sys.argv[2], "wb") as f:
    pickle.dump({"outputs": outputs, "snippets": snippets, "info": info,
                 "note": JAX_X64_NOTE}, f)
"""


def _cases() -> dict[str, tuple[Setup, Call]]:
    rng = np.random.default_rng(64)
    init = (("from_logits", True),)
    cases = {}
    for dt in (np.float64, np.float32):
        z = (rng.standard_normal((3, 5)) * 3).astype(dt)
        for api, y in ((SCCE, np.array([0, 4, 2], np.int64)),
                       (CCE, np.eye(5, dtype=dt)[[1, 3, 0]])):
            call = Call(api, {"y_true": y, "y_pred": z}, init=init,
                        upstream=np.asarray(1.5, np.float32))
            cases[f"{api}-{np.dtype(dt).name}"] = (Setup(api, init=init, grad=True), call)
    return cases


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keras-jax")
    cases = _cases()
    (tmp / "in.pkl").write_bytes(pickle.dumps(cases))
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    env.pop("JAX_ENABLE_X64", None)  # JAX's default: the flag off
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp / "in.pkl"),
                           str(tmp / "out.pkl")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cases, pickle.loads((tmp / "out.pkl").read_bytes())


def test_float64_gradients_are_float64_and_conform(jax_run):
    cases, result = jax_run
    for name, (_, call) in cases.items():
        out = result["outputs"][name]
        want = np.dtype(name.rsplit("-", 1)[1])
        assert out["grad_logits"].dtype == want, name  # float32 before the adapter's x64
        judge(out, call, keras="keras3")


def test_info_records_the_64_bit_types(jax_run):
    _, result = jax_run
    info, note = result["info"], result["note"]
    assert "jax" in info.description and note in info.description
    jax_modes = [m for m in info.modes if m.name == "jax"]
    assert jax_modes and all(note in m.description for m in jax_modes)
    assert all(note in api.notes for api in info.apis.values())


def test_snippets_reproduce_the_runner(jax_run):
    """The reproducer enables the 64-bit types as the runner does: run standalone, it gives
    the runner's outputs bit for bit (float64 included)."""
    cases, result = jax_run
    got = run_snippets({name: (result["snippets"][name], call)
                        for name, (_, call) in cases.items()})
    for name in cases:
        assert "jax.enable_x64(True)" in result["snippets"][name]
        problem = snippet_mismatch(got[name], result["outputs"][name])
        assert problem is None, f"{name}: {problem}"

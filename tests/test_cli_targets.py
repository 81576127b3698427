"""`xentconf targets`: the listing, --json, loading one target, and its one-line errors."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import pytest

from xentconf.adapters.registry import BUILTINS
from xentconf.cli import main

NN_SPARSE = "tf.nn.sparse_softmax_cross_entropy_with_logits"
_counter = itertools.count()


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write ``source`` as a fresh module on sys.path and return its name."""

    def make(source: str) -> str:
        name = f"xentconf_cli_mod_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setitem(sys.modules, name, None)
        del sys.modules[name]
        return name

    return make


def test_listing(capsys):
    assert main(["targets"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for name in BUILTINS:
        assert any(line.startswith(f"{name} — ") for line in out.splitlines()), name
    ref = out[out.index("reference — available"):]
    assert "modes: cpu/cpu; cpu/gpu; cpu/xla" in ref and "apis: 8 of 8" in ref


def test_listing_verbose(capsys):
    assert main(["targets", "--verbose"]) == 0
    out = capsys.readouterr().out
    ref = out[out.index("reference — available"):]
    assert f"    {NN_SPARSE}  [float16 bfloat16 float32 float64]" in ref
    assert "      native: axis, backprop, bad_labels" in ref
    assert "      unsupported: -" in ref


def test_listing_json(capsys):
    assert main(["targets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {t["name"]: t for t in data}
    assert list(by_name)[:6] == list(BUILTINS)
    ref = by_name["reference"]
    assert ref["available"] is True
    assert [(m["device"], m["profile"]) for m in ref["modes"]] == [
        ("cpu", "cpu"), ("cpu", "gpu"), ("cpu", "xla")]
    assert "grad" in ref["apis"][NN_SPARSE]["native"]
    for target in data:
        assert set(target) >= {"name", "available", "reason", "version", "modes", "apis"}


def test_generic_callable(module, capsys):
    mod = module("def f(labels, logits):\n    return logits\n")
    assert main(["targets", "--target", f"{mod}:f", "--api", NN_SPARSE, "--profile", "gpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{mod}:f — available")
    assert "modes: cpu/gpu" in out and "unsupported: grad" in out
    assert main(["targets", "--json", "--target", f"{mod}:f", "--api", NN_SPARSE]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == f"{mod}:f" and list(data["apis"]) == [NN_SPARSE]


def test_named_target(capsys):
    assert main(["targets", "--target", "reference", "--keras", "keras3", "--api", NN_SPARSE,
                 "-v"]) == 0
    out = capsys.readouterr().out
    assert "keras: keras3" in out and NN_SPARSE in out
    assert "tf.raw_ops" not in out  # --api with a name shows only that API


def error_of(capsys, argv) -> str:
    assert main(["targets", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xentconf targets: ")
    return lines[0][len("xentconf targets: "):]


def test_unknown_target(capsys):
    msg = error_of(capsys, ["--target", "caffe"])
    assert msg.startswith("unknown target 'caffe'; known targets: tensorflow, keras, torch")


def test_module_that_does_not_import(module, capsys):
    mod = module("import xentconf_cli_absent_dependency\n")
    msg = error_of(capsys, ["--target", f"{mod}:f", "--api", NN_SPARSE])
    assert msg == (f"module '{mod}' does not import (ModuleNotFoundError: No module named "
                   "'xentconf_cli_absent_dependency'); install it or put it on sys.path")


def test_missing_module(capsys):
    msg = error_of(capsys, ["--target", "xentconf_cli_nowhere.sub:f", "--api", NN_SPARSE])
    assert "module 'xentconf_cli_nowhere.sub' does not import" in msg


def test_attribute_missing_or_not_callable(module, capsys):
    mod = module("f = 3\n")
    assert "has no attribute 'g'" in error_of(capsys, ["--target", f"{mod}:g", "--api",
                                                       NN_SPARSE])
    assert f"{mod}:f is not callable (it is a int)" in error_of(
        capsys, ["--target", f"{mod}:f", "--api", NN_SPARSE])


def test_unknown_api(module, capsys):
    mod = module("def f(labels, logits):\n    pass\n")
    msg = error_of(capsys, ["--target", f"{mod}:f", "--api", "tf.nn.softmax"])
    assert msg.startswith("--api 'tf.nn.softmax': unknown API; use a TF id")
    assert "nn_sparse" in msg  # the short names are offered too
    msg = error_of(capsys, ["--target", "reference", "--api", "tf.nn.softmax"])
    assert msg.startswith("--api 'tf.nn.softmax': unknown API")


def test_api_short_names_are_taken(module, capsys):
    """`targets --api` takes the short names that `run` and the README use."""
    mod = module("def f(labels, logits):\n    return logits\n")
    assert main(["targets", "--target", f"{mod}:f", "--api", "nn_sparse", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["apis"]) == ["tf.nn.sparse_softmax_cross_entropy_with_logits"]
    assert main(["targets", "--target", "reference", "--api", "keras_dense", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["apis"]) == ["tf.keras.losses.CategoricalCrossentropy"]


def test_signature_that_does_not_fit(module, capsys):
    mod = module("def f(labels, logits):\n    pass\n")
    msg = error_of(capsys, ["--target", f"{mod}:f", "--api",
                            "tf.compat.v1.losses.sparse_softmax_cross_entropy"])
    assert msg == (f"{mod}:f does not fit tf.compat.v1.losses.sparse_softmax_cross_entropy: it "
                   "must accept the keyword arguments labels, logits, weights, reduction (got "
                   "an unexpected keyword argument 'weights')")


def test_bad_options(module, capsys):
    mod = module("def f(labels, logits):\n    pass\n")
    assert error_of(capsys, ["--target", f"{mod}:f"]) == (
        f"{mod}:f is a generic callable: give the id of the API whose signature it follows "
        "with --api ID")
    assert "unknown profile 'tpu'" in error_of(
        capsys, ["--target", f"{mod}:f", "--api", NN_SPARSE, "--profile", "tpu"])
    assert error_of(capsys, ["--api", NN_SPARSE, "--keras", "keras3"]).startswith(
        "--api, --keras: give --target too")
    assert "does not take these options" in error_of(
        capsys, ["--target", "reference", "--profile", "gpu"])


def test_subprocess_json_and_cwd_module(tmp_path):
    (tmp_path / "xentconf_cwd_impl.py").write_text("def f(labels, logits):\n    return 0\n")
    proc = subprocess.run(
        # -I: like the `xentconf` console script, the current directory is not on sys.path
        [sys.executable, "-I", "-c", "import sys; from xentconf.cli import main; sys.exit(main())",
         "targets", "--json", "--target", "xentconf_cwd_impl:f", "--api", NN_SPARSE],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["available"] is True
    proc = subprocess.run([sys.executable, "-m", "xentconf", "targets", "--target", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("xentconf targets: unknown target 'nope'")


def test_unsupported_features_and_deviations_file(module, capsys, tmp_path):
    mod = module("def f(labels, logits):\n    return logits\n")
    dev = tmp_path / "dev.toml"
    dev.write_text('[[deviation]]\nid = "*-float16-*"\nreason = "computes half natively"\n')
    assert main(["targets", "--json", "--target", f"{mod}:f", "--api", NN_SPARSE,
                 "--unsupported", "weights,backprop", "--deviations", str(dev)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"weights", "backprop", "grad"} <= set(data["apis"][NN_SPARSE]["unsupported"])
    assert data["deviations"] == str(dev)


def test_bad_unsupported_feature_and_deviations_file(module, capsys, tmp_path):
    mod = module("def f(labels, logits):\n    return logits\n")
    base = ["--target", f"{mod}:f", "--api", NN_SPARSE]
    assert "feature" in error_of(capsys, base + ["--unsupported", "teleport"])
    assert "missing.toml: no such file" in error_of(
        capsys, base + ["--deviations", str(tmp_path / "missing.toml")])
    bad = tmp_path / "bad.toml"
    bad.write_text("[[deviation]\n")
    assert "not valid TOML" in error_of(capsys, base + ["--deviations", str(bad)])
    noreason = tmp_path / "noreason.toml"
    noreason.write_text('[[deviation]]\nid = "x"\n')
    assert "give 'reason' as a non-empty string" in error_of(
        capsys, base + ["--deviations", str(noreason)])
    assert "generic callable" in error_of(capsys, ["--target", "reference", "--unsupported",
                                                   "weights"])

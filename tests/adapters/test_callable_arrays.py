"""A callable target on numpy, torch and JAX arrays (``--array``), in this process.

The callables (tests/conformance/targets/array_targets.py) check that they receive their
own library's arrays and record the dtypes they got; the expected dtypes are each
library's own names for the generated ones (bfloat16 as the library's bfloat16, labels in
the generated integer dtype), and the outputs are held to the oracle.
"""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from tests.adapters.conftest import judge

from xentconf.adapters.callable import CallableTarget
from xentconf.protocol import API_IDS, DTYPES, Call, Setup, array_dtypes

NN_SPARSE = API_IDS[2]
TARGETS = Path(__file__).parent.parent / "conformance" / "targets"

X = np.array([[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4], [-10, 10, -10, -10]])
Y = [0, 3, 1]


@pytest.fixture
def targets(monkeypatch):
    monkeypatch.syspath_prepend(str(TARGETS))
    import array_targets

    array_targets.SEEN.clear()
    return array_targets


def run(spec: str, library: str, dtype: str, label_dtype: str):
    target = CallableTarget(spec, NN_SPARSE, array=library)
    info = target.info()
    assert info.available, info.reason
    runner = target.prepare(Setup(NN_SPARSE))
    call = Call(NN_SPARSE, {"labels": np.array(Y, label_dtype),
                            "logits": X.astype(ml_dtypes.bfloat16 if dtype == "bfloat16"
                                               else dtype)})
    out = runner.run(call)
    assert out["loss"].dtype == call.args["logits"].dtype  # back as numpy, dtype kept
    judge(out, call)
    return info


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_torch_function_gets_torch_tensors_of_the_generated_dtypes(targets, dtype,
                                                                      label_dtype):
    torch = pytest.importorskip("torch")
    info = run("array_targets:torch_good", "torch", dtype, label_dtype)
    want = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
            "float64": torch.float64}[dtype]
    assert targets.SEEN == [("torch", str(want), str(getattr(torch, label_dtype)))]
    assert f"on torch {torch.__version__} arrays (cpu)" in info.description


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_jax_function_gets_jax_arrays_of_the_generated_dtypes(targets, dtype, label_dtype):
    jax = pytest.importorskip("jax")
    run("array_targets:jax_good", "jax", dtype, label_dtype)
    # JAX's own names; float64 and int64 are kept (JAX narrows them unless 64-bit is on)
    assert targets.SEEN == [("jaxlib", dtype, label_dtype)]
    assert not jax.config.jax_enable_x64  # 64-bit was on for the call only


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_numpy_function_gets_numpy_arrays(targets, dtype):
    run("array_targets:numpy_good", "numpy", dtype, "int64")
    assert targets.SEEN == [("numpy", dtype, "int64")]


def test_a_torch_function_returning_the_wrong_values_is_judged_wrong(targets):
    pytest.importorskip("torch")
    with pytest.raises(AssertionError, match="the stable budget.*grade fail"):
        run("array_targets:torch_sloppy", "torch", "float32", "int32")


def test_a_dtype_the_library_cannot_hold_is_declared_unsupported():
    # cupy has no bfloat16 (its dtypes are numpy's); torch and JAX hold all four
    assert array_dtypes("cupy", "cuda") == ("float16", "float32", "float64")
    assert array_dtypes("torch", "cpu") == array_dtypes("jax", "cpu") == DTYPES
    target = CallableTarget("array_targets:torch_good", NN_SPARSE, array="cupy", device="cuda")
    info = target.info()
    assert info.apis[NN_SPARSE].dtypes == ("float16", "float32", "float64")

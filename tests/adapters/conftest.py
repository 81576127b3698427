"""Shared helpers for the adapter tests.

Adapter tests run against the real framework. Without it installed they skip, saying
why — unless ``XENTCONF_REQUIRE_TARGET`` names the target (the ``conformance-<target>``
nox sessions set it), in which case a missing framework is a failure.

``judge`` compares a runner's outputs with the oracle's expectation for the same call:
shapes, dtypes, NaN/inf placement, and every finite element within the ``stable``
budget (or the grade asked for). It is a small, strict stand-in for the conformance
engine's verdicts, so that each adapter is shown to translate conventions faithfully.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from xentconf.oracle import oracle_call
from xentconf.protocol import KERAS_APIS, Call


def require(target: str, module: str):
    """Import ``module`` or skip (fail when XENTCONF_REQUIRE_TARGET names ``target``)."""
    if os.environ.get("XENTCONF_REQUIRE_TARGET") == target:
        import importlib

        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed: run "
                               f"`nox -s conformance-{target}` to test the {target} adapter")


def expectation(call: Call, *, profile: str = "cpu", keras: str = "keras2"):
    """The oracle's answer for a protocol call."""
    init = dict(call.init) if call.api in KERAS_APIS else None
    return oracle_call(call.api, dict(call.args), init, profile=profile, keras=keras,
                       upstream=call.upstream)


def judge(outputs: dict, call: Call, *, profile: str = "cpu", keras: str = "keras2",
          grade: str = "stable", names=None) -> None:
    """Assert that ``outputs`` (a runner's result for ``call``) conform to the oracle."""
    exp = expectation(call, profile=profile, keras=keras)
    assert exp.raises is None, f"oracle expects {exp.raises}, target returned {outputs}"
    for name in names or [n for n in outputs if n in exp.outputs]:
        o = exp.outputs[name]
        got = np.asarray(outputs[name])
        assert got.shape == o.shape, f"{name}: shape {got.shape} != expected {o.shape}"
        assert got.dtype == o.dtype, f"{name}: dtype {got.dtype} != expected {o.dtype}"
        want = o.rounded64
        g64 = got.astype(np.float64)
        bud = o.budgets[grade] if grade != "exact" else np.zeros(o.shape)
        for idx in np.ndindex(o.shape):
            w, v = float(want[idx]), float(g64[idx])
            if math.isnan(w):
                assert math.isnan(v), f"{name}{list(idx)}: expected NaN, got {v}"
            elif math.isinf(w):
                assert v == w, f"{name}{list(idx)}: expected {w}, got {v}"
            elif grade == "exact":  # bit-identical to the correctly rounded truth (±0 aside)
                assert v == w, f"{name}{list(idx)}: got {v!r}, correctly rounded {w!r}"
            else:
                err = abs(v - float(o.exact64[idx])) if math.isfinite(v) else math.inf
                assert err <= bud[idx], (
                    f"{name}{list(idx)}: got {v!r}, exact {float(o.exact64[idx])!r}, error "
                    f"{err:.3g} > {grade} budget {bud[idx]:.3g}")


def expect_raises(runner, call: Call, *, profile: str = "cpu", keras: str = "keras2") -> None:
    """The oracle says TF raises for ``call``; the runner must raise too (any exception)."""
    exp = expectation(call, profile=profile, keras=keras)
    assert exp.raises is not None, "the oracle does not expect an error for this call"
    with pytest.raises(Exception):  # noqa: B017 - any exception means "rejected"
        runner.run(call)

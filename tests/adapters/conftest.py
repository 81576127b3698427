"""Shared helpers for the adapter tests.

Adapter tests run against the real framework. Without it installed they skip, saying
why — unless ``XENTCONF_REQUIRE_TARGET`` names the target (the ``conformance-<target>``
nox sessions set it), in which case a missing framework is a failure.

``judge`` holds a runner's outputs to the oracle's expectation for the same call with the
conformance suite's own verdict (``xentconf.conformance.verdict.judge``): shapes, dtypes,
NaN/inf placement, and every finite element within the ``stable`` budget (or the grade
asked for), so that each adapter is shown to translate conventions faithfully.

``check_snippets`` runs a target's ``snippet`` sources (the standalone reproducer code)
in a separate ``python -I`` process where xentconf cannot be imported, and holds each
one to its runner's outputs bit for bit.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from xentconf.conformance import verdict
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
    """Assert that ``outputs`` (a runner's result for ``call``) conform to the oracle: the
    conformance suite's own verdict (shapes, dtypes, NaN and inf placement, every element
    within the ``grade`` budget)."""
    exp = expectation(call, profile=profile, keras=keras)
    assert exp.raises is None, f"oracle expects {exp.raises}, target returned {outputs}"
    names = tuple(names or [n for n in outputs if n in exp.outputs])
    v = verdict.judge(exp, {n: np.asarray(outputs[n]) for n in names}, grade, outputs=names)
    assert v.ok, v.message


def expect_raises(runner, call: Call, *, profile: str = "cpu", keras: str = "keras2") -> None:
    """The oracle says TF raises for ``call``; the runner must raise too (any exception)."""
    exp = expectation(call, profile=profile, keras=keras)
    assert exp.raises is not None, "the oracle does not expect an error for this call"
    with pytest.raises(Exception):  # noqa: B017 - any exception means "rejected"
        runner.run(call)


# --------------------------------------------------------------------------- snippets

_SNIPPET_DRIVER = r"""
import importlib.abc
import pickle
import sys
import traceback


class NoXentconf(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("xentconf", "tests"):
            raise ImportError(f"a snippet imported {name}: it must run without xentconf")
        return None


sys.meta_path.insert(0, NoXentconf())
import numpy as np

with open(sys.argv[1], "rb") as f:
    paths, cases = pickle.load(f)
sys.path.extend(paths)
results = {}
for name, (source, args, init, upstream) in cases.items():
    ns = {"np": np, "args": args, "init": init, "upstream": upstream}
    try:
        exec(compile(source, f"<snippet {name}>", "exec"), ns)
        out = ns["outputs"]
        results[name] = {k: v if type(v) is np.ndarray else f"not an ndarray: {type(v)!r}"
                         for k, v in out.items()}
    except BaseException:
        results[name] = traceback.format_exc()
with open(sys.argv[2], "wb") as f:
    pickle.dump(results, f)
"""


def run_snippets(cases: dict[str, tuple[str, Call]], sys_path=()) -> dict:
    """Exec each snippet in a fresh namespace ``{np, args, init, upstream}`` (its call's
    values), all in one ``python -I`` subprocess in which importing xentconf (or these
    tests) fails; ``sys_path`` is appended to its ``sys.path``. Returns each snippet's
    ``outputs`` or, where it raised, the traceback text."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.pkl"), os.path.join(tmp, "out.pkl")
        payload = {name: (source, dict(call.args), dict(call.init), call.upstream)
                   for name, (source, call) in cases.items()}
        with open(src, "wb") as f:
            pickle.dump((list(sys_path), payload), f)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([sys.executable, "-I", "-c", _SNIPPET_DRIVER, src, dst],
                              cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"the snippet driver failed:\n{proc.stderr[-4000:]}"
        with open(dst, "rb") as f:
            return pickle.load(f)


def snippet_mismatch(got, want) -> str | None:
    """Why a snippet's outputs differ from the runner's (None when identical: the same
    names, ndarrays of the same dtypes and shapes, equal bit for bit with NaN == NaN)."""
    if isinstance(got, str):
        return f"the snippet raised:\n{got}"
    if set(got) != set(want):
        return f"outputs {sorted(got)} != the runner's {sorted(want)}"
    for name, w in want.items():
        g, w = got[name], np.asarray(w)
        if isinstance(g, str):
            return f"{name}: {g}"
        if g.dtype != w.dtype or g.shape != w.shape:
            return f"{name}: {g.dtype}{list(g.shape)} != the runner's {w.dtype}{list(w.shape)}"
        if not np.array_equal(g, w, equal_nan=True):
            return f"{name}: {g!r} != the runner's {w!r}"
    return None


def check_snippets(target, cases: dict, sys_path=(), rejections: dict | None = None) -> None:
    """Every ``(setup, call)`` of ``cases``: ``target.snippet`` gives source that does not
    mention xentconf and, run standalone, assigns exactly the runner's outputs. Every one
    of ``rejections``: the runner raises and so does the snippet."""
    rejections = rejections or {}
    sources, wanted, failures = {}, {}, []
    for name, (setup, call) in {**cases, **rejections}.items():
        source = target.snippet(setup, call)
        assert source is not None, f"{name}: no snippet"
        assert not re.search(r"\bxentconf\b", source), f"{name}: mentions xentconf"
        sources[name] = (source, call)
        runner = target.prepare(setup)
        if name in rejections:
            with pytest.raises(Exception):  # noqa: B017 - any exception means "rejected"
                runner.run(call)
        else:
            wanted[name] = runner.run(call)
    results = run_snippets(sources, sys_path)
    for name in cases:
        why = snippet_mismatch(results[name], wanted[name])
        if why:
            failures.append(f"{name}: {why}\n--- snippet:\n{sources[name][0]}")
    for name in rejections:
        if not isinstance(results[name], str):
            failures.append(f"{name}: the runner raises, the snippet returned "
                            f"{results[name]}\n--- snippet:\n{sources[name][0]}")
    assert not failures, "\n\n".join(failures)

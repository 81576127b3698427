"""Reproducers: a failing case as a short standalone Python script.

The script rebuilds the inputs bit-exactly (floats as C99 hex strings, read with
``float.fromhex`` and converted exactly to the dtype), calls the target directly — the
framework call its adapter makes (``Target.snippet``), or the user's callable — and prints
each element that differs from the expected (correctly rounded) value, with the error
budget it had to meet. It needs numpy (and ml_dtypes for bfloat16), plus the target's
own framework; not xentconf, unless the target cannot describe its call.

Cases are also written in the case format of ``xentconf oracle`` (:func:`case_json`), so
a counterexample can be fed back to the oracle.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np

from xentconf.oracle.formats import float_text
from xentconf.protocol import KERAS_APIS, RAW_OPS, array_source

__all__ = ["array_json", "case_json", "script", "value_json"]


COMPACT_MIN = 64  # arrays at least this large may be written compactly


def _common(flat: np.ndarray) -> tuple[Any, np.ndarray]:
    """The most common element of ``flat`` (bit for bit) and a mask of the others."""
    bits = flat.view(f"u{flat.dtype.itemsize}") if flat.dtype.kind == "f" or \
        flat.dtype.name == "bfloat16" else flat
    values, first, counts = np.unique(bits, return_index=True, return_counts=True)
    k = int(np.argmax(counts))
    return flat[first[k]], bits != values[k]


def _entry(a: np.ndarray, v: Any) -> Any:
    if a.dtype.kind in "iu":
        return int(v)
    if a.dtype.kind == "b":
        return bool(v)
    return float_text(float(v))


def array_json(a: np.ndarray, limit: int | None = None, compact: bool = True) -> dict[str, Any]:
    """An array in the case format: ``{"dtype", "shape", "data"}`` (floats as hex strings),
    row-major and flat; with ``limit``, at most that many elements (``truncated`` set).

    With ``compact``, an array of at least :data:`COMPACT_MIN` elements of which at most a
    quarter differ from the most common value is written as ``{"dtype", "shape", "fill",
    "entries": [[flat index, value], ...]}`` (bit for bit; ``limit`` caps the entries)."""
    a = np.asarray(a)
    flat = a.reshape(-1)
    out: dict[str, Any] = {"dtype": a.dtype.name, "shape": list(a.shape)}
    if compact and flat.size >= COMPACT_MIN:
        fill, other = _common(flat)
        where = np.flatnonzero(other)
        if where.size * 4 <= flat.size:
            if limit is not None and where.size > limit:
                where = where[:limit]
                out["truncated"] = True
            out["fill"] = _entry(a, fill)
            out["entries"] = [[int(i), _entry(a, flat[i])] for i in where]
            return out
    if limit is not None and flat.size > limit:
        flat = flat[:limit]
        out["truncated"] = True
    if a.dtype.kind in "iub":
        out["data"] = [int(v) if a.dtype.kind != "b" else bool(v) for v in flat]
    else:
        out["data"] = [float_text(float(v)) for v in flat.astype(np.float64)]
    return out


def value_json(v: Any) -> Any:
    """An argument value in the case format (arrays as ARRAY objects, the rest as is)."""
    if isinstance(v, np.ndarray | np.generic):
        return array_json(np.asarray(v))
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    return v


def case_json(api: str, args: dict, init: dict, *, profile: str, keras: str | None,
              upstream: np.ndarray | None = None) -> dict[str, Any]:
    """The case as an ``xentconf oracle`` document."""
    doc: dict[str, Any] = {"api": api, "args": {k: value_json(v) for k, v in args.items()},
                           "profile": profile}
    if api in KERAS_APIS:
        doc["init"] = dict(init)
        doc["keras"] = keras or "keras2"
    if upstream is not None:
        doc["upstream"] = array_json(upstream)
    return doc


_PRELUDE = '''\
import numpy as np

try:
    import ml_dtypes  # bfloat16
except ImportError:
    ml_dtypes = None


def arr(dtype, shape, data=None, fill=None, entries=()):
    """An array from exact values (hex strings for floats), converted exactly: ``data``
    row-major, or every element ``fill`` but the [flat index, value] ``entries``."""
    if dtype == "bfloat16":
        dt = ml_dtypes.bfloat16
    else:
        dt = np.dtype(dtype)
    floats = dtype in ("float16", "bfloat16", "float32", "float64")

    def vals(items):
        if floats:
            return np.array([float.fromhex(v) if v.startswith(("0x", "-0x")) else float(v)
                             for v in items], dtype=np.float64)
        return np.array(items, dtype=np.int64 if dtype != "bool" else bool)

    if data is None:
        out = np.empty(int(np.prod(shape)), dtype=dt)
        out[:] = vals([fill]).astype(dt)[0]
        if entries:
            where = np.array([int(k) for k, _ in entries], dtype=np.int64)
            out[where] = vals([v for _, v in entries]).astype(dt)
        return out.reshape(shape)
    return vals(data).astype(dt).reshape(shape)

'''

_COMPARE = '''

def show(x):
    x = float(x)
    return f"{x.hex()} ({x:.9g})" if np.isfinite(x) else repr(x)


def returned(outputs):
    return ", ".join(f"{k}{list(np.shape(v))}:{np.asarray(v).dtype}"
                     for k, v in outputs.items()) or "nothing"


failed = False
if raised is not None:
    print(f"the target raised {type(raised).__name__}: {raised}")
    if tf_raises is None:
        print("TensorFlow returns " + ", ".join(expected) + ": the target must not raise")
        failed = True
    else:
        print(f"TensorFlow raises {tf_raises} too: the target agrees")
elif tf_raises is not None:
    print(f"TensorFlow raises {tf_raises}; the target returned {returned(outputs)}")
    failed = True
for name, (want, budget) in expected.items():
    if raised is not None:
        break
    got = outputs.get(name)
    if got is None:
        print(f"{name}: not returned")
        failed = True
        continue
    got = np.asarray(got)
    if got.shape != want.shape or got.dtype != want.dtype:
        print(f"{name}: got {got.shape} {got.dtype}, expected {want.shape} {want.dtype}")
        failed = True
        continue
    g, w = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    b = budget.ravel()
    shown = 0
    for i in range(w.size):
        same = (np.isnan(g[i]) and np.isnan(w[i])) or g[i] == w[i]
        ok = same or (np.isfinite(w[i]) and abs(g[i] - w[i]) <= b[i])
        if not same:
            failed |= not ok
            shown += 1
            if shown <= 50 or not ok and shown <= 200:
                pos = [int(k) for k in np.unravel_index(i, want.shape)]
                print(f"{name}{pos}: got {show(g[i])}, expected {show(w[i])} "
                      f"(allowed error {b[i]:.3g}){'' if ok else '  <-- outside'}")
print("MISMATCH" if failed else "the target agrees: all outputs within their budgets")
raise SystemExit(1 if failed else 0)
'''


def _literal(v: Any) -> str:
    """Python source for an argument value."""
    if isinstance(v, np.ndarray | np.generic):
        a = np.asarray(v)
        j = array_json(a)
        if "fill" in j:
            return (f"arr({j['dtype']!r}, {tuple(j['shape'])!r}, fill={j['fill']!r}, "
                    f"entries={j['entries']!r})")
        return f"arr({j['dtype']!r}, {tuple(j['shape'])!r}, {j['data']!r})"
    if isinstance(v, float) and not math.isfinite(v):
        return f"float({repr(v)!r})"
    return repr(v)


def _callable_snippet(spec: str, api: str, array: str = "numpy", device: str = "cpu") -> str:
    module, _, attr = spec.partition(":")
    lines = [f"from {module} import {attr.split('.')[0]} as target",
             *([f"target = target.{attr.partition('.')[2]}"] if "." in attr else [])]
    a = "args"
    body = []
    if array != "numpy":  # the same conversions the suite made, to the same arrays
        lines[:0] = [array_source(array, device).rstrip(), ""]
        a = "lib_args"
        body.append(f"{a} = {{k: _to_lib(v) for k, v in args.items()}}")
    if api in KERAS_APIS:
        body += [f"kw = {{k: v for k, v in {a}.items() if k not in ('y_true', 'y_pred')}}",
                 "if kw.get('sample_weight', 0) is None:",
                 "    del kw['sample_weight']",
                 f"result = target(**init)({a}['y_true'], {a}['y_pred'], **kw)"]
    else:
        body.append(f"result = target(**{a})")
    to_np = "np.asarray" if array == "numpy" else "_to_numpy"
    if api in RAW_OPS:
        body.append(f"outputs = {{'loss': {to_np}(result[0]), "
                    f"'backprop': {to_np}(result[1])}}")
    else:
        body.append(f"outputs = {{'loss': {to_np}(result)}}")
    if array != "numpy":  # converted and called in the suite's context (JAX: 64-bit on)
        body = ["with _scope():", *("    " + line for line in body)]
    return "\n".join(lines + body)


def script(*, test_id: str, target: str, target_options: dict, api: str, profile: str,
           device: str, args: dict, init: dict, upstream: np.ndarray | None,
           expected: dict[str, tuple[np.ndarray, np.ndarray]], message: str,
           snippet: str | None, callable_spec: bool = False,
           raises: str | None = None, mode: str = "eager") -> str:
    """A standalone script reproducing one failing case.

    ``expected`` maps output names to (correctly rounded values in the output dtype,
    absolute error budget per element at the required grade); ``raises`` names the error
    TensorFlow raises instead (then ``expected`` is empty). The script exits 1 when it
    shows a discrepancy (a value outside its budget, a wrong NaN, inf, dtype or shape, an
    output missing, a raise where TensorFlow returns or a return where it raises), and 0
    only when the target agrees."""
    head = [f"# Reproducer for {test_id}",
            f"# target: {target} (device {device}, profile {profile}"
            + ("" if mode == "eager" else f", {mode}") + ")",
            f"# API: {api}",
            *(f"# {line}" for line in _wrap(message)),
            "# Generated by xentconf; runs without it. Expected values are TensorFlow's",
            "# semantics evaluated exactly and correctly rounded to the output dtype.", ""]
    body = [_PRELUDE,
            "args = {" + ",\n        ".join(f"{k!r}: {_literal(v)}" for k, v in args.items())
            + "}",
            f"init = {init!r}",
            f"upstream = {_literal(upstream) if upstream is not None else 'None'}",
            "expected = {"]
    for name, (want, budget) in expected.items():
        body.append(f"    {name!r}: ({_literal(np.asarray(want))},")
        body.append(f"             {_literal(np.asarray(budget, dtype=np.float64))}),")
    body.append("}")
    body.append(f"tf_raises = {raises!r}")
    body.append("")
    body.append("# --- the call under test " + "-" * 50)
    if callable_spec:
        snippet = _callable_snippet(target, api, target_options.get("array", "numpy"),
                                    target_options.get("device", "cpu"))
    if snippet is None:
        opts = ", ".join(f"{k}={v!r}" for k, v in target_options.items())
        snippet = "\n".join([
            "# this target cannot describe its framework call: it is called through",
            "# xentconf's adapter (pip install xentconf)",
            "from xentconf.adapters.registry import get_target",
            "from xentconf.protocol import Call, Setup",
            f"_target = get_target({target!r}{', ' + opts if opts else ''})",
            f"_setup = Setup({api!r}, device={device!r}, profile={profile!r}, mode={mode!r}, "
            "init=tuple(sorted(init.items())), grad=upstream is not None)",
            f"outputs = _target.prepare(_setup).run(Call({api!r}, args, init, upstream))"])
    body.append("def call():")
    body.append(textwrap.indent(snippet.rstrip(), "    "))
    body.append("    return outputs")
    body.append("")
    body.append("")
    body.append("raised = None")
    body.append("try:")
    body.append("    outputs = call()")
    body.append("except Exception as exc:  # the target raised: judged below")
    body.append("    raised, outputs = exc, {}")
    return "\n".join(head + body) + _COMPARE


def _wrap(text: str, width: int = 86) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    if line:
        lines.append(line)
    return lines[:12]

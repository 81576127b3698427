"""Plain view objects for the templates: arrays, counterexamples, expected against actual.

Results files hold arrays as ``{"dtype", "shape", "data"}`` with floats as JSON numbers
or strings (C99 hex such as ``"0x1.8p+1"``, ``"nan"``, ``"inf"``). Here they become short,
readable text: each float printed with the fewest digits that read back to the same value
*in its own dtype* (so a float32 shows ``0.2975075``, not 17 digits), the exact original
in a tooltip, and large arrays summarised as numpy does (edge items and an ellipsis).
Nothing here produces markup: the templates escape every string.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xentconf.results import json_number

__all__ = [
    "ArgView",
    "Comparison",
    "CompareRow",
    "is_array",
    "leaf_text",
    "nested_text",
    "truncate",
]

#: Arrays with more leaves than this are summarised (edge items only).
SUMMARY_LEAVES = 120
EDGE_ITEMS = 3
#: Elements listed in an expected-against-actual table.
COMPARE_ROWS = 48
#: Longest JSON or reproducer text embedded as is.
MAX_TEXT = 60_000


def is_array(value: Any) -> bool:
    """Whether ``value`` is an ARRAY of the results schema (``{"dtype", "data", ...}``)."""
    return isinstance(value, Mapping) and "dtype" in value and "data" in value


def truncate(text: str, limit: int = MAX_TEXT) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters, and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def _bf16(v: float) -> float:
    """``v`` rounded to bfloat16 (through float32: a double rounding, which can at worst
    make :func:`_shortest` print one digit more than needed)."""
    try:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
    except OverflowError:
        return math.copysign(math.inf, v)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _shortest(v: float, dtype: str) -> str:
    """The fewest decimal digits that read back as ``v`` in ``dtype``."""
    if dtype in ("float16", "float32", "float64"):
        x = np.dtype(dtype).type(v)
        if 1e-4 <= abs(v) < 1e6:
            return np.format_float_positional(x, unique=True, trim="-")
        return np.format_float_scientific(x, unique=True, trim="-")
    if dtype == "bfloat16":  # numpy has no shortest printing for ml_dtypes' bfloat16
        for d in range(1, 5):
            s = f"{v:.{d}g}"
            if _bf16(float(s)) == v:
                return s
        return f"{v:.4g}"
    return repr(v)


def parse_number(leaf: Any) -> float | None:
    """The value of a float leaf (JSON number, hex or decimal string, nan/inf), else None."""
    if isinstance(leaf, bool):
        return None
    if isinstance(leaf, int | float):
        return float(leaf)
    if isinstance(leaf, str):
        s = leaf.strip()
        try:
            if s.lower().lstrip("+-").startswith("0x"):
                return float.fromhex(s)
            return float(s)
        except (ValueError, OverflowError):
            return None
    return None


def leaf_text(leaf: Any, dtype: str = "") -> tuple[str, str]:
    """``(short text, exact text)`` of one array element (the exact text is '' when the
    short text already is exact)."""
    if isinstance(leaf, bool):
        return ("true" if leaf else "false"), ""
    if isinstance(leaf, int):
        return str(leaf), ""
    value = parse_number(leaf)
    if value is None:
        return json.dumps(leaf) if not isinstance(leaf, str) else leaf, ""
    if not math.isfinite(value):
        return json_number(value), ""
    if value == 0:
        short = "-0" if math.copysign(1.0, value) < 0 else "0"
    elif dtype.startswith("int") or dtype.startswith("uint"):
        short = str(int(value)) if value == int(value) else repr(value)
    else:
        short = _shortest(value, dtype)
    exact = value.hex() if not isinstance(leaf, str) else leaf
    return short, (exact if exact != short else "")


def _leaves(data: Any) -> list[Any]:
    if isinstance(data, list):
        out: list[Any] = []
        for item in data:
            out.extend(_leaves(item))
        return out
    return [data]


def _shape_of(data: Any) -> list[int]:
    shape = []
    while isinstance(data, list):
        shape.append(len(data))
        data = data[0] if data else None
    return shape


def array_shape(array: Mapping[str, Any]) -> list[int]:
    shape = array.get("shape")
    if isinstance(shape, list) and all(isinstance(n, int) for n in shape):
        return shape
    return _shape_of(array.get("data"))


def shape_text(shape: list[int]) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def nested_text(data: Any, dtype: str = "", summarise: bool | None = None) -> str:
    """``data`` as numpy prints it (``[[1, 2], [3, 4]]``), each float in its shortest
    form, long axes summarised with an ellipsis when the array is large."""
    if summarise is None:
        summarise = len(_leaves(data)) > SUMMARY_LEAVES

    def fmt(node: Any, depth: int) -> str:
        if not isinstance(node, list):
            return leaf_text(node, dtype)[0]
        items = node
        cut = summarise and len(items) > 2 * EDGE_ITEMS + 1
        if cut:
            parts = ([fmt(x, depth + 1) for x in items[:EDGE_ITEMS]] + ["…"]
                     + [fmt(x, depth + 1) for x in items[-EDGE_ITEMS:]])
        else:
            parts = [fmt(x, depth + 1) for x in items]
        if items and isinstance(items[0], list):
            return "[" + (",\n" + " " * (depth + 1)).join(parts) + "]"
        return "[" + ", ".join(parts) + "]"

    return fmt(data, 0)


@dataclass
class ArgView:
    """One argument of a counterexample."""

    name: str
    dtype: str | None
    shape: str | None
    text: str  # numpy-like text of the array, or JSON of a plain value


def arg_views(args: Mapping[str, Any] | None) -> list[ArgView]:
    """The arguments of a counterexample case (``args`` of the oracle's case format)."""
    views = []
    for name, value in (args or {}).items():
        if is_array(value):
            shape = array_shape(value)
            views.append(ArgView(str(name), str(value["dtype"]), shape_text(shape),
                                 nested_text(value["data"], str(value["dtype"]))))
        else:
            views.append(ArgView(str(name), None, None, json.dumps(value)))
    return views


@dataclass
class CompareRow:
    index: str
    expected: str
    expected_exact: str
    actual: str
    actual_exact: str
    differs: bool


@dataclass
class Comparison:
    """Expected against actual for one output."""

    output: str
    worst: bool  # the output the worst error was found in
    expected_dtype: str | None = None
    expected_shape: str | None = None
    actual_dtype: str | None = None
    actual_shape: str | None = None
    rows: list[CompareRow] = field(default_factory=list)
    mismatches: int = 0
    total: int = 0
    note: str = ""
    expected_text: str | None = None  # when not element-wise comparable
    actual_text: str | None = None


def _index_label(k: int, shape: list[int], n: int) -> str:
    size = math.prod(shape) if shape else 1
    if not shape or size != n:
        return f"#{k}"
    idx = []
    for dim in reversed(shape):
        idx.append(k % dim)
        k //= dim
    return "[" + ",".join(str(i) for i in reversed(idx)) + "]"


def _same(a: Any, b: Any) -> bool:
    x, y = parse_number(a), parse_number(b)
    if x is not None and y is not None:
        return (math.isnan(x) and math.isnan(y)) or x == y
    return a == b


def _plain(value: Any, dtype: str = "") -> str:
    if is_array(value):
        return nested_text(value["data"], str(value["dtype"]))
    return json.dumps(value, indent=1, default=str)


def compare(output: str, expected: Any, actual: Any, worst: bool = False) -> Comparison:
    """Expected against actual for ``output``, element by element where both are arrays
    of the same number of elements; mismatching elements are listed first when the
    output is too long to list whole."""
    c = Comparison(output=output, worst=worst)
    if is_array(expected):
        c.expected_dtype = str(expected["dtype"])
        c.expected_shape = shape_text(array_shape(expected))
    if is_array(actual):
        c.actual_dtype = str(actual["dtype"])
        c.actual_shape = shape_text(array_shape(actual))
    if not (is_array(expected) and is_array(actual)):
        c.expected_text = _plain(expected) if expected is not None else "(no expected value)"
        c.actual_text = _plain(actual) if actual is not None else "(no output)"
        return c
    exp, act = _leaves(expected["data"]), _leaves(actual["data"])
    if len(exp) != len(act):
        c.note = f"{len(exp)} expected elements, {len(act)} actual"
        c.expected_text = _plain(expected)
        c.actual_text = _plain(actual)
        return c
    shape = array_shape(expected)
    differs = [not _same(a, b) for a, b in zip(exp, act)]
    c.total, c.mismatches = len(exp), sum(differs)
    if c.total <= COMPARE_ROWS:
        shown = list(range(c.total))
    else:
        bad = [k for k, d in enumerate(differs) if d][: COMPARE_ROWS * 3 // 4]
        fill = [k for k in range(c.total) if k not in set(bad)][: COMPARE_ROWS - len(bad)]
        shown = sorted(bad + fill)
        c.note = (f"showing {len(shown)} of {c.total} elements"
                  + (", every listed mismatch first" if bad else ""))
    for k in shown:
        e_text, e_exact = leaf_text(exp[k], c.expected_dtype or "")
        a_text, a_exact = leaf_text(act[k], c.actual_dtype or "")
        c.rows.append(CompareRow(_index_label(k, shape, c.total), e_text, e_exact,
                                 a_text, a_exact, differs[k]))
    return c


def comparisons(expected: Mapping[str, Any] | None, actual: Any,
                worst_output: str | None) -> list[Comparison]:
    """One :class:`Comparison` per output named by ``expected`` or ``actual``."""
    expected = expected or {}
    if actual is not None and not isinstance(actual, Mapping):
        actual = {"(answer)": actual}
    actual = actual or {}
    names = list(expected) + [k for k in actual if k not in expected]
    return [compare(str(n), expected.get(n), actual.get(n), worst=(n == worst_output))
            for n in names]

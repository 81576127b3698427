"""Ready-to-file upstream bug reports: each distinct finding of a run as one Markdown file.

``xentconf report RESULTS... --issues DIR`` groups the failures of the results files into
distinct findings — one per target run, API, failure kind and case tags, so the same bug
seen in four dtypes is one report naming the four tests — and writes each as
``DIR/NN-<target>-<mode>-<api>-<kind>.md`` with an index, ``DIR/README.md``. A report
says what TensorFlow's documented semantics are (the API's documentation line and, where
TensorFlow raises, its error), the minimal input (the shrunk counterexample, also a case
for ``xentconf oracle``), what the framework returned, the expected values (TensorFlow's
result, exact and correctly rounded to the output dtype) element by element, and the
standalone reproducer, which exits 1 while the framework still differs.

Everything comes from the results documents (this module reads :mod:`xentconf.results`
only); a failure without a counterexample (a crash before any case) still gets a report
with what the run recorded.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xentconf.results import expand_array, writable_folder
from xentconf.vocabulary import API_DOC, API_SHORT, DTYPES

from .merge import FAILING, ReportError, merge

__all__ = ["Finding", "findings", "issue_markdown", "write_issues"]

#: How many differing elements a report lists (the reproducer checks them all).
SHOWN = 8


@dataclass
class Finding:
    """One distinct way a target run differs from TensorFlow."""

    target: str
    version: str | None
    mode: str  # the row's label, device/profile[/execution]
    profile: str
    keras: str | None
    api: str
    kind: str
    tags: tuple[str, ...]
    failure: dict[str, Any]  # the representative: the smallest counterexample
    dtype: str
    test: str  # the test id of the representative
    tests: list[str] = field(default_factory=list)  # every test that showed it
    started: str = ""

    @property
    def api_short(self) -> str:
        return API_SHORT.get(self.api, self.api)

    @property
    def slug(self) -> str:
        mode = self.mode.replace("/", "-")
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{self.target}-{mode}-{self.api_short}-"
                                                f"{self.kind}")

    @property
    def title(self) -> str:
        f = self.failure
        expected, actual = f.get("expected") or {}, f.get("actual") or {}
        what = {
            "tf-raises": "accepts an input TensorFlow rejects"
                         + (f" ({expected['raises']['error']})" if "raises" in expected
                            else ""),
            "target-raises": "raises "
                             + (f"{actual['raises']['error']} " if "raises" in actual else "")
                             + "where TensorFlow returns a result",
            "nan-inf": "NaN or inf where TensorFlow's result differs",
            "dtype-shape": "output dtype or shape differs from TensorFlow's",
            "outside-budget": "values outside the error budget of TensorFlow's result",
            "crash": "the process dies", "timeout": "the call does not return",
            "error": "the call returns something that is not an answer",
        }.get(self.kind, self.kind)
        tags = f" [{', '.join(self.tags)}]" if self.tags else ""
        version = f" {self.version}" if self.version else ""
        return f"{self.target}{version} ({self.mode}): {self.api_short} {what}{tags}"


def _size(failure: dict[str, Any]) -> int:
    """Elements in a failure's counterexample (its arguments), for picking the smallest."""
    case = failure.get("counterexample") or {}
    total = 0
    for value in (case.get("args") or {}).values():
        if isinstance(value, dict) and "shape" in value:
            total += math.prod(value["shape"])
        elif isinstance(value, dict) and "data" in value:
            total += len(value["data"])
        else:
            total += 1
    return total if case else 1 << 60


def _dtype_rank(dtype: str) -> int:
    order = ("float32", "float64", *DTYPES)
    return order.index(dtype) if dtype in order else len(order)


def findings(docs: Sequence[dict[str, Any]],
             sources: Sequence[str] | None = None) -> list[Finding]:
    """The distinct findings of validated results documents, in board order: failures
    grouped by target run, API, kind and case tags; each group's representative is the
    failure with the smallest counterexample (float32 first among equals)."""
    board = merge(docs, sources)
    out: dict[tuple, Finding] = {}
    for row in board.rows:
        run = board.runs[row.runs[0]].run
        for o in row.outcomes:
            if o["verdict"] not in FAILING:
                continue
            failures = o.get("failures") or [{
                "kind": o["verdict"] if o["verdict"] != "fail" else "outside-budget",
                "verdict": o["verdict"], "message": o.get("message") or o["verdict"],
                "tags": [], "counterexample": o.get("counterexample"),
                "expected": o.get("expected"), "actual": o.get("actual"),
                "reproducer": o.get("reproducer")}]
            for f in failures:
                tags = tuple(sorted(f.get("tags") or ()))
                key = (row.key, o["api"], f["kind"], tags)
                found = out.get(key)
                if found is None:
                    found = out[key] = Finding(
                        target=row.target, version=run["target"].get("version"),
                        mode=row.label, profile=row.profile,
                        keras=run["target"].get("keras"), api=o["api"], kind=f["kind"],
                        tags=tags, failure=f, dtype=o["dtype"], test=o["id"],
                        started=(run.get("started") or "")[:10])
                elif (_size(f), _dtype_rank(o["dtype"])) < (_size(found.failure),
                                                            _dtype_rank(found.dtype)):
                    found.failure, found.dtype, found.test = f, o["dtype"], o["id"]
                if o["id"] not in found.tests:
                    found.tests.append(o["id"])
    return list(out.values())


# --------------------------------------------------------------------------- rendering


def _number(text: Any) -> float | None:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if isinstance(text, str):
        try:
            return float.fromhex(text) if "0x" in text else float(text)
        except ValueError:
            return None
    return None


def _show(value: Any) -> str:
    """A value as a reader wants it: the decimal, and the hex float it was stored as."""
    x = _number(value)
    if x is None:
        return f"`{value}`"
    if isinstance(value, str) and value.lstrip("-").startswith("0x"):
        return f"{x!r} (`{value}`)"
    return repr(x) if isinstance(value, str) else str(value)


def _elements(array: dict[str, Any]) -> list[Any]:
    a = expand_array(array)
    data = a.get("data")

    def flat(d):
        if isinstance(d, list):
            for item in d:
                yield from flat(item)
        else:
            yield d

    return list(flat(data)) if data is not None else []


def _index(flat: int, shape: Sequence[int]) -> str:
    idx = []
    for n in reversed(shape):
        idx.append(flat % n if n else 0)
        flat = flat // n if n else 0
    return "[" + ", ".join(map(str, reversed(idx))) + "]" if shape else "[]"


def _same(a: Any, b: Any) -> bool:
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y  # -0.0 and 0.0 are one value to the verdict too


def _arrays_text(outputs: dict[str, Any]) -> list[str]:
    lines = []
    for name, a in outputs.items():
        if not isinstance(a, dict):
            continue
        values = _elements(a)
        shown = ", ".join(_show(v) for v in values[:SHOWN])
        more = f", … ({len(values)} in all)" if len(values) > SHOWN else ""
        lines.append(f"- `{name}`: {a.get('dtype')} {list(a.get('shape', []))} "
                     f"[{shown}{more}]")
    return lines


def _comparison(expected: dict[str, Any], actual: dict[str, Any], target: str,
                kind_shape: bool = False) -> list[str]:
    """A table of the elements where the target's value differs from TensorFlow's (an
    output the target did not give is listed for a dtype-shape finding only)."""
    rows = []
    for name, want in expected.items():
        got = actual.get(name)
        if not isinstance(want, dict):
            continue
        if not isinstance(got, dict):
            if not kind_shape:  # an output the target was not asked for or lacks
                continue
            rows.append(f"| `{name}` | (all) | {want.get('dtype')} {want.get('shape')} | "
                        "missing |")
            continue
        if (want.get("dtype"), want.get("shape")) != (got.get("dtype"), got.get("shape")):
            rows.append(f"| `{name}` | (dtype, shape) | {want.get('dtype')} "
                        f"{want.get('shape')} | {got.get('dtype')} {got.get('shape')} |")
            continue
        shape = want.get("shape") or []
        diffs = [(i, w, g) for i, (w, g) in enumerate(zip(_elements(want), _elements(got)))
                 if not _same(w, g)]
        for i, w, g in diffs[:SHOWN]:
            rows.append(f"| `{name}` | {_index(i, shape)} | {_show(w)} | {_show(g)} |")
        if len(diffs) > SHOWN:
            rows.append(f"| `{name}` | … | {len(diffs) - SHOWN} more elements differ | |")
    if not rows:
        return ["Every element shown equals TensorFlow's value; the difference is in what "
                "the run's message says (an element outside its error budget counts its "
                "budget, not bit equality: see the reproducer's output)."]
    return [f"| output | element | TensorFlow (exact, correctly rounded) | {target} |",
            "| --- | --- | --- | --- |", *rows]


def _semantics(finding: Finding) -> list[str]:
    f = finding.failure
    expected = f.get("expected") or {}
    lines = [f"`{finding.api}`: {API_DOC.get(finding.api, '(no documentation line)')}"]
    if finding.profile != "cpu":
        lines.append(f"(Judged under TensorFlow's `{finding.profile}` device profile: an "
                     "out-of-range sparse label gives NaN rows there instead of raising.)")
    if finding.keras:
        lines.append(f"(Keras semantics: {finding.keras}.)")
    if "raises" in expected:
        r = expected["raises"]
        lines.append(f"For this input TensorFlow raises `{r['error']}`: \"{r['message']}\"")
    elif finding.kind == "target-raises":
        lines.append("For this input TensorFlow returns a result (below); it does not raise.")
    elif finding.kind in ("nan-inf", "outside-budget"):
        lines.append("Each output element is TensorFlow's formula evaluated exactly and "
                     "rounded correctly to the output dtype, within an error budget that "
                     "follows the element's conditioning; NaN and ±inf appear exactly where "
                     "TensorFlow gives them.")
    elif finding.kind == "dtype-shape":
        lines.append("TensorFlow's outputs have the dtypes and shapes listed below.")
    return lines


def _case_text(case: dict[str, Any]) -> str:
    """The case as JSON with one line per argument."""
    lines = ["{"]
    items = list(case.items())
    for i, (key, value) in enumerate(items):
        end = "," if i < len(items) - 1 else ""
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in
                                                     value.values()):
            inner = [f'  {json.dumps(k)}: {json.dumps(v)}' for k, v in value.items()]
            lines.append(f" {json.dumps(key)}: {{\n" + ",\n".join(inner) + f"\n }}{end}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{end}")
    return "\n".join(lines + ["}"])


def issue_markdown(finding: Finding) -> str:
    """One finding as a Markdown bug report."""
    f = finding.failure
    target = finding.target
    expected, actual = f.get("expected") or {}, f.get("actual") or {}
    out = [f"# {finding.title}", "",
           f"- Framework: {target} {finding.version or ''} ({finding.mode}), judged against "
           f"TensorFlow's semantics by xentconf on {finding.started or 'an unknown date'}",
           f"- API (TensorFlow's name): `{finding.api}`; dtype of the minimal case: "
           f"{finding.dtype}",
           f"- Seen in {len(finding.tests)} test{'s' * (len(finding.tests) != 1)}: "
           + ", ".join(f"`{t}`" for t in finding.tests),
           "", "## What TensorFlow's documented semantics say", "", *_semantics(finding), "",
           "## Minimal input", ""]
    case = f.get("counterexample")
    if case:
        out += ["The shrunk counterexample (a case for `xentconf oracle`; floats as hex):",
                "", "```json", _case_text(case), "```", ""]
    else:
        out += ["The run recorded no counterexample for this failure.", ""]
    out += [f"## What {target} returns", ""]
    if "raises" in actual:
        out += [f"It raises `{actual['raises']['error']}`: \"{actual['raises']['message']}\""]
    elif actual:
        out += _arrays_text(actual)
    else:
        out += [f"Nothing: {f.get('message', '')}"]
    out += ["", "## Expected (TensorFlow's result)", ""]
    if "raises" in expected:
        out += [f"TensorFlow raises `{expected['raises']['error']}`; {target} must reject "
                "the input too."]
    elif expected and actual and "raises" not in actual:
        out += _comparison(expected, actual, target, finding.kind == "dtype-shape")
    elif expected:
        out += _arrays_text(expected)
    else:
        out += ["Not recorded."]
    out += ["", f"xentconf's verdict: {f.get('message', '')}", ""]
    if f.get("reproducer"):
        out += ["## Reproducer", "",
                f"Standalone (numpy and {target}; no xentconf). It prints every discrepancy "
                "and exits 1 while one remains, 0 once the framework agrees.", "",
                "```python", f["reproducer"].rstrip(), "```", ""]
    return "\n".join(out)


def write_issues(docs: Sequence[dict[str, Any]], out_dir: str | os.PathLike,
                 sources: Sequence[str] | None = None) -> list[Path]:
    """Write one Markdown report per distinct finding of ``docs`` into ``out_dir`` and an
    index, ``README.md``; return the reports' paths. :class:`ReportError` (one line) when
    ``out_dir`` cannot be written."""
    found = findings(docs, sources)
    out = Path(out_dir)
    problem = writable_folder(out)
    if problem:
        raise ReportError(f"--issues {out_dir}: {problem}")
    try:
        paths = []
        index = ["# Findings", "",
                 f"{len(found)} distinct finding{'s' * (len(found) != 1)}, one report each:",
                 ""]
        for n, finding in enumerate(found, 1):
            path = out / f"{n:02d}-{finding.slug}.md"
            path.write_text(issue_markdown(finding), encoding="utf-8")
            paths.append(path)
            index.append(f"- [{finding.title}]({path.name}) — {len(finding.tests)} "
                         f"test{'s' * (len(finding.tests) != 1)}")
        (out / "README.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"--issues {out_dir}: cannot write there "
                          f"({exc.strerror or exc})") from exc
    return paths

"""The versioned results schema shared by ``xentconf.conformance`` and ``xentconf.reports``.

A conformance run writes one *results document* (``results.json``): metadata about the
run, the known deviations it applied, and one *outcome* per test (API × dtype × feature).
Reports only ever read such documents. The schema is written down twice on purpose: as
the builders and readers here, and as a JSON Schema (``results.schema.json``, shipped in
this package; ``python -m xentconf.results`` prints it) that other tools can validate
against. A test checks that the shipped file is current.

Nothing else of xentconf may be imported here.

Document (``SCHEMA_VERSION`` 2)::

    {"schema": "xentconf-results", "schema_version": 2,
     "run": {...RUN_FIELDS...},
     "deviations": [DEVIATION...],
     "outcomes": [OUTCOME...],
     "sweeps": [SWEEP...]}          (optional: written by ``xentconf sweep``)

An OUTCOME's ``verdict`` is one of :data:`VERDICTS`:

* ``pass``       every case reached the required grade;
* ``as-tensorflow``  some case missed it, but only in elements where one of TensorFlow's
                 own mechanisms (``xentconf.oracle.mechanisms``: flushed denormals,
                 float32 reductions, overflow, ...) allows the value given; conforms unless
                 the run is ``strict`` (then such a case is a ``fail``);
* ``deviation``  some case missed it, but a declared known deviation covers every miss
                 (and the case still reached the grade the deviation declares);
* ``fail``       a case missed the required grade (or the error semantics) undeclared;
* ``crash``      the target killed its process (segfault, abort, ``os._exit``);
* ``timeout``    a call ran past the per-case time limit;
* ``error``      the target returned something that is not an answer, or the harness
                 could not run the test;
* ``skip``       the target declares the feature, dtype or API unsupported.

A failing outcome lists its distinct failures (``failures``, worst first; up to a cap per
test), each of one *kind* of :data:`FAILURE_KINDS` with its own minimal counterexample,
expected and actual values and reproducer; the outcome's ``counterexample``, ``expected``,
``actual`` and ``reproducer`` are those of the first (worst) failure.

Counterexamples use the case format of ``xentconf oracle`` (floats as C99 hex strings), so
any counterexample can be fed back to the oracle bit-exactly. A large array that is mostly
one value is written compactly: ``{"dtype", "shape", "fill", "entries": [[flat index,
value], ...]}`` in place of ``"data"`` (:func:`expand_array` gives the plain form).

Versions: 2 added the ``as-tensorflow`` verdict, ``failures``, ``mechanisms``,
``contract`` and ``sweeps``. A version-1 document is a version-2 document without them,
so both are read (:data:`READS`); an older xentconf refuses a version-2 file with "upgrade
xentconf" instead of tripping over a verdict it does not know.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from xentconf.vocabulary import GRADES, REQUIRED_GRADES

__all__ = [
    "GRADES",
    "REQUIRED_GRADES",
    "JSON_SCHEMA",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "FAILURE_KINDS",
    "VERDICTS",
    "CONFORMING",
    "READS",
    "ResultsError",
    "dumps",
    "expand_array",
    "expand_arrays",
    "load",
    "loads",
    "failure",
    "new_document",
    "outcome",
    "schema_text",
    "sweep",
    "validate",
    "write",
]

SCHEMA_ID = "xentconf-results"
SCHEMA_VERSION = 2
#: The schema versions this xentconf reads (each a subset of the next).
READS = (1, 2)

#: Verdicts, from best to worst for display order.
VERDICTS = ("pass", "as-tensorflow", "deviation", "fail", "crash", "timeout", "error", "skip")
#: Verdicts that conform (``as-tensorflow`` only when the run is not strict).
CONFORMING = ("pass", "as-tensorflow", "deviation", "skip")
#: Kinds of a failing case, worst first: the target killed its process, ran past the time
#: limit, or returned no answer; TensorFlow raises and the target returns; the target
#: raises and TensorFlow returns; a NaN or inf where there must be none (or one missing);
#: a wrong dtype, shape or set of outputs; values outside the error budget.
FAILURE_KINDS = ("crash", "timeout", "error", "tf-raises", "target-raises", "nan-inf",
                 "dtype-shape", "outside-budget")

# numbers that may be infinite or NaN are written as the strings "inf", "-inf", "nan"
_NUM = {"type": ["number", "string", "null"], "pattern": "^(inf|-inf|nan)$"}
_STR = {"type": ["string", "null"]}
#: One distinct failure of a test.
FAILURE = {
    "type": "object",
    "required": ["kind", "verdict", "message"],
    "properties": {
        "kind": {"enum": list(FAILURE_KINDS)},
        "verdict": {"enum": ["fail", "crash", "timeout", "error"]},
        "message": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"},
                 "description": "the case tags of the counterexample"},
        "grade": {"enum": [*GRADES, None]},
        "counterexample": {"type": ["object", "null"]},
        "expected": {"type": ["object", "null"]},
        "actual": {"type": ["object", "null"]},
        "reproducer": _STR,
    },
}

#: The JSON Schema of a results document (draft 2020-12).
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://xentconf.invalid/results.schema.json",
    "title": "xentconf conformance results",
    "type": "object",
    "required": ["schema", "schema_version", "run", "deviations", "outcomes"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "schema_version": {"enum": list(READS)},
        "run": {
            "type": "object",
            "required": ["xentconf_version", "target", "device", "profile", "accuracy",
                         "python", "platform", "started", "duration_s", "interrupted"],
            "properties": {
                "xentconf_version": {"type": "string"},
                "target": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "version": _STR,
                        "description": _STR,
                        "keras": _STR,
                        "available": {"type": "boolean"},
                    },
                },
                "frameworks": {"type": "object",
                               "additionalProperties": {"type": ["string", "null"]}},
                "device": {"type": "string"},
                "profile": {"type": "string"},
                "mode": {"type": "string", "description": "how the target's mode executed: "
                                                          "eager, xla, compile, or a Keras 3 "
                                                          "backend (absent: eager)"},
                "accuracy": {"enum": list(REQUIRED_GRADES)},
                "strict": {"type": "boolean", "description": "as-tensorflow counted as a "
                                                             "failure"},
                "hypothesis_profile": _STR,
                "seed": {"type": ["integer", "null"]},
                "examples": {"type": ["integer", "null"]},
                "python": {"type": "string"},
                "platform": {"type": "string"},
                "started": {"type": "string", "description": "ISO 8601, UTC"},
                "duration_s": _NUM,
                "interrupted": {"type": "boolean"},
                "command": {"type": ["array", "null"], "items": {"type": "string"}},
            },
        },
        "deviations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "reason", "matched"],
                "properties": {
                    "id": {"type": "string", "description": "glob over case ids"},
                    "reason": {"type": "string"},
                    "link": _STR,
                    "grade": {"enum": list(GRADES)},
                    "keras": _STR,
                    "profile": _STR,
                    "nonfinite": {"type": "boolean"},
                    "matched": {"type": "integer", "minimum": 0,
                                "description": "cases this entry covered in the run"},
                    "pinned": {"enum": ["shows", "passes", "error", None],
                               "description": "the pinned case re-checked: it still shows "
                                              "the deviation, it passes now, or it could "
                                              "not be run"},
                    "pinned_message": _STR,
                    "source": _STR,
                },
            },
        },
        "outcomes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "api", "dtype", "feature", "verdict", "examples"],
                "properties": {
                    "id": {"type": "string",
                           "description": "<target>-<device>-<dtype>-<api>-<feature>"},
                    "target": {"type": "string"},
                    "device": {"type": "string"},
                    "profile": {"type": "string"},
                    "api": {"type": "string", "description": "the TF API id"},
                    "api_short": {"type": "string"},
                    "dtype": {"type": "string"},
                    "feature": {"type": "string"},
                    "support": {"enum": ["native", "composed", "unsupported", None]},
                    "verdict": {"enum": list(VERDICTS)},
                    "grade": {"enum": [*GRADES, None],
                              "description": "the worst grade reached by any checked "
                                             "element (null when nothing was graded)"},
                    "required": {"enum": list(REQUIRED_GRADES)},
                    "examples": {"type": "integer", "minimum": 0},
                    "worst_ulps": _NUM,
                    "worst_budget": {**_NUM, "description": "worst error in units of "
                                                            "the stable budget"},
                    "worst_output": _STR,
                    "deviation": _STR,
                    "message": _STR,
                    "counterexample": {"type": ["object", "null"]},
                    "expected": {"type": ["object", "null"],
                                 "description": "output name -> ARRAY (the correctly "
                                                "rounded values), or {\"raises\": "
                                                "{\"error\", \"message\"}}"},
                    "actual": {"type": ["object", "null"],
                               "description": "output name -> ARRAY, or {\"raises\": "
                                              "{\"error\", \"message\"}}"},
                    "mechanisms": {"type": ["object", "null"],
                                   "additionalProperties": {"type": "integer"},
                                   "description": "TensorFlow mechanism -> cases of this "
                                                  "test it explained (as-tensorflow)"},
                    "contract": {"type": ["object", "null"],
                                 "additionalProperties": {"type": "integer"},
                                 "description": "where the documented contract rejects an "
                                                "input TensorFlow's binding coerces: "
                                                "\"raised\" / \"coerced\" -> cases"},
                    "deviation_matches": {"type": ["object", "null"],
                                          "additionalProperties": {"type": "integer"},
                                          "description": "deviation id -> cases it "
                                                         "covered in this test"},
                    "reproducer": _STR,
                    "failures": {"type": ["array", "null"], "items": FAILURE,
                                 "description": "the distinct failures found, worst "
                                                "first; the outcome's counterexample, "
                                                "expected, actual and reproducer are the "
                                                "first one's"},
                    "duration_s": _NUM,
                    "samples": {
                        "type": ["array", "null"],
                        "items": _NUM,
                        "description": "worst error (budget units) of each example, for "
                                       "the accuracy distribution",
                    },
                },
            },
        },
    },
}


#: One test's outcome (an item of ``outcomes``).
OUTCOME: dict[str, Any] = JSON_SCHEMA["properties"]["outcomes"]["items"]


# ---------------------------------------------------------------- sweeps (xentconf sweep)
#: One exhaustive sweep (``xentconf sweep``): counts over every row judged, the distinct
#: failure kinds with their smallest examples, and the failure map over the two logits.
SWEEP = {
    "type": "object",
    "required": ["id", "api", "dtype", "rows", "rows_done", "chunks", "chunks_done",
                 "grades", "verdicts", "failures", "map"],
    "properties": {
        "id": {"type": "string", "description": "<target>-<device>-<dtype>-<api>-sweep"},
        "api": {"type": "string"}, "api_short": {"type": "string"},
        "dtype": {"type": "string"}, "space": _STR,
        "grid": {"type": ["array", "null"], "items": {"type": "number"}},
        "start": {"type": "integer", "minimum": 0, "description": "first pair index"},
        "stop": {"type": "integer", "minimum": 0, "description": "last pair index + 1"},
        "rows": {"type": "integer", "minimum": 0, "description": "two per pair"},
        "rows_done": {"type": "integer", "minimum": 0},
        "chunks": {"type": "integer", "minimum": 0},
        "chunks_done": {"type": "integer", "minimum": 0},
        "required": {"enum": list(REQUIRED_GRADES)},
        "grades": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "grade -> rows (a row's grade is its worst element's)"},
        "verdicts": {"type": "object", "additionalProperties": {"type": "integer"},
                     "description": "verdict -> rows (crash, timeout, error: every row of "
                                    "the chunks where the target malfunctioned)"},
        "worst_budget": _NUM,
        "failures": {"type": "array", "items": {
            "type": "object", "required": ["kind", "count", "examples"],
            "properties": {"kind": {"type": "string"},
                           "count": {"type": "integer", "minimum": 0},
                           "examples": {"type": "array", "items": {"type": "object"},
                                        "description": "the smallest failing rows: "
                                                       "pair, logits (hex), label, "
                                                       "grade, output, got, expected"},
                           "reproducer": _STR}}},
        "crashed_chunks": {"type": "array", "items": {"type": "object"}},
        "map": {"type": "object", "required": ["x_bins", "y_bins", "cells"],
                "properties": {"x": _STR, "y": _STR,
                               "x_bins": {"type": "array", "items": {"type": "string"}},
                               "y_bins": {"type": "array", "items": {"type": "string"}},
                               "cells": {"type": "array", "items": {
                                   "type": "array", "items": _NUM,
                                   "description": "[x bin, y bin, rows, failing rows, "
                                                  "worst error in units of the stable "
                                                  "budget (inf: a wrong NaN/inf; null: "
                                                  "not judged; absent in older files)]"}}}},
        "duration_s": _NUM,
    },
}
JSON_SCHEMA["properties"]["sweeps"] = {
    "type": "array", "items": SWEEP,
    "description": "exhaustive sweeps (xentconf sweep); absent in ordinary runs"}


class ResultsError(Exception):
    """A results file cannot be used; the message says what is wrong and how to fix it."""


def new_document(run: dict[str, Any]) -> dict[str, Any]:
    """An empty results document for ``run`` (the RUN fields of the schema)."""
    return {"schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION, "run": dict(run),
            "deviations": [], "outcomes": []}


def _check(value: Any, schema: dict[str, Any], where: str) -> None:
    """Validate ``value`` against the subset of JSON Schema used by :data:`JSON_SCHEMA`."""
    if "const" in schema and value != schema["const"]:
        raise ResultsError(f"{where}: expected {schema['const']!r}, found {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise ResultsError(f"{where}: {value!r} is not one of {schema['enum']}")
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        ok = {"object": isinstance(value, dict), "array": isinstance(value, list),
              "string": isinstance(value, str), "boolean": isinstance(value, bool),
              "integer": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, int | float) and not isinstance(value, bool),
              "null": value is None}
        if not any(ok[t] for t in types):
            raise ResultsError(f"{where}: expected {' or '.join(types)}, found "
                               f"{type(value).__name__}")
    if isinstance(value, str) and "pattern" in schema and \
            not re.fullmatch(schema["pattern"].strip("^$"), value):
        raise ResultsError(f"{where}: {value!r} is not a number (nor inf/-inf/nan)")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                raise ResultsError(f"{where}: missing field {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, v in value.items():
            if key in props:
                _check(v, props[key], f"{where}.{key}")
            elif isinstance(extra, dict):
                _check(v, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            _check(v, schema["items"], f"{where}[{i}]")
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        raise ResultsError(f"{where}: {value} is below {schema['minimum']}")


def _nullable(schema: dict[str, Any]) -> bool:
    types = schema.get("type", ())
    return "null" in ([types] if isinstance(types, str) else types) or \
        None in schema.get("enum", ())


def _record(schema: dict[str, Any], what: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A record of ``schema`` from ``fields``: every optional field the schema lets be null
    is present (null when not given), in the schema's order; an unknown field or a value
    the schema refuses is a bug of the writer, raised here rather than written."""
    props = schema["properties"]
    unknown = sorted(set(fields) - set(props))
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {', '.join(unknown)}")
    out = {k: fields[k] if k in fields else None for k in props
           if k in fields or _nullable(props[k])}
    try:
        _check(out, schema, what)
    except ResultsError as exc:
        raise ValueError(str(exc)) from None
    return out


def outcome(**fields: Any) -> dict[str, Any]:
    """One test's outcome record (:data:`OUTCOME`), checked against the schema."""
    return _record(OUTCOME, "outcome", fields)


def failure(**fields: Any) -> dict[str, Any]:
    """One distinct failure of a test (:data:`FAILURE`), checked against the schema."""
    return _record(FAILURE, "failure", fields)


def sweep(**fields: Any) -> dict[str, Any]:
    """One exhaustive sweep's record (:data:`SWEEP`), checked against the schema."""
    return _record(SWEEP, "sweep", fields)


def validate(doc: Any, source: str = "results") -> dict[str, Any]:
    """Check ``doc`` is a results document this xentconf reads; return it.

    Foreign JSON and newer schema versions are told apart, so the message says what to
    do: use a results file written by ``xentconf run``, or upgrade xentconf.
    """
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        raise ResultsError(f"{source}: not an xentconf results file (no \"schema\": "
                           f"\"{SCHEMA_ID}\"); give a results.json written by xentconf run")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(f"{source}: schema_version must be an integer, found {version!r}")
    if version > SCHEMA_VERSION:
        raise ResultsError(f"{source}: written with results schema version {version}, newer "
                           f"than this xentconf reads ({SCHEMA_VERSION}); upgrade xentconf")
    if version not in READS:
        raise ResultsError(f"{source}: results schema version {version} is older than this "
                           f"xentconf reads ({', '.join(map(str, READS))}); re-run the "
                           f"conformance run")
    _check(doc, JSON_SCHEMA, source)
    return doc


def loads(text: str, source: str = "results") -> dict[str, Any]:
    """Parse and validate a results document from JSON text."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno})") from exc
    return validate(doc, source)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a results file (gzip-compressed when its name ends in ``.gz``,
    as committed baselines are)."""
    p = Path(path)
    try:
        data = p.read_bytes()
        if p.suffix == ".gz":
            import gzip
            import zlib

            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
                raise ResultsError(f"{p}: not a gzip file, though its name ends in .gz "
                                   f"({exc})") from exc
        text = data.decode("utf-8")
    except IsADirectoryError as exc:
        raise ResultsError(f"{p}: is a directory; give the results.json inside it") from exc
    except FileNotFoundError as exc:
        raise ResultsError(f"{p}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{p}: not a text file (not UTF-8)") from exc
    except OSError as exc:
        raise ResultsError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    return loads(text, str(p))


def expand_array(value: dict[str, Any]) -> dict[str, Any]:
    """An ARRAY with ``"data"`` (nested lists, row-major): a compact one (``"fill"`` and
    ``"entries"``) expanded, any other returned as is."""
    if not isinstance(value, dict) or "fill" not in value or "data" in value:
        return value
    shape = value.get("shape") or []
    size = 1
    for n in shape:
        size *= int(n)
    data: Any = [value["fill"]] * size
    for k, v in value.get("entries") or ():
        if 0 <= int(k) < size:
            data[int(k)] = v
    def nest(flat: list, dims: list) -> list:  # row-major nested lists
        if len(dims) <= 1:
            return flat
        step = 1
        for n in dims[1:]:
            step *= int(n)
        return [nest(flat[i * step:(i + 1) * step], dims[1:]) for i in range(int(dims[0]))]

    out = {k: v for k, v in value.items() if k not in ("fill", "entries")}
    out["data"] = nest(data, list(shape)) if shape else value["fill"]
    return out


def expand_arrays(value: Any) -> Any:
    """``value`` with every compact ARRAY inside it expanded (:func:`expand_array`)."""
    if isinstance(value, dict):
        if "fill" in value and "dtype" in value and "data" not in value:
            return expand_array(value)
        return {k: expand_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_arrays(v) for v in value]
    return value


def json_number(v: float | None) -> float | str | None:
    """A number as the results file holds it: a float, or ``"nan"``, ``"inf"``, ``"-inf"``
    (which JSON cannot hold); None stays None."""
    if v is None:
        return None
    v = float(v)
    return repr(v) if v != v or v in (float("inf"), float("-inf")) else v


def number(value: Any) -> Any:
    """The inverse of :func:`json_number`: ``"inf"``, ``"-inf"``, ``"nan"`` as floats;
    anything else unchanged."""
    if isinstance(value, str) and value.strip().lower() in ("inf", "-inf", "+inf", "nan",
                                                             "infinity", "-infinity"):
        return float(value)
    return value


def _jsonable(value: Any) -> Any:
    """Floats that JSON cannot hold (nan, inf) become strings; everything else as is."""
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def dumps(doc: dict[str, Any]) -> str:
    """The document as strict JSON text (no NaN/Infinity literals)."""
    return json.dumps(_jsonable(doc), indent=1, allow_nan=False) + "\n"


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file in the same folder, then a
    rename): a reader never sees half a file, and a failed write leaves the old one. The
    file gets an ordinary file's mode (0666 less the umask), as ``open`` would give it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        mask = os.umask(0)  # mkstemp makes the file private (0600)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def writable_folder(path: str | os.PathLike) -> str | None:
    """Why the folder ``path`` cannot take files (it is created if missing), as the end of a
    one-line message, or None if it can: checked before a run, so that its results are
    not lost at the end."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        return "is a file; give a folder"
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as exc:
        return f"cannot write there ({exc.strerror or exc}); give a folder you can write to"
    return None


def write(doc: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``doc`` to ``path`` atomically (:func:`atomic_write`)."""
    p = Path(path)
    if p.is_dir():
        raise ResultsError(f"{p}: is a directory; give a file name such as {p / 'results.json'}")
    return atomic_write(p, dumps(doc).encode("utf-8"))


def schema_text() -> str:
    """The JSON Schema as the text of the shipped ``results.schema.json``."""
    return json.dumps(JSON_SCHEMA, indent=2) + "\n"


if __name__ == "__main__":  # python -m xentconf.results > src/xentconf/results.schema.json
    print(schema_text(), end="")

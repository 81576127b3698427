"""``xentconf oracle CASE``: one API call given as a JSON document, answered as JSON.

A CASE is a JSON object::

    {
      "api": "tf.nn.sparse_softmax_cross_entropy_with_logits",
      "args": {"labels": {"dtype": "int32", "data": [0, 3, 1]},
               "logits": {"dtype": "float32", "data": [[2, -5, 0.5, -0.1], ...]}},
      "init": {"from_logits": true},      (Keras APIs only: constructor kwargs)
      "keras": "keras2" | "keras3",       (Keras APIs only; default keras2)
      "profile": "cpu" | "gpu" | "xla",   (default cpu)
      "upstream": ARRAY,                  (optional: upstream gradient of the loss output)
      "description": "free text"          (optional, ignored)
    }

``api`` is one of :data:`~xentconf.oracle.API_IDS` or its short name (``nn_sparse``).
An ``args`` value is either an ARRAY or plain JSON passed through as the Python value a
user would write: a string, ``true`` / ``false``, ``null`` (``None``), an integer
(``int``), a number with a fraction or exponent (``float``, the correctly rounded
float64), or a list of those (converted by the oracle as ``tf.convert_to_tensor``
converts a Python list). ``init`` holds plain JSON only.

An ARRAY is ``{"dtype": D, "data": NESTED}`` with an optional ``"shape": [..]``:

* ``D`` is one of ``float16``, ``bfloat16``, ``float32``, ``float64``, ``int8``,
  ``int16``, ``int32``, ``int64``, ``uint8``, ``uint16``, ``uint32``, ``uint64``, ``bool``;
* ``NESTED`` is a number (a 0-d array) or nested lists of equal length at each depth
  (row-major); with ``shape`` given, its elements (flattened) are reshaped to ``shape``,
  which is how an empty array such as shape ``[0, 4]`` is written;
* a float entry is a JSON number, taken at its exact decimal value and correctly rounded
  (ties to even, gradual underflow, overflow to infinity) straight to ``D``; or a C99 hex
  float string such as ``"0x1.8p+1"`` or ``"-0x1p-149"``, also read exactly and then
  correctly rounded to ``D`` (never through float64 first); or ``"inf"``, ``"-inf"``,
  ``"nan"``. ``-0`` and ``-0.0`` give negative zero;
* an integer entry must be an integral JSON number within the range of ``D``;
* a ``bool`` entry is ``true`` or ``false``.

A large array that is mostly one value may be written compactly, without ``data``:
``{"dtype": D, "shape": [..], "fill": V, "entries": [[FLAT_INDEX, V], ...]}`` — every
element is ``fill`` but those ``entries`` name (row-major flat indices), each value an
entry as above (results files write large counterexamples so).

The answer is a JSON object with ``api`` and ``profile`` (and ``keras`` for the Keras
APIs) echoed, then either ``"raises": {"error": CLASS, "message": TEXT}`` — TensorFlow
rejects the input; this is a valid answer, not a malformed case — or ``"outputs"``
mapping each output name (``loss``, ``backprop`` for the raw ops, ``grad_logits``) to::

    {"dtype": "float32", "shape": [3],
     "exact":   [decimal strings, or "nan" / "inf" / "-inf"],
     "rounded": [float.hex() strings of the correctly rounded values, or "nan"/"inf"/"-inf"],
     "budgets": {"faithful": [...], "tf-precision": [...], "stable": [...]}}

All lists are row-major over ``shape``. ``exact`` gives each exact value to 30 significant
digits (trailing zeros dropped, so ``"0.25"`` or ``"1.0"`` for a short exact value).
Every float in the answer (``rounded`` and the budgets) is written with
:meth:`float.hex` — e.g. ``"0x1.30a5ce0000000p-2"`` — so it reads back bit-exactly with
:meth:`float.fromhex` (``"nan"``, ``"inf"`` and ``"-inf"`` are written as such and also
read back by ``float()``); a decimal JSON number would depend on the reader's
decimal-to-binary conversion. The rounded values are values of the output
dtype held exactly in float64. Budgets are absolute errors allowed per element (see
:class:`~xentconf.oracle.expectation.OutputExpectation`). ``notes`` lists any remarks
of the oracle (for example, why an output is absent). ``"contract"``, beside
``outputs``, is the error the documented contract implies where TensorFlow's binding
coerces the input instead (the raw sparse op's numpy float, uint8 or int16 labels):
raising it conforms as well.

A malformed case raises :class:`CaseError` with a one-line message saying what is wrong
and how to fix it; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np

from xentconf.vocabulary import API_IDS, API_SHORT, KERAS_APIS, KERAS_VARIANTS, PROFILES, api_id

from .api import oracle_call
from .exact import OracleUncertain
from .formats import FORMATS, float_text, round_fraction
from .semantics import OracleInputError

__all__ = ["CaseError", "EXACT_DIGITS", "parse_case", "run_case"]

#: Significant digits of the ``exact`` decimal strings.
EXACT_DIGITS = 30

TOP_KEYS = ("api", "args", "init", "keras", "profile", "upstream", "description")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
DTYPES = (*FORMATS, *INT_DTYPES, "bool")
ARRAY_KEYS = ("dtype", "data", "shape", "fill", "entries")

# A decimal or hex value beyond these binary exponents is ±inf / ±0 in every float format
# (float64: largest finite < 2**1024, half the smallest subnormal = 2**-1075); clamping
# keeps a case such as 1e-999999999 from building a huge integer.
_HUGE_EXP2 = 1100
_TINY_EXP2 = -1100

_HEX_RE = re.compile(
    r"([+-]?)0[xX](?=[0-9a-fA-F]|\.[0-9a-fA-F])([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?"
    r"(?:[pP]([+-]?[0-9]+))?"
)
_SPECIALS = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
             "+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan}


class CaseError(ValueError):
    """The case is malformed: the message says what is wrong and how to fix it."""


class _NegZero(int):
    """The JSON integer ``-0``: the int 0, remembered as negative for float dtypes."""


def _parse_int(text: str) -> int:
    value = int(text)
    return _NegZero(0) if value == 0 and text.startswith("-") else value


def _reject_constant(name: str):
    raise CaseError(f"{name} is not JSON; write a non-finite array entry as the string "
                    '"nan", "inf" or "-inf"')


def _pairs(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise CaseError(f"duplicate key {key!r} in a JSON object; give each key once")
        out[key] = value
    return out


def _load(text: str):
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise CaseError('the case is empty; expected a JSON object such as {"api": ..., '
                        '"args": {...}}')
    try:
        return json.loads(text, parse_float=Decimal, parse_int=_parse_int,
                          parse_constant=_reject_constant, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise CaseError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; "
                        "fix the syntax") from None
    except CaseError:
        raise
    except RecursionError:
        raise CaseError("not usable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal with too many digits
        raise CaseError(f"not usable JSON: {' '.join(str(exc).split())}") from None


# --------------------------------------------------------------------------- values


def _is_number(v) -> bool:
    return isinstance(v, (int, Decimal)) and not isinstance(v, bool)


def _plain(value, where: str):
    """A plain JSON value as the Python value a user would write (no arrays)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, _NegZero):
        return 0
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Decimal):
        return float(value)  # correctly rounded, as Python reads a float literal
    if isinstance(value, list):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise CaseError(f"{where}: an object is not allowed here; give a plain value "
                    "(number, string, true/false, null or a list)")


def _exact_decimal(d: Decimal) -> Fraction | float:
    """The exact value of a finite JSON decimal, clamped far outside every float range."""
    if d.is_zero():
        return -0.0 if d.is_signed() else 0.0
    # |d| is in [10**adj, 10**(adj+1)); 10**adj > 2**(3.32*adj)
    adj = d.adjusted()
    if adj * 3.32 > _HUGE_EXP2:
        return -math.inf if d.is_signed() else math.inf
    if (adj + 1) * 3.33 < _TINY_EXP2:
        return -0.0 if d.is_signed() else 0.0
    return Fraction(d)


def _exact_hex(text: str) -> Fraction | float | None:
    """The exact value of a C99 hex float string, or None when it is not one."""
    m = _HEX_RE.fullmatch(text.strip())
    if not m:
        return None
    sign, whole, fraction, exp = m.groups()
    fraction = fraction or ""
    digits = (whole or "") + fraction
    man = int(digits, 16)
    neg = sign == "-"
    if man == 0:
        return -0.0 if neg else 0.0
    e2 = int(exp or 0) - 4 * len(fraction)
    top = e2 + man.bit_length()
    if top > _HUGE_EXP2:
        return -math.inf if neg else math.inf
    if top < _TINY_EXP2:
        return -0.0 if neg else 0.0
    q = Fraction(man) * (Fraction(2) ** e2)
    return -q if neg else q


def _float_entry(v, fmt, where: str) -> float:
    """One float entry, correctly rounded to ``fmt``, as the float64 holding that value."""
    if isinstance(v, bool) or not (_is_number(v) or isinstance(v, str)):
        raise CaseError(f"{where}: {json.dumps(_plain_repr(v))} is not a number; give a JSON "
                        'number, a hex float string such as "0x1.8p+1", or "inf", "-inf", "nan"')
    if isinstance(v, str):
        special = _SPECIALS.get(v.strip().lower())
        if special is not None:
            return special
        x = _exact_hex(v)
        if x is None:
            raise CaseError(f"{where}: {v!r} is not a hex float; write it like \"0x1.8p+1\" or "
                            '"-0x1p-149" (or "inf", "-inf", "nan", or a JSON number)')
    elif isinstance(v, _NegZero):
        return -0.0
    elif isinstance(v, int):
        x = Fraction(v)
    else:
        x = _exact_decimal(v)
    if isinstance(x, float):
        return x
    return round_fraction(x, fmt)


def _int_entry(v, dtype: str, where: str) -> int:
    if isinstance(v, bool) or not _is_number(v):
        raise CaseError(f"{where}: {json.dumps(_plain_repr(v))} is not an integer; {dtype} "
                        "data must be integral JSON numbers")
    if isinstance(v, Decimal):
        if not v.is_finite() or v != v.to_integral_value():
            raise CaseError(f"{where}: {v} is not an integer; {dtype} data must be integral "
                            "JSON numbers")
        if abs(v.adjusted()) > 30:
            raise CaseError(f"{where}: {v} is out of range for {dtype}")
        v = int(v)
    info = np.iinfo(dtype)
    if not info.min <= v <= info.max:
        raise CaseError(f"{where}: {v} is out of range for {dtype} [{info.min}, {info.max}]; "
                        "pick a wider dtype or a value in range")
    return int(v)


def _bool_entry(v, where: str) -> bool:
    if not isinstance(v, bool):
        raise CaseError(f"{where}: {json.dumps(_plain_repr(v))} is not a bool; bool data must "
                        "be true or false")
    return v


def _plain_repr(v):
    """Something json.dumps can show in a message."""
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dict):
        return "{...}"
    if isinstance(v, list):
        return "[...]"
    return v


def _shape_of(data, where: str) -> tuple:
    """The shape of nested lists (equal lengths at each depth), or a CaseError."""
    if not isinstance(data, list):
        if isinstance(data, dict):
            raise CaseError(f"{where}: an object is not an array entry; give numbers or nested "
                            "lists of numbers")
        return ()
    if not data:
        return (0,)
    kinds = {isinstance(x, list) for x in data}
    if len(kinds) > 1:
        raise CaseError(f"{where}: ragged data: mixes lists and scalars at one depth; every "
                        "nested list at one depth must have the same length")
    if kinds == {False}:
        for i, x in enumerate(data):
            if isinstance(x, dict):
                _shape_of(x, f"{where}[{i}]")
        return (len(data),)
    first = _shape_of(data[0], f"{where}[0]")
    for i, x in enumerate(data[1:], 1):
        sub = _shape_of(x, f"{where}[{i}]")
        if sub != first:
            raise CaseError(f"{where}: ragged data: {where}[{i}] has shape {list(sub)} but "
                            f"{where}[0] has shape {list(first)}; every nested list at one "
                            "depth must have the same length")
    return (len(data), *first)


def _flatten(data, where: str, out: list) -> None:
    if isinstance(data, list):
        for i, x in enumerate(data):
            _flatten(x, f"{where}[{i}]", out)
    else:
        out.append((data, where))


def _expanded(value: dict, where: str) -> dict:
    """A compact ARRAY (``fill`` and ``entries``) with its ``data`` written out."""
    shape = value.get("shape")
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool)
                                            and d >= 0 for d in shape)):
        raise CaseError(f'{where}: an array given by "fill" needs "shape": a list of '
                        "non-negative integers, such as [1, 50000]")
    size = math.prod(shape)
    data = [value["fill"]] * size
    entries = value.get("entries", [])
    if not isinstance(entries, list):
        raise CaseError(f'{where}.entries: must be a list of [flat index, value] pairs')
    for i, e in enumerate(entries):
        if not (isinstance(e, list) and len(e) == 2 and isinstance(e[0], int) and
                not isinstance(e[0], bool) and 0 <= e[0] < size):
            raise CaseError(f"{where}.entries[{i}]: must be [flat index, value] with an "
                            f"index from 0 to {size - 1}")
        data[e[0]] = e[1]
    return {k: v for k, v in value.items() if k not in ("fill", "entries")} | {"data": data}


def _array(value, where: str) -> np.ndarray:
    """An ARRAY value ``{"dtype": ..., "data": ..., "shape": ...}`` as a numpy array."""
    if not isinstance(value, dict):
        raise CaseError(f'{where}: expected an array {{"dtype": ..., "data": ...}}, got '
                        f"{json.dumps(_plain_repr(value))}")
    unknown = [k for k in value if k not in ARRAY_KEYS]
    if unknown:
        raise CaseError(f"{where}: unknown key {unknown[0]!r} in an array; an array has "
                        '"dtype", "data" and optionally "shape"')
    if "fill" in value and "data" not in value:
        value = _expanded(value, where)
    for key in ("dtype", "data"):
        if key not in value:
            raise CaseError(f'{where}: an array needs "{key}": write {{"dtype": "float32", '
                            '"data": [...]}')
    dtype = value["dtype"]
    if dtype not in DTYPES:
        hint = difflib.get_close_matches(str(dtype), DTYPES, n=1)
        also = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise CaseError(f"{where}.dtype: {json.dumps(_plain_repr(dtype))} is not a supported "
                        f"dtype{also}; use one of {', '.join(DTYPES)}")
    data = value["data"]
    shape = _shape_of(data, f"{where}.data")
    flat: list = []
    _flatten(data, f"{where}.data", flat)
    if "shape" in value:
        want = value["shape"]
        if not (isinstance(want, list) and all(_is_number(d) and isinstance(d, int) and d >= 0
                                               for d in want)):
            raise CaseError(f"{where}.shape: must be a list of non-negative integers, such as "
                            "[0, 4]")
        want = tuple(int(d) for d in want)
        size = math.prod(want)
        if size != len(flat):
            raise CaseError(f"{where}: shape {list(want)} has {size} elements but data has "
                            f"{len(flat)}; make them agree")
        shape = want
    if dtype in FORMATS:
        fmt = FORMATS[dtype]
        values = [_float_entry(v, fmt, w) for v, w in flat]
        # every value is exactly representable in dtype: the cast is exact
        arr = np.array(values, dtype=np.float64).astype(fmt.dtype)
    elif dtype == "bool":
        arr = np.array([_bool_entry(v, w) for v, w in flat], dtype=bool)
    else:
        arr = np.array([_int_entry(v, dtype, w) for v, w in flat], dtype=np.dtype(dtype))
    return arr.reshape(shape)


def _arg_value(value, where: str):
    if isinstance(value, dict):
        return _array(value, where)
    if isinstance(value, list):
        return [_arg_value(v, f"{where}[{i}]") if isinstance(v, list) else
                _plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return _plain(value, where)


# --------------------------------------------------------------------------- the case


def _suggest(given: str, choices: list[str]) -> str | None:
    """The choice ``given`` most likely meant: a unique one containing it, or a close one."""
    low = given.lower()
    containing = [c for c in choices if low and low in c.lower()]
    if len(containing) == 1:
        return containing[0]
    close = difflib.get_close_matches(given, containing or choices, n=1, cutoff=0.5)
    return close[0] if close else None


def _api_list() -> str:
    return f"{', '.join(API_IDS)}, or a short name ({', '.join(API_SHORT.values())})"


def parse_case(text: str) -> dict:
    """Parse and check a CASE; return ``oracle_call``'s arguments as a dict.

    Keys: ``api``, ``args``, ``init``, ``profile``, ``keras``, ``upstream``.
    """
    case = _load(text)
    if not isinstance(case, dict):
        raise CaseError(f"the case must be a JSON object {{\"api\": ..., \"args\": {{...}}}}, "
                        f"not a JSON {_json_kind(case)}")
    unknown = [k for k in case if k not in TOP_KEYS]
    if unknown:
        hint = difflib.get_close_matches(unknown[0], TOP_KEYS, n=1)
        also = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise CaseError(f"unknown key {unknown[0]!r}{also}; a case has the keys "
                        f"{', '.join(TOP_KEYS)}")
    if "api" not in case:
        raise CaseError(f'missing "api"; give one of {_api_list()}')
    api = api_id(case["api"]) if isinstance(case["api"], str) else None
    if api is None:
        api = case["api"]
        hint = _suggest(api, [*API_IDS, *API_SHORT.values()]) if isinstance(api, str) else None
        also = f" (did you mean {hint!r}?)" if hint else ""
        raise CaseError(f"api: {json.dumps(_plain_repr(api))} is not a known API id{also}; "
                        f"give one of {_api_list()}")
    keras_api = api in KERAS_APIS
    if "description" in case and not isinstance(case["description"], str):
        raise CaseError("description: must be a string")

    if "args" not in case:
        raise CaseError('missing "args"; give the arguments as an object, e.g. '
                        '{"labels": {"dtype": "int32", "data": [0]}, ...}')
    raw_args = case["args"]
    if not isinstance(raw_args, dict):
        raise CaseError(f"args: must be a JSON object of argument names to values, not a JSON "
                        f"{_json_kind(raw_args)}")
    args = {name: _arg_value(v, f"args.{name}") for name, v in raw_args.items()}

    profile = case.get("profile", "cpu")
    if profile not in PROFILES:
        raise CaseError(f"profile: {json.dumps(_plain_repr(profile))} is not one of "
                        f"{', '.join(PROFILES)}")

    init = case.get("init")
    keras = case.get("keras", "keras2")
    if not keras_api:
        if "init" in case:
            raise CaseError(f"init: only the Keras APIs ({', '.join(KERAS_APIS)}) take "
                            f"constructor arguments; remove \"init\" for {api}, or move its "
                            'entries to "args"')
        if "keras" in case:
            raise CaseError(f'keras: only the Keras APIs ({", ".join(KERAS_APIS)}) have a '
                            f'Keras variant; remove "keras" for {api}')
    else:
        if keras not in KERAS_VARIANTS:
            raise CaseError(f"keras: {json.dumps(_plain_repr(keras))} is not one of "
                            f"{', '.join(KERAS_VARIANTS)}")
        if init is not None:
            if not isinstance(init, dict):
                raise CaseError(f"init: must be a JSON object of constructor arguments, e.g. "
                                f'{{"from_logits": true}}, not a JSON {_json_kind(init)}')
            init = {k: _plain(v, f"init.{k}") for k, v in init.items()}

    upstream = None
    if case.get("upstream") is not None:
        upstream = _array(case["upstream"], "upstream")

    return {"api": api, "args": args, "init": init, "profile": profile,
            "keras": keras if keras_api else None, "upstream": upstream}


def _json_kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if v is None:
        return "null"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "number"


# --------------------------------------------------------------------------- the answer


def _output(out) -> dict:
    return {
        "dtype": out.dtype.name,
        "shape": list(out.shape),
        "exact": out.exact_strings(EXACT_DIGITS),
        "rounded": [float_text(v) for v in out.rounded64.ravel().tolist()],
        "budgets": {k: [float_text(v) for v in np.asarray(b, dtype=np.float64).ravel().tolist()]
                    for k, b in out.budgets.items()},
    }


def run_case(text: str) -> dict:
    """Answer one CASE (JSON text) with the oracle's expectation as a JSON-ready dict."""
    call = parse_case(text)
    api = call["api"]
    result: dict = {"api": api, "profile": call["profile"]}
    if call["keras"] is not None:
        result["keras"] = call["keras"]
    try:
        # The budget model meets inf * 0 for non-finite inputs (an infinite upstream) and
        # maps the NaN to a 0-width budget itself; numpy's RuntimeWarning would only be
        # noise on stderr next to a valid answer.
        with np.errstate(all="ignore"):
            e = oracle_call(api, call["args"], call["init"], profile=call["profile"],
                            keras=call["keras"] or "keras2", upstream=call["upstream"])
            outputs = {} if e.raises else {n: _output(o) for n, o in e.outputs.items()}
        if e.raises is not None:
            result["raises"] = {"error": e.raises.error, "message": e.raises.message}
        else:
            result["outputs"] = outputs
            if e.contract is not None:
                result["contract"] = {"error": e.contract.error, "message": e.contract.message}
    except OracleInputError as exc:
        raise CaseError(f"the oracle rejected the case: {exc}") from None
    except OracleUncertain as exc:
        raise CaseError(f"the oracle could not decide a rounding ({exc}); this case is beyond "
                        "its precision limit — please report it") from None
    if e.notes:
        result["notes"] = [str(n) for n in e.notes]
    return result


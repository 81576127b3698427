"""Tests of ``xentconf oracle CASE`` (xentconf.oracle.case), through the CLI and directly.

Expected values are computed here with mpmath at high precision from the exact inputs,
independently of the oracle.
"""

import functools
import json
import math
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import ml_dtypes
import mpmath
import numpy as np
import pytest
from tests.test_cli import run_module as run_module_in

from xentconf.oracle import API_IDS
from xentconf.oracle.case import CaseError, parse_case, run_case

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CANONICAL = EXAMPLES / "canonical_sparse.json"
SPARSE = "tf.nn.sparse_softmax_cross_entropy_with_logits"


run_module = functools.partial(run_module_in, cwd=ROOT)


def oracle_ok(*args: str, stdin: str | None = None) -> dict:
    proc = run_module("oracle", *args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return json.loads(proc.stdout)


def case_text(api: str = SPARSE, **kw) -> str:
    return json.dumps({"api": api, **kw})


def raw_case(args_text: str) -> str:
    """A case with ``args`` given as raw JSON text (for what json.dumps cannot write)."""
    return '{"api": "' + SPARSE + '", "args": ' + args_text + "}"


def arr(dtype: str, data, **kw) -> dict:
    return {"dtype": dtype, "data": data, **kw}


# --------------------------------------------------------------------------- reference values

MP = mpmath.MPContext()
MP.prec = 400


def mp_f32(x) -> mpmath.mpf:
    """The exact value of ``x`` rounded to float32 (numpy's float64 → float32 is correct)."""
    return MP.mpf(float(np.float32(x)))


def mp_sparse_loss(row, label):
    row = [MP.mpf(v) for v in row]
    m = max(row)
    return MP.log(MP.fsum(MP.exp(v - m) for v in row)) + m - row[label]


def mp_softmax(row):
    row = [MP.mpf(v) for v in row]
    m = max(row)
    e = [MP.exp(v - m) for v in row]
    s = MP.fsum(e)
    return [v / s for v in e]


def assert_exact_string(s: str, value) -> None:
    """``s`` has >= 25 significant digits (or fewer, if exact) and matches ``value``."""
    mant = s.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    got = MP.mpf(s)
    if len(mant) < 25:
        assert got == value, (s, value)
    else:
        assert abs(got - value) <= abs(value) * MP.mpf(10) ** -27, (s, MP.nstr(value, 35))


def f32_hex(value) -> str:
    # ``value`` is far from a float32 rounding midpoint: float64 then float32 is correct
    return float(np.float32(float(value))).hex()


# --------------------------------------------------------------------------- canonical example

LOGITS = [[2, -5, 0.5, -0.1], [0, 0, 1.9, 1.4], [-100, 100, -100, -100]]
LABELS = [0, 3, 1]


def canonical_expected():
    rows = [[mp_f32(v) for v in row] for row in LOGITS]
    loss = [mp_sparse_loss(r, y) for r, y in zip(rows, LABELS)]
    grad = []
    for r, y in zip(rows, LABELS):
        p = mp_softmax(r)
        grad.extend(pj - (1 if j == y else 0) for j, pj in enumerate(p))
    return loss, grad


def check_canonical(result: dict) -> None:
    assert result["api"] == SPARSE
    assert result["profile"] == "cpu"
    assert "raises" not in result
    outputs = result["outputs"]
    assert set(outputs) == {"loss", "grad_logits"}
    loss, grad = canonical_expected()
    # the third row: log(1 + 3 e^-200) = 3 e^-200 (1 - 1.5 e^-200 ...)
    assert MP.nstr(loss[2], 17) == MP.nstr(3 * MP.exp(-200), 17)
    out = outputs["loss"]
    assert out["dtype"] == "float32"
    assert out["shape"] == [3]
    assert out["exact"][0].startswith("0.29750749712")
    assert out["exact"][1].startswith("1.14483255358")
    assert out["exact"][2].startswith("4.1516895802102")
    assert out["exact"][2].endswith("e-87")
    for s, v in zip(out["exact"], loss):
        assert_exact_string(s, v)
    assert out["rounded"] == [f32_hex(v) for v in loss]
    assert out["rounded"][2] == "0x0.0p+0"  # underflows float32
    assert set(out["budgets"]) == {"faithful", "tf-precision", "stable"}
    for name, budget in out["budgets"].items():
        assert len(budget) == 3, name
        assert all(float.fromhex(b) > 0 for b in budget), name
    # faithful is one float32 ulp at the correctly rounded value
    assert [float.fromhex(b) for b in out["budgets"]["faithful"]] == [
        2.0**-25, 2.0**-23, 2.0**-149]

    g = outputs["grad_logits"]
    assert g["dtype"] == "float32"
    assert g["shape"] == [3, 4]
    assert len(g["exact"]) == len(g["rounded"]) == 12
    for s, v in zip(g["exact"], grad):
        assert_exact_string(s, v)
    assert g["rounded"] == [f32_hex(v) for v in grad]
    assert g["rounded"][9] == "-0x0.0p+0"  # -3 e^-200 rounds to negative zero


def test_canonical_file_subprocess():
    check_canonical(oracle_ok(str(CANONICAL)))


def test_canonical_stdin_subprocess():
    check_canonical(oracle_ok("-", stdin=CANONICAL.read_text(encoding="utf-8")))


def test_canonical_direct():
    result = run_case(CANONICAL.read_text(encoding="utf-8"))
    check_canonical(result)
    assert json.loads(json.dumps(result)) == result  # JSON-ready


def test_gpu_profile_bad_label_gives_nan_row():
    text = case_text(args={"labels": arr("int32", [0, 4]),
                           "logits": arr("float32", [[1, 2, 3, 4], [1, 2, 3, 4]])},
                     profile="gpu")
    loss = run_case(text)["outputs"]["loss"]
    assert loss["exact"][1] == "nan"
    assert loss["rounded"][1] == "nan"
    assert loss["budgets"]["faithful"][1] == "0x0.0p+0"
    assert_exact_string(loss["exact"][0], mp_sparse_loss([1, 2, 3, 4], 0))


# --------------------------------------------------------------------------- input values


def parsed_logits(dtype: str, data) -> np.ndarray:
    text = case_text(args={"labels": arr("int32", [0]), "logits": arr(dtype, data)})
    return parse_case(text)["args"]["logits"]


def bits(values: np.ndarray) -> list[str]:
    return [float(v).hex() for v in np.asarray(values, dtype=np.float64).ravel()]


def test_hex_and_special_strings_float32():
    got = parsed_logits("float32", [["0x1.8p+1", "-0x1p-149", "0x1p-150", "-0x1.8p-150",
                                     "0x1.000001p0", "0x1.0000018p0", "0X.8P1", "inf", "-inf",
                                     "nan"]])
    assert got.dtype == np.float32 and got.shape == (1, 10)
    want = [3.0, -(2.0**-149), 0.0, -(2.0**-149), 1.0, 1 + 2.0**-23, 1.0, math.inf, -math.inf]
    assert bits(got[0, :9]) == [v.hex() for v in want]
    assert math.isnan(got[0, 9])


def test_hex_rounds_straight_to_the_dtype():
    # 1 + 2**-24 + 2**-60 is exact in hex; through float64 it would become the midpoint
    # 1 + 2**-24 and then round to 1.0 in float32; correct rounding gives 1 + 2**-23
    got = parsed_logits("float32", ["0x1.000001000000001p0"])
    assert bits(got) == [(1 + 2.0**-23).hex()]


def test_decimals_round_straight_to_the_dtype():
    x = Fraction(1) + Fraction(1, 2**24) + Fraction(1, 2**80)  # just above a float32 midpoint
    with localcontext() as ctx:
        ctx.prec = 200
        text = str(Decimal(x.numerator) / Decimal(x.denominator))
    assert Fraction(Decimal(text)) == x
    assert np.float32(float(text)) == np.float32(1.0)  # the double rounding this avoids
    raw = '{"api": "API", "args": {"logits": {"dtype": "float32", "data": [X]}}}'
    got = parse_case(raw.replace("API", SPARSE).replace("X", text))["args"]["logits"]
    assert bits(got) == [(1 + 2.0**-23).hex()]


def test_decimals_each_dtype():
    data = [0.1, -2.5, 1e-300, 1e300, -0.0, 65520, 3.4e38, 2.0**-24, 2.0**-25]
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        got = parsed_logits(dtype, data)
        np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
        assert got.dtype == np_dtype
        # not near rounding midpoints (except exact ties numpy also breaks to even): the
        # float64 literal then numpy's cast gives the correctly rounded value here
        with np.errstate(over="ignore"):
            ref = np.array(data, dtype=np.float64).astype(np_dtype)
        assert bits(got) == bits(ref), dtype
    assert bits(parsed_logits("float16", [65520, 2.0**-25])) == ["inf", "0x0.0p+0"]
    neg = parse_case(raw_case('{"x": {"dtype": "float32", "data": [-0, 0]}}'))["args"]["x"]
    assert [math.copysign(1, v) for v in neg.tolist()] == [-1, 1]
    huge = parse_case(raw_case('{"x": {"dtype": "float64", '
                               '"data": [1e-999999999, -1e999999999]}}'))["args"]["x"]
    assert bits(huge) == ["0x0.0p+0", "-inf"]


def test_shape_key_and_scalars():
    got = parsed_logits("float32", 2.5)
    assert got.shape == () and got == 2.5
    empty = parse_case(case_text(args={"logits": arr("float32", [], shape=[0, 4])}))
    assert empty["args"]["logits"].shape == (0, 4)
    flat = parse_case(case_text(args={"logits": arr("int64", [1, 2, 3, 4, 5, 6], shape=[2, 3])}))
    assert flat["args"]["logits"].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert flat["args"]["logits"].dtype == np.int64


def test_compact_arrays_fill_and_entries():
    compact = {"dtype": "float32", "shape": [2, 3], "fill": "0x1p-1",
               "entries": [[4, "-inf"], [0, 7]]}
    got = parse_case(case_text(args={"logits": compact}))["args"]["logits"]
    assert got.dtype == np.float32
    assert got.tolist() == [[7.0, 0.5, 0.5], [0.5, -math.inf, 0.5]]
    for bad, message in [({"dtype": "float32", "fill": 0}, 'needs "shape"'),
                         ({**compact, "entries": [[6, 1]]}, "an index from 0 to 5")]:
        with pytest.raises(CaseError, match=message):
            parse_case(case_text(args={"logits": bad}))


def test_plain_values():
    call = parse_case(case_text(
        api="tf.compat.v1.losses.sparse_softmax_cross_entropy",
        args={"labels": [0, 1], "logits": [[1.5, 2], [3, 4]], "weights": 2.0,
              "reduction": "weighted_sum", "scope": None}))
    args = call["args"]
    assert args["labels"] == [0, 1] and isinstance(args["labels"][0], int)
    assert args["logits"] == [[1.5, 2], [3, 4]] and isinstance(args["logits"][0][0], float)
    assert isinstance(args["weights"], float)
    assert args["reduction"] == "weighted_sum" and args["scope"] is None


def test_special_inputs_give_special_outputs():
    text = case_text(args={"labels": arr("int32", [0, 0, 1]),
                           "logits": arr("float32", [["nan", 1], ["-inf", 0], ["0x1p+0", 0]])})
    loss = oracle_ok("-", stdin=text)["outputs"]["loss"]
    assert loss["exact"][:2] == ["nan", "inf"]
    assert loss["rounded"][:2] == ["nan", "inf"]
    assert_exact_string(loss["exact"][2], mp_sparse_loss([1, 0], 1))


def test_upstream():
    text = case_text(args={"labels": arr("int32", [1]), "logits": arr("float64", [[0, 0]])},
                     upstream=arr("float64", ["0x1p-1"]))
    g = run_case(text)["outputs"]["grad_logits"]
    assert g["dtype"] == "float64"
    assert g["rounded"] == [(0.25).hex(), (-0.25).hex()]
    assert g["exact"] == ["0.25", "-0.25"]


# --------------------------------------------------------------------------- Keras, compat.v1


def test_keras3_case_with_init_subprocess(tmp_path):
    logits = [[0.5, -1.25, 2], [3, 0, -3]]
    case = {
        "api": "tf.keras.losses.SparseCategoricalCrossentropy",
        "init": {"from_logits": True, "reduction": "sum"},
        "keras": "keras3",
        "args": {"y_true": arr("int32", [2, 1]), "y_pred": arr("float32", logits)},
    }
    path = tmp_path / "keras3.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    result = oracle_ok(str(path))
    assert result["api"] == case["api"] and result["keras"] == "keras3"
    loss = result["outputs"]["loss"]
    assert loss["dtype"] == "float32" and loss["shape"] == []
    want = mp_sparse_loss(logits[0], 2) + mp_sparse_loss(logits[1], 1)
    assert_exact_string(loss["exact"][0], want)
    assert loss["rounded"] == [f32_hex(want)]
    g = result["outputs"]["grad_logits"]
    assert g["shape"] == [2, 3]
    p = mp_softmax(logits[1])
    assert_exact_string(g["exact"][4], p[1] - 1)


def test_keras_variant_changes_the_default_reduction():
    base = {"api": "tf.keras.losses.SparseCategoricalCrossentropy",
            "args": {"y_true": arr("int32", [0]), "y_pred": arr("float32", [[0.25, 0.75]])},
            "init": {"reduction": "auto"}}
    assert "outputs" in run_case(json.dumps(base))
    raised = run_case(json.dumps({**base, "keras": "keras3"}))["raises"]
    assert raised["error"] == "ValueError"
    assert "reduction" in raised["message"]


def test_compat_v1_weighted_mean():
    logits = [[1.5, -0.25, 3], [0, 0, 0], [3, -2, 0.1], [10, -10, 0]]
    labels = [2, 0, 1, 1]
    weights = [1, 0.5, 0, 2]
    case = json.loads((EXAMPLES / "compat_v1_weighted_mean.json").read_text(encoding="utf-8"))
    assert case["args"]["logits"]["data"][2][0] == "0x1.8p+1"
    loss = run_case(json.dumps(case))["outputs"]["loss"]
    rows = [[mp_f32(v) for v in row] for row in logits]
    want = MP.fsum(mp_f32(w) * mp_sparse_loss(r, y) for r, y, w in zip(rows, labels, weights))
    want /= MP.fsum(weights)
    assert_exact_string(loss["exact"][0], want)
    assert loss["rounded"] == [f32_hex(want)]


# --------------------------------------------------------------------------- TF error cases


def test_raises_case_exits_0_subprocess():
    result = oracle_ok(str(EXAMPLES / "raises_label_out_of_range.json"))
    assert set(result) == {"api", "profile", "raises"}
    assert result["raises"]["error"] == "InvalidArgumentError"
    assert "label value of 3" in result["raises"]["message"]


def test_raises_dtype_error_direct():
    text = case_text(args={"labels": arr("float32", [0]), "logits": arr("float32", [[1, 2]])})
    raised = run_case(text)["raises"]
    assert raised["error"] == "InvalidArgumentError"
    assert "Tlabels" in raised["message"]


def test_a_short_api_name_names_the_same_api():
    """``"api": "nn_sparse"`` is the case with TF's id, as ``--api`` takes either."""
    full = run_case(case_text(args=GOOD_ARGS))
    short = run_case(case_text(api="nn_sparse", args=GOOD_ARGS))
    assert short["api"] == SPARSE
    assert short == full


# --------------------------------------------------------------------------- malformed cases

GOOD_ARGS = {"labels": arr("int32", [0]), "logits": arr("float32", [[1, 2]])}
KERAS = "tf.keras.losses.CategoricalCrossentropy"
KERAS_ARGS = {"y_true": arr("float32", [[0, 1]]), "y_pred": arr("float32", [[0.25, 0.75]])}


def logits_case(data, dtype="float32", **extra) -> str:
    return case_text(args={"labels": arr("int32", [0]), "logits": {"dtype": dtype,
                                                                   "data": data, **extra}})


MALFORMED = {
    "empty": ("", "empty"),
    "not-json": ('{"api": "x",\n  "args": }', "line 2 column"),
    "nan-token": (raw_case('{"x": NaN}'), "NaN is not JSON"),
    "duplicate-key": (raw_case('{}').replace("{", '{"api": "x", ', 1), "duplicate"),
    "not-object": ("[1, 2]", "must be a JSON object"),
    "missing-api": (json.dumps({"args": GOOD_ARGS}), "missing \"api\""),
    "unknown-api": (case_text(api="tf.nn.sparse", args=GOOD_ARGS), "not a known API id"),
    "misspelt-short-api": (case_text(api="nn_sprase", args=GOOD_ARGS),
                           "did you mean 'nn_sparse'?"),
    "unknown-key": (case_text(args=GOOD_ARGS, profil="cpu"), "unknown key 'profil'"),
    "missing-args": (case_text(), "missing \"args\""),
    "args-not-object": (case_text(args=[1, 2]), "args: must be a JSON object"),
    "bad-dtype": (logits_case([[1, 2]], dtype="float8"), "args.logits.dtype"),
    "array-missing-data": (case_text(args={"logits": {"dtype": "float32"}}), "args.logits"),
    "array-unknown-key": (logits_case([[1, 2]], shap=[1, 2]), "unknown key 'shap'"),
    "ragged": (logits_case([[1, 2], [3]]), "args.logits.data: ragged"),
    "ragged-mixed": (logits_case([[1, 2], 3]), "args.logits.data: ragged"),
    "non-numeric": (logits_case([[1, True]]), "args.logits.data[0][1]"),
    "nested-object": (logits_case([[1, {"a": 1}]]), "args.logits.data[0][1]"),
    "bad-hex": (logits_case([["0x1.8q+1", 2]]), "args.logits.data[0][0]"),
    "bad-shape": (logits_case([1, 2], shape=[3]), "args.logits"),
    "int-not-integral": (case_text(args={"labels": arr("int32", [0.5])}), "args.labels.data[0]"),
    "int-out-of-range": (case_text(args={"labels": arr("uint8", [-1])}), "out of range"),
    "bool-not-bool": (case_text(args={"labels": arr("bool", [1])}), "args.labels.data[0]"),
    "bad-profile": (case_text(args=GOOD_ARGS, profile="tpu"), "profile"),
    "bad-keras": (case_text(api=KERAS, args=KERAS_ARGS, keras="keras1"), "keras"),
    "init-non-keras": (case_text(args=GOOD_ARGS, init={"from_logits": True}), "init:"),
    "keras-non-keras": (case_text(args=GOOD_ARGS, keras="keras3"), "keras:"),
    "init-not-object": (case_text(api=KERAS, args=KERAS_ARGS, init=[1]), "init:"),
    "bad-upstream": (case_text(args=GOOD_ARGS, upstream=[1.0]), "upstream"),
    "oracle-input-error": (case_text(args={"labels": arr("int32", [0])}), "oracle rejected"),
    "oracle-unknown-init": (case_text(api=KERAS, args=KERAS_ARGS, init={"fromlogits": True}),
                            "oracle rejected the case: init"),
    "oracle-upstream-shape": (case_text(args=GOOD_ARGS, upstream=arr("float32", [1, 2, 3])),
                              "upstream"),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_exits_2_one_line(kind):
    text, needle = MALFORMED[kind]
    proc = run_module("oracle", "-", stdin=text)
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("xentconf oracle: ")
    assert needle in lines[0]


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_raises_case_error(kind):
    text, needle = MALFORMED[kind]
    with pytest.raises(CaseError) as info:
        run_case(text)
    message = str(info.value)
    assert "\n" not in message
    assert needle in message


def test_unknown_api_lists_the_valid_ids():
    with pytest.raises(CaseError) as info:
        run_case(MALFORMED["unknown-api"][0])
    assert all(api in str(info.value) for api in API_IDS)
    assert "did you mean" in str(info.value)


def test_not_json_reports_line_and_column():
    with pytest.raises(CaseError, match=r"line 2 column 11"):
        run_case(MALFORMED["not-json"][0])


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_every_example_runs(path):
    result = oracle_ok(str(path))
    assert result["api"] in API_IDS
    assert ("raises" in result) != ("outputs" in result)
    for out in result.get("outputs", {}).values():
        size = math.prod(out["shape"])
        assert len(out["exact"]) == len(out["rounded"]) == size
        dtype = ml_dtypes.bfloat16 if out["dtype"] == "bfloat16" else np.dtype(out["dtype"])
        for r in out["rounded"]:
            v = float(r) if r in ("nan", "inf", "-inf") else float.fromhex(r)
            assert math.isnan(v) or float(np.array(v).astype(dtype)) == v  # in the dtype
        for budget in out["budgets"].values():
            assert len(budget) == size


def test_examples_include_each_kind():
    names = {p.name for p in EXAMPLES.glob("*.json")}
    assert {"canonical_sparse.json", "compat_v1_weighted_mean.json",
            "keras3_categorical_smoothing.json", "raises_label_out_of_range.json"} <= names


def test_infinite_upstream_answers_quietly():
    text = case_text(args={"labels": arr("int32", [0, 0]),
                           "logits": arr("float32", [[0, 0], [0, -200]])},
                     upstream=arr("float32", ["inf", 1]))
    g = oracle_ok("-", stdin=text)["outputs"]["grad_logits"]  # nothing on stderr
    assert g["exact"][:2] == ["-inf", "inf"]
    assert g["budgets"]["stable"][:2] == ["0x0.0p+0", "0x0.0p+0"]

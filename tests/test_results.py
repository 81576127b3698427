"""The results schema: the shipped JSON Schema is current, validation says what is wrong."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from xentconf import results


def doc(**outcome):
    d = results.new_document({
        "xentconf_version": "0", "target": {"name": "t"}, "device": "cpu", "profile": "cpu",
        "accuracy": "stable", "python": "3.11", "platform": "linux", "started": "now",
        "duration_s": 1.0, "interrupted": False})
    d["outcomes"].append({"id": "t-cpu-float32-raw_sparse-basic", "api": "a",
                          "dtype": "float32", "feature": "basic", "verdict": "pass",
                          "examples": 3, **outcome})
    return d


def test_shipped_json_schema_is_current():
    shipped = resources.files("xentconf").joinpath("results.schema.json").read_text()
    assert json.loads(shipped) == results.JSON_SCHEMA, \
        "regenerate: python -m xentconf.results > src/xentconf/results.schema.json"


def test_round_trip_with_non_finite_errors(tmp_path):
    d = doc(worst_budget=float("inf"), worst_ulps=float("nan"), samples=[0.5, float("inf")])
    path = results.write(d, tmp_path / "r.json")
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text  # strict JSON
    back = results.load(path)
    assert back["outcomes"][0]["worst_budget"] == "inf"


def test_gzip_results_load_like_plain_ones(tmp_path):
    import gzip

    d = doc(worst_budget=0.5)
    plain = results.write(d, tmp_path / "r.json")
    packed = tmp_path / "r.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert results.load(packed) == results.load(plain)
    fake = tmp_path / "fake.json.gz"
    fake.write_bytes(plain.read_bytes())  # not compressed, though named .gz
    with pytest.raises(results.ResultsError, match="not a gzip file"):
        results.load(fake)
    with pytest.raises(results.ResultsError, match="no such file"):
        results.load(tmp_path / "missing.json.gz")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema="other"), "not an xentconf results file"),
    (lambda d: d.update(schema_version=99), "upgrade xentconf"),
    (lambda d: d.update(schema_version=0), "re-run the conformance run"),
    (lambda d: d["outcomes"][0].update(verdict="great"), "is not one of"),
    (lambda d: d["outcomes"][0].pop("api"), "missing field 'api'"),
    (lambda d: d["outcomes"][0].update(worst_ulps="lots"), "is not a number"),
    (lambda d: d["run"].update(interrupted="no"), "expected boolean"),
])
def test_validation_messages(mutate, message):
    d = doc()
    mutate(d)
    with pytest.raises(results.ResultsError, match=message):
        results.validate(d)


def test_write_refuses_a_directory_and_leaves_old_file(tmp_path):
    with pytest.raises(results.ResultsError, match="is a directory"):
        results.write(doc(), tmp_path)
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        results.write({"x": object()}, target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left over


def test_failures_are_validated_and_compact_arrays_expand():
    f = {"kind": "tf-raises", "verdict": "fail", "message": "TensorFlow raises",
         "tags": ["minus_one"], "counterexample": None, "reproducer": "print()"}
    results.validate(doc(verdict="fail", failures=[f]))
    with pytest.raises(results.ResultsError, match="is not one of"):
        results.validate(doc(verdict="fail", failures=[{**f, "kind": "wrong"}]))
    with pytest.raises(results.ResultsError, match="missing field 'message'"):
        results.validate(doc(verdict="fail", failures=[{"kind": "crash", "verdict": "crash"}]))
    compact = {"dtype": "float32", "shape": [2, 3], "fill": "0x0p+0",
               "entries": [[1, "nan"], [5, "-0x1p+0"]]}
    assert results.expand_array(compact) == {
        "dtype": "float32", "shape": [2, 3],
        "data": [["0x0p+0", "nan", "0x0p+0"], ["0x0p+0", "0x0p+0", "-0x1p+0"]]}
    nested = {"case": {"args": {"x": compact, "n": 3}}, "list": [compact]}
    out = results.expand_arrays(nested)
    assert out["case"]["args"]["n"] == 3
    assert out["list"][0]["data"][1][2] == "-0x1p+0"


def test_a_version_1_document_is_still_read():
    # version 1 is version 2 without its additions: a baseline written before them stays
    # usable with --baseline
    d = doc()
    d["schema_version"] = 1
    assert results.validate(d)["schema_version"] == 1


def test_record_builders_fill_optional_fields_and_refuse_what_the_schema_refuses():
    o = results.outcome(id="t-cpu-float32-raw_sparse-basic", api="a", dtype="float32",
                        feature="basic", verdict="pass", examples=3)
    assert o["failures"] is None and o["reproducer"] is None and "target" not in o
    results.validate({**doc(), "outcomes": [o]})
    with pytest.raises(ValueError, match="unknown field"):
        results.outcome(id="x", api="a", dtype="float32", feature="f", verdict="pass",
                        examples=1, verdit="pass")
    with pytest.raises(ValueError, match="is not one of"):
        results.failure(kind="crash", verdict="pass", message="m")
    with pytest.raises(ValueError, match="missing field 'examples'"):
        results.outcome(id="x", api="a", dtype="float32", feature="f", verdict="pass")

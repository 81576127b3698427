"""The oracle against TensorFlow 2.21's recorded answers — no TensorFlow needed.

``tests/fixtures/tensorflow/{eager,xla}.json.gz`` hold what TensorFlow 2.21 (eager on the
CPU, and ``tf.function(jit_compile=True)`` on the CPU; ``tf_keras`` 2.21 and Keras 3.15.1
for the Keras APIs) returned or raised on every case of ``tf_cases.py`` — the calibration
set, the semantic edge cases and the worked numbers — recorded by ``nox -s
record-tensorflow``. This is scipy's ``FuncData`` idea applied to a whole framework; the
live tests (``test_tensorflow_calibration.py``, marked ``tensorflow``) do the same against
an installed TensorFlow. Here, in every run:

* **semantics** — the oracle (its vectorized tier, with the recorded upstream gradient and
  the mode's profile) decides each case as TensorFlow did: raise or not (and the error
  class, eagerly), output shapes and dtypes, NaN and ±inf positions, every value within
  the ``stable`` budget (TensorFlow's known precision artefacts as in ``compare_case``);
  on the calibration set eagerly, within the ``tf-precision`` budget too;
* **declared grades** — TensorFlow's answers, judged by the verdict layer
  (:func:`xentconf.conformance.verdict.judge`) at the grade a conformance run requires by
  default, pass, differ only as TensorFlow's own mechanisms dictate (``as-tensorflow``),
  or are covered by an entry of TensorFlow's known-deviations file;
* **calibration** — ``K`` and ``g(n)`` of ``xentconf.oracle.budgets`` still follow from
  TensorFlow's recorded errors (see :func:`test_K_and_g_follow_from_the_recorded_errors`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
from tests.oracle.tf_cases import (
    API_IDS,
    DIFF_ARG,
    FORMAT,
    K2_REDUCTIONS,
    K3_REDUCTIONS,
    MODES,
    V1_REDUCTIONS,
    TFResult,
    all_cases,
    compare_case,
    decode_case,
    decode_result,
    describe_case,
    describe_expectation,
    describe_tf,
    encode_case,
    is_v1_float64,
    keras2_float16_probability_gradient,
    logits_dtype,
    measured_errors,
    raise_problems,
    read_fixture,
    recorded_in,
    run_oracle,
)

from xentconf.adapters.tensorflow import DEVIATIONS
from xentconf.conformance import deviations as devmod
from xentconf.conformance.checker import _excused
from xentconf.conformance.verdict import Raised, judge
from xentconf.oracle import budgets as oracle_budgets
from xentconf.oracle.case import parse_case
from xentconf.protocol import API_SHORT

#: The grade a conformance run requires by default (``--xentconf-accuracy``), at which
#: TensorFlow must conform or deviate as declared (``nox -s conformance-tensorflow``).
REQUIRED = "stable"
VERSIONS = {"tensorflow": "2.21.0", "tf_keras": "2.21.0", "keras": "3.15.1"}


@cache
def fixture(mode: str) -> dict:
    return read_fixture(mode)


def _entries(mode: str) -> list[dict]:
    return fixture(mode)["cases"]


def oracle_gap(mode: str, entry: dict) -> str | None:
    """Where the recordings show the oracle deciding differently from TensorFlow: known
    oracle bugs, reported and awaiting a fix in ``xentconf.oracle.semantics``. A gap must
    still show in the recordings, so a fix (or a re-recording where it is gone) fails the
    test until its entry here is removed."""
    case = entry["case"]
    if case.get("keras") == "keras3" and isinstance(case["args"].get("y_true"), list):
        return ("Keras 3.15.1 rejects a Python-list y_true with ValueError (keras.tree: "
                "'Structures don't have the same nested structure' for a list y_pred, "
                "'Expected an instance of list, got Tensor' for an array); tf_keras and the "
                "oracle accept it")
    return None


def _bucket(e: dict) -> str:
    return f"{e['group']}-{API_SHORT[e['case']['api']]}"


#: One test per mode, group and API (each checks all its recordings, listing every case
#: that disagrees): a test per recording would spend more time in pytest than in checks.
BUCKETS = {}
for _mode in MODES:
    for _i, _e in enumerate(_entries(_mode)):
        BUCKETS.setdefault((_mode, _bucket(_e)), []).append(_i)
PARAMS = [pytest.param(mode, key, id=f"{mode}-{key}") for mode, key in BUCKETS]


def check_all(mode: str, key: str, check) -> None:
    """Run ``check(mode, i)`` (a list of problems) on every recording of the bucket; a
    known oracle gap must still show (else it is fixed: drop it from ``oracle_gap``)."""
    failures = []
    for i in BUCKETS[(mode, key)]:
        problems = check(mode, i)
        gap = oracle_gap(mode, _entries(mode)[i])
        if gap and not problems:
            failures.append(f"{_entries(mode)[i]['id']}: agrees with TensorFlow now; remove "
                            f"it from oracle_gap ({gap})")
        elif problems and not gap:
            failures.append("\n".join(problems))
    assert not failures, f"{len(failures)} of {len(BUCKETS[(mode, key)])} recordings:\n" + \
        "\n".join(failures[:15])


@cache
def recording(mode: str, i: int):
    """(group, case, upstream, TF's result) of one recorded call."""
    e = _entries(mode)[i]
    case, up = decode_case(e["case"], e["id"])
    return e["group"], case, up, decode_result(e["result"])


def recorded_names(case, up, res: TFResult) -> tuple[str, ...]:
    """The outputs TensorFlow was asked for: the gradient only when an upstream was sent."""
    return tuple(n for n in res.outputs if n != "grad_logits" or up is not None)


@cache
def expectation(mode: str, i: int):
    _, case, up, _ = recording(mode, i)
    return run_oracle(case, profile=MODES[mode], upstream=up, fast=True)


def _where(case, res, e) -> str:
    return (f"\n  call:   {describe_case(case)}\n  TF:     {describe_tf(res)}"
            f"\n  oracle: {describe_expectation(e)}")


# =========================================================================== the files


#: How far a float64 input may be from the recorded one, in its ulps: ``tf_cases.py`` makes
#: probabilities (soft labels, Keras' ``y_pred``) with numpy's float64 ``exp``, whose
#: vectorized code differs by CPU (AVX-512 and AVX2 machines give values 1 to 3 ulps
#: apart). The tests judge the recorded inputs, which are what TensorFlow saw.
INPUT_ULPS = 4


def _same_inputs(stored: dict, fresh: dict, cid: str) -> bool:
    """Whether a case's recorded inputs are those ``tf_cases.py`` makes now: the same
    encoding, or the same arguments with every float64 array within :data:`INPUT_ULPS` of
    the recorded one (and everything else equal)."""
    if stored == fresh:
        return True
    if {k: v for k, v in stored.items() if k != "args"} != \
            {k: v for k, v in fresh.items() if k != "args"}:
        return False
    a, b = decode_case(stored, cid)[0].args, decode_case(fresh, cid)[0].args
    if a.keys() != b.keys():
        return False
    for k, x in a.items():
        y = b[k]
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            if not (type(x) is type(y) and (x == y or (x != x and y != y))):
                return False
        elif x.dtype != y.dtype or x.shape != y.shape:
            return False
        elif x.dtype != np.float64:
            if not np.array_equal(x, y, equal_nan=True):
                return False
        else:
            with np.errstate(invalid="ignore"):
                near = np.abs(x - y) <= INPUT_ULPS * np.spacing(np.maximum(abs(x), abs(y)))
            if not (near | (x == y) | (np.isnan(x) & np.isnan(y))).all():
                return False
    return True


@pytest.mark.parametrize("mode", list(MODES))
def test_recordings_are_of_tensorflow_2_21_and_current(mode):
    """The file's format, mode and versions; it holds exactly the cases ``tf_cases.py``
    defines for the mode, with the same inputs bit for bit but for the last bits of
    float64 inputs (:data:`INPUT_ULPS`; a changed case definition needs `nox -s
    record-tensorflow`)."""
    doc = fixture(mode)
    assert doc["format"] == FORMAT and doc["mode"] == mode and doc["profile"] == MODES[mode]
    for k, v in VERSIONS.items():
        assert doc["versions"][k] == v, (k, doc["versions"][k])
    want = {c.id: (g, c) for g, c in all_cases() if recorded_in(mode, g, c)}
    got = {e["id"]: e for e in doc["cases"]}
    assert sorted(got) == sorted(want), (
        f"recorded ids differ from tf_cases.py: missing {sorted(set(want) - set(got))[:5]}, "
        f"extra {sorted(set(got) - set(want))[:5]}; run `nox -s record-tensorflow`")
    for cid, (group, case) in want.items():
        e = got[cid]
        assert e["group"] == group, cid
        up = e["case"].get("upstream")
        fresh = encode_case(case, MODES[mode], None)
        stored = {k: v for k, v in e["case"].items() if k != "upstream"}
        assert _same_inputs(stored, fresh, cid), \
            f"{cid}: the inputs changed; run `nox -s record-tensorflow`"
        assert (up is not None) == ("grad_logits" in e["result"].get("outputs", {})), cid


def test_inputs_that_changed_are_told_apart_from_a_cpus_last_bits():
    """:func:`_same_inputs` accepts a float64 probability a few ulps off, and nothing
    more: an ulp count past :data:`INPUT_ULPS`, another label, another shape or dtype."""
    case = next(c for g, c in all_cases() if c.id == "raw_dense/float64/B32C3soft")
    base = encode_case(case, "cpu", None)

    def changed(key, fn):
        args = dict(case.args)
        args[key] = fn(np.array(args[key]))
        return encode_case(replace(case, args=args), "cpu", None)

    def nudge(ulps):
        def fn(y):
            y.flat[5] += ulps * np.spacing(y.flat[5])
            return y
        return fn

    cid = case.id
    assert _same_inputs(base, changed("labels", nudge(1)), cid)
    assert _same_inputs(base, changed("labels", nudge(INPUT_ULPS)), cid)
    assert not _same_inputs(base, changed("labels", nudge(4 * INPUT_ULPS)), cid)
    assert not _same_inputs(base, changed("labels", lambda y: y[:, ::-1]), cid)
    assert not _same_inputs(base, changed("labels", lambda y: y[:-1]), cid)
    assert not _same_inputs(base, changed("labels", lambda y: y.astype(np.float32)), cid)


def test_at_least_400_cases_recorded_in_every_mode_and_variant():
    n = {mode: len(_entries(mode)) for mode in MODES}
    assert sum(n.values()) >= 400 and min(n.values()) >= 400, n
    for mode in MODES:
        kv = {e["case"].get("keras") for e in _entries(mode)}
        assert {"keras2", "keras3"} <= kv, (mode, kv)
        groups = {e["group"] for e in _entries(mode)}
        assert groups == {"calibration", "edge", "worked"}, (mode, groups)
        raised = sum("raises" in e["result"] for e in _entries(mode))
        assert 0 < raised < len(_entries(mode)), (mode, raised)
        # every reduction of compat.v1, Keras 2 and Keras 3, each returning an answer
        seen = {(e["case"]["api"].split(".")[1], e["case"].get("keras"),
                 e["case"]["args"].get("reduction", (e["case"].get("init") or {}).get(
                     "reduction", "default"))) for e in _entries(mode)
                if "outputs" in e["result"]}
        for api, kv, reds in (("compat", None, V1_REDUCTIONS), ("keras", "keras2", K2_REDUCTIONS),
                              ("keras", "keras3", K3_REDUCTIONS)):
            missing = {r for r in reds if (api, kv, r) not in seen}
            assert not missing, (mode, api, kv, missing)


def test_recorded_cases_are_cases_of_xentconf_oracle():
    """Each recorded case is a valid ``xentconf oracle`` case that reads back to the same
    arguments (checked on the small ones; the oracle's own parser is exact and slow)."""
    checked = 0
    for e in _entries("eager"):
        text = json.dumps(e["case"])
        if len(text) > 4000:
            continue
        parsed = parse_case(text)
        case, up = decode_case(e["case"], e["id"])
        assert parsed["api"] == API_IDS[case.api]
        for k, v in case.args.items():
            p = parsed["args"][k]
            if isinstance(v, np.ndarray):
                assert p.dtype == v.dtype and p.shape == v.shape, (e["id"], k)
                same = p.tobytes() == v.tobytes() or (  # NaN payloads aside
                    v.dtype.kind not in "iub" and np.array_equal(
                        p.astype(np.float64), v.astype(np.float64), equal_nan=True))
                assert same, (e["id"], k)
            else:
                assert p == v and type(p) is type(v), (e["id"], k, p, v)
        checked += 1
    assert checked >= 300, checked


# =========================================================================== semantics


def semantics_problems(mode: str, i: int) -> list[str]:
    group, case, up, res = recording(mode, i)
    e = expectation(mode, i)
    problems = raise_problems(e, res, error_class=mode == "eager")
    if problems is None:
        problems = []
        if res.grad_error is not None:
            problems.append(f"TF's gradient failed: {res.grad_error}")
        budgets = ("stable", "tf-precision") if (mode, group) == ("eager", "calibration") \
            else ("stable",)
        cmps = compare_case(case, e, res, assert_budgets=budgets,
                            names=recorded_names(case, up, res))
        for c in cmps.values():
            problems.extend(c.problems)
    if problems:
        return [f"{case.id} [{mode}]: " + "; ".join(problems) + _where(case, res, e)]
    return []


@pytest.mark.parametrize(("mode", "key"), PARAMS)
def test_oracle_semantics_agree_with_recorded_tensorflow(mode, key):
    """Raise or not, error class (eager), output shapes and dtypes, NaN/±inf positions and
    values within the ``stable`` budget (and ``tf-precision`` on the eager calibration
    set), as TensorFlow recorded them."""
    check_all(mode, key, semantics_problems)


# =========================================================================== declared grades


@cache
def tf_deviations() -> list:
    return devmod.load(DEVIATIONS)


def input_tags(case) -> tuple[str, ...]:
    """What was drawn, in the vocabulary of the conformance cases' tags that TensorFlow's
    deviations name: ``probs`` (Keras probabilities), ``near_max`` (a logit beyond half the
    dtype's maximum), ``dominant`` (a logit above all others of its row by more than 80,
    where e^-gap is below float32's smallest normal)."""
    tags = []
    if case.api in ("scce", "cce") and not (case.init or {}).get("from_logits", False):
        tags.append("probs")
    x = case.args.get(DIFF_ARG[case.api])
    if isinstance(x, np.ndarray) and x.size and x.ndim:
        z = x.astype(np.float64)
        fin = np.where(np.isfinite(z), z, np.nan)
        big = float(np.finfo(np.float16).max if x.dtype == np.float16 else
                     np.finfo(np.float32).max if x.dtype.name in ("float32", "bfloat16")
                     else np.finfo(np.float64).max)
        if np.nanmax(np.abs(fin), initial=0.0) > big / 2:
            tags.append("near_max")
        if z.shape[-1] > 1:
            srt = np.sort(np.where(np.isfinite(z), z, -np.inf), axis=-1)
            with np.errstate(invalid="ignore"):
                gap = srt[..., -1] - srt[..., -2]
            if np.any(np.isfinite(gap) & (gap > 80)):
                tags.append("dominant")
    return tuple(tags)


#: The calibration recordings judged by the verdict layer: up to this many output
#: elements (judging consults the exact tier near every one-ulp neighbour, which is slow
#: on large outputs; their numbers are held to the same budgets by the semantics test).
JUDGED_CALIBRATION_SIZE = 128


def grade_problems(mode: str, i: int) -> list[str]:
    group, case, up, res = recording(mode, i)
    e = expectation(mode, i)
    if group == "calibration" and e.raises is None and \
            sum(o.size for o in e.outputs.values()) > JUDGED_CALIBRATION_SIZE:
        return []
    answer = Raised(res.error, res.message) if res.error is not None else res.outputs
    names = None
    if e.raises is None:
        names = tuple(n for n in recorded_names(case, up, res) if n in e.outputs)
    v = judge(e, answer, REQUIRED, names)
    if v.ok or v.as_tensorflow:  # TensorFlow conforms, through its own mechanisms too
        return []
    keras = case.keras or "keras2"
    test_id = (f"tensorflow-cpu-{logits_dtype(case)}-{API_SHORT[API_IDS[case.api]]}-"
               f"recorded_{group}")
    cid = devmod.case_id(test_id, (*input_tags(case), *v.tags))
    matches = devmod.matching(tf_deviations(), cid, keras, MODES[mode])
    if any(_excused(v, d) for d in matches):
        return []
    return [f"{cid} [{mode}]: {v.message} (deviations matching: {[d.id for d in matches]})"
            + _where(case, res, e)]


@pytest.mark.parametrize(("mode", "key"), PARAMS)
def test_recorded_tensorflow_meets_its_declared_grades(mode, key):
    """Judged by the verdict layer at the default required grade, TensorFlow's recorded
    answer passes, is as-tensorflow (its mechanisms explain every miss), or an entry of
    its known-deviations file covers it (at the grade the entry declares; a wrong error,
    dtype or shape is never covered)."""
    check_all(mode, key, grade_problems)


# =========================================================================== calibration


@cache
def calibration_errors() -> dict:
    """Per (dtype, output, C): the elements' |TF − exact| / stable budget, and the factor
    ``K`` each element needs, ``K · (err − ½ulp) / (stable − ½ulp)`` — the stable budget is
    ``K · u · A`` plus the final rounding, half an ulp (``budgets.py``)."""
    out: dict = {}
    for i, entry in enumerate(_entries("eager")):
        if entry["group"] != "calibration":
            continue
        group, case, up, res = recording("eager", i)
        if is_v1_float64(case):  # declared artefact with its own float32 bound
            continue
        e = expectation("eager", i)
        assert e.raises is None and res.error is None, case.id
        c = np.shape(case.args[DIFF_ARG[case.api]])[-1]
        for name in recorded_names(case, up, res):
            if name == "grad_logits" and keras2_float16_probability_gradient(case):
                continue
            o = e.outputs[name]
            g = np.asarray(res.outputs[name]).astype(np.float64)
            stable = o.budgets["stable"]
            half = 0.5 * o.budgets["faithful"]
            ok = np.isfinite(g) & np.isfinite(o.rounded64) & (stable > half)
            err, _ = measured_errors(o, g, ok, {"stable": stable})
            err, stable, half = err[ok], stable[ok], half[ok]
            ratio = err / stable
            k_need = oracle_budgets.K * np.maximum(err - half, 0) / (stable - half)
            slot = out.setdefault((logits_dtype(case), name, c), [[], []])
            slot[0].append(ratio)
            slot[1].append(k_need)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in out.items()}


def test_K_and_g_follow_from_the_recorded_errors():
    """``budgets.py`` derives every budget as ``K · u · A + ½ ulp`` with ``A`` a first-order
    error bound whose summation allowance ``g(C)`` grows with the class count, and
    calibrates ``K`` so that TensorFlow's eager CPU results on well-conditioned inputs
    stay within it. From the recorded calibration set (compat.v1's declared float64
    artefact aside):

    * every element is within its budget, at every class count C from 1 to 50 000 — ``K``
      and ``g(C)`` are large enough, including where ``g`` dominates;
    * the factor the worst element needs, ``K · (err − ½ulp) / (stable − ½ulp)``, is above
      ``K / 2`` for float32 and float64: half of ``K`` would not hold, so ``K`` is not far
      too loose;
    """
    errs = calibration_errors()
    assert {c for (_, _, c) in errs} >= {1, 2, 3, 10, 100, 1000, 50000}
    worst = {k: (float(r.max(initial=0)), float(kn.max(initial=0)))
             for k, (r, kn) in errs.items()}
    over = {k: v for k, v in worst.items() if v[0] > 1}
    assert not over, f"outside the stable budget (dtype, output, C): {over}"
    wide = [v for (dt, _, _), v in worst.items() if dt in ("float32", "float64")]
    k_need = max(kn for _, kn in wide)
    assert oracle_budgets.K / 2 < k_need <= oracle_budgets.K, (k_need, oracle_budgets.K)

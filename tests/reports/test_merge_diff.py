"""Merging results documents into a board, and the diff against a baseline."""

import pytest

from xentconf.reports import ReportError, diff, merge, outcome_map
from xentconf.reports.merge import API_SHORT


def test_rows_are_target_runs_in_order(docs):
    board = merge(docs, ["a.json", "b.json"])
    assert [r.key for r in board.rows] == [("alpha", "cpu", "cpu", "eager"),
                                                ("beta", "cuda", "gpu", "eager")]
    assert [r.runs for r in board.rows] == [[0], [1]]
    assert board.rows[0].tested == 34 and board.rows[0].accepted == 30
    assert board.counts == {"pass": 35, "as-tensorflow": 0, "deviation": 2, "fail": 2,
                            "crash": 1, "timeout": 1, "error": 1, "skip": 2}


def test_columns_follow_spec_order(docs):
    board = merge(list(reversed(docs)))
    # SPEC §1 order, whatever order the outcomes came in
    order = list(API_SHORT)
    assert board.apis == sorted(board.apis, key=order.index)
    assert [board.api_short(a) for a in board.apis] == ["raw_sparse", "nn_sparse",
                                                        "v1_sparse", "keras_sparse"]
    nn = "tf.nn.sparse_softmax_cross_entropy_with_logits"
    assert board.dtypes[nn] == ["float16", "bfloat16", "float32", "float64"]
    assert board.features == ["basic", "special_values", "weights"]


@pytest.mark.parametrize("short, dtype, row, status, accepted, tested", [
    ("nn_sparse", "float32", 0, "v-fail", 2, 3),
    ("nn_sparse", "float64", 0, "g-exact", 3, 3),
    ("nn_sparse", "float16", 0, "g-stable", 3, 3),
    ("v1_sparse", "float64", 0, "v-deviation", 3, 3),
    ("raw_sparse", "float16", 0, "v-crash", 1, 3),
    ("keras_sparse", "float16", 0, "v-error", 0, 1),
    ("keras_sparse", "float32", 1, "g-tf-precision", 2, 2),
    ("nn_sparse", "bfloat16", 1, "v-fail", 1, 2),
    ("raw_sparse", "float32", 1, "empty", 0, 0),
])
def test_cells(docs, short, dtype, row, status, accepted, tested):
    board = merge(docs)
    api = next(a for a, s in API_SHORT.items() if s == short)
    cell = board.cell(row, api, dtype)
    assert (cell.status, cell.accepted, cell.tested) == (status, accepted, tested)


def test_cell_summary_and_worst(docs):
    board = merge(docs)
    cell = board.cell(0, "tf.nn.sparse_softmax_cross_entropy_with_logits", "float32")
    assert cell.summary == "2 pass · 1 fail · worst grade fail"
    assert cell.worst_budget == 17.5 and cell.worst_ulps == 1234.0
    assert 17.5 in cell.samples and len(cell.samples) == 14


def test_feature_cells(docs):
    board = merge(docs)
    cell = board.feature_cell(0, "weights")
    assert cell.counts["timeout"] == 1 and cell.counts["skip"] == 1
    assert cell.status == "v-timeout"


def test_duplicate_outcome_ids_are_an_error(docs):
    with pytest.raises(ReportError, match="appears in both a.json and b.json"):
        merge([docs[0], docs[0]], ["a.json", "b.json"])
    docs[1]["outcomes"].append(dict(docs[1]["outcomes"][0]))
    with pytest.raises(ReportError, match="twice in b.json"):
        outcome_map(docs, ["a.json", "b.json"])


def test_diff_finds_exactly_the_known_changes(docs, baseline, expected_changes):
    changes = diff(outcome_map(baseline), outcome_map(docs))
    assert changes.ids() == expected_changes
    assert changes.changed == 7
    assert changes.unchanged == len(outcome_map(docs)) - 6  # 6 changed ids are current


def test_diff_of_identical_runs_is_empty(docs):
    changes = diff(outcome_map(docs), outcome_map(docs))
    assert changes.changed == 0 and changes.unchanged == 44


def test_diff_against_nothing_adds_everything(docs):
    changes = diff({}, outcome_map(docs))
    assert len(changes.added) == 44 and changes.changed == 44


def test_diff_grade_needs_both_sides(make_outcome):
    a = make_outcome("t", "cpu", "cpu", "float32", "nn_sparse", "basic", grade="exact")
    b = dict(a, grade=None)
    assert diff({a["id"]: a}, {b["id"]: b}).unchanged == 1
    c = dict(a, verdict="deviation")
    assert diff({a["id"]: a}, {c["id"]: c}).ids()["verdict_changed"] == [a["id"]]
    s = dict(a, verdict="skip", grade=None)
    assert diff({a["id"]: a}, {s["id"]: s}).ids()["verdict_changed"] == [a["id"]]


def test_non_finite_errors(docs, parse):
    from xentconf.reports import render
    from xentconf.reports.merge import normalized

    o = normalized({"worst_budget": "inf", "worst_ulps": 3.0, "samples": ["nan", 1, "-inf"]})
    assert o["worst_budget"] == float("inf") and o["worst_ulps"] == 3.0
    assert [str(v) for v in o["samples"]] == ["nan", "1", "-inf"]
    beta = docs[1]["outcomes"][0]
    beta.update(verdict="fail", grade="fail", worst_budget=float("inf"),
                worst_ulps=float("nan"), samples=[float("inf"), 1.0, float("nan")])
    board = merge(docs)
    cell = board.cell(1, beta["api"], beta["dtype"])
    assert cell.worst_budget == float("inf") and cell.worst_ulps is None
    page = parse(render(docs))
    drill = next(d for d in page.find_all("details", "drill")
                 if d.find("dd").find("code").text == beta["id"])
    assert drill.find("span", "s-err").text == "inf\xa0b"


def test_one_target_in_two_modes_merges_into_two_rows(docs):
    """Runs of one target in several modes (eager and torch.compile, eager and XLA, Keras
    on each backend) share their test ids; the board keeps them apart by the mode."""
    import copy

    eager = docs[0]
    compiled = copy.deepcopy(eager)
    compiled["run"]["mode"] = "compile"
    board = merge([eager, compiled], ["eager.json", "compile.json"])
    assert [r.key for r in board.rows] == [("alpha", "cpu", "cpu", "eager"),
                                           ("alpha", "cpu", "cpu", "compile")]
    assert board.rows[1].label == "cpu/cpu/compile"
    n = len(eager["outcomes"])
    assert len(board.outcomes) == 2 * n
    first = eager["outcomes"][0]["id"]
    assert first in board.outcomes and f"{first}@compile" in board.outcomes
    # the same run twice in one mode is still refused
    with pytest.raises(ReportError, match="appears in both"):
        merge([compiled, copy.deepcopy(compiled)], ["a.json", "b.json"])

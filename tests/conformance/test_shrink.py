"""Shrinking on the arrays (xentconf.conformance.shrink) with plain predicates: what is
left must be exactly what the predicate needs, by construction of each predicate."""

from __future__ import annotations

import time

import numpy as np

from xentconf.conformance.shrink import simplify
from xentconf.conformance.strategies import Case

NN = "tf.nn.sparse_softmax_cross_entropy_with_logits"
DENSE = "tf.nn.softmax_cross_entropy_with_logits"


def sparse_case(x, y, feature="basic"):
    return Case(NN, "float32", feature, {"labels": np.asarray(y, np.int32),
                                         "logits": np.asarray(x, np.float32)})


def shrink(case, pred, **kw):
    best, got = simplify(case, lambda c: pred(c) and "yes", time.perf_counter() + 30, **kw)
    return best, got


def test_one_row_one_huge_value_is_left():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 9)) * 3
    x[3, 4] = 1e30
    case = sparse_case(x, [0, 8, 2, 7, 1])

    def has_huge(c):
        return bool(np.any(np.abs(c.args["logits"]) > 1e20))

    best, got = shrink(case, has_huge)
    assert got == "yes"
    logits, labels = best.args["logits"], best.args["labels"]
    assert logits.shape[0] == 1 and labels.shape == (1,)
    # one class for the label, one for the huge value: the rest removed or zero
    assert np.count_nonzero(logits) == 1 and np.abs(logits).max() > 1e20
    assert labels.tolist() == [0]
    assert logits.shape[1] <= 2


def test_the_label_class_and_the_out_of_range_label_stay():
    x = np.arange(12, dtype=np.float64).reshape(2, 6) + 0.5
    case = sparse_case(x, [2, 6], feature="bad_labels")  # 6 == C: out of range

    def label_is_c(c):
        return bool(np.any(c.args["labels"] == c.args["logits"].shape[-1]))

    best, _ = shrink(case, label_is_c)
    assert best.args["labels"].tolist() == [best.args["logits"].shape[-1]]
    assert best.args["logits"].shape == (1, 1)  # C shrinks, the label stays "C"
    assert not np.any(best.args["logits"])


def test_a_floor_of_classes_is_kept_and_values_go_to_zero():
    x = np.random.default_rng(2).standard_normal((2, 600))
    case = sparse_case(x, [5, 599], feature="large_classes")
    best, _ = shrink(case, lambda c: True, min_classes=500)
    assert best.args["logits"].shape == (1, 500)
    assert not np.any(best.args["logits"]) and best.args["labels"].tolist() == [0]


def test_dense_labels_keep_their_classes_and_the_axis():
    x = np.random.default_rng(3).standard_normal((3, 4, 5))  # classes on axis 0
    y = np.zeros_like(x)
    y[2, 1, :] = 1.0  # class 2 is the label everywhere
    case = Case(DENSE, "float64", "axis", {"labels": y, "logits": x, "axis": 0})

    def nonzero_at_label(c):
        lab = np.moveaxis(c.args["labels"], 0, -1)
        lg = np.moveaxis(c.args["logits"], 0, -1)
        return bool(np.any(lg[lab != 0] != 0)) and bool(np.any(lab))

    best, _ = shrink(case, nonzero_at_label)
    lab, lg = best.args["labels"], best.args["logits"]
    assert lab.shape == lg.shape and lab.shape[0] == 1  # one class, on axis 0 still
    assert lab.shape[1] == 1  # one row (batch dimension 1)
    assert np.count_nonzero(lg) == 1 and abs(float(lg[lab != 0][0])) == 1.0


def test_rank_drops_to_the_floor():
    x = np.random.default_rng(4).standard_normal((2, 3, 2, 4))  # batch [2, 3, 2]
    y = np.zeros((2, 3, 2), np.int64)
    case = Case(NN, "float64", "rank3+", {"labels": y, "logits": x})
    best, _ = shrink(case, lambda c: True, min_rank=2)
    assert best.args["logits"].shape == (1, 1, 1) and best.args["labels"].shape == (1, 1)
    best, _ = shrink(case, lambda c: c.args["logits"].ndim == 4, min_rank=2)
    assert best.args["logits"].shape == (1, 1, 1, 1)  # the rank the predicate needs

"""Formatting of arrays and numbers, and the geometry of the accuracy plots."""

import math

import pytest

from xentconf.reports import plots, views


@pytest.mark.parametrize("leaf, dtype, text", [
    ("0x1.30a5cep-2", "float32", "0.2975075"),   # shortest text that reads back in float32
    ("0x1.30a5ce0000000p-2", "float64", "0.29750749468803406"),  # repr: shortest in float64
    ("0x1.2p-2", "float16", "0.2812"),
    ("0x1.3p-2", "bfloat16", "0.297"),
    (0.1, "float64", "0.1"),
    ("nan", "float32", "nan"),
    ("-inf", "float32", "-inf"),
    (-0.0, "float32", "-0"),
    (3, "int32", "3"),
    (True, "bool", "true"),
    ("0x1p-149", "float32", "1e-45"),
])
def test_leaf_text(leaf, dtype, text):
    assert views.leaf_text(leaf, dtype)[0] == text


def test_leaf_text_keeps_the_exact_value_for_tooltips():
    short, exact = views.leaf_text("0x1.30a5cep-2", "float32")
    assert short == "0.2975075" and exact == "0x1.30a5cep-2"


def test_nested_text_summarises_large_arrays():
    assert views.nested_text([[1, 2], [3, 4]], "int32") == "[[1, 2],\n [3, 4]]"
    text = views.nested_text(list(range(1000)), "int64")
    assert text == "[0, 1, 2, …, 997, 998, 999]"


def test_compare_marks_mismatches_and_lists_them_first():
    n = 200
    exp = {"dtype": "float32", "shape": [2, n // 2], "data": [[1.0] * (n // 2)] * 2}
    act = {"dtype": "float32", "shape": [2, n // 2],
           "data": [[1.0] * (n // 2), [1.0] * (n // 2 - 1) + ["nan"]]}
    c = views.compare("loss", exp, act)
    assert (c.total, c.mismatches) == (n, 1)
    assert len(c.rows) == views.COMPARE_ROWS
    assert [r.index for r in c.rows if r.differs] == ["[1,99]"]
    assert "showing 48 of 200" in c.note


def test_compare_nan_equals_nan_and_zero_signs_are_not_judged():
    a = {"dtype": "float32", "data": ["nan", 0.0]}
    b = {"dtype": "float32", "data": ["nan", "-0x0p+0"]}
    assert views.compare("loss", a, b).mismatches == 0


def test_compare_non_arrays_as_text():
    c = views.compare("loss", {"dtype": "float32", "data": [1.0]}, "not an array")
    assert c.rows == [] and c.actual_text == '"not an array"' and c.expected_text == "[1]"
    assert views.comparisons(None, None, None) == []


@pytest.mark.parametrize("value, text", [
    (None, "–"), (0.0, "0"), (0.0123, "0.0123"), (17.5, "17.5"), (1234.0, "1234"),
    (3e6, "3e6"), (2.5e7, "2.5e7"), (1.234e-5, "1.23e-5"), (math.inf, "inf"), (7, "7"),
])
def test_fmt_num(value, text):
    assert plots.fmt_num(value) == text


def test_log_domain():
    assert plots.log_domain([]) == plots.Domain(-3, 1)
    assert plots.log_domain([0.003, 0.5]) == plots.Domain(-3, 1)
    assert plots.log_domain([1e-9, 1e30, 0.0, math.inf]) == plots.Domain(-6, 4)
    d = plots.Domain(-3, 1)
    xs = [d.x(v) for v in (1e-5, 1e-3, 0.01, 1.0, 10.0, 1e9)]
    assert xs == sorted(xs)
    assert xs[0] == xs[1] == plots.PLOT_LEFT and xs[-1] == xs[-2] == plots.PLOT_RIGHT


def test_strip_plot_layout():
    d = plots.Domain(-3, 1)
    p = plots.strip_plot("nn_sparse", "tf.nn...", [
        ("alpha · cpu", [plots.Strip("float32", [0.0, 0.0, 0.01, 0.1, 3.0], 3.0, 12.0),
                         plots.Strip("float64", [], None, None)]),
        ("beta · cuda", [plots.Strip("float32", list(range(1, 1000)), 1e9, None)]),
    ], d)
    assert len(p.rows) == 3 and len(p.groups) == 2 and len(p.separators) == 1
    first, empty, many = p.rows
    assert first.zeros == 2 and len(first.dots) == 3 and first.over and not first.clamped
    assert first.note == "3 b · 12 ulp"
    assert empty.empty and empty.note == "no graded examples" and empty.box is None
    assert len(many.dots) == plots.MAX_DOTS and many.clamped
    assert all(p.rows[i].y < p.rows[i + 1].y for i in range(2))
    assert p.height > many.y

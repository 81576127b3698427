"""The rendered page, checked structurally: parsed, never matched as a string only."""

import base64
import hashlib
import re
import xml.etree.ElementTree as ET

import pytest

from xentconf import results
from xentconf.reports import ReportError, render

DRILL_VERDICTS = {"fail", "crash", "timeout", "error", "deviation", "as-tensorflow"}


@pytest.fixture
def html(report_html):
    return report_html


@pytest.fixture
def page(report_page):
    return report_page


def _board(page):
    return next(t for t in page.find_all("table", "board") if "features" not in t.classes)


def _cell(page, title_prefix):
    found = [a for a in _board(page).find_all(cls="cell")
             if a.attrs.get("title", "").startswith(title_prefix)]
    assert len(found) == 1, title_prefix
    return found[0]


# --------------------------------------------------------------------- scoreboard


def test_scoreboard_shape(page):
    board = _board(page)
    heads = [th.text.strip() for th in board.find_all("th", "api")]
    assert heads == ["raw_sparse", "nn_sparse", "v1_sparse", "keras_sparse"]
    assert [th.text for th in board.find_all("th", "dt")] == [
        "f16", "f32", "f64", "f16", "bf16", "f32", "f64", "f16", "f32", "f64",
        "f16", "bf16", "f32", "f64"]
    body_rows = board.find("tbody").find_all("tr")
    assert [r.find("span", "tname").text for r in body_rows] == ["alpha", "beta"]
    assert all(len(r.find_all("td", "c")) == 14 for r in body_rows)
    assert len(board.find_all("a", "cell")) == 16  # alpha 4 APIs × 3 dtypes, beta 2 × 2
    assert len(board.find_all("span", "empty")) == 12


@pytest.mark.parametrize("title, cls, text", [
    ("alpha · cpu — nn_sparse float32:", "v-fail", "2/3"),
    ("alpha · cpu — nn_sparse float64:", "g-exact", "3/3"),
    ("alpha · cpu — nn_sparse float16:", "g-stable", "3/3"),
    ("alpha · cpu — raw_sparse float32:", "g-faithful", "3/3"),
    ("alpha · cpu — raw_sparse float16:", "v-crash", "1/3"),
    ("alpha · cpu — v1_sparse float64:", "v-deviation", "3/3"),
    ("alpha · cpu — keras_sparse float16:", "v-error", "0/1"),
    ("beta · cuda (gpu profile) — nn_sparse bfloat16:", "v-fail", "1/2"),
    ("beta · cuda (gpu profile) — keras_sparse float32:", "g-tf-precision", "2/2"),
])
def test_scoreboard_cells(page, title, cls, text):
    cell = _cell(page, title)
    assert cls in cell.classes
    assert cell.text == text


def test_cells_open_their_feature_tables(page, docs):
    for link in page.find_all("a", "cell"):
        target = page.by_id(link.attrs["data-panel"])
        assert target is not None and link.attrs["href"] == "#" + target.attrs["id"]
    # the failing cell lists its three features, the failure linked to its drill-down
    cell = page.by_id(_cell(page, "alpha · cpu — nn_sparse float32:").attrs["data-panel"])
    rows = cell.find("tbody").find_all("tr")
    assert [r.find("code").text for r in rows] == ["basic", "weights", "special_values"]
    assert [r.attrs["class"] for r in rows] == ["v-pass", "v-pass", "v-fail"]
    link = rows[2].find("a", "drill-link")
    assert page.by_id(link.attrs["href"][1:]).tag == "details"


def test_feature_board(page):
    table = page.find("table", "features")
    # features in the order they first appear
    assert [th.text for th in table.find_all("th", "feat")] == ["basic", "weights",
                                                                 "special_values"]
    weights = [a for a in table.find_all("a", "cell")
               if a.attrs["title"].startswith("alpha · cpu — weights:")]
    assert len(weights) == 1 and "v-timeout" in weights[0].classes


def test_totals_and_legend(page):
    chips = {next(c for c in s.classes if c.startswith("v-")): int(s.find("b").text)
             for s in page.find("div", "totals").find_all("span", "total")}
    assert chips == {"v-pass": 35, "v-as-tensorflow": 0, "v-deviation": 2, "v-fail": 2,
                     "v-crash": 1, "v-timeout": 1, "v-error": 1, "v-skip": 2}
    legend = page.find("div", "legend")
    keys = [k.text for k in legend.find_all("span", "key")]
    assert keys[:4] == ["exact", "faithful", "tf-precision", "stable"]
    assert set(keys[4:]) == {"crash", "timeout", "error", "fail", "deviation", "as-tensorflow",
                             "skip"}


# --------------------------------------------------------------------- drill-downs


def test_every_failure_has_a_drilldown(page, docs):
    drills = page.find("section", id="failures").find_all("details", "drill")
    by_id = {d.find("dd").find("code").text: d for d in drills}
    wanted = [o for doc in docs for o in doc["outcomes"] if o["verdict"] in DRILL_VERDICTS]
    assert sorted(by_id) == sorted(o["id"] for o in wanted)
    for o in wanted:
        d = by_id[o["id"]]
        assert f"v-{o['verdict']}" in d.classes
        assert d.find("span", "badge").text == o["verdict"]
        if o.get("message"):
            assert d.find("pre", "msg").text == o["message"]
        if o.get("reproducer"):
            pre = d.find("pre", "repro")
            assert pre.text == o["reproducer"]
            button = d.find("button", "copy", **{"data-copy": pre.attrs["id"]})
            assert button is not None
        else:
            assert d.find("pre", "repro") is None


def test_drilldown_shows_inputs_expected_actual_and_errors(page):
    d = next(d for d in page.find_all("details", "drill")
             if d.find("dd").find("code").text == "alpha-cpu-float32-nn_sparse-special_values")
    meta = {dt.text: dd.text for dt, dd in zip(d.find("dl", "meta").find_all("dt"),
                                                d.find("dl", "meta").find_all("dd"))}
    assert meta["worst error"].startswith("1234 ulp · 17.5 budget units")
    args = {tr.find_all("td")[0].text: tr.find_all("td")[3].text
            for tr in d.find("table", "args").find("tbody").find_all("tr")}
    assert args == {"labels": "[1]", "logits": "[[3, -inf]]"}
    cmp = d.find("div", "cmp")
    assert "worst" in cmp.classes and cmp.find("strong").text == "loss"
    (row,) = cmp.find("tbody").find_all("tr")
    assert row.attrs["class"] == "differs"
    assert [td.text for td in row.find_all("td")] == ["[0]", "0.28125", "nan"]
    case = d.find("details", "sub").find("pre")
    assert '"0x1.8p+1"' in case.text and d.find("button", **{"data-copy": case.attrs["id"]})


def test_links_point_inside_the_page(page):
    ids = {n.attrs["id"] for n in page.iter() if "id" in n.attrs}
    for a in page.find_all("a"):
        href = a.attrs.get("href", "")
        if href.startswith("#"):
            assert href[1:] in ids, href


# --------------------------------------------------------------------- plots


def test_plots_are_well_formed_svg(html, page):
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    assert len(svgs) == 4  # one per API
    for text in svgs:
        root = ET.fromstring(text)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.findall(".//{http://www.w3.org/2000/svg}circle")
    captions = [f.find("figcaption").find("code").text
                for f in page.find_all("figure", "plotfig")]
    assert captions == ["raw_sparse", "nn_sparse", "v1_sparse", "keras_sparse"]
    nn = ET.fromstring(svgs[1])
    notes = [t.text for t in nn.iter("{http://www.w3.org/2000/svg}text")
             if "note" in t.get("class", "")]
    assert "17.5 b · 1234 ulp" in notes  # alpha float32's worst
    over = [g for g in nn.iter("{http://www.w3.org/2000/svg}g") if "is-over" in g.get("class")]
    assert len(over) == 2  # alpha float32 and beta bfloat16


# --------------------------------------------------------------------- safety


def test_no_external_resources(html, page):
    for node in page.iter():
        assert "src" not in node.attrs, node.tag
        assert not any(k.startswith("on") for k in node.attrs), node.tag
        if "href" in node.attrs:
            assert node.tag == "a", node.tag
            href = node.attrs["href"]
            if not href.startswith("#"):
                # the only links out of the page are a deviation's issue link
                assert href.startswith("https://")
                assert any(a.attrs.get("id") == "deviations" for a in node.ancestors())
    assert "@import" not in html and "url(" not in html
    assert not page.find_all("link") and not page.find_all("iframe")
    assert not page.find_all("img") and not page.find_all("object")


def test_content_security_policy_pins_the_script(page):
    meta = page.find("meta", **{"http-equiv": "Content-Security-Policy"})
    policy = meta.attrs["content"]
    assert "default-src 'none'" in policy
    (script,) = page.find_all("script")
    digest = base64.b64encode(hashlib.sha256(script.text.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy


def test_target_strings_are_escaped(html, page, script_message):
    (script,) = page.find_all("script")  # ours, and no other
    assert "alert" not in script.text
    msgs = [p.text for p in page.find_all("pre", "msg")]
    assert script_message in msgs
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    # a reproducer cannot close the page's tags either
    assert "print('</script><script>alert(2)</script>')" in [
        p.text for p in page.find_all("pre", "repro")]
    # a deviation's javascript: link is shown as text, never linked
    assert not [a for a in page.find_all("a") if "javascript" in a.attrs.get("href", "")]
    assert "javascript:alert(4)" in page.by_id("deviations").text
    assert "half precision <img src=x>" in page.by_id("deviations").text


# --------------------------------------------------------------------- sections


def test_known_deviations(page):
    section = page.by_id("deviations")
    rows = section.find("table", "deviations").find("tbody").find_all("tr")
    assert [r.attrs["class"] for r in rows] == ["dev-live", "dev-stale", "dev-stale",
                                                "dev-check"]
    assert [r.find_all("td")[4].text for r in rows] == ["2", "0", "1", "2"]
    assert [r.find_all("td")[5].find("span").text for r in rows] == [
        "shows", "none", "passes", "error"]
    assert "matched no case" in rows[1].text and "pinned case passes now" in rows[2].text
    assert rows[0].find("a").attrs["href"] == "https://example.org/alpha/issues/1"
    banner = [p for p in page.find_all("p", "banner") if "stale" in p.text]
    assert len(banner) == 1 and "2 known-deviation entries are stale" in banner[0].text


def test_environment(page):
    env = page.find("table", "env")
    assert [th.text for th in env.find("thead").find_all("th")][1:] == [
        "alpha · cpu", "beta · cuda (gpu profile)"]
    rows = {tr.find("th").text: [td.text for td in tr.find_all("td")]
            for tr in env.find("tbody").find_all("tr")}
    assert rows["interrupted"] == ["no", "yes — results incomplete"]
    assert rows["hypothesis"][0] == "profile ci · seed 1234 · examples 50"
    assert rows["python"] == ["3.11.2", "3.11.2"]
    assert rows["results file"] == ["alpha.json", "beta.json"]
    assert rows["command"][0] == "xentconf run --target alpha"
    assert rows["duration"][0].startswith("12.5 s")
    assert any("beta · cuda (gpu profile)" in p.text and "interrupted" in p.text
               for p in page.find_all("p", "banner"))


def test_diff_lists_exactly_the_known_changes(page, expected_changes):
    section = page.by_id("diff")
    for name, ids in expected_changes.items():
        details = page.by_id(f"diff-{name}")
        listed = [tr.find("td").find("code").text
                  for tr in details.find("tbody").find_all("tr")]
        assert listed == ids, name
    assert len(section.find_all("details", "diffcat")) == len(expected_changes)
    failing = page.by_id("diff-newly_failing").find("tbody").find("tr")
    before, now = (td.find("span", "badge").text for td in failing.find_all("td")[-2:])
    assert (before, now) == ("pass", "fail")


def test_as_tensorflow_is_counted_and_shown_apart(docs, parse):
    """An outcome that differs only as TensorFlow's mechanisms do is accepted on the board,
    has its own chip, colour and drill-down, and names the mechanisms."""
    o = docs[0]["outcomes"][0]
    o.update(verdict="as-tensorflow", grade="fail",
             mechanisms={"flush-denormals": 3}, message="as TensorFlow (flush-denormals)")
    page = parse(render(docs))
    chips = {next(c for c in s.classes if c.startswith("v-")): int(s.find("b").text)
             for s in page.find("div", "totals").find_all("span", "total")}
    assert chips["v-as-tensorflow"] == 1
    drills = page.find("section", id="failures").find_all("details", "drill")
    mine = [d for d in drills if d.find("dd").find("code").text == o["id"]]
    assert len(mine) == 1 and "v-as-tensorflow" in mine[0].classes
    codes = [c.text for c in mine[0].find_all("code")]
    assert "flush-denormals" in codes


def test_no_baseline_no_diff(docs, parse):
    page = parse(render(docs))
    assert page.by_id("diff") is None
    assert not [a for a in page.find("nav").find_all("a") if a.attrs["href"] == "#diff"]


def test_render_is_deterministic(docs, baseline):
    assert render(docs, baseline) == render(docs, baseline)


# --------------------------------------------------------------------- errors


def test_no_outcomes_is_an_error(docs):
    empty = results.new_document(docs[0]["run"])
    with pytest.raises(ReportError, match="no outcomes in a.json: nothing to report"):
        render([empty], sources=["a.json"])


def test_invalid_document_is_an_error(docs):
    docs[1]["outcomes"][0]["verdict"] = "maybe"
    with pytest.raises(ReportError, match=r"^b.json.outcomes\[0\].verdict: 'maybe'"):
        render(docs, sources=["a.json", "b.json"])


def test_a_test_with_distinct_failures_lists_each_with_its_own_case(docs, make_outcome, parse):
    doc = {**docs[0], "outcomes": list(docs[0]["outcomes"])}
    compact = {"dtype": "float32", "shape": [1, 70], "fill": "0x0p+0",
               "entries": [[3, "0x1p+0"]]}
    failures = [
        {"kind": "tf-raises", "verdict": "fail", "tags": ["minus_one"],
         "message": "TensorFlow raises InvalidArgumentError — the target returned loss",
         "counterexample": {"api": "tf.nn.sparse_softmax_cross_entropy_with_logits",
                            "args": {"labels": {"dtype": "int32", "data": [-1]},
                                     "logits": compact}},
         "expected": {"raises": {"error": "InvalidArgumentError", "message": "-1"}},
         "actual": {"loss": {"dtype": "float32", "shape": [1], "data": ["0x0p+0"]}},
         "reproducer": "print('first')"},
        {"kind": "nan-inf", "verdict": "fail", "tags": ["classes"],
         "message": "loss[0]: got nan", "counterexample": None, "expected": None,
         "actual": None, "reproducer": "print('second')"},
    ]
    o = make_outcome("alpha", "cpu", "cpu", "float64", "nn_sparse", "bad_labels",
                     verdict="fail", grade="fail", message="2 distinct failures: ...",
                     failures=failures, reproducer="print('first')",
                     counterexample=failures[0]["counterexample"])
    doc["outcomes"].append(o)
    page = parse(render([doc]))
    d = next(d for d in page.find_all("details", "drill")
             if d.find("dd").find("code").text == o["id"])
    assert [li.find("code").text for li in d.find("ol", "failures").find_all("li")] == \
        ["tf-raises", "nan-inf"]
    assert [p.text for p in d.find_all("pre", "repro")] == ["print('first')", "print('second')"]
    assert [p.text for p in d.find_all("pre", "msg")] == [f["message"] for f in failures]
    args = {tr.find_all("td")[0].text: (tr.find_all("td")[2].text, tr.find_all("td")[3].text)
            for tr in d.find("table", "args").find("tbody").find_all("tr")}
    assert args["logits"][0] == "[1, 70]"  # the compact array is shown as the array it is
    assert args["logits"][1] == "[[0, 0, 0, 1" + ", 0" * 66 + "]]"

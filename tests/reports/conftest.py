"""Synthetic results documents for the report tests, and a small HTML tree parser.

Two target runs: ``alpha`` (cpu) with every verdict, its known deviations live, stale and
unrunnable; ``beta`` (cuda, gpu profile, interrupted) whose failure message is a script
tag. The baseline differs from the current run in exactly the ways ``EXPECTED_CHANGES``
lists. Every document passes ``xentconf.results.validate``.
"""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from xentconf import results

APIS = {
    "raw_sparse": "tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits",
    "nn_sparse": "tf.nn.sparse_softmax_cross_entropy_with_logits",
    "v1_sparse": "tf.compat.v1.losses.sparse_softmax_cross_entropy",
    "keras_sparse": "tf.keras.losses.SparseCategoricalCrossentropy",
}
SCRIPT_MESSAGE = "<script>alert(1)</script>"
FAILING_ID = "alpha-cpu-float32-nn_sparse-special_values"

EXPECTED_CHANGES = {
    "newly_failing": [FAILING_ID],
    "newly_passing": ["alpha-cpu-float32-nn_sparse-basic"],
    "grade_worse": ["alpha-cpu-float32-raw_sparse-basic"],
    "grade_better": ["alpha-cpu-float64-nn_sparse-basic"],
    "verdict_changed": ["alpha-cpu-float16-raw_sparse-weights"],
    "added": ["beta-cuda-float32-keras_sparse-basic"],
    "removed": ["alpha-cpu-float32-nn_sparse-rank3+"],
}

REPRODUCER = '''import numpy as np
import alpha
labels = np.array([1], np.int32)
logits = np.array([[float.fromhex("0x1.8p+1"), -np.inf]], np.float32)
print(alpha.sparse_xent(labels, logits))  # expected 0x1.2p-2, got nan
'''


def _run(target: str, device: str, profile: str, **extra) -> dict:
    run = {
        "xentconf_version": "0.1.0",
        "target": {"name": target, "version": "1.0", "description": f"the {target} target",
                   "keras": "keras2"},
        "frameworks": {target: "1.0", "numpy": "2.0.0"},
        "device": device, "profile": profile, "accuracy": "stable",
        "hypothesis_profile": "ci", "seed": 1234, "examples": 50,
        "python": "3.11.2", "platform": "Linux-x86_64", "started": "2026-01-02T03:04:05Z",
        "duration_s": 12.5, "interrupted": False,
        "command": ["xentconf", "run", "--target", target],
    }
    run.update(extra)
    return run


def outcome(target: str, device: str, profile: str, dtype: str, short: str, feature: str,
            verdict: str = "pass", grade: str | None = None, **extra) -> dict:
    """One outcome with plausible defaults for a pass."""
    if grade is None and verdict == "pass":
        grade = {"float64": "exact", "float32": "faithful"}.get(dtype, "stable")
    o = {
        "id": f"{target}-{device}-{dtype}-{short}-{feature}",
        "target": target, "device": device, "profile": profile,
        "api": APIS[short], "api_short": short, "dtype": dtype, "feature": feature,
        "support": "native", "verdict": verdict, "grade": grade, "required": "stable",
        "examples": 0 if verdict == "skip" else 20,
        "worst_ulps": None if verdict == "skip" else 0.5,
        "worst_budget": None if verdict == "skip" else 0.02,
        "duration_s": 0.25,
        "samples": None if verdict == "skip" else [0.0, 0.001, 0.004, 0.01, 0.02],
    }
    o.update(extra)
    return o


def _failing_details() -> dict:
    return {
        "worst_ulps": 1234.0, "worst_budget": 17.5, "worst_output": "loss",
        "message": "loss[0]: expected 0x1.2p-2, got nan\nsecond line of the message",
        "counterexample": {
            "api": APIS["nn_sparse"], "profile": "cpu",
            "args": {"labels": {"dtype": "int32", "data": [1]},
                     "logits": {"dtype": "float32", "data": [["0x1.8p+1", "-inf"]]}},
        },
        "expected": {"loss": {"dtype": "float32", "shape": [1], "data": ["0x1.2p-2"]}},
        "actual": {"loss": {"dtype": "float32", "shape": [1], "data": ["nan"]}},
        "reproducer": REPRODUCER,
        "samples": [0.01, 0.5, 3.0, 17.5],
    }


def alpha_doc() -> dict:
    doc = results.new_document(_run("alpha", "cpu", "cpu"))
    special = {
        FAILING_ID: dict(verdict="fail", grade="fail", **_failing_details()),
        "alpha-cpu-float64-v1_sparse-basic": dict(
            verdict="deviation", grade="fail", deviation="alpha-*-float64-v1_sparse-*",
            worst_budget=3e6, worst_ulps=2.5e7, message="float32 reduction",
            reproducer="print('deviation')"),
        "alpha-cpu-float64-v1_sparse-weights": dict(
            verdict="deviation", grade="fail", deviation="alpha-*-float64-v1_sparse-*",
            worst_budget=2e6, worst_ulps=1e7, message="float32 reduction"),
        "alpha-cpu-float16-raw_sparse-basic": dict(
            verdict="crash", grade=None, message="Fatal Python error: Segmentation fault",
            worst_ulps=None, worst_budget=None, samples=None,
            reproducer="import alpha\nalpha.crash()\n"),
        "alpha-cpu-float16-raw_sparse-weights": dict(
            verdict="timeout", grade=None, message="a call ran past 10 s",
            worst_ulps=None, worst_budget=None, samples=None),
        "alpha-cpu-float16-keras_sparse-basic": dict(
            verdict="error", grade=None, message="returned a str, not an array",
            actual={"loss": "not an array"}),
        "alpha-cpu-float16-keras_sparse-weights": dict(verdict="skip", grade=None),
        "alpha-cpu-float16-keras_sparse-special_values": dict(verdict="skip", grade=None),
    }
    for short in APIS:
        for dtype in ("float16", "float32", "float64"):
            for feature in ("basic", "weights", "special_values"):
                oid = f"alpha-cpu-{dtype}-{short}-{feature}"
                doc["outcomes"].append(outcome("alpha", "cpu", "cpu", dtype, short, feature,
                                               **special.get(oid, {})))
    doc["deviations"] = [
        {"id": "alpha-*-float64-v1_sparse-*", "reason": "v1 losses reduce in float32",
         "link": "https://example.org/alpha/issues/1", "grade": "fail", "matched": 2,
         "pinned": "shows", "source": "alpha.toml"},
        {"id": "alpha-*-bfloat16-*", "reason": "bfloat16 kernels (never exercised)",
         "link": None, "grade": "stable", "matched": 0, "pinned": None},
        {"id": "alpha-*-float16-nn_sparse-*", "reason": "half precision <img src=x>",
         "link": "javascript:alert(4)", "grade": "stable", "matched": 1, "pinned": "passes"},
        {"id": "alpha-*-float32-raw_sparse-*", "reason": "pinned case cannot run",
         "grade": "faithful", "matched": 2, "pinned": "error",
         "pinned_message": "ValueError: no such op"},
    ]
    return doc


def beta_doc() -> dict:
    doc = results.new_document(_run("beta", "cuda", "gpu", interrupted=True))
    for short in ("nn_sparse", "keras_sparse"):
        for dtype in ("bfloat16", "float32"):
            for feature in ("basic", "special_values"):
                extra = {"grade": "tf-precision"}
                if (short, dtype, feature) == ("nn_sparse", "bfloat16", "special_values"):
                    extra = dict(verdict="fail", grade="fail", message=SCRIPT_MESSAGE,
                                 reproducer="print('</script><script>alert(2)</script>')",
                                 worst_budget=1e30, worst_ulps=None,
                                 samples=[0.1, 40.0])
                doc["outcomes"].append(outcome("beta", "cuda", "gpu", dtype, short, feature,
                                               **extra))
    return doc


def baseline_docs() -> list[dict]:
    """The current documents changed so that the diff is EXPECTED_CHANGES."""
    alpha, beta = alpha_doc(), beta_doc()
    by_id = {o["id"]: o for o in alpha["outcomes"] + beta["outcomes"]}
    old = by_id[FAILING_ID]
    for key in ("message", "counterexample", "expected", "actual", "reproducer"):
        old.pop(key)
    old.update(verdict="pass", grade="faithful", worst_budget=0.1, worst_ulps=1.0)
    by_id["alpha-cpu-float32-nn_sparse-basic"].update(verdict="fail", grade="fail",
                                                      message="was broken")
    by_id["alpha-cpu-float32-raw_sparse-basic"]["grade"] = "exact"
    by_id["alpha-cpu-float64-nn_sparse-basic"]["grade"] = "faithful"
    by_id["alpha-cpu-float16-raw_sparse-weights"].update(verdict="fail", grade="fail")
    alpha["outcomes"].append(outcome("alpha", "cpu", "cpu", "float32", "nn_sparse", "rank3+"))
    beta["outcomes"] = [o for o in beta["outcomes"]
                        if o["id"] != "beta-cuda-float32-keras_sparse-basic"]
    return [alpha, beta]


def current_docs() -> list[dict]:
    return [alpha_doc(), beta_doc()]


@pytest.fixture
def docs() -> list[dict]:
    """The current run: alpha and beta documents (validated)."""
    out = current_docs()
    for d in out:
        results.validate(json.loads(results.dumps(d)))
    return out


@pytest.fixture
def baseline() -> list[dict]:
    out = baseline_docs()
    for d in out:
        results.validate(json.loads(results.dumps(d)))
    return out


@pytest.fixture
def expected_changes() -> dict[str, list[str]]:
    return copy.deepcopy(EXPECTED_CHANGES)


@pytest.fixture
def script_message() -> str:
    return SCRIPT_MESSAGE


@pytest.fixture
def make_outcome():
    return outcome


@pytest.fixture
def results_files(tmp_path: Path):
    """Write the current and baseline documents as files; return their paths."""

    def write() -> dict[str, list[Path]]:
        paths = {"current": [], "baseline": []}
        for name, group in (("current", current_docs()), ("baseline", baseline_docs())):
            for doc in group:
                p = tmp_path / name / f"{doc['run']['target']['name']}.json"
                results.write(doc, p)
                paths[name].append(p)
        return paths

    return write()


# --------------------------------------------------------------------- HTML tree

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Node:
    """An element of the parsed page: tag, attributes, children and text."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs) -> list[Node]:
        return [n for n in self.iter()
                if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k) == v for k, v in attrs.items())]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs) -> Node | None:
        found = self.find_all(tag, cls, **attrs)
        return found[0] if found else None

    def by_id(self, ident: str) -> Node | None:
        return self.find(id=ident)

    def ancestors(self):
        n = self.parent
        while n is not None:
            yield n
            n = n.parent


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, dict(attrs), self.cur))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is None:
            self.errors.append(f"stray </{tag}>")
            return
        if n is not self.cur:
            self.errors.append(f"</{tag}> closes unclosed <{self.cur.tag}>")
        self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_html(text: str) -> Node:
    """Parse ``text`` into a :class:`Node` tree; fail on mismatched tags."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    assert not builder.errors, builder.errors[:5]
    assert builder.cur is builder.root, f"unclosed <{builder.cur.tag}>"
    return builder.root


@pytest.fixture
def parse():
    return parse_html


@pytest.fixture(scope="session")
def report_html() -> str:
    """The page for the current documents against the baseline (rendered once)."""
    from xentconf.reports import render

    return render(current_docs(), baseline_docs(), sources=["alpha.json", "beta.json"],
                  baseline_sources=["old/alpha.json", "old/beta.json"])


@pytest.fixture(scope="session")
def report_page(report_html: str) -> Node:
    """``report_html`` parsed (read-only: shared by the tests)."""
    return parse_html(report_html)

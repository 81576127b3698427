"""Known deviations: declared, reasoned exceptions to the required grade, as data.

A target may ship a deviations file (TOML, one ``[[deviation]]`` table per entry; see
``xentconf/adapters/deviations/tensorflow.toml`` for TensorFlow's), and a run may add
more (``--xentconf-deviations FILE``). An entry::

    [[deviation]]
    id = "tensorflow-cpu-float16-raw_sparse-*"   # glob over case ids
    reason = "one paragraph: what the target does and why"
    link = "https://..."                          # optional
    grade = "tf-precision"                        # optional: the grade still reached
                                                  # (default "fail": precision only)
    keras = "keras2"                              # optional: Keras variant it applies to
    profile = "xla"                               # optional: device profile it applies to
    nonfinite = true                              # optional: also excuses inf/NaN where the
                                                  # truth is finite (a range artefact, such as
                                                  # x − max overflowing in the dtype)
    [deviation.pinned]                            # optional: a case showing it, in the
    api = "..."                                   # format of `xentconf oracle`
    args.features = { dtype = "float16", data = [[...]] }

A *case id* is the test id ``<target>-<device>-<dtype>-<api>-<feature>`` followed by the
case's tags, each after a colon (``…-regimes:dominant:underflow``): the regime, label and
weight kinds drawn, the reduction, and facts of the expected result (``underflow``: an
expected value below the dtype's smallest normal). An entry's id is a glob over the test
id, optionally followed by tags, each after a colon: the entry matches a case when the glob
matches its test id and every tag named is one of the case's tags, exactly (``:underflow``
never matches ``underflow_gap``; tags take no wildcards). A case that misses the required grade
but matches an entry is a *deviation*, not a failure — provided it still reaches the
entry's grade; an entry with grade ``fail`` excuses the numbers only, never a wrong error,
dtype or shape, and a wrong NaN or inf only with ``nonfinite = true``. Every pinned case
is re-run on every run; an entry whose pinned case now passes, or that matched no case,
is reported.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, published as tomli
    import tomli as tomllib

from xentconf.oracle import GRADES
from xentconf.oracle.case import CaseError, parse_case

__all__ = ["Deviation", "DeviationsError", "case_id", "load", "matching"]

_KEYS = {"id", "reason", "link", "grade", "keras", "profile", "nonfinite", "pinned"}


class DeviationsError(Exception):
    """A deviations file cannot be used; the one-line message says what to fix."""


@dataclass(frozen=True)
class Deviation:
    """One entry of a deviations file."""

    id: str
    reason: str
    grade: str = "fail"
    link: str | None = None
    keras: str | None = None
    profile: str | None = None
    nonfinite: bool = False
    pinned: dict[str, Any] | None = field(default=None, compare=False)  # a parsed case
    pinned_text: str | None = field(default=None, compare=False)  # the case as JSON
    source: str = ""

    def applies(self, cid: str, keras: str | None, profile: str | None = None) -> bool:
        if self.keras is not None and keras is not None and self.keras != keras:
            return False
        if self.profile is not None and profile is not None and self.profile != profile:
            return False
        test_id, *tags = cid.split(":")
        pattern, *wanted = self.id.split(":")
        return fnmatch.fnmatchcase(test_id, pattern) and set(wanted) <= set(tags)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason, "link": self.link, "grade": self.grade,
                "keras": self.keras, "profile": self.profile, "nonfinite": self.nonfinite,
                "source": self.source}


def case_id(test_id: str, tags: tuple[str, ...] | list[str]) -> str:
    """The case id: the test id and the case's tags."""
    return ":".join([test_id, *[t for t in tags if t]])


def load(path: str | Path) -> list[Deviation]:
    """Read and check a deviations file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DeviationsError(f"deviations file {p}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviationsError(f"deviations file {p}: cannot read it ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DeviationsError(f"deviations file {p}: not valid TOML ({exc})") from exc
    entries = data.get("deviation", [])
    extra = set(data) - {"deviation"}
    if extra:
        raise DeviationsError(f"deviations file {p}: unknown top-level key "
                              f"{sorted(extra)[0]!r}; entries are [[deviation]] tables")
    if not isinstance(entries, list):
        raise DeviationsError(f"deviations file {p}: 'deviation' must be an array of tables "
                              "([[deviation]])")
    out = []
    seen = set()
    for i, e in enumerate(entries, 1):
        where = f"deviations file {p}, entry {i}"
        if not isinstance(e, dict):
            raise DeviationsError(f"{where}: must be a table")
        unknown = set(e) - _KEYS
        if unknown:
            raise DeviationsError(f"{where}: unknown key {sorted(unknown)[0]!r}; keys are "
                                  f"{', '.join(sorted(_KEYS))}")
        for key in ("id", "reason"):
            if not isinstance(e.get(key), str) or not e[key].strip():
                raise DeviationsError(f"{where}: give {key!r} as a non-empty string")
        where = f"deviations file {p}, entry {e['id']!r}"
        bad = [t for t in e["id"].split(":")[1:] if not t or any(ch in t for ch in "*?[]")]
        if bad:
            raise DeviationsError(f"{where}: tag {bad[0]!r} is not a tag name; tags after "
                                  "the test-id pattern match exactly (write ':underflow', "
                                  "not ':underflow*')")
        if e["id"] in seen:
            raise DeviationsError(f"{where}: the id appears twice")
        seen.add(e["id"])
        grade = e.get("grade", "fail")
        if grade not in GRADES[1:]:
            raise DeviationsError(f"{where}: grade {grade!r} is not one of "
                                  f"{', '.join(GRADES[1:])}")
        keras = e.get("keras")
        if keras not in (None, "keras2", "keras3"):
            raise DeviationsError(f"{where}: keras must be \"keras2\" or \"keras3\"")
        profile = e.get("profile")
        if profile not in (None, "cpu", "gpu", "xla"):
            raise DeviationsError(f"{where}: profile must be \"cpu\", \"gpu\" or \"xla\"")
        nonfinite = e.get("nonfinite", False)
        if not isinstance(nonfinite, bool):
            raise DeviationsError(f"{where}: nonfinite must be true or false")
        if nonfinite and grade != "fail":
            raise DeviationsError(f"{where}: nonfinite = true needs grade = \"fail\" (an inf "
                                  "or NaN where the truth is finite reaches no other grade)")
        pinned = pinned_text = None
        if "pinned" in e:
            pinned_text = json.dumps(e["pinned"])
            try:
                pinned = parse_case(pinned_text)
            except CaseError as exc:
                raise DeviationsError(f"{where}: pinned case: {exc}") from exc
        link = e.get("link")
        if link is not None and not isinstance(link, str):
            raise DeviationsError(f"{where}: link must be a string")
        out.append(Deviation(e["id"], " ".join(e["reason"].split()), grade, link, keras,
                             profile, nonfinite, pinned, pinned_text, str(p)))
    return out


def matching(entries: list[Deviation], cid: str, keras: str | None,
             profile: str | None = None) -> list[Deviation]:
    """The entries whose pattern matches the case id ``cid`` (and Keras variant, profile)."""
    return [d for d in entries if d.applies(cid, keras, profile)]


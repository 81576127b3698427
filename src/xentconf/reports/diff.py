"""Compare two sets of outcomes (a baseline and the current run), keyed by outcome id.

Every id is sorted into exactly one category:

* ``newly_failing``  accepted before (``pass``/``deviation``), failing now
  (``fail``/``crash``/``timeout``/``error``);
* ``newly_passing``  failing before, accepted now;
* ``grade_worse`` / ``grade_better``  the worst grade reached changed (verdict class the
  same); better means earlier in :data:`~xentconf.results.GRADES`;
* ``verdict_changed``  any other change of verdict: ``pass`` ↔ ``deviation``, ``fail`` →
  ``crash``, to or from ``skip``;
* ``added`` / ``removed``  the id is only in the current run / only in the baseline;

ids with the same verdict on both sides and the same grade (or a grade on one side only:
nothing graded is not comparable) are counted as ``unchanged``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xentconf.results import GRADES

from .merge import FAILING, PASSING

__all__ = ["CATEGORIES", "Change", "Diff", "diff"]

#: Categories of :class:`Diff`, in display order, with their headings.
CATEGORIES: dict[str, str] = {
    "newly_failing": "Newly failing",
    "newly_passing": "Newly passing",
    "grade_worse": "Grade worse",
    "grade_better": "Grade better",
    "verdict_changed": "Other verdict changes",
    "added": "Added tests",
    "removed": "Removed tests",
}


@dataclass(frozen=True)
class Change:
    """One id whose outcome differs: ``before`` is the baseline's, ``after`` the current."""

    id: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


@dataclass
class Diff:
    """The changes from a baseline to the current outcomes, by category."""

    newly_failing: list[Change] = field(default_factory=list)
    newly_passing: list[Change] = field(default_factory=list)
    grade_worse: list[Change] = field(default_factory=list)
    grade_better: list[Change] = field(default_factory=list)
    verdict_changed: list[Change] = field(default_factory=list)
    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    unchanged: int = 0

    def categories(self) -> list[tuple[str, str, list[Change]]]:
        """``(name, heading, changes)`` for every category, in display order."""
        return [(name, heading, getattr(self, name)) for name, heading in CATEGORIES.items()]

    @property
    def changed(self) -> int:
        return sum(len(changes) for _, _, changes in self.categories())

    def ids(self) -> dict[str, list[str]]:
        """The ids of each category (handy in tests and scripts)."""
        return {name: [c.id for c in changes] for name, _, changes in self.categories()}


def _grade_rank(outcome: Mapping[str, Any]) -> int | None:
    grade = outcome.get("grade")
    return GRADES.index(grade) if grade in GRADES else None


def diff(baseline: Mapping[str, Mapping[str, Any]],
         current: Mapping[str, Mapping[str, Any]]) -> Diff:
    """Sort every outcome id of ``baseline`` and ``current`` (id → outcome) into a
    :class:`Diff` category; the current run's order first, then removed ids."""
    result = Diff()
    for oid, after in current.items():
        before = baseline.get(oid)
        change = Change(oid, before, after)
        if before is None:
            result.added.append(change)
            continue
        v0, v1 = before["verdict"], after["verdict"]
        g0, g1 = _grade_rank(before), _grade_rank(after)
        if v0 in PASSING and v1 in FAILING:
            result.newly_failing.append(change)
        elif v0 in FAILING and v1 in PASSING:
            result.newly_passing.append(change)
        elif v0 != v1:
            result.verdict_changed.append(change)
        elif g0 is not None and g1 is not None and g1 > g0:
            result.grade_worse.append(change)
        elif g0 is not None and g1 is not None and g1 < g0:
            result.grade_better.append(change)
        else:
            result.unchanged += 1
    for oid, before in baseline.items():
        if oid not in current:
            result.removed.append(Change(oid, before, None))
    return result

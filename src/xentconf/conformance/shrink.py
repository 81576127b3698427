"""Shrinking a failing case further than hypothesis can: on the arrays themselves.

Hypothesis draws shapes and a seed and numpy fills the arrays, so it shrinks the draws but
never an element value, and a smaller draw gives different values (the bug may vanish).
:func:`simplify` takes the case hypothesis settled on and, while ``fails`` says the SAME
kind of failure persists, tries in turn:

* fewer rows: one index (the failing row first), then halves, along each batch dimension;
  then a lower rank (a batch dimension of size 1 dropped, down to the feature's floor);
* fewer classes: blocks of columns removed, never a column a label names (sparse labels
  are renumbered, ``C`` itself stays "C"), never below the feature's floor of classes;
* simpler values: integer labels set to 0; elements of the float arrays set to 0 (in
  blocks, then one by one), then to ±1 or a nearby small integer.

Every array all 0 is tried first (one call each: the biggest win when a call is slow).
Every step keeps what it reached, so it can stop at any time (``deadline``); each try is
one call of the target.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import numpy as np

from .strategies import Case

__all__ = ["simplify"]

_LOGITS = ("features", "logits", "y_pred")
_LABELS = ("labels", "onehot_labels", "y_true")
SINGLE_ROWS = 8  # single rows tried along a dimension (the failing one first)
SINGLE_VALUES = 48  # elements simplified one by one


@dataclasses.dataclass
class _Layout:
    """Where rows and classes are in a case's arrays (class axis moved last)."""

    logits: str
    axis: int  # the class axis of the logits
    batch: tuple[int, ...]  # batch shape
    classes: int
    full: list[str]  # arrays shaped like the logits (dense labels)
    rows: list[str]  # arrays along the batch dimensions (sparse labels, weights)
    class_vectors: list[str]  # dense labels broadcast from [C] or [1, C]
    sparse: str | None  # the name of integer labels


def _layout(case: Case) -> _Layout | None:
    args = case.args
    name = next((n for n in _LOGITS if n in args), None)
    if name is None:
        return None
    x = args[name]
    if not isinstance(x, np.ndarray) or x.ndim == 0 or x.dtype.kind not in "fV" and \
            x.dtype.name != "bfloat16":
        return None
    axis = args.get("axis", case.init.get("axis", -1))
    if not isinstance(axis, int) or not -x.ndim <= axis < x.ndim:
        return None
    axis %= x.ndim
    moved = np.moveaxis(x, axis, -1)
    batch, classes = moved.shape[:-1], moved.shape[-1]
    lay = _Layout(name, axis, batch, classes, [], [], [], None)
    for k, v in args.items():
        if k == name or not isinstance(v, np.ndarray) or v.ndim == 0:
            continue
        if k in _LABELS and v.dtype.kind in "iu":
            if v.shape == batch or v.shape == (*batch, 1):
                lay.sparse = k
                lay.rows.append(k)
                continue
            return None
        if k in _LABELS and v.shape == x.shape:
            lay.full.append(k)
            continue
        if k in _LABELS and v.shape in ((classes,), (1, classes)):
            lay.class_vectors.append(k)
            continue
        if k in _LABELS:
            return None
        nb = len(batch)
        if v.ndim >= nb and all(v.shape[i] in (batch[i], 1) for i in range(nb)) and \
                v.shape[nb:] in ((), (1,)):
            lay.rows.append(k)
            continue
        if v.ndim < nb and v.size == 1:
            continue
        return None
    return lay


def _with(case: Case, **args) -> Case:
    return dataclasses.replace(case, args={**case.args, **args})


def _take_rows(case: Case, lay: _Layout, dim: int, keep: np.ndarray) -> Case:
    out = {}
    x = np.moveaxis(case.args[lay.logits], lay.axis, -1)
    out[lay.logits] = np.moveaxis(np.take(x, keep, axis=dim), -1, lay.axis)
    for k in lay.full:
        y = np.moveaxis(case.args[k], lay.axis, -1)
        out[k] = np.moveaxis(np.take(y, keep, axis=dim), -1, lay.axis)
    for k in lay.rows:
        v = case.args[k]
        if v.shape[dim] == lay.batch[dim]:
            out[k] = np.take(v, keep, axis=dim)
    return _with(case, **out)


def _row_candidates(case: Case, lay: _Layout, first_row: int | None) -> Iterator[Case]:
    for dim, n in enumerate(lay.batch):
        if n <= 1:
            continue
        order = list(range(n))
        if first_row is not None and dim == 0 and 0 <= first_row < n:
            order.remove(first_row)
            order.insert(0, first_row)
        for i in order[:SINGLE_ROWS]:
            yield _take_rows(case, lay, dim, np.array([i]))
        half = n // 2
        yield _take_rows(case, lay, dim, np.arange(half))
        yield _take_rows(case, lay, dim, np.arange(half, n))


def _rank_candidates(case: Case, lay: _Layout, min_rank: int) -> Iterator[Case]:
    """A batch dimension of size 1 dropped (down to ``min_rank`` batch dimensions)."""
    if len(lay.batch) <= min_rank or "axis" in case.args or "axis" in case.init:
        return  # (an axis argument would need renumbering: keep the rank)
    for dim, n in enumerate(lay.batch):
        if n != 1:
            continue
        out = {}
        x = np.moveaxis(case.args[lay.logits], lay.axis, -1)
        out[lay.logits] = np.moveaxis(np.squeeze(x, dim), -1, lay.axis - (dim < lay.axis))
        for k in lay.full:
            y = np.moveaxis(case.args[k], lay.axis, -1)
            out[k] = np.moveaxis(np.squeeze(y, dim), -1, lay.axis - (dim < lay.axis))
        for k in lay.rows:
            out[k] = np.squeeze(case.args[k], dim)
        yield _with(case, **out)


def _drop_classes(case: Case, lay: _Layout, drop: np.ndarray) -> Case:
    keep = np.setdiff1d(np.arange(lay.classes), drop)
    out = {}
    x = np.moveaxis(case.args[lay.logits], lay.axis, -1)
    out[lay.logits] = np.moveaxis(x[..., keep], -1, lay.axis)
    for k in lay.full:
        y = np.moveaxis(case.args[k], lay.axis, -1)
        out[k] = np.moveaxis(y[..., keep], -1, lay.axis)
    for k in lay.class_vectors:
        out[k] = case.args[k][..., keep]
    if lay.sparse is not None:
        y = case.args[lay.sparse]
        wide = y.astype(np.int64)
        below = np.searchsorted(np.sort(drop), wide, side="left")  # dropped classes < label
        inside = (wide >= 0) & (wide <= lay.classes)
        out[lay.sparse] = np.where(inside, wide - below, wide).astype(y.dtype)
    return _with(case, **out)


def _class_candidates(case: Case, lay: _Layout, floor: int) -> Iterator[Case]:
    if "ignore_class" in case.init:
        return
    spare = lay.classes - max(floor, 1)
    if spare <= 0:
        return
    needed = np.zeros(lay.classes, bool)
    if lay.sparse is not None:
        y = case.args[lay.sparse].astype(np.int64).ravel()
        needed[y[(y >= 0) & (y < lay.classes)]] = True
    for k in lay.full + lay.class_vectors:
        y = np.moveaxis(np.asarray(case.args[k], np.float64), lay.axis, -1) \
            if k in lay.full else np.asarray(case.args[k], np.float64)
        needed |= (y.reshape(-1, lay.classes) != 0).any(axis=0)
    free = np.flatnonzero(~needed)[::-1]  # the last classes first
    if free.size == 0:
        return
    free = free[:spare]
    size = free.size
    while size >= 1:
        for start in range(0, free.size, size):
            yield _drop_classes(case, lay, free[start:start + size])
        if size == 1:
            break
        size = max(size // 2, 1)


def _float_arrays(case: Case) -> list[str]:
    return [k for k, v in case.args.items() if isinstance(v, np.ndarray) and v.size and
            (v.dtype.kind == "f" or v.dtype.name == "bfloat16")]


def _set(case: Case, name: str, flat_idx: np.ndarray, values) -> Case | None:
    a = case.args[name]
    b = a.copy().reshape(-1)
    new = np.asarray(values, np.float64)
    with np.errstate(all="ignore"):
        b[flat_idx] = new.astype(a.dtype) if new.ndim else np.asarray(new).astype(a.dtype)
    if np.array_equal(b.view(np.uint8), a.reshape(-1).view(np.uint8)):
        return None
    return _with(case, **{name: b.reshape(a.shape)})


def _simple(v: np.ndarray) -> np.ndarray:
    """Elements already simple: 0, or a small integer (|v| ≤ 8)."""
    with np.errstate(invalid="ignore"):
        f = v.astype(np.float64)
        return np.isfinite(f) & (f == np.round(f)) & (np.abs(f) <= 8)


def _zero_candidates(case: Case) -> Iterator[Case]:
    """Every float array all 0 at once, then each float array alone all 0."""
    names = [k for k in _float_arrays(case) if np.any(case.args[k].astype(np.float64) != 0)]
    if len(names) > 1:
        yield _with(case, **{k: np.zeros_like(case.args[k]) for k in names})
    for k in names:
        yield _with(case, **{k: np.zeros_like(case.args[k])})


def _label_candidates(case: Case) -> Iterator[Case]:
    """Integer labels toward 0: all at once, then one by one."""
    for name in _LABELS:
        y = case.args.get(name)
        if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or not y.size:
            continue
        todo = np.flatnonzero(y.reshape(-1) != 0)
        if todo.size > 1:
            yield _with(case, **{name: np.zeros_like(y)})
        for i in todo[:SINGLE_VALUES]:
            flat = y.reshape(-1).copy()
            flat[i] = 0
            yield _with(case, **{name: flat.reshape(y.shape)})


def _value_candidates(case: Case) -> Iterator[Case]:
    yield from _label_candidates(case)
    for name in _float_arrays(case):
        a = case.args[name]
        todo = np.flatnonzero(a.reshape(-1).astype(np.float64) != 0)  # NaN included
        size = todo.size
        while size >= 1 and todo.size:  # blocks of elements to 0
            for start in range(0, todo.size, size):
                c = _set(case, name, todo[start:start + size], 0.0)
                if c is not None:
                    yield c
            if size == 1 or size <= todo.size // 64:
                break
            size = max(size // 2, 1)
    for name in _float_arrays(case):
        flat = case.args[name].reshape(-1).astype(np.float64)
        todo = np.flatnonzero(~_simple(case.args[name].reshape(-1)) & np.isfinite(flat))
        for i in todo[:SINGLE_VALUES]:
            v = flat[i]
            seen = set()
            for t in (np.sign(v), np.round(v), np.trunc(v * 4) / 4):
                if t in seen or t == v or abs(t) > 2**20:
                    continue
                seen.add(t)
                c = _set(case, name, np.array([i]), t)
                if c is not None:
                    yield c


def simplify(case: Case, fails: Callable[[Case], object], deadline: float, *,
             min_classes: int = 1, min_rank: int = 1, first_row: int | None = None,
             max_calls: int = 2000) -> tuple[Case, object]:
    """The smallest case reached while ``fails(case)`` (one target call) returns something
    true (what it returned for the case kept is returned with it), before ``deadline``
    (``time.perf_counter()``). ``min_classes`` and ``min_rank`` (batch dimensions) are the
    feature's floors."""
    best, got = case, None
    calls = 0

    def stages(c: Case):
        yield _zero_candidates(c)  # one try each, and the biggest win in size
        lay = _layout(c)
        if lay is not None and c.feature != "batch0":
            yield _row_candidates(c, lay, first_row)
            yield _rank_candidates(c, lay, min_rank)
            yield _class_candidates(c, lay, min_classes)
        yield _value_candidates(c)

    progress = True
    while progress:
        progress = False
        for candidates in stages(best):
            for cand in candidates:
                if time.perf_counter() > deadline or calls >= max_calls:
                    return best, got
                calls += 1
                r = fails(cand)
                if r:
                    best, got = cand, r
                    progress = True
                    break
            if progress:
                break  # start again from the new (smaller) case
    return best, got

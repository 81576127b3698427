"""``xentconf sweep``: exhaustive sweeps of the C = 2 sparse losses, as tasks on Dask.

A sweep is a slice of a pair space (:func:`~xentconf.conformance.sweep.pair_rows`) for one
API and dtype, cut into *chunks* of consecutive pairs. Each chunk is one Dask task,
:func:`run_chunk`: it calls the target in a :class:`~.sandbox.Sandbox` (so a crash or a
hang becomes the chunk's outcome; each worker process loads the target itself and keeps
it loaded for its next tasks, the one thing a worker keeps between tasks), judges every
row in one vectorized call of the oracle's fast tier with the suite's verdict, and returns
a small summary (counts per grade and verdict, failure kinds with their smallest examples
and a reproducer, the failure map).
It keeps no results between tasks.

The driver (:func:`execute`) persists every finished chunk under ``OUT/chunks/`` at once
(atomically) and drops its result from the cluster, so a sweep that is stopped, or that
loses a worker, resumes where it was: chunks on disk are never computed again. At the end
it merges the chunks into one results document (``OUT/results.json``, the ``sweeps`` key
of the results schema) that ``xentconf report`` reads with ordinary runs.
"""

from __future__ import annotations

import atexit
import json
import math
import multiprocessing
import os
import platform
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xentconf import __version__, results
from xentconf.oracle import GRADES
from xentconf.protocol import API_SHORT, Call, Setup

from . import deviations as devmod
from .checker import Checker, TestSpec, _Record, support
from .sandbox import Sandbox
from .strategies import Case
from .sweep import GRID, map_axes, map_bins, pair_rows
from .verdict import Raised, grade_index, judge

__all__ = ["CHUNK_PAIRS", "EXAMPLES", "SweepError", "SweepPlan", "check_scheduler",
           "chunk_jobs", "combine_chunks", "connect", "execute", "judge_slice", "merge_chunks",
           "run_chunk", "summary"]

CHUNK_PAIRS = 1 << 19  # pairs per chunk (two rows each): one task, one file (1 << 18 gave
# 2 workers 1.69-1.82x one, 1 << 19 1.78-1.97x, four runs each, alternating: the driver's
# and the scheduler's share per pair halves; see benchmarks/README.md)
# pairs judged at once inside a chunk: the engine's temporaries stay in a core's cache
# (twice as many took 15% longer per pair, four times 60%), while a task of four blocks
# costs the driver and the scheduler a quarter of the time per pair
BLOCK_PAIRS = 1 << 16
OLD_CHUNK_PAIRS = 1 << 16  # the chunks of a folder whose sweep.json does not say
EXAMPLES = 3  # smallest examples kept per failure kind
BAD_VERDICTS = ("fail", "crash", "timeout", "error")


class SweepError(Exception):
    """The sweep cannot go on (a usage or environment problem); one line says why."""


@dataclass(frozen=True)
class SweepPlan:
    """What every chunk task needs to judge its rows (pickled to the workers)."""

    spec: Any  # sandbox.TargetSpec
    target_name: str
    device: str
    profile: str
    accuracy: str
    keras: str | None
    timeout: float
    isolate: bool
    callable_target: bool
    deviations: tuple = ()
    path: tuple[str, ...] = ()  # sys.path entries a callable target's module needs

    @classmethod
    def of(cls, run, path: tuple[str, ...] = ()) -> SweepPlan:
        """The plan of a validated, resolved run (``options.RunConfig``)."""
        return cls(spec=run.spec, target_name=run.target_name, device=run.device,
                   profile=run.profile, accuracy=run.accuracy, keras=run.info.keras,
                   timeout=run.timeout, isolate=run.isolate,
                   callable_target=run.callable_target, deviations=tuple(run.deviations),
                   path=path if run.callable_target else ())

    def test_id(self, api: str, dtype: str) -> str:
        return f"{self.target_name}-{self.device}-{dtype}-{API_SHORT[api]}-sweep"

    def fingerprint(self) -> dict:
        """What must match for chunks on disk to be reused."""
        return {"target": self.spec.name, "options": repr(self.spec.options),
                "device": self.device, "profile": self.profile, "accuracy": self.accuracy,
                "deviations": sorted(d.id for d in self.deviations)}


# ------------------------------------------------------------------ selection


def chunk_jobs(api: str, dtype: str, start: int, stop: int,
               chunk: int = CHUNK_PAIRS) -> list[tuple[str, str, int, int]]:
    """The chunks of pairs ``start`` to ``stop``, aligned to multiples of ``chunk`` (so a
    slice resumes the chunks of a wider sweep)."""
    out = []
    lo = start
    while lo < stop:
        hi = min(stop, (lo // chunk + 1) * chunk)
        out.append((api, dtype, lo, hi))
        lo = hi
    return out


def chunk_name(job: tuple[str, str, int, int]) -> str:
    api, dtype, lo, hi = job
    return f"{API_SHORT[api]}-{dtype}-{lo:012x}-{hi:012x}.json"


# ------------------------------------------------------------------ one chunk (a task)


def _classes(v: np.ndarray, dtype: str) -> np.ndarray:
    """0 normal, 1 zero, 2 subnormal, 3 +inf, 4 -inf, 5 nan of every value."""
    tiny = float(np.finfo(np.float16).tiny) if dtype == "float16" else \
        float(np.finfo(np.float32).tiny)
    a = np.abs(v)
    with np.errstate(invalid="ignore"):
        return np.select([np.isnan(v), v == np.inf, v == -np.inf, v == 0, a < tiny],
                         [5, 3, 4, 1, 2], 0).astype(np.int8)


_CLASS = ("normal", "zero", "subnormal", "+inf", "-inf", "nan")


def _hex(v: float) -> str:
    v = float(v)
    return repr(v) if math.isnan(v) or math.isinf(v) else v.hex()


def _empty(plan: SweepPlan, api: str, dtype: str, lo: int, hi: int) -> dict:
    return {"api": api, "dtype": dtype, "start": lo, "stop": hi, "rows": 2 * (hi - lo),
            "status": "done", "message": "", "grades": {}, "verdicts": {}, "kinds": {},
            "cells": [], "worst_budget": 0.0, "seconds": 0.0,
            "worker": _worker()}


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _cells(dtype: str, lo: int, hi: int, bad_rows: np.ndarray | None,
           row_units: np.ndarray | None = None) -> list:
    """[x, y, rows, failing rows, worst error] of every map cell the chunk touches: the
    worst error of the cell's rows in units of their stable budgets (0: every row exact;
    inf: a wrong NaN or inf, or a failure of the whole call; None: not judged)."""
    bx, by = map_bins(dtype, lo, hi)
    key = by * 64 + bx
    rows = np.bincount(key, minlength=64 * 64) * 2
    worst = np.zeros(64 * 64)
    if bad_rows is None:
        bad = rows
    else:
        per_pair = _per_row(bad_rows.astype(np.int64), key.size, np.add)
        bad = np.bincount(key, weights=per_pair, minlength=64 * 64).astype(np.int64)
        if row_units is not None:
            per = _per_row(row_units, key.size, np.maximum)
            if key.size and (np.diff(key) >= 0).all():  # a 16-bit chunk: sorted bins
                starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
                worst[key[starts]] = np.maximum.reduceat(per, starts)
            else:
                np.maximum.at(worst, key, per)
    nz = np.flatnonzero(rows)
    return [[int(k % 64), int(k // 64), int(rows[k]), int(bad[k]),
             None if row_units is None else _worst(worst[k])] for k in nz]


def _per_row(a: np.ndarray, n: int, op) -> np.ndarray:
    """``op`` over each of ``n`` rows of ``a`` (a few columns: numpy's reductions along a
    short last axis were a tenth of a chunk's time)."""
    a = a.reshape(n, -1)
    out = a[:, 0]
    for j in range(1, a.shape[1]):
        out = op(out, a[:, j])
    return out


def _worst(v) -> float | None:
    """A cell's worst error as the chunk files and results hold it (3 digits; the string
    "inf" read back as inf)."""
    if v is None:
        return None
    v = float(results.number(v))
    return v if not math.isfinite(v) else float(f"{v:.3g}")


_SANDBOXES: dict = {}  # this worker process's loaded targets (a cache: no results)
_INFO: dict = {}  # and what each of them said it implements


def _sandbox_key(plan: SweepPlan) -> tuple:
    return (plan.spec, plan.timeout, plan.isolate)


def _sandbox(plan: SweepPlan) -> Sandbox:
    """The target's sandbox in this worker process, started by the first task that needs
    it and kept for the next ones: starting a target's process takes about a second, as
    long as judging a chunk. A crash or a timeout kills the child; the next call starts a
    fresh one, so a task never sees another task's target state beyond its loading."""
    key = _sandbox_key(plan)
    box = _SANDBOXES.get(key)
    if box is None:
        if not _SANDBOXES:
            atexit.register(_close_sandboxes)
        box = _SANDBOXES[key] = Sandbox(plan.spec, timeout=plan.timeout, isolate=plan.isolate)
    return box


def _close_sandboxes() -> None:
    _INFO.clear()
    while _SANDBOXES:
        _SANDBOXES.popitem()[1].close()


_MALLOC_TUNED: list = []


def _keep_freed_memory() -> None:
    """Have glibc keep a worker's freed memory for the next chunk instead of handing it
    back: a chunk's temporaries (a few MB each) were fresh mappings or trimmed heap, and
    faulting them in again was 30% of a chunk's CPU time (the system time, and cold cache
    lines). Once per worker process, on glibc only; the peak is a few hundred MB."""
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED.append(True)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest on 64-bit builds
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):
        pass


def run_chunk(plan: SweepPlan, api: str, dtype: str, lo: int, hi: int) -> dict:
    """Judge pairs ``lo`` to ``hi`` of the ``dtype`` sweep of ``api`` (one Dask task)."""
    _keep_freed_memory()
    for p in plan.path:
        if p not in sys.path:
            sys.path.insert(0, p)
    t0 = time.perf_counter()
    c0 = time.process_time()
    if plan.isolate and multiprocessing.current_process().daemon:
        out = _empty(plan, api, dtype, lo, hi)
        out.update(status="error", verdicts={"error": out["rows"]},
                   cells=_cells(dtype, lo, hi, None),
                   message="this Dask worker is a daemon process and cannot start the "
                           "target's child process: start the workers with "
                           "DASK_DISTRIBUTED__WORKER__DAEMON=False, or give --isolate none")
        return out
    sandbox = _sandbox(plan)
    try:
        try:
            info = _INFO.get(id(sandbox))
            if info is None:  # asked once per loaded target (it reads package metadata)
                info = _INFO[id(sandbox)] = sandbox.info()
            out = None
        except RuntimeError as exc:
            info = None
            out = _empty(plan, api, dtype, lo, hi)
            out.update(status="error", message=f"the target cannot be loaded: {exc}",
                       verdicts={"error": out["rows"]}, cells=_cells(dtype, lo, hi, None))
        if info is not None:
            checker = Checker(
                sandbox=sandbox, target_name=plan.target_name, device=plan.device,
                profile=plan.profile, keras=plan.keras, accuracy=plan.accuracy,
                deviations=list(plan.deviations),
                support_of=lambda a, f: support(info, a, f),
                callable_spec=plan.callable_target, target_options=plan.spec.kwargs)
            out = judge_slice(plan, checker, api, dtype, lo, hi)
            del out["chunks"]
            bad = out.pop("crashed")
            if bad:  # the whole chunk is tried again by the next run
                out = _empty(plan, api, dtype, lo, hi)
                out.update(status=bad[0]["verdict"], message=bad[0]["message"],
                           verdicts={bad[0]["verdict"]: out["rows"]},
                           cells=_cells(dtype, lo, hi, None))
            out["worker"] = _worker()
            out["version"] = getattr(info, "version", None)  # the framework's
    except BaseException:
        _SANDBOXES.pop(_sandbox_key(plan), None)
        _INFO.pop(id(sandbox), None)
        sandbox.close()
        raise
    out["seconds"] = round(time.perf_counter() - t0, 4)
    # this worker's CPU time (the target's own process not included): on a shared
    # machine the wall time above counts the waits for a CPU too
    out["cpu_seconds"] = round(time.process_time() - c0, 4)
    return out


def _judge_chunk(plan: SweepPlan, checker: Checker, api: str, dtype: str, lo: int,
                 hi: int) -> dict:
    out = _empty(plan, api, dtype, lo, hi)
    spec = TestSpec(plan.test_id(api, dtype), api, dtype, "sweep", "native")
    x, labels = pair_rows(dtype, lo, hi)
    n = labels.size
    names, args, exp, up = checker.sweep_expectation(api, x, labels, lo & 0x7FFFFFFF)
    setup = Setup(api, device=plan.device, profile=plan.profile, grad=up is not None)
    res = checker.sandbox.call(setup, Call(api, args, {}, upstream=up),
                               timeout=max(plan.timeout * 10, 300.0))
    if res.kind in ("crash", "timeout", "error"):
        out.update(status=res.kind, message=res.text, verdicts={res.kind: n},
                   cells=_cells(dtype, lo, hi, None))
        return out
    answer = res.outputs if res.kind == "ok" else res.raised
    judged = checker.output_names(api, exp, up is not None)
    v = judge(exp, answer, plan.accuracy, judged)
    row_grade = np.zeros(n, np.int8)
    row_wrong = np.zeros(n, bool)
    row_out = np.zeros(n, np.int8)
    if isinstance(answer, Raised) or not v.elements:  # one structural failure, every row
        row_grade[:] = grade_index("fail")
        message = " ".join(v.message.split())[:300]
        kinds = {0: (message, None)}
        row_kind = np.zeros(n, np.int64)
        row_units = np.full(n, np.inf)
    else:
        outs = list(v.elements)
        row_units = np.zeros(n)
        for k, name in enumerate(outs):
            g, w, u = v.elements[name]
            g = _per_row(g, n, np.maximum)
            w = _per_row(w, n, np.logical_or)
            row_units = np.maximum(row_units, _per_row(u, n, np.maximum))
            worse = g > row_grade
            row_out[worse] = k
            row_grade = np.maximum(row_grade, g)
            row_wrong |= w
        kinds = None
        row_kind = None
    required = grade_index(plan.accuracy)
    bad = (row_grade > required) | (row_grade == grade_index("fail"))
    excused = np.zeros(n, bool)
    if bad.any() and plan.deviations:
        cid = devmod.case_id(spec.id, v.tags)
        for d in devmod.matching(list(plan.deviations), cid, plan.keras, plan.profile):
            ok = (row_grade <= grade_index(d.grade)) & (~row_wrong | d.nonfinite)
            excused |= bad & ok
    failing = bad & ~excused
    out["grades"] = {GRADES[i]: int(c) for i, c in
                     enumerate(np.bincount(row_grade, minlength=len(GRADES))) if c}
    verdicts = {"pass": int((~bad).sum()), "deviation": int(excused.sum()),
                "fail": int(failing.sum())}
    out["verdicts"] = {k: c for k, c in verdicts.items() if c}
    out["worst_budget"] = v.worst_budget if v.worst_budget is not None else None
    out["cells"] = _cells(dtype, lo, hi, failing, row_units)
    if not failing.any():
        return out
    rows = np.flatnonzero(failing)
    a, b = x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)
    if row_kind is None:  # a kind: the output, grade, wrong NaN/inf and the logits' classes
        ca, cb = _classes(a, dtype), _classes(b, dtype)
        row_kind = (((row_out.astype(np.int64) * len(GRADES) + row_grade) * 2 + row_wrong)
                    * 6 + ca) * 6 + cb
        kinds = {}
        for c in np.unique(row_kind[rows]):
            c = int(c)
            wrong, gi = (c // 36) % 2, (c // 72) % len(GRADES)
            name = outs[c // (72 * len(GRADES))]
            kinds[c] = (f"{name}: {GRADES[gi]}{', wrong NaN/inf' if wrong else ''}; "
                        f"logits ({_CLASS[(c // 6) % 6]}, {_CLASS[c % 6]})", name)
    size = np.where(np.isfinite(a) & np.isfinite(b), np.maximum(np.abs(a), np.abs(b)), np.inf)
    for c, (label, name) in kinds.items():
        these = rows[row_kind[rows] == c]
        pick = these[np.lexsort((these, size[these]))][:EXAMPLES]
        examples = []
        for r in pick:
            r = int(r)
            ex = {"pair": lo + r // 2, "logits": [_hex(a[r]), _hex(b[r])],
                  "label": int(labels[r]), "grade": GRADES[int(row_grade[r])],
                  "size": _hex(size[r])}
            if name is not None:
                got = np.asarray(answer[name]).reshape(n, -1)[r]
                want = exp.outputs[name].rounded64.reshape(n, -1)[r]
                ex.update(output=name, got=[_hex(g) for g in got],
                          expected=[_hex(w) for w in want])
            examples.append(ex)
        out["kinds"][label] = {"count": int(these.size), "examples": examples,
                               "reproducer": _reproducer(checker, spec, names, x, labels,
                                                         int(pick[0]))}
    return out


def judge_slice(plan: SweepPlan, checker: Checker, api: str, dtype: str, start: int,
                stop: int) -> dict:
    """Pairs ``start`` to ``stop`` judged block by block in this process with ``checker``
    (its target already loaded), combined into one record (:func:`combine_chunks`): a
    chunk's task, and the pytest suite's pair-sweep tests."""
    done = []
    for _, _, lo, hi in chunk_jobs(api, dtype, start, stop, chunk=BLOCK_PAIRS):
        t0 = time.perf_counter()
        c = _judge_chunk(plan, checker, api, dtype, lo, hi)
        c["seconds"] = round(time.perf_counter() - t0, 4)
        done.append(c)
    return combine_chunks(done)


def _reproducer(checker: Checker, spec: TestSpec, names, x, labels, r: int) -> str | None:
    """A standalone script for row ``r`` (re-run on its own as an ordinary one-row case)."""
    one = {names[0]: x[r:r + 1], names[1]: labels[r:r + 1]}
    case = Case(spec.api, spec.dtype, "sweep", one, {}, ("sweep",), r)
    try:
        seen = checker.check_case(spec, case, _Record())
        return checker.reproducer(spec, seen)
    except Exception:  # noqa: BLE001 - the counts stand without a script
        return None


# ------------------------------------------------------------------ merging


def _example_order(e: dict) -> tuple:
    s = e["size"]
    return (math.inf if s in ("inf", "nan") else float.fromhex(s), e["pair"], e["label"])


def combine_chunks(chunks: list[dict]) -> dict:
    """Chunks folded into one chunk-shaped record (counts summed, map cells added, each
    failure kind's smallest examples and best reproducer kept, the chunks where the target
    malfunctioned listed under ``crashed``); a combined record combines again."""
    grades: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    kinds: dict[str, dict] = {}
    cells: dict[tuple[int, int], list[int]] = {}
    crashed: list[dict] = []
    worst = 0.0
    for c in chunks:
        for k, n in c["grades"].items():
            grades[k] = grades.get(k, 0) + n
        for k, n in c["verdicts"].items():
            verdicts[k] = verdicts.get(k, 0) + n
        crashed += c.get("crashed", [])
        if c["status"] != "done":
            crashed.append({"start": c["start"], "stop": c["stop"], "verdict": c["status"],
                            "message": c["message"]})
        for label, kd in c["kinds"].items():
            m = kinds.setdefault(label, {"count": 0, "examples": [], "reproducer": None})
            m["count"] += kd["count"]
            if kd["examples"] and (not m["examples"] or _example_order(kd["examples"][0]) <
                                   _example_order(m["examples"][0])):
                m["reproducer"] = kd["reproducer"]
            m["examples"] = sorted(m["examples"] + kd["examples"],
                                   key=_example_order)[:EXAMPLES]
        for xb, yb, n, bad, *w in c["cells"]:
            cell = cells.setdefault((xb, yb), [0, 0, None])
            cell[0] += n
            cell[1] += bad
            w = _worst(w[0] if w and w[0] is not None else None)
            if w is not None:
                cell[2] = w if cell[2] is None else max(cell[2], w)
        wb = _worst(c.get("worst_budget"))
        if wb is not None:
            worst = max(worst, wb)
    return {"api": chunks[0]["api"] if chunks else None,
            "dtype": chunks[0]["dtype"] if chunks else None,
            "start": min((c["start"] for c in chunks), default=0),
            "stop": max((c["stop"] for c in chunks), default=0),
            "rows": sum(c["rows"] for c in chunks), "status": "done", "message": "",
            "chunks": sum(c.get("chunks", 1) for c in chunks),
            "grades": grades, "verdicts": verdicts, "kinds": kinds, "crashed": crashed,
            "cells": [[xb, yb, n, bad, w] for (xb, yb), (n, bad, w) in sorted(cells.items())],
            "worst_budget": worst, "seconds": sum(c["seconds"] for c in chunks)}


def merge_chunks(plan: SweepPlan, api: str, dtype: str, start: int, stop: int,
                 chunks: list[dict], expected_chunks: int) -> dict:
    """One ``sweeps`` entry of the results document from the chunks done so far (plain or
    combined ones)."""
    c = combine_chunks(chunks)
    failures = [{"kind": label, **m} for label, m in
                sorted(c["kinds"].items(), key=lambda kv: -kv[1]["count"])]
    xs, ys = map_axes(dtype)
    return results.sweep(
        id=plan.test_id(api, dtype), api=api, api_short=API_SHORT[api],
        dtype=dtype, space="every pair of bit patterns" if dtype != "float32" else
        f"every bit pattern of logit 0 against {len(GRID)} values of logit 1",
        grid=list(GRID) if dtype == "float32" else None,
        start=start, stop=stop, rows=2 * (stop - start), rows_done=c["rows"],
        chunks=expected_chunks, chunks_done=c["chunks"], required=plan.accuracy,
        grades=c["grades"], verdicts=c["verdicts"], worst_budget=c["worst_budget"],
        failures=failures, crashed_chunks=c["crashed"][:20],
        map={"x": "logit 0 (sign, exponent)", "y": "logit 1 (sign, exponent)"
             if dtype != "float32" else "logit 1 (grid value)",
             "x_bins": xs, "y_bins": ys, "cells": c["cells"]},
        duration_s=round(c["seconds"], 3))


# ------------------------------------------------------------------ the driver


def check_scheduler(address: str) -> None:
    """SweepError (one line) unless ``address`` is a scheduler address that accepts a
    connection within 3 s (so a wrong address fails at once, not after a long wait)."""
    m = re.fullmatch(r"(tcp|tls)://([^:/\s]+|\[[0-9a-fA-F:]+\]):(\d{1,5})/?", address)
    if not m:
        raise SweepError(f"--scheduler {address}: not a scheduler address; give "
                         "tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786)")
    host, port = m.group(2).strip("[]"), int(m.group(3))
    try:
        with socket.create_connection((host, port), timeout=3.0):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise SweepError(f"--scheduler {address}: cannot connect ({why}); start a Dask "
                         "scheduler there (dask scheduler), or leave --scheduler out for a "
                         "local cluster") from None


def connect(scheduler: str | None, workers: int):
    """A Dask client: to ``scheduler``, or to an embedded LocalCluster of ``workers``
    single-threaded worker processes. Returns (client, cluster or None)."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    # the tasks start the target in a child process: workers must not be daemons
    dask.config.set({"distributed.worker.daemon": False})
    if scheduler is not None:
        check_scheduler(scheduler)
        try:
            return Client(scheduler, timeout=10), None
        except Exception as exc:  # noqa: BLE001
            raise SweepError(f"--scheduler {scheduler}: cannot reach a Dask scheduler "
                             f"({type(exc).__name__}: {exc})") from None
    # the workers ignore Ctrl-C (the disposition is inherited): the driver alone stops,
    # keeps what is done, and shuts the cluster down
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        # one single-threaded worker per core: the engine's compiled kernels (and the
        # targets' thread pools) get one thread each, not one per core per worker; and
        # glibc's own memory policy (Dask's default MALLOC_TRIM_THRESHOLD_ switches off
        # glibc's adaptive mmap threshold: every chunk's temporaries were fresh mappings,
        # and faulting them in more than doubled the time of a chunk)
        env = {k: "1" for k in ("XENTCONF_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        # Dask's statistical profiler samples every worker's stack every 10 ms: a few
        # per cent of a sweep's time, and nobody reads it here; its event-loop tick
        # (20 ms), memory monitor (100 ms) and system monitor (500 ms) kept an idle
        # 2-worker cluster at 7% of a core, 1.6% at these intervals
        dask.config.set({"distributed.nanny.pre-spawn-environ": env,
                         "distributed.worker.profile.enabled": False,
                         "distributed.admin.tick.interval": "1s",
                         "distributed.worker.memory.monitor-interval": "1s",
                         "distributed.admin.system-monitor.interval": "2s"})
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    finally:
        signal.signal(signal.SIGINT, old)
    return Client(cluster), cluster


class Progress:
    """One status line: chunks, rows, rows/s and the time to go."""

    def __init__(self, total_chunks: int, total_rows: int, stream=None):
        self.total_chunks, self.total_rows = total_chunks, total_rows
        self.chunks = self.rows = 0
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()

    def update(self, rows: int, force: bool = False) -> None:
        self.chunks += 1
        self.rows += rows
        now = time.perf_counter()
        last = self.chunks >= self.total_chunks
        if not (force or last) and now - self.last < (0.5 if self.tty else 10.0):
            return
        self.last = now
        rate = self.rows / max(now - self.t0, 1e-9)
        left = (self.total_rows - self.rows) / rate if rate > 0 else math.inf
        eta = "?" if not math.isfinite(left) else time.strftime("%H:%M:%S", time.gmtime(left))
        line = (f"sweep: {self.chunks}/{self.total_chunks} chunks, {self.rows} rows, "
                f"{rate:,.0f} rows/s, {eta} to go")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=self.stream)


def _load_chunk(path: Path) -> dict | None:
    try:
        c = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # a chunk whose target malfunctioned (crash, timeout, error: perhaps the worker's
    # environment) is tried again by the next run; a judged chunk never is
    ok = isinstance(c, dict) and "verdicts" in c and "cells" in c and c.get("status") == "done"
    return c if ok else None


@dataclass
class Outcome:
    code: int  # 0 every row conforms, 1 some does not, 130 interrupted
    document: dict
    computed: int  # chunks computed by this call
    reused: int  # chunks found on disk


def execute(plan: SweepPlan, sweeps: list[tuple[str, str, int, int]], out: Path, *,
            client, chunk: int | None = None, progress: Progress | None = None,
            on_persist=None, window: int | None = None) -> Outcome:
    """Run ``sweeps`` ((api, dtype, start, stop) each) on ``client``; persist each chunk
    under ``out/chunks`` as it finishes; write ``out/results.json``. ``chunk``: pairs per
    chunk; by default those of the sweep already in ``out`` (so that it resumes), else
    :data:`CHUNK_PAIRS`. SweepError when the output folder cannot take a chunk (chunks
    already written are kept) or holds a sweep of another configuration."""
    from distributed import as_completed

    started = time.time()
    folder = out / "chunks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = out / "sweep.json"
        mine = plan.fingerprint()
        if stamp.is_file():
            theirs = json.loads(stamp.read_text(encoding="utf-8"))
            had = theirs.pop("chunk_pairs", OLD_CHUNK_PAIRS)
            if theirs != mine:
                raise SweepError(f"{out} holds a sweep of another configuration ({theirs}); "
                                 "give another --out, or remove it to start afresh")
            chunk = chunk or had
            if chunk != had:
                raise SweepError(f"{out} holds chunks of {had} pairs: give --chunk {had} "
                                 "(or leave --chunk out) to resume it")
        else:
            chunk = chunk or CHUNK_PAIRS
            results.atomic_write(stamp, json.dumps({**mine, "chunk_pairs": chunk}).encode())
    except OSError as exc:
        raise SweepError(f"--out {out}: cannot write there ({exc.strerror or exc}); give a "
                         "folder you can write to") from None
    jobs = [j for s in sweeps for j in chunk_jobs(*s, chunk=chunk)]
    done: dict[tuple, dict] = {}
    for j in jobs:
        c = _load_chunk(folder / chunk_name(j))
        if c is not None:
            done[j] = c
    todo = [j for j in jobs if j not in done]
    reused = len(done)
    prog = progress or Progress(len(todo), sum(2 * (j[3] - j[2]) for j in todo))
    window = window or max(4 * len(client.scheduler_info().get("workers", {})), 8)
    interrupted = False
    computed = 0
    pending = iter(todo)
    ac = as_completed()
    keys = {}

    def submit(n: int) -> None:
        for j in pending:
            f = client.submit(run_chunk, plan, *j, pure=False,
                              key=f"xentconf-sweep-{chunk_name(j)[:-5]}-{time.time_ns()}")
            keys[f.key] = j
            ac.add(f)
            n -= 1
            if n <= 0:
                return

    submit(window)
    try:
        for fut in ac:
            j = keys.pop(fut.key)
            try:
                c = fut.result()
            except Exception as exc:  # noqa: BLE001 - the task died (KilledWorker) or broke
                c = _empty(plan, *j)
                kind = "crash" if type(exc).__name__ == "KilledWorker" else "error"
                c.update(status=kind, verdicts={kind: c["rows"]},
                         message=f"the task failed: {type(exc).__name__}: {exc}"[:2000],
                         cells=_cells(j[1], j[2], j[3], None))
            fut.release()
            try:
                results.atomic_write(folder / chunk_name(j), results.dumps(c).encode())
            except OSError as exc:
                for f in list(ac.futures):
                    f.cancel()
                raise SweepError(f"--out {out}: cannot write chunk {chunk_name(j)} "
                                 f"({exc.strerror or exc}); the {len(done)} chunks already "
                                 "written are kept: free space, then run the same command "
                                 "again") from None
            done[j] = c
            computed += 1
            prog.update(c["rows"])
            if on_persist is not None:
                on_persist(j, computed)
            submit(1)
    except KeyboardInterrupt:
        interrupted = True
        for f in list(ac.futures):
            f.cancel()
    finally:
        if progress is None:
            prog.close()
    doc = results.new_document({
        "xentconf_version": __version__,
        "target": {"name": plan.target_name, "available": True,
                   "version": next((c["version"] for c in done.values() if c.get("version")),
                                   None),
                   "keras": plan.keras},
        "device": plan.device, "profile": plan.profile, "accuracy": plan.accuracy,
        "python": platform.python_version(), "platform": platform.platform(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 3), "interrupted": interrupted,
        "command": [os.path.basename(sys.argv[0]), *sys.argv[1:]],
    })
    doc["sweeps"] = []
    for s in sweeps:
        mine_jobs = chunk_jobs(*s, chunk=chunk)
        have = [done[j] for j in mine_jobs if j in done]
        doc["sweeps"].append(merge_chunks(plan, *s, have, len(mine_jobs)))
    try:
        results.write(doc, out / "results.json")
    except OSError as exc:
        raise SweepError(f"--out {out}: cannot write results.json ({exc.strerror or exc}); "
                         "the chunks already written are kept") from None
    bad = any(s["verdicts"].get(v) for s in doc["sweeps"] for v in BAD_VERDICTS)
    code = 130 if interrupted else (1 if bad else 0)
    return Outcome(code, doc, computed, reused)


def summary(outcome: Outcome, kinds: int = 5) -> str:
    """A few lines per sweep: rows, chunks, verdicts, grades and the commonest failures."""
    lines = []
    if outcome.document["run"]["interrupted"]:
        lines.append("interrupted: run the same command again to resume")
    for s in outcome.document["sweeps"]:
        v = ", ".join(f"{k} {n}" for k, n in s["verdicts"].items())
        g = ", ".join(f"{k} {n}" for k, n in s["grades"].items())
        lines.append(f"{s['api_short']} {s['dtype']}: {s['rows_done']}/{s['rows']} rows in "
                     f"{s['chunks_done']}/{s['chunks']} chunks: {v or 'nothing judged'}"
                     f"{'; grades ' + g if g else ''}")
        for c in s["crashed_chunks"][:3]:
            lines.append(f"  {c['verdict']} in pairs {c['start']}:{c['stop']}: "
                         f"{' '.join(c['message'].split())[:160]}")
        for f in s["failures"][:kinds]:
            ex = f["examples"][0] if f["examples"] else None
            eg = f" e.g. logits {ex['logits']} label {ex['label']}" if ex else ""
            lines.append(f"  {f['count']} rows: {f['kind']}{eg}")
        if len(s["failures"]) > kinds:
            lines.append(f"  ... {len(s['failures']) - kinds} more failure kinds in "
                         "results.json")
    lines.append(f"chunks: {outcome.computed} computed, {outcome.reused} reused from disk")
    return "\n".join(lines)

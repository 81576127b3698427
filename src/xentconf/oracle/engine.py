"""The vectorized tier: the oracle's answers for millions of rows, certified.

Same plans (:mod:`xentconf.oracle.semantics` decides once), same expectation objects,
different arithmetic: rows are evaluated with numpy in float64 (double-double where the
output is float64), each element carries an a-priori error bound, and an element is
*certified* when both ends of ``value ± bound`` round to the same value of the output
format. The few elements whose bound straddles a rounding boundary go to the exact tier
(Ziv's strategy across tiers), so every rounded value the engine returns is the
correctly rounded exact value — the same answer as the exact tier, much faster.

Error model (``u = 2**-53``): ``+ − × ÷`` are correctly rounded; ``np.log1p`` (where the
probability rows use it) is within ``C_FN = 4u`` relative (measured ≤ 1.11u here); the
logits rows' exponential, sparse and dense, is the engine's own
:func:`~xentconf.oracle.vexp.exp_nonpos` (≤ ``EXP_REL = 3u`` relative,
derived there), and so is their ``log1p`` (:func:`~xentconf.oracle.vexp.log1p_pos`, and
the C = 2 closed form's :func:`~xentconf.oracle.vexp.log1p_unit`, ≤ ``LOG1P_REL = 3u``:
a compiled loop cannot call numpy's, and calling it between two compiled kernels cost
each block two hand-overs of Python's lock); the optional compiled kernel in
:mod:`xentconf.oracle.accel`
evaluates the same operations and gives the same bits; an exponential that underflows
into float64's subnormals errs by at most ``ETA`` absolutely. For a sparse row (``k`` =
the first maximum, ``d = z − m`` with its rounding error ``d_lo`` from an error-free
``two_sum``; for float32 logits the shift is exact and ``two_sum`` is skipped where that
is proven):

* ``e_j = exp(d_j)``: relative error ``C_FN + |d_lo_j|`` (``exp(d + d_lo) = exp(d)(1 +
  d_lo + …)``), plus ``ETA``.
* ``t = Σ_{j≠k} e_j`` by the engine's own summation order
  (:func:`~xentconf.oracle.rows.lane_sum`: chunks of ``LANES`` summed as vectors in a
  binary tree, then the lanes pairwise, ``levels =
  ⌈log2 ⌈C/LANES⌉⌉ + 3``, each adding one rounding to every partial sum): radius
  ``C_FN·t + Σ e_j·|d_lo_j| + levels·u·t`` (the middle sum ``terr`` in the same order).
* ``log s = log1p(t)``: absolute error ``rad(t)/(1 + t − rad(t)) + C_FN·log s``.
* ``L = log s + (−d_y)``, both terms non-negative (no cancellation even for a loss of
  1e-30): ``rad(log s) + u·L + |d_lo_y|``.
* ``p_j = e_j / (1 + t)``; ``p_y − 1 = −t_y / s`` without cancellation (``t_y = t`` when
  ``y = k``, else ``(1 − e_y) + t`` with both terms non-negative).

Dense rows sum ``Y_j (log s − d_j)`` with the same bounds, pairwise
(:func:`~xentconf.oracle.certify.pairwise_sum`; a cancelling sum just gets a wide bound
and goes to the exact tier). Reductions add ``|c_i|·rad(L_i)`` and a pairwise
summation term; gradients scale row bounds by ``|γ_r|``. Rows are processed in blocks
so scratch memory stays bounded (``BLOCK_BYTES``) whatever the input size.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from fractions import Fraction

import numpy as np

from . import accel as _accel
from . import budgets as _budgets
from .certify import (
    ETA,
    F64,
    SLACK,
    U,
    certify_above,
    certify_ball,
    certify_dd_f64,
    frac_to_float,
    kernel_args,
    pairwise_sum,
)
from .evaluate import evaluate as _exact_evaluate
from .evaluate import row_exact
from .exact import certify as _certify_exact
from .expectation import Expectation, OutputExpectation
from .formats import Format
from .plan import Plan
from .rows import (
    _ONE,
    TWO_CLASS_BLOCK,
    _ProbRows,
    _Rows,
    _RowsDD,
    _Workspace,
    dense_grad_into,
    dense_loss_into,
    kernel_source,
    sparse_block,
    sparse_grad_into,
    sparse_loss_into,
    sparse_loss_rows,
    sparse_row_stats,
    two_class_bp,
    two_class_into,
    two_class_rows,
)
from .semantics import upstream_values
from .vexp import EXP_REL

USE_ACCEL = True  # tests switch the compiled kernel off to compare both paths
#: Threads over row blocks and over the certification's ranges (one pool of the engine's
#: own: numba's parallel loops spin their threads after each loop, which took the cores
#: from the next blocks; 2 threads were slower than one): every core unless
#: XENTCONF_THREADS says otherwise (set_threads). Blocks are fixed by the input's shape and
#: each element is computed within its block, so the answer is the same for any count.
THREADS: int | None = None  # None: XENTCONF_THREADS, else every core (read when first used)
_POOL: dict = {}


def set_threads(n: int) -> None:
    """Use ``n`` threads for the engine's row blocks and certification."""
    global THREADS
    THREADS = max(1, int(n))


def threads() -> int:
    """The engine's thread count (:func:`set_threads`; XENTCONF_THREADS; every core)."""
    if THREADS is None:
        set_threads(int(os.environ.get("XENTCONF_THREADS", 0) or os.cpu_count() or 1))
    return THREADS


def _map_blocks(fn, starts) -> list:
    """``[fn(s) for s in starts]`` (each ``s`` a block's first row, or its row range), on
    up to :func:`threads` threads (numpy and the compiled kernels release the GIL; each
    call writes only its own rows).

    The calling thread takes blocks too, beside ``threads() - 1`` pool threads, each taking
    the next block until none is left. A caller that waited instead went to sleep just as
    it woke the pool: Linux then often put both pool threads on one core, and took some
    milliseconds to move one (2 threads ran no faster than one for the first calls after
    a rest). A caller that keeps running keeps its core, and the woken thread is placed on
    an idle one."""
    starts = list(starts)
    n = min(threads(), len(starts))
    if n <= 1:
        return [fn(s) for s in starts]
    pool = _POOL.get(n)
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        pool = _POOL[n] = ThreadPoolExecutor(n - 1, thread_name_prefix="xentconf")
    out = [None] * len(starts)
    taken = itertools.count()  # next() on it is atomic: each block is taken once

    def drain():
        while (i := next(taken)) < len(starts):
            out[i] = fn(starts[i])

    helpers = [pool.submit(drain) for _ in range(n - 1)]
    try:
        drain()
    finally:
        for h in helpers:  # they write into the caller's arrays: wait for every one
            h.exception()
    for h in helpers:
        h.result()  # a helper's error, as the caller's own would have been raised
    return out


CERTIFY_RANGE = 1 << 17  # elements per thread-pool task of _certify, at least


def _certify(mid: np.ndarray, rad: np.ndarray, fmt: Format):
    """:func:`~xentconf.oracle.certify.certify_ball` of flat ``mid ± rad`` in ranges on the
    engine's threads (elementwise: the same answer for any split)."""
    n = mid.size
    step = max(CERTIFY_RANGE, -(-n // threads()))
    if n <= step or mid.shape != rad.shape:
        return certify_ball(mid, rad, fmt)
    m, r = np.ravel(mid), np.ravel(rad)
    rounded, ok = np.empty(n), np.empty(n, dtype=bool)
    _map_blocks(lambda lo: certify_ball(m[lo:lo + step], r[lo:lo + step], fmt,
                                        out=(rounded[lo:lo + step], ok[lo:lo + step])),
                range(0, n, step))
    return rounded.reshape(mid.shape), ok.reshape(mid.shape)


KERNEL_BLOCK_ROWS = 1 << 15  # rows per block of the C = 2 closed form's numpy path
BLOCK_BYTES = 1 << 20  # per float64 scratch array: small enough that freed blocks are reused
# (fresh 8 MiB temporaries spent half the time in page faults); a block uses about ten


def _ranges(n: int, block: int = TWO_CLASS_BLOCK) -> list[tuple[int, int]]:
    """The thread-pool tasks of a compiled range kernel (the C = 2 closed form's loss and
    gradient, the sparse loss), as row ranges ``(lo, hi)``, each one compiled call that
    runs cache-sized blocks of ``block`` rows: guided, each range a ``2 * threads()``-th
    of the rows left (whole blocks, one at least), so that a call starts with large tasks
    and ends with small ones. With equal tasks (a quarter of a thread's share each) one
    thread often had most of a task left when the other ran out, the two not running at
    the same speed: at 2·10⁶ rows of C = 2 on 2 threads, one sat idle for 0.79 ms of a
    10.3 ms map (median of 30 calls), 0.14 ms with guided ranges. Tiny tasks throughout
    cost more than they saved: the threads then spent their time handing the GIL to each
    other."""
    out, lo, part = [], 0, 2 * threads() * block
    while lo < n:
        size = -(-(n - lo) // part) * block  # ceil((n - lo) / part) blocks
        out.append((lo, min(n, lo + size)))
        lo += size
    return out


# --------------------------------------------------------------------------- driver


class _Fallback(Exception):
    pass


def _smoothed(rows, lo: int, hi: int):
    y = rows.y[lo:hi].astype(np.float64)
    if not rows.smoothing:
        return y, np.zeros_like(y)
    eps = float(rows.smoothing)
    cs = rows.smoothing_divisor
    exact_eps = Fraction(eps) == rows.smoothing
    with np.errstate(all="ignore"):
        ys = y * (1 - eps) + eps / cs
        rad = (np.abs(y * (1 - eps)) * 2 * U + abs(eps / cs) * U + U * np.abs(ys)) * SLACK
        if not exact_eps:
            rad = np.full_like(ys, np.inf)
        rad = np.where(np.isfinite(ys), rad, 0.0)
    return ys, rad


def _kernel_labels(rows, lo: int, hi: int):
    """:func:`_smoothed` as the compiled dense kernels take it: without smoothing, the
    plan's labels as they are and one row of zero radii (every row's), no copies."""
    if rows.smoothing:
        return _smoothed(rows, lo, hi)
    return rows.y[lo:hi], np.zeros((1, rows.c))


def _block_rows(n: int, c: int) -> int:
    return max(1, min(n, BLOCK_BYTES // max(8 * max(c, 1), 1)))


def _dd_blocks(rows):
    """``(lo, hi, rows lo:hi in double-double)`` over all rows, in blocks of bounded size."""
    step = _block_rows(rows.n, 2 * rows.c)
    for lo in range(0, rows.n, step):
        hi = min(rows.n, lo + step)
        yield lo, hi, _RowsDD(rows.x_block(lo, hi))


#: ln 2**-1075, half the smallest subnormal: a float64 result of smaller magnitude rounds to
#: a signed zero (round to nearest even; ties are excluded by the margin below)
_LN_HALF_SUBNORMAL = -1075 * math.log(2)


def _vanishing(rows, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sparse rows ``lo:hi``: ``ln`` of a bound on the magnitude of each row's loss
    (``[rows]``) and of each backprop element (``[rows, C]``), ``+inf`` where none is given;
    and whether each row is an ordinary one (finite label logit, not a NaN or ignored row,
    ``C ≥ 2``), whose backprop elements are nonzero with ``|b| < 1``: ``p_j > 0`` off the
    label and ``−1 < p_y − 1 < 0`` at it.

    With ``m`` the row's maximum and ``d_j = z_j − z_y``: ``p_j ≤ e^(z_j − m)``, and when
    the label's logit is the largest, ``L = ln(1 + Σ e^d) ≤ Σ e^d`` and ``1 − p_y ≤ Σ e^d``,
    at most ``(C − 1) e^(max d)``. Past float64's range (``< e^−745``) the double-double
    tier cannot certify these values (its absolute error floor is the smallest
    subnormal), yet their float64 rounding is a zero whose sign is known: the
    coefficient's, negated in the label column. A floating-point difference errs by a
    relative ``2**-53`` at most, which the factor ``1 − 2**-50`` covers. Elements that are
    exact zeros (a −inf logit) get no bound: they are certified as they are."""
    n = hi - lo
    loss = np.full(n, np.inf)
    if rows.kind != "sparse" or rows.c < 2 or n <= 0:
        return loss, np.full((max(n, 0), rows.c), np.inf), np.zeros(max(n, 0), dtype=bool)
    x = rows.x_block(lo, hi)
    lab = rows.labels_block(lo, hi)
    i = np.arange(n)
    shrink = 1 - 2.0 ** -50
    with np.errstate(all="ignore"):
        m = x.max(axis=1)
        zy = x[i, lab]
        bp = (x - m[:, None]) * shrink
        d = x - zy[:, None]
        d[i, lab] = -np.inf
        dmax = d.max(axis=1)
        row = dmax * shrink + math.log(rows.c - 1)
    nan, ign = rows.rule_masks(lo, hi, ~np.isfinite(m))
    valid = np.isfinite(zy) & ~nan & ~ign
    top = valid & np.isfinite(dmax) & (dmax < 0)  # the label's logit is the largest
    loss[top] = row[top]
    bp = np.where(valid[:, None] & np.isfinite(bp) & (bp < 0), bp, np.inf)
    bp[i, lab] = np.where(top, row, np.inf)
    return loss, bp, valid


def _vanish(g: np.ndarray, log_bound: np.ndarray) -> np.ndarray:
    """Where ``g · v`` (``|v| ≤ e^log_bound``, ``g`` finite and nonzero) rounds to a signed
    zero in float64, with a margin of a factor e."""
    with np.errstate(all="ignore"):
        return np.isfinite(g) & (g != 0) & \
            (np.log(np.abs(g)) + log_bound < _LN_HALF_SUBNORMAL - 1.0)


def _frac_to_dd(v) -> tuple[float, float]:
    """A double-double (hi, lo) with |hi + lo − v| ≤ 2**-106·|v| (exact when dyadic)."""
    if isinstance(v, float):
        return v, 0.0
    hi = float(v)
    if not math.isfinite(hi):
        return hi, 0.0
    return hi, float(v - Fraction(hi))


def _scale(c, c_rad, v, v_rad):
    """``c·v`` in float64 with the radius ``|c|·v_rad + c_rad·|v| + u·|c·v|``; a product that
    is not finite stands by IEEE rules, with radius 0 (the coefficient broadcasts)."""
    with np.errstate(all="ignore"):
        val = c * v
        rad = np.abs(c) * v_rad + c_rad * np.abs(v) + U * np.abs(val)
        return val, np.where(np.isfinite(val), rad, 0.0)


def _dd_array(values) -> tuple[np.ndarray, np.ndarray]:
    """Exact values (Fractions, special floats) as double-double arrays (hi, lo)."""
    pairs = [_frac_to_dd(v) for v in values]
    return (np.array([a for a, _ in pairs], dtype=np.float64),
            np.array([b for _, b in pairs], dtype=np.float64))


def _dd_scale(ch, cl, h, l_, r):
    """``(ch + cl)·(h + l_)`` in double-double, with the radius ``|ch|·r + MUL_REL·|v|`` (and
    the subnormal grid's rounding for tiny products);
    where the float64 product ``ch·h`` is not finite (0·inf, NaN, overflow) it stands by
    IEEE rules, with radius 0. ``(hi, lo, rad, not finite)``; the coefficient broadcasts."""
    from . import dd

    with np.errstate(all="ignore"):
        vh, vl = dd.dd_mul(np.broadcast_to(ch, h.shape), np.broadcast_to(cl, h.shape), h, l_)
        vr = (np.abs(ch) * r + dd.MUL_REL * np.abs(vh)) * SLACK
        # below 2**-968 the product's low word underflows (two_prod is exact only above):
        # the rounding to the subnormal grid, up to 2**-1075, is not relative to |v|
        vr = vr + np.where((ch != 0) & (h != 0) & (np.abs(vh) < 2.0 ** -968), 2.0 ** -1074, 0.0)
        spec = ch * h
        nonfin = ~np.isfinite(spec)
        return (np.where(nonfin, spec, vh), np.where(nonfin, 0.0, vl),
                np.where(nonfin, 0.0, vr), nonfin)


class Engine:
    """Carries out one plan in the vectorized tier."""

    def __init__(self, plan: Plan, upstream=None):
        self.plan = plan
        self.upstream = upstream
        rows = plan.rows
        self.supported = rows.kind in ("sparse", "dense", "sparse_probs", "dense_probs")
        # the compiled kernel (same answers, bit for bit) where numba is installed; float16
        # logits are read widened to float32 (rows.sparse_loss_into)
        self.accel = USE_ACCEL and rows.kind == "sparse" and \
            rows.source.dtype in (np.float16, np.float32, np.float64) and _accel.enabled()
        # the dense loss and gradient too (rows.dense_loss_into, rows.dense_grad_into)
        self.dense_accel = USE_ACCEL and rows.kind == "dense" and \
            rows.source.dtype in (np.float16, np.float32, np.float64) and _accel.enabled()
        # C = 2: the closed form (rows.two_class_rows); float64 logits take the dd path
        self.two_class = rows.kind == "sparse" and rows.c == 2 and \
            rows.source.dtype in (np.float16, np.float32)
        self._exact = None
        self._loss_rows = None
        self._ws = threading.local()

    # exact tier, for the fallbacks
    @property
    def exact(self) -> Expectation:
        if self._exact is None:
            self._exact = _exact_evaluate(self.plan, self.upstream)
        return self._exact

    def _block(self, lo: int, hi: int, need_grad: bool):
        """((L, rad), (grad, rad) or None, NaN-row mask) for rows lo:hi."""
        rows = self.plan.rows
        kind = rows.kind
        if self.two_class:  # σ and the bad rows are kept from the loss pass
            self._row_values()
            sig, srad, bad = (a[lo:hi] for a in self._two_class_sig[:3])
            return None, two_class_bp(sig, srad, rows.labels_block(lo, hi)), bad
        if kind == "sparse" and not need_grad:
            lab = rows.labels_block(lo, hi)
            ws = getattr(self._ws, "ws", None)
            if ws is None:  # scratch per thread, reused across that thread's blocks
                ws = self._ws.ws = _Workspace()
            stats = sparse_row_stats(rows.source[lo:hi], lab, self.accel, ws)
            return sparse_loss_rows(rows.c, stats), None, stats[0]
        if kind in ("sparse", "dense"):
            blk = _Rows(rows.source[lo:hi] if kind == "sparse" else rows.x_block(lo, hi))
            if kind == "sparse":
                lab = rows.labels_block(lo, hi)
                loss = blk.sparse_loss(lab)
                grad = blk.sparse_bp(lab) if need_grad else None
            else:
                ys, yr = _smoothed(rows, lo, hi)
                loss = blk.dense_loss(ys, yr, rows.xla_zero_labels)
                grad = blk.dense_bp(ys, yr) if need_grad else None
            return loss, grad, blk.bad
        pb = _ProbRows(rows.x_block(lo, hi), rows.clip)
        if kind == "sparse_probs":
            loss, grad = pb.sparse(rows.labels_block(lo, hi))
        else:
            ys, yr = _smoothed(rows, lo, hi)
            loss, grad = pb.dense(ys, yr)
        return loss, grad, pb.nan

    def _row_values(self):
        """(L mid, L rad) per row, and the row-level state needed for gradients."""
        if self._loss_rows is not None:
            return self._loss_rows
        rows = self.plan.rows
        n, c = rows.n, rows.c
        if c == 0:
            self._loss_rows = (np.zeros(n), np.zeros(n))
            return self._loss_rows
        # every row is written by its block: no serial pass to zero them first (with
        # np.zeros, filling these arrays was a third of a C = 2 call, on one thread)
        L = np.empty(n)
        R = np.empty(n)
        if self.two_class:
            sig, srad, bad = np.empty(n), np.empty(n), np.empty(n, dtype=bool)
            dd = np.empty(n)

            if USE_ACCEL and _accel.enabled():
                _map_blocks(lambda r: two_class_into(rows, *r, L, R, sig, srad, bad, dd),
                            _ranges(n))
            else:
                def two(lo):
                    hi = min(n, lo + KERNEL_BLOCK_ROWS)
                    b, (m, r), (sig[lo:hi], srad[lo:hi]), dd[lo:hi] = two_class_rows(
                        rows.source[lo:hi], rows.labels_block(lo, hi), with_d=True)
                    bad[lo:hi] = np.logical_or(*rows.rule_masks(lo, hi, b))
                    L[lo:hi], R[lo:hi] = rows.apply_rules(lo, hi, b, m, r)

                _map_blocks(two, range(0, n, KERNEL_BLOCK_ROWS))
            # bad: rows the closed form does not decide (TF's NaN rows, ignored rows)
            self._two_class_sig = (sig, srad, bad, dd)
            self._loss_rows = (L, R)
            return self._loss_rows
        if rows.kind == "sparse" and self.accel:
            _map_blocks(lambda r: sparse_loss_into(rows, *r, L, R),
                        _ranges(n, sparse_block(rows)))
            self._loss_rows = (L, R)
            return self._loss_rows
        if self.dense_accel:
            _map_blocks(lambda r: dense_loss_into(rows, *r, *_kernel_labels(rows, *r), L, R),
                        _ranges(n, sparse_block(rows)))
            self._loss_rows = (L, R)
            return self._loss_rows
        step = _block_rows(n, c)

        def one(lo):
            hi = min(n, lo + step)
            (m, r), _g, bad = self._block(lo, hi, need_grad=False)
            L[lo:hi], R[lo:hi] = rows.apply_rules(lo, hi, bad, m, r)

        _map_blocks(one, range(0, n, step))
        self._ws = threading.local()  # release the scratch
        self._loss_rows = (L, R)
        return self._loss_rows

    def _certifies_in_blocks(self) -> bool:
        """Whether an unreduced loss with unit coefficients can be certified block by block
        as the compiled kernels compute it (:meth:`_loss_certified`)."""
        return USE_ACCEL and _accel.enabled() and (
            self.two_class or (self.plan.rows.kind == "sparse" and self.accel))

    def _loss_certified(self, fmt: Format):
        """The loss of a sparse plan with unit coefficients, certified in ``fmt`` block by
        block as the compiled kernels compute it (the ``cert`` of ``rows.two_class_into``
        and ``rows.sparse_loss_into``): no [N] array but the answer (the rows' values and
        radii, written whole and read back, were most of a call's memory traffic at small
        C). ``(rounded, ok, missed)``: ``ok`` is None when every row certified (the
        kernels count the misses: no pass over ``ok``); at C = 2 ``missed`` holds the rows
        that did not certify, as ``(index, L, R, d, bad)``, for certify_above; else None.
        A gradient asked for later computes the rows again (:meth:`_row_values`)."""
        rows = self.plan.rows
        n = rows.n
        rounded, ok = np.empty(n), np.empty(n, dtype=bool)
        cert = (fmt, rounded, ok)
        if not self.two_class:
            missed = _map_blocks(lambda r: sparse_loss_into(rows, *r, None, None, cert=cert),
                                 _ranges(n, sparse_block(rows)))
            return rounded, ok if any(missed) else None, None
        missed = [m for m in _map_blocks(
            lambda r: two_class_into(rows, *r, *(None,) * 6, cert=cert),
            _ranges(n)) if m is not None]
        if not missed:
            return rounded, None, None
        return rounded, ok, tuple(np.concatenate(c) for c in zip(*missed))

    # ------------------------------------------------------------- float64 (dd) path

    def dd_supported(self) -> bool:
        rows = self.plan.rows
        return rows.kind in ("sparse", "dense") and not rows.smoothing

    def _row_values_dd(self):
        if getattr(self, "_dd_rows", None) is not None:
            return self._dd_rows
        rows = self.plan.rows
        n, c = rows.n, rows.c
        Lh, Ll, R = np.zeros(n), np.zeros(n), np.zeros(n)
        if c:
            for lo, hi, blk in _dd_blocks(rows):
                if rows.kind == "sparse":
                    h, l_, r = blk.sparse_loss(rows.labels_block(lo, hi))
                else:
                    h, l_, r = blk.dense_loss(rows.y[lo:hi].astype(np.float64),
                                              rows.xla_zero_labels)
                Lh[lo:hi], Ll[lo:hi], R[lo:hi] = rows.apply_rules(lo, hi, blk.bad, h, l_, r)
        self._dd_rows = (Lh, Ll, R)
        return self._dd_rows

    def loss_dd(self) -> np.ndarray:
        from . import dd

        red = self.plan.reduction
        rows = self.plan.rows
        Lh, Ll, R = self._row_values_dd()
        idx = red.index
        if isinstance(red.coef, np.ndarray):
            ch, cl = red.coef, np.zeros(red.coef.shape)
        else:
            ch, cl = _dd_array(red.coef)
        vh, vl, vr, nonfin = _dd_scale(ch, cl, Lh[idx], Ll[idx], R[idx])
        if red.kind == "none":
            rounded, ok = certify_dd_f64(vh, vl, vr)
            out = np.where(ok, rounded, 0.0)
            if rows.kind == "sparse" and not ok.all():
                step = _block_rows(rows.n, 2 * rows.c)
                bound = np.concatenate([_vanishing(rows, lo, min(rows.n, lo + step))[0]
                                        for lo in range(0, rows.n, step)])
                zero = ~ok & _vanish(ch, bound[idx])
                out = np.where(zero, np.copysign(0.0, ch), out)  # L > 0: g's sign
                ok |= zero
            if not ok.all():
                self._fallback_loss_elements(out, np.flatnonzero(~ok))
            return out.reshape(red.shape)
        denom = red.gamma_denom()
        if red.divides_by_zero:
            return np.array(red.zero_value).reshape(())
        if nonfin.any() or isinstance(denom, float):
            return self._exact_loss_scalar()
        with np.errstate(all="ignore"):
            sh, sl, serr = dd.dd_sum(vh, vl)
            srad = (vr.sum() + serr) * SLACK
            if denom is not None:
                dh, dl = _frac_to_dd(denom)
                rh, rl = dd.dd_div(sh, sl, dh, dl)
                rrad = (srad / abs(dh) + abs(rh) * (dd.DIV_REL + 2.0 ** -104)) * SLACK
            else:
                rh, rl, rrad = sh, sl, srad
        rounded, ok = certify_dd_f64(np.array([rh]), np.array([rl]), np.array([rrad]))
        if not ok[0]:
            return self._exact_loss_scalar()
        return rounded.reshape(())

    def _grad_rows_dd(self, with_gamma: bool) -> np.ndarray:
        from . import dd

        rows = self.plan.rows
        n, c = rows.n, rows.c
        out = np.zeros((n, c))
        if with_gamma:
            exact = self._gamma_fractions()
            if exact is None:  # identity weighting with float coefficients: γ = u·c exactly
                red = self.plan.reduction
                u = self._upstream_floats().ravel()
                gh, gl = dd.two_prod(u, red.coef)
            else:
                gh, gl = _dd_array(exact)
        else:
            gh, gl = np.ones(n), np.zeros(n)
        # γ ≠ 0 below float64's range: its hi word is a zero of γ's sign, and γ·b with
        # |b| < 1 rounds to a zero of the product's sign
        tiny_g = np.zeros(n, dtype=bool)
        if with_gamma and exact is not None:
            hi0 = np.flatnonzero(gh == 0)  # only these can be an underflowed γ
            tiny_g[hi0] = [exact[int(i)] != 0 for i in hi0]
        for lo, hi, blk in _dd_blocks(rows):
            if rows.kind == "sparse":
                bh, bl, br = blk.sparse_bp(rows.labels_block(lo, hi))
            else:
                bh, bl, br = blk.dense_bp(rows.y[lo:hi].astype(np.float64))
            vh, vl, vr, _ = _dd_scale(gh[lo:hi, None], gl[lo:hi, None], bh, bl, br)
            vh, vl, vr = rows.apply_rules(lo, hi, blk.bad, vh, vl, vr, cols=True)
            rounded, ok = certify_dd_f64(vh, vl, vr)
            rounded = np.where(ok, rounded, 0.0)
            zero = None
            # only zeros change: those not certified, and those certified by a radius that
            # underflowed to 0, with the sign of a product that underflowed
            if rows.kind == "sparse" and (not ok.all() or (rounded == 0).any()):
                _, bound, valid = _vanishing(rows, lo, hi)
                zero = _vanish(gh[lo:hi, None], bound) | (tiny_g[lo:hi] & valid)[:, None]
            if zero is not None and zero.any():
                sign = np.where(np.arange(c) == rows.labels_block(lo, hi)[:, None], -1.0, 1.0)
                rounded = np.where(zero, np.copysign(0.0, gh[lo:hi, None] * sign), rounded)
                ok = ok | zero
            if not ok.all():
                self._fallback_grad(rounded, ok, lo, gam_exact=with_gamma, fmt=F64)
            out[lo:hi] = rounded
        return out

    def _gamma_fractions(self) -> list | None:
        """Exact γ per row, or None when γ = upstream·coefficient elementwise (identity
        weighting with float coefficients): then two_prod gives it exactly."""
        red = self.plan.reduction
        if red.kind == "none" and isinstance(red.coef, np.ndarray) and \
                red.is_identity(self.plan.rows.n):
            u = self._upstream_floats().ravel()
            au, ac = np.abs(u), np.abs(red.coef)
            with np.errstate(all="ignore"):
                # two_prod is exact for products in [2**-968, 2**1000) and for zero factors
                fits = (au == 0) | (ac == 0) | ((au * ac >= 2.0 ** -900) & (au * ac < 2.0 ** 1000))
            if np.isfinite(u).all() and np.isfinite(red.coef).all() and fits.all():
                return None
        gam = self._gamma_exact(None)
        exact = [gam.get(r, Fraction(0)) for r in range(self.plan.rows.n)]
        if any(isinstance(v, float) for v in exact):
            raise _Fallback  # NaN/inf coefficients: the exact tier applies IEEE rules
        return exact

    # ------------------------------------------------------------- float32 and narrower

    def loss(self) -> np.ndarray:
        plan = self.plan
        if plan.loss_format is F64:
            return self.loss_dd()
        red = plan.reduction
        fmt = plan.loss_format
        if red.kind == "none" and red.unit(plan.rows.n):  # every coefficient is exactly 1
            if self._loss_rows is None and self._certifies_in_blocks():
                rounded, ok, missed = self._loss_certified(fmt)
            else:
                L, R = self._row_values()
                rounded, ok = _certify(L, R, fmt)
                missed = None
                if self.two_class and not ok.all():
                    i = np.flatnonzero(~ok)
                    bad_, d_ = self._two_class_sig[2:]
                    missed = (i, L[i], R[i], d_[i], bad_[i])
            if missed is not None:  # C = 2: L = d + (a positive tail) with d > 0
                i, Li, Ri, d, bad = missed
                pos = (d > 0) & ~bad & np.isfinite(Li)
                r, good = certify_above(d[pos], Li[pos], Ri[pos], fmt)
                i = i[pos]
                rounded[i[good]] = r[good]
                ok[i[good]] = True
            if ok is not None and not ok.all():
                self._fallback_loss_elements(rounded, np.flatnonzero(~ok))
            return rounded.reshape(red.shape)
        L, R = self._row_values()
        cw, cr = red.floats()
        idx = red.index
        vals, vr = _scale(cw, cr, L[idx], R[idx])
        if red.kind == "none":
            exact_one = red.exactly_one()
            vr = np.where(exact_one, R[idx] if idx.size else vr, vr)
            rounded, ok = _certify(vals, vr, fmt)
            out = rounded.copy()
            if not ok.all():
                self._fallback_loss_elements(out, np.flatnonzero(~ok))
            return out.reshape(red.shape)
        with np.errstate(all="ignore"):
            s, lev = pairwise_sum(vals[None, :]) if vals.size else (np.zeros(1), 0)
            s = s[0]
            srad = vr.sum() * SLACK + lev * U * np.nansum(np.abs(vals)) * SLACK
        denom = red.gamma_denom()
        if red.divides_by_zero:
            return np.array(red.zero_value).reshape(())
        if denom is not None:
            dv, dr = frac_to_float(denom)
            if isinstance(denom, float) or not math.isfinite(s):
                return self._exact_loss_scalar()
            with np.errstate(all="ignore"):
                res = s / dv
                rrad = srad / abs(dv) + abs(res) * (dr / abs(dv) + U) * SLACK
        else:
            res, rrad = s, srad
        if not math.isfinite(res):
            return self._exact_loss_scalar()
        rounded, ok = certify_ball(np.array([res]), np.array([rrad]), fmt)
        if not ok[0]:
            return self._exact_loss_scalar()
        return rounded.reshape(())

    def _exact_loss_scalar(self) -> np.ndarray:
        self.fallbacks += 1
        return self.exact["loss"].rounded64.reshape(())

    fallbacks = 0

    def _fallback_loss_elements(self, out: np.ndarray, where: np.ndarray) -> None:
        """Certify the listed elements of an unreduced loss in the exact tier."""
        from .evaluate import scale

        red = self.plan.reduction
        fmt = self.plan.loss_format
        for i in where.tolist():
            r = int(red.index[i])
            form = scale(row_exact(self.plan.rows, r).loss, red.fraction_at(i))
            out[i] = _certify_exact(form, fmt)
            self.fallbacks += 1

    def _upstream_floats(self) -> np.ndarray:
        return upstream_values(self.upstream, self.plan.reduction.shape)

    def _gammas(self):
        """(γ_r, rad) float64 per row: ∂(Σ upstream·loss)/∂L_r, with an error bound."""
        red = self.plan.reduction
        cv = red.floats()[0]
        up = self._upstream_floats().ravel()
        if isinstance(red.gamma_denom(), float) or not np.isfinite(cv).all() or \
                not np.isfinite(up).all():
            raise _Fallback  # special coefficients: the exact tier applies IEEE rules
        return _budgets.row_gammas(red, self.plan.rows.n, up)

    def _gamma_exact(self, rows_needed) -> dict:
        """Exact γ_r for the given rows (all rows: None; special values by IEEE rules)."""
        from .evaluate import _upstream_fracs, exact_gammas

        red = self.plan.reduction
        return exact_gammas(red, _upstream_fracs(self.upstream, red.shape), rows_needed)

    def grad_rows(self, with_gamma: bool) -> np.ndarray:
        """Certified gradient (or backprop) rows [N, C] in the grad/loss format; all from the
        exact tier where γ has special values (NaN/±inf weights, upstream or denominator)."""
        plan = self.plan
        n, c = plan.rows.n, plan.rows.c
        if c == 0 or n == 0:
            return np.zeros((n, c))
        fmt = plan.grad_format if with_gamma else plan.loss_format
        try:
            if fmt is F64:
                return self._grad_rows_dd(with_gamma)
            return self._grad_rows(with_gamma, fmt)
        except _Fallback:
            self.fallbacks += n * c
            return self._rows_from_exact("grad_logits")

    def _grad_rows(self, with_gamma: bool, fmt: Format) -> np.ndarray:
        rows = self.plan.rows
        n, c = rows.n, rows.c
        out = np.empty((n, c))  # every element is written below
        kernels = self.two_class and USE_ACCEL and _accel.two_class_kernels()
        if kernels:  # the same bits as below, from the logits in one compiled call a range
            return self._two_class_grad_rows(kernels[2], with_gamma, fmt, out)
        if self.accel or self.dense_accel:  # likewise at any C, and dense
            return self._compiled_grad_rows(with_gamma, fmt, out)
        if with_gamma:
            gam, grad_rad = self._gammas()
        else:
            gam, grad_rad = np.ones(n), np.zeros(n)
        if self.two_class:
            self._row_values()  # σ, before the threads read it
        step = _block_rows(n, c)

        def one(lo):
            hi = min(n, lo + step)
            _l, (bp, rad), bad0 = self._block(lo, hi, need_grad=True)
            val, vr = _scale(gam[lo:hi, None], grad_rad[lo:hi, None], bp, rad)
            val, vr = rows.apply_rules(lo, hi, bad0, val, vr, cols=True)
            out[lo:hi], ok = certify_ball(val, vr, fmt)
            return ok if not ok.all() else None

        for lo, ok in zip(range(0, n, step), _map_blocks(one, range(0, n, step))):
            if ok is not None:  # the exact tier, in this thread
                self._fallback_grad(out[lo:lo + ok.shape[0]], ok, lo, gam_exact=with_gamma,
                                    fmt=fmt)
        return out

    def _two_class_grad_rows(self, kernel, with_gamma: bool, fmt: Format, out):
        """:meth:`_grad_rows` at C = 2 by the compiled kernel, one call per row range
        (``_kernels.two_class_grad_range``), into ``out`` (``[N, 2]``); the elements that do
        not certify from the exact tier, in this thread."""
        rows = self.plan.rows
        n = rows.n
        if with_gamma:
            gam, grad_rad = self._gammas()
        else:  # γ = 1: the kernel reads neither
            gam = grad_rad = _ONE
        ok = np.empty((n, 2), dtype=bool)
        src = kernel_source(rows)

        def one(r):
            lo, hi = r
            g, gr = (gam[lo:hi], grad_rad[lo:hi]) if with_gamma else (gam, grad_rad)
            return kernel(src[lo:hi], rows.labels[lo:hi], g, gr, not with_gamma,
                          rows.nan_rows[lo:hi], rows.ignored[lo:hi], EXP_REL, SLACK, U, ETA,
                          TWO_CLASS_BLOCK, *kernel_args(fmt), out[lo:hi].reshape(-1),
                          ok[lo:hi].reshape(-1))

        ranges = _ranges(n)
        for (lo, hi), m in zip(ranges, _map_blocks(one, ranges)):
            if m:
                self._fallback_grad(out[lo:hi], ok[lo:hi], lo, gam_exact=with_gamma, fmt=fmt)
        return out

    def _compiled_grad_rows(self, with_gamma: bool, fmt: Format, out):
        """:meth:`_grad_rows` of a sparse or dense plan by the compiled kernel, one call per
        row range (``rows.sparse_grad_into``, ``rows.dense_grad_into``), into ``out``
        (``[N, C]``); the elements that do not certify from the exact tier, in this
        thread."""
        rows = self.plan.rows
        gam, grad_rad = self._gammas() if with_gamma else (None, None)
        ok = np.empty(out.shape, dtype=bool)
        ranges = _ranges(rows.n, sparse_block(rows))

        def one(r):
            if self.dense_accel:
                return dense_grad_into(rows, *r, *_kernel_labels(rows, *r), gam, grad_rad,
                                       fmt, out, ok)
            return sparse_grad_into(rows, *r, gam, grad_rad, fmt, out, ok)

        missed = _map_blocks(one, ranges)
        for (lo, hi), m in zip(ranges, missed):
            if m:
                self._fallback_grad(out[lo:hi], ok[lo:hi], lo, gam_exact=with_gamma, fmt=fmt)
        return out

    def _rows_from_exact(self, name: str) -> np.ndarray:
        o = self.exact[name]
        plan = self.plan
        if name == "grad_logits":
            return plan.grad_to_rows(o.rounded64)
        return o.rounded64.reshape(plan.rows.n, plan.rows.c)

    def _fallback_grad(self, rounded, ok, lo, *, gam_exact: bool, fmt: Format) -> None:
        plan = self.plan
        bis, js = np.nonzero(~ok)
        gam = self._gamma_exact({lo + int(b) for b in bis}) if gam_exact else {}
        row_forms: dict = {}  # a row's exact forms, built once for all its elements
        for bi, j in zip(bis, js):
            r = lo + int(bi)
            if r not in row_forms:
                g = gam.get(r, Fraction(0)) if gam_exact else Fraction(1)
                row_forms = {r: row_exact(plan.rows, r).grad(g)}
            rounded[bi, j] = _certify_exact(row_forms[r][int(j)], fmt)
            self.fallbacks += 1


class FastOutput(OutputExpectation):
    """An output whose rounded values come from the engine; exact forms stay lazy."""

    def __init__(self, name, fmt, shape, forms_fn, budget_fn, rounded_fn):
        super().__init__(name, fmt, shape, forms_fn, budget_fn)
        self._rounded_fn = rounded_fn

    @property
    def rounded64(self) -> np.ndarray:  # type: ignore[override]
        cached = self.__dict__.get("_rounded64")
        if cached is None:
            cached = np.asarray(self._rounded_fn(), dtype=np.float64).reshape(self.shape)
            self.__dict__["_rounded64"] = cached
        return cached


def evaluate_fast(plan: Plan, upstream=None) -> Expectation:
    """Carry out ``plan`` in the vectorized tier (falls back per element to the exact tier)."""
    eng = Engine(plan, upstream)
    exact = _exact_evaluate(plan, upstream)  # lazy: nothing is computed until asked
    uses_f64 = plan.loss_format is F64 or plan.grad_format is F64
    if not eng.supported or (uses_f64 and not eng.dd_supported()):
        exact.notes.append("vectorized tier: evaluated by the exact tier")
        return exact
    bud = _budgets.Budgets(plan, lambda: eng._upstream_floats().ravel())
    outs = {}
    e_loss = exact.outputs["loss"]
    outs["loss"] = FastOutput("loss", plan.loss_format, e_loss.shape,
                              lambda: e_loss.forms, bud.loss, eng.loss)
    if "backprop" in exact.outputs:
        e_bp = exact.outputs["backprop"]
        outs["backprop"] = FastOutput("backprop", plan.loss_format, e_bp.shape,
                                      lambda: e_bp.forms, bud.backprop,
                                      lambda: eng.grad_rows(False))
    if "grad_logits" in exact.outputs:
        e_g = exact.outputs["grad_logits"]
        outs["grad_logits"] = FastOutput(
            "grad_logits", plan.grad_format, e_g.shape, lambda: e_g.forms, bud.grad,
            lambda: plan.grad_from_rows(eng.grad_rows(True)))
    return Expectation(plan.api, plan.profile, outputs=outs, notes=list(plan.notes),
                       engine=eng)

"""Row evaluators of the vectorized tier: per-row losses, softmaxes and gradients of a
plan's rows, each value with its a-priori radius (derived in :mod:`xentconf.oracle.engine`'s
docstring), in float64 (:class:`_Rows`), double-double for float64 outputs
(:class:`_RowsDD`), and Keras probability rows (:class:`_ProbRows`); the sparse row
statistics come from the compiled kernel (:mod:`xentconf.oracle.accel`) or the numpy path,
bit for bit alike.
"""

from __future__ import annotations

import math

import numpy as np

from . import accel as _accel
from .certify import C_FN, ETA, SLACK, U, kernel_args, pairwise_levels, pairwise_sum
from .dd import _two_sum as two_sum  # Knuth's 2Sum, without dd's array conversion
from .plan import logit_row_max
from .vexp import EXP_REL, LANES, exp_nonpos, log1p_pos, log1p_unit

# --------------------------------------------------------------------------- rows


class _Workspace:
    """Scratch arrays reused across the row blocks of one engine call. Fresh temporaries
    for every block cost page faults: glibc's malloc gives a freed heap top back to the
    system, and the next block's arrays fault it in again."""

    def __init__(self):
        self._bufs: dict = {}

    def get(self, name: str, shape: tuple, dtype=np.float64) -> np.ndarray:
        size = math.prod(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(max(size, 1), dtype=dtype)
            self._bufs[name] = buf
        return buf[:size].reshape(shape)


def lane_sum(a: np.ndarray, ws: _Workspace | None = None):
    """Sum along the last axis in the engine's fixed order; returns (sum, levels).

    The row is cut into chunks of ``LANES`` (the last one zero padded); the chunks are
    added as vectors in a complete binary tree (zero padded to a power of two), then the
    lanes pairwise. Adding a zero is exact, so the compiled kernel's segment-by-segment
    evaluation of the same tree gives the same bits. Each level adds one rounding, so for
    non-negative terms the relative error is at most ``levels · u``.
    """
    a = np.asarray(a, dtype=np.float64)
    ws = ws or _Workspace()
    n, c = a.shape
    nch = max(1, -(-c // LANES))
    if nch * LANES != c:
        pad = ws.get("pad", (n, nch * LANES))
        pad[:, :c] = a
        pad[:, c:] = 0.0
        a = pad
    v = a.reshape(n, nch, LANES)
    levels = 0
    while v.shape[1] > 1:
        m = v.shape[1]
        h = m // 2
        nxt = ws.get(f"h{levels % 2}", (n, h + m % 2, LANES))
        np.add(v[:, 0:2 * h:2], v[:, 1:2 * h:2], out=nxt[:, :h])
        if m % 2:  # the last chunk plus a zero chunk
            np.add(v[:, m - 1], 0.0, out=nxt[:, h])
        v = nxt
        levels += 1
    v = v[:, 0, :]
    while v.shape[1] > 1:
        v = v[:, 0::2] + v[:, 1::2]
        levels += 1
    return v[:, 0], levels


def lane_levels(c: int) -> int:
    """The ``levels`` of :func:`lane_sum` for rows of ``c`` elements."""
    nch = max(1, -(-c // LANES))
    return (nch - 1).bit_length() + (LANES - 1).bit_length()


def _shift_rows(x: np.ndarray):
    """TF's per-row rules and the exact shift: (bad, k, d, d_lo, finite, neg).

    ``bad``: TF's NaN rows (:func:`~xentconf.oracle.plan.logit_row_max`); ``k`` is a
    maximum; ``d + d_lo = x − max x`` exactly (``two_sum``), ``d = −inf`` for −inf logits.
    """
    _m, bad = logit_row_max(x)
    with np.errstate(all="ignore"):
        finite = np.isfinite(x)
        xm = np.where(finite, x, -np.inf)
        k = np.argmax(xm, axis=1)
        m = np.where(bad, 0.0, xm.max(axis=1))
        d, dlo = two_sum(x, -m[:, None])
        neg = x == -np.inf
        d = np.where(neg, -np.inf, np.where(bad[:, None], 0.0, d))
        dlo = np.where(finite & ~bad[:, None] & np.isfinite(d), dlo, 0.0)  # overflow: −inf
    return bad, k, d, dlo, finite, neg


def _row_max(xs: np.ndarray):
    """(bad, m, k): TF's NaN rows (:func:`~xentconf.oracle.plan.logit_row_max`), the
    maximum ``m`` (0 in bad rows) and ``k`` its first index."""
    m, bad = logit_row_max(xs)
    k = np.argmax(xs, axis=1)
    return bad, np.where(bad, 0.0, m.astype(np.float64)), k


def _inexact_shift_rows(xs: np.ndarray, bad: np.ndarray, ws: _Workspace | None = None):
    """Rows where ``x − m`` might not be exact in float64 (the rest need no two_sum).

    float16 values always subtract exactly (spans ≤ 40 bits). For float32, ``x − m`` is a
    multiple of ``g = min(ulp(x), ulp(m)) ≥ min(|x|, |m|)·2**-24`` of magnitude ≤ 2·max|x|,
    so it has fewer than 53 bits when max|x| < 2**28·min|x| (over the nonzero entries; a
    zero on either side subtracts exactly).
    """
    if xs.dtype == np.float16:
        return np.zeros(xs.shape[0], dtype=bool)
    if xs.dtype != np.float32:
        return ~bad
    with np.errstate(all="ignore"):
        ax = np.abs(xs, out=None if ws is None else ws.get("abs", xs.shape, np.float32))
        big = ax.max(axis=1)
        small = np.min(ax, axis=1, where=ax > 0, initial=np.inf)
        exact = big < small * np.float32(2.0 ** 28)
        exact |= big == 0
    return ~exact & ~bad


def _numpy_rows(xs: np.ndarray, keep: bool, ws: _Workspace | None = None):
    """The numpy path: (bad, m, k, t, terr) and, with ``keep``, (d, dlo, e) per element.

    ``d + dlo = x − m`` exactly (``two_sum`` where needed, ``d = −inf`` for −inf logits,
    0 in bad rows), ``e = exp_nonpos(d)``, ``t = Σ_{j≠k} e_j`` and ``terr = Σ_{j≠k}
    e_j·|dlo_j|`` by :func:`lane_sum` (``terr = 0`` in rows without a rounding error).
    """
    n, c = xs.shape
    bad, m, k = _row_max(xs)
    idx = np.arange(n)
    with np.errstate(all="ignore"):
        d = np.subtract(xs, m[:, None], dtype=np.float64,
                        out=None if keep or ws is None else ws.get("d", (n, c)))
        if bad.any():
            d[bad] = 0.0
        rows = np.flatnonzero(_inexact_shift_rows(xs, bad, None if keep else ws))
        dlo_r = np.zeros((0, c))
        if rows.size:
            xr = np.asarray(xs[rows], dtype=np.float64)
            _s, err = two_sum(xr, -m[rows, None])
            # x − m overflowing to −inf (float64 rows spanning more than the float64
            # maximum): exp is exactly 0 there and the low part is meaningless (NaN)
            dlo_r = np.where(np.isfinite(xr) & np.isfinite(_s), err, 0.0)
        e = exp_nonpos(d, out=None if keep else d)
        e[idx, k] = 0.0  # exp(0) = 1 is left out of the sum (log1p keeps its precision)
        t, _lev = lane_sum(e, None if keep else ws)
        terr = np.zeros(n)
        nz = (dlo_r != 0).any(axis=1)
        if nz.any():
            terr[rows[nz]] = lane_sum(e[rows[nz]] * np.abs(dlo_r[nz]))[0]
        e[idx, k] = 1.0
        t[bad] = 0.0
        terr[bad] = 0.0
    if not keep:
        return (bad, m, k, t, terr), None
    dlo = np.zeros((n, c))
    dlo[rows] = dlo_r
    return (bad, m, k, t, terr), (d, dlo, e)


def sparse_row_stats(xs: np.ndarray, labels: np.ndarray, accel: bool,
                     ws: _Workspace | None = None):
    """(bad, m, k, t, terr, x_y) of a block of rows: compiled kernel or numpy, the same
    bits (``labels`` already clipped to [0, C))."""
    if accel and xs.dtype in (np.float32, np.float64):
        return _accel.kernel()(np.ascontiguousarray(xs), labels)
    xy = np.asarray(xs[np.arange(xs.shape[0]), labels], dtype=np.float64)
    return _numpy_rows(xs, keep=False, ws=ws)[0] + (xy,)


SPARSE_BLOCK = 1 << 13  # rows per block of the compiled sparse range kernel, at most
SPARSE_BLOCK_BYTES = 1 << 20  # and input bytes: a block's rows and scratch stay in a core's L2
COPY_BYTES = 4 << 20  # a non-contiguous input is copied this much at a time


def sparse_block(rows) -> int:
    """Rows per block of :func:`sparse_loss_into`'s compiled call (and the unit of the
    engine's row ranges for it)."""
    width = max(rows.source.itemsize, 4)  # float16 is read as float32
    return max(1, min(SPARSE_BLOCK, SPARSE_BLOCK_BYTES // (rows.c * width)))


def _kernel_inputs(rows, lo: int, hi: int):
    """Rows ``lo:hi`` of a sparse plan's logits as the compiled range kernels read them:
    ``(a, b, x, bits)`` for each piece ``a:b``, ``x`` C-contiguous float32 or float64 and
    ``bits`` its integer view; the whole range at once where it is contiguous, else in
    copies of ``COPY_BYTES`` (float16 widened to float32 in such copies: exact, the same
    values)."""
    src = rows.source
    c = rows.c
    half = src.dtype == np.float16
    step = hi - lo if src[lo:hi].flags.c_contiguous and not half else \
        max(1, COPY_BYTES // (c * max(src.itemsize, 4)))
    for a in range(lo, hi, step):
        b = min(hi, a + step)
        x = src[a:b].astype(np.float32) if half else np.ascontiguousarray(src[a:b])
        yield a, b, x, x.view(np.int32 if x.dtype == np.float32 else np.int64)


def sparse_loss_into(rows, lo: int, hi: int, L, R, cert=None) -> int | None:
    """:func:`sparse_loss_rows` of rows ``lo:hi`` of a sparse plan (``plan.Rows``: float16,
    float32 or float64 logits) by the compiled kernels, with the row rules applied,
    written into ``L`` and ``R``: the same bits as the numpy path, in one compiled call
    that runs the range in cache-sized blocks (``_kernels.sparse_loss_range``; the input
    as :func:`_kernel_inputs` gives it). ``cert = (fmt, rounded, ok)``: the loss certified
    into those instead, block by block (``L`` and ``R`` None: the values stay in the
    block's scratch), as :func:`two_class_into` does; then returns how many rows did not
    certify."""
    whole, whole_cert = _accel.sparse_loss_kernels()
    c = rows.c
    block = sparse_block(rows)
    missed = 0
    for a, b, x, bits in _kernel_inputs(rows, lo, hi):
        args = (x, bits, rows.labels[a:b], rows.nan_rows[a:b], rows.ignored[a:b], c,
                lane_levels(c), C_FN, SLACK, U, ETA, block)
        if cert is None:
            whole(*args, L[a:b], R[a:b])
        else:
            fmt, rounded, ok = cert
            missed += whole_cert(*args, *kernel_args(fmt), rounded[a:b], ok[a:b])
    return None if cert is None else missed


def sparse_grad_into(rows, lo: int, hi: int, gam, grad_rad, fmt, out, ok) -> int:
    """The certified gradient rows ``lo:hi`` of a sparse plan (``engine``'s
    ``_grad_rows``: :meth:`_Rows.sparse_bp` scaled by ``γ = gam`` with its radius
    ``grad_rad``, or ``γ = 1`` exactly where ``gam`` is None, the row rules, certified in
    ``fmt``) by the compiled kernel, into ``out`` and ``ok`` (``[N, C]``): the same bits as
    the numpy path, in one compiled call a piece of the range
    (``_kernels.sparse_grad_range``; the input as :func:`_kernel_inputs` gives it).
    Returns how many elements did not certify."""
    kern = _accel.sparse_grad_kernel()
    c = rows.c
    block = sparse_block(rows)
    unit = gam is None
    missed = 0
    for a, b, x, bits in _kernel_inputs(rows, lo, hi):
        g, gr = (_ONE, _ONE) if unit else (gam[a:b], grad_rad[a:b])
        missed += kern(x, bits, rows.labels[a:b], g, gr, unit, rows.nan_rows[a:b],
                       rows.ignored[a:b], c, lane_levels(c), C_FN, SLACK, U, ETA, block,
                       *kernel_args(fmt), out[a:b].reshape(-1), ok[a:b].reshape(-1))
    return missed


def _dense_label_rows(y, yrad, a: int, b: int):
    """Rows ``a:b`` of the labels ``y`` and their radii ``yrad`` as the dense kernels read
    them, C-contiguous float64 (no copy where they are already); a ``yrad`` of one row is
    every row's, and stays whole."""
    ys = np.ascontiguousarray(y[a:b], dtype=np.float64)
    whole = yrad.shape[0] != y.shape[0]
    return ys, np.ascontiguousarray(yrad if whole else yrad[a:b], dtype=np.float64)


def dense_loss_into(rows, lo: int, hi: int, y, yrad, L, R) -> None:
    """:meth:`_Rows.dense_loss` of rows ``lo:hi`` of a dense plan (float16, float32 or
    float64 logits), with the row rules, by the compiled kernel (``_kernels.dense_loss_range``;
    the input as :func:`_kernel_inputs` gives it), written into ``L`` and ``R``: the same
    bits as the numpy path. ``y`` and ``yrad``: rows ``lo:hi`` of the labels as the engine
    smooths them (float64; ``yrad`` may be one row, every row's)."""
    kern = _accel.dense_kernels()[0]
    c = rows.c
    for a, b, x, bits in _kernel_inputs(rows, lo, hi):
        kern(x, bits, *_dense_label_rows(y, yrad, a - lo, b - lo), bool(rows.xla_zero_labels),
             rows.nan_rows[a:b], rows.ignored[a:b], c, lane_levels(c), pairwise_levels(c),
             C_FN, SLACK, U, ETA, sparse_block(rows), L[a:b], R[a:b])


def dense_grad_into(rows, lo: int, hi: int, y, yrad, gam, grad_rad, fmt, out, ok) -> int:
    """:func:`sparse_grad_into` for a dense plan (:meth:`_Rows.dense_bp` scaled by ``γ``;
    ``y`` and ``yrad`` as :func:`dense_loss_into` takes them), by the compiled kernel
    (``_kernels.dense_grad_range``). Returns how many elements did not certify."""
    kern = _accel.dense_kernels()[1]
    c = rows.c
    unit = gam is None
    missed = 0
    for a, b, x, bits in _kernel_inputs(rows, lo, hi):
        g, gr = (_ONE, _ONE) if unit else (gam[a:b], grad_rad[a:b])
        missed += kern(x, bits, *_dense_label_rows(y, yrad, a - lo, b - lo), g, gr, unit,
                       rows.nan_rows[a:b], rows.ignored[a:b], c, lane_levels(c), C_FN, SLACK,
                       U, ETA, sparse_block(rows), *kernel_args(fmt), out[a:b].reshape(-1),
                       ok[a:b].reshape(-1))
    return missed


_ONE = np.ones(1)  # γ's arrays where γ = 1 exactly (the kernel reads neither)


class _RowSums:
    """Row-level values and bounds from ``t`` and ``terr`` (shared by both paths)."""

    def __init__(self, c: int, t: np.ndarray, terr: np.ndarray):
        lev = lane_levels(c)
        self.levels = lev
        self.t = t
        with np.errstate(all="ignore"):
            # Σ_{j≠k} e_j·rel(e_j) with rel(e_j) = C_FN + |dlo_j| (exp(d + dlo) =
            # exp(d)(1 + dlo + …)), plus one rounding per summation level and the
            # absolute slack of underflowed terms
            self.t_rad = (C_FN * t + terr * SLACK) * SLACK + t * lev * U * SLACK + c * ETA
            logs = log1p_pos(t)
            self.logs = logs
            self.logs_rad = self.t_rad / np.maximum(1 + t - self.t_rad, 1.0) * SLACK + \
                C_FN * logs
            self.s = 1 + t
            self.s_rad = self.t_rad + U * self.s


def sparse_loss_rows(c: int, stats) -> tuple:
    """(L, rad) per row of the sparse loss ``log1p(t) + (m − x_y)`` (both non-negative)."""
    _bad, m, _k, t, terr, xy = stats
    sums = _RowSums(c, t, terr)
    with np.errstate(all="ignore"):
        dy, dylo = two_sum(xy, -m)
        a = -dy
        alo = np.where(np.isfinite(xy), -dylo, 0.0)
        L = sums.logs + a
        rad = sums.logs_rad + U * np.abs(L) + np.abs(alo) * SLACK
        rad = np.where(np.isinf(a), 0.0, rad)
    return L, rad


def two_class_rows(xs: np.ndarray, labels: np.ndarray, with_d: bool = False):
    """The closed form of a sparse row of two classes: ``(bad, (L, rad), (σ, rad))``.

    With ``d = z_o − z_y`` (the other logit minus the labelled one; ``d + d_lo`` exactly by
    ``two_sum``) the loss is ``softplus(d) = max(d, 0) + log1p(e)`` with ``e = exp(−|d|)``
    and the backprop row is ``±σ(d)`` (``+`` at the other class, ``−`` at the label), with
    ``σ(d) = e/(1 + e)`` for ``d ≤ 0`` and ``1/(1 + e)`` for ``d > 0``. Error bounds, in the
    engine's model (``u = 2**-53``; ``ε = EXP_REL + |d_lo|`` relative on ``e``, plus ``ETA``):

    * ``log1p(e)`` (vexp's :func:`~xentconf.oracle.vexp.log1p_unit`, ``e ∈ [0, 1]``):
      ``C_FN·log1p(e) + ε·e`` (``∂ log1p(e)/∂e ≤ 1``); for ``d ≤ 0`` that is
      all of ``d_lo``'s effect (``d + d_lo ≤ 0`` too, and ``L = log1p(e^(d + d_lo))``:
      the first term is 0 either way), so a tiny loss keeps a tiny radius;
    * ``L = max(d, 0) + log1p(e)``, two non-negative terms: ``+ u·L``, and ``+ |d_lo|``
      for ``d > 0`` (the first term is ``d + d_lo``);
    * ``1 + e``: relative ``u + ε·e/(1 + e) ≤ u + ε·e``; ``σ``: ``e/(1+e)`` (``d ≤ 0``)
      relative ``2ε + 2u``, claimed ``3u + 2ε``; ``1/(1+e)`` (``d > 0``) relative
      ``ε·e + 2u``, claimed ``3u + 2ε·e`` (``e``'s error moves ``1 + e`` by ``ε·e`` only:
      ``σ`` near 1 keeps a radius near ``u`` even where ``|d_lo|`` is large, a tiny and a
      large bfloat16 logit).

    ``bad`` rows (a NaN, a +inf, or both logits −inf) are TF's NaN rows; one −inf logit
    gives a loss of 0 or +inf and a backprop of 0 or ±1, exactly. ``with_d``: also ``d``
    (0 in bad rows), for :func:`~xentconf.oracle.certify.certify_above`.
    """
    with np.errstate(all="ignore"):
        a = np.asarray(xs[:, 0], dtype=np.float64)
        b = np.asarray(xs[:, 1], dtype=np.float64)
        lab1 = labels.astype(bool)
        zy = np.where(lab1, b, a)
        zo = np.where(lab1, a, b)
        bad = logit_row_max(xs)[1]
        d, dlo = two_sum(zo, -zy)
        dlo = np.where(np.isfinite(d), dlo, 0.0)
        d = np.where(bad, 0.0, d)
        ad = np.abs(d)
        e = exp_nonpos(-ad)
        eps = EXP_REL + np.abs(dlo) * SLACK
        lp = log1p_unit(e)
        pos = d > 0
        L = np.where(pos, d + lp, lp)
        Lrad = ((C_FN * lp + eps * e) * SLACK + U * L + np.where(pos, np.abs(dlo), 0.0)) \
            * SLACK + ETA
        s1 = 1.0 + e
        sig = np.where(pos, 1.0 / s1, e / s1)
        srad = sig * (3 * U + 2 * np.where(pos, eps * e, eps)) * SLACK + ETA
        Lrad = np.where(np.isfinite(L), Lrad, 0.0)
    return (bad, (L, Lrad), (sig, srad), d) if with_d else (bad, (L, Lrad), (sig, srad))


TWO_CLASS_BLOCK = 1 << 13  # rows per block of the compiled range kernels (their scratch,
# ~0.8 MB, stays in a core's L2) and the unit of two_class_into's row ranges


def kernel_source(rows) -> np.ndarray:
    """``rows.source`` as the compiled kernels read it: float16 as its uint16 bits."""
    src = rows.source
    return src.view(np.uint16) if src.dtype == np.float16 else src


def two_class_into(rows, lo: int, hi: int, L, R, sig, srad, bad, d, cert=None):
    """Rows ``lo:hi`` of a C = 2 sparse plan (``plan.Rows``) by the compiled kernels, with
    the row rules applied (:meth:`~xentconf.oracle.plan.Rows.apply_rules`), written into
    the whole-plan arrays ``L``, ``R`` (the loss and its radius), ``sig``, ``srad``,
    ``bad`` (a NaN or ignored row) and ``d``: the values of :func:`two_class_rows` and the
    rules, bit for bit, in one compiled call that runs the range in cache-sized blocks
    (``_kernels.two_class_range``). numba must be there (the caller has checked).

    ``cert = (fmt, rounded, ok)``: only the loss is wanted, certified in ``fmt``
    (:func:`~xentconf.oracle.certify.certify_ball`) into the whole-plan ``rounded`` and
    ``ok`` while each block is in cache; ``L`` to ``d`` are then None (a block's values
    stay in its scratch: at C = 2, writing six [N] arrays and reading two back was most of
    a call's memory traffic). Returns the rows that did not certify, as
    ``(index, L, R, d, bad)`` arrays, or None if all did (and without ``cert``)."""
    whole, whole_cert, _ = _accel.two_class_kernels()
    args = (kernel_source(rows)[lo:hi], rows.labels[lo:hi], rows.nan_rows[lo:hi],
            rows.ignored[lo:hi], EXP_REL, C_FN, SLACK, U, ETA, TWO_CLASS_BLOCK)
    if cert is None:
        whole(*args, L[lo:hi], R[lo:hi], sig[lo:hi], srad[lo:hi], bad[lo:hi], d[lo:hi])
        return None
    fmt, rounded, ok = cert
    count, *missed = whole_cert(*args, *kernel_args(fmt), rounded[lo:hi], ok[lo:hi])
    if not count:
        return None
    index, *rest = (v[:count] for v in missed)
    return (index + lo, *rest)


def two_class_bp(sig: np.ndarray, srad: np.ndarray, labels: np.ndarray):
    """The backprop rows ``[N, 2]`` (and radii) of :func:`two_class_rows`' ``σ``: ``−σ`` at
    the label, ``+σ`` at the other class."""
    bp = np.empty((sig.shape[0], 2))
    lab1 = labels.astype(bool)
    bp[:, 0] = np.where(lab1, sig, -sig)
    np.negative(bp[:, 0], out=bp[:, 1])
    return bp, np.repeat(srad[:, None], 2, axis=1)


class _Rows:
    """Float64 values and bounds of a block of logits rows (sparse or dense). Labels come
    clipped into ``[0, C)`` (:meth:`~xentconf.oracle.plan.Rows.labels_block`), here and in
    :class:`_RowsDD` and :class:`_ProbRows`."""

    def __init__(self, x: np.ndarray):
        n, c = x.shape
        self.n, self.c = n, c
        self.x = x
        (bad, m, k, t, terr), (d, dlo, e) = _numpy_rows(x, keep=True)
        self.bad, self.m, self.k, self.terr = bad, m, k, terr
        self.d, self.dlo, self.e = d, dlo, e
        with np.errstate(all="ignore"):
            rel_e = C_FN + np.abs(dlo) * SLACK
            self.rel_e = np.where((d == -np.inf) | (d == 0), 0.0, rel_e)
        sums = _RowSums(c, t, terr)
        self.levels = sums.levels
        self.t, self.t_rad = sums.t, sums.t_rad
        self.logs, self.logs_rad = sums.logs, sums.logs_rad
        self.s, self.s_rad = sums.s, sums.s_rad

    def p(self):
        """(mid, rad) of softmax, [N, C]."""
        with np.errstate(all="ignore"):
            p = self.e / self.s[:, None]
            rel = self.rel_e + (self.s_rad / self.s)[:, None] + U
            return p, p * rel * SLACK + ETA

    def sparse_loss(self, lab: np.ndarray):
        xy = np.asarray(self.x[np.arange(self.n), lab], dtype=np.float64)
        return sparse_loss_rows(self.c, (self.bad, self.m, self.k, self.t, self.terr, xy))

    def sparse_bp(self, lab: np.ndarray):
        idx = np.arange(self.n)
        p, prad = self.p()
        with np.errstate(all="ignore"):
            ey = self.e[idx, lab]
            is_k = lab == self.k
            num = np.where(is_k, self.t, (1 - ey) + self.t)
            num_rad = np.where(is_k, self.t_rad,
                               ey * self.rel_e[idx, lab] + U * (1 - ey) + self.t_rad + U * num)
            bpy = -num / self.s
            bpy_rad = np.abs(bpy) * (num_rad / np.where(num > 0, num, 1.0) + self.s_rad / self.s
                                     + U) * SLACK
            bpy_rad = np.where(num > 0, bpy_rad, num_rad / self.s)
            bp, rad = p.copy(), prad.copy()
            bp[idx, lab] = bpy
            rad[idx, lab] = bpy_rad
        return bp, rad

    def dense_loss(self, y: np.ndarray, y_rad: np.ndarray, xla: bool):
        with np.errstate(all="ignore"):
            a = self.logs[:, None] - self.d  # +inf where d = -inf
            a_rad = self.logs_rad[:, None] + U * a + np.abs(self.dlo) * SLACK
            term = y * a
            if xla:
                term = np.where(y == 0, 0.0, term)
            fin = np.isfinite(term)
            tr = np.where(fin, np.abs(y) * a_rad + U * np.abs(term) + y_rad * a, 0.0)
            if xla:  # a zero label's term is exactly 0 (its a may be +inf: 0·inf is NaN)
                tr = np.where((y == 0) & (y_rad == 0), 0.0, tr)
            L, lev = pairwise_sum(term)
            mag, _ = pairwise_sum(np.where(fin, np.abs(term), 0.0))
            rad = pairwise_sum(tr)[0] * SLACK + lev * U * mag * SLACK
            big = (np.abs(np.where(fin, term, 0.0)) > 1e300).any(axis=1)
            rad = np.where(np.isfinite(L), rad, 0.0)
            rad = np.where(big, np.inf, rad)
        return L, rad

    def dense_bp(self, y: np.ndarray, y_rad: np.ndarray):
        p, prad = self.p()
        with np.errstate(all="ignore"):
            bp = p - y
            rad = prad + y_rad + U * np.abs(bp)
            rad = np.where(np.isfinite(bp), rad, 0.0)
        return bp, rad


def _div_up(r: np.ndarray, d) -> np.ndarray:
    """``r / d`` for radii ``r ≥ 0`` (``d > 0``), raised by one ulp where ``r > 0``: still an
    upper bound where the quotient rounds down, and never 0 where it underflows (a radius
    of 2**-1074 divided by 2 rounds to 0, which would certify an inexact value as exact)."""
    q = r / d
    return np.where(r > 0, np.nextafter(q, np.inf), q)


class _RowsDD:
    """Double-double values and bounds of a block of logits rows (float64 outputs)."""

    def __init__(self, x: np.ndarray):
        from . import dd

        self.dd = dd
        n, c = x.shape
        self.n, self.c = n, c
        self.bad, self.k, self.dh, self.dl, _finite, self.neg = _shift_rows(x)
        with np.errstate(all="ignore"):
            eh, el, eerr = dd.dd_exp(self.dh, self.dl)
            self.eh, self.el, self.eerr = eh, el, eerr
            idx = np.arange(n)
            kh, kl, ke = eh.copy(), el.copy(), eerr.copy()
            kh[idx, self.k] = 0.0
            kl[idx, self.k] = 0.0
            ke[idx, self.k] = 0.0
            th, tl, terr = dd.dd_sum(kh, kl)
            self.th, self.tl = th, tl
            self.t_rad = (terr + ke.sum(axis=1)) * SLACK
            lh, ll, lerr = dd.dd_log1p(th, tl)
            self.lh, self.ll = lh, ll
            self.log_rad = (lerr + _div_up(self.t_rad, np.maximum(1 + th - self.t_rad, 1.0))
                            ) * SLACK
            sh, sl = dd.dd_add_d(th, tl, 1.0)
            self.sh, self.sl = sh, sl
            self.s_rad = (self.t_rad + dd.ADD_D_REL * sh) * SLACK

    def p(self):
        dd = self.dd
        with np.errstate(all="ignore"):
            sh, sl = self.sh[:, None], self.sl[:, None]
            ph, pl = dd.dd_div(self.eh, self.el, sh, sl)
            rel_s = (self.s_rad / self.sh)[:, None]
            rad = (np.abs(ph) * (dd.DIV_REL + rel_s) + _div_up(self.eerr, sh)) * SLACK
        return ph, pl, rad

    def sparse_loss(self, lab: np.ndarray):
        dd = self.dd
        idx = np.arange(self.n)
        ah, al = -self.dh[idx, lab], -self.dl[idx, lab]
        with np.errstate(all="ignore"):
            fin = np.isfinite(ah)
            Lh, Ll = dd.dd_add(self.lh, self.ll, np.where(fin, ah, 0.0), np.where(fin, al, 0.0))
            rad = (self.log_rad + dd.ADD_REL * np.abs(Lh)) * SLACK
            Lh = np.where(fin, Lh, np.inf)
            Ll = np.where(fin, Ll, 0.0)
            rad = np.where(fin, rad, 0.0)
        return Lh, Ll, rad

    def sparse_bp(self, lab: np.ndarray):
        dd = self.dd
        idx = np.arange(self.n)
        ph, pl, prad = self.p()
        with np.errstate(all="ignore"):
            eyh, eyl, eye = self.eh[idx, lab], self.el[idx, lab], self.eerr[idx, lab]
            is_k = lab == self.k
            oh, ol = dd.dd_sub(np.ones(self.n), np.zeros(self.n), eyh, eyl)  # 1 − e_y ≥ 0
            nh, nl = dd.dd_add(oh, ol, self.th, self.tl)
            n_rad = eye + self.t_rad + dd.ADD_REL * (np.abs(oh) + np.abs(nh))
            nh = np.where(is_k, self.th, nh)
            nl = np.where(is_k, self.tl, nl)
            n_rad = np.where(is_k, self.t_rad, n_rad) * SLACK
            bh, bl = dd.dd_div(-nh, -nl, self.sh, self.sl)
            b_rad = (np.abs(bh) * (dd.DIV_REL + self.s_rad / self.sh)
                     + _div_up(n_rad, self.sh)) * SLACK
            ph[idx, lab], pl[idx, lab], prad[idx, lab] = bh, bl, b_rad
        return ph, pl, prad

    def dense_loss(self, y, xla: bool):
        dd = self.dd
        with np.errstate(all="ignore"):
            fin_d = np.isfinite(self.dh)
            ah, al = dd.dd_sub(np.broadcast_to(self.lh[:, None], self.dh.shape),
                               np.broadcast_to(self.ll[:, None], self.dh.shape),
                               np.where(fin_d, self.dh, 0.0), np.where(fin_d, self.dl, 0.0))
            a_rad = self.log_rad[:, None] + dd.ADD_REL * np.abs(ah)
            th, tl = dd.dd_mul_d(ah, al, y)
            t_rad = np.abs(y) * a_rad + dd.MUL_D_REL * np.abs(th)
            # IEEE specials from the float64 view: y·(+inf) for −inf logits, NaN labels
            special = np.where(fin_d, y * 0.0, y * np.inf)
            if xla:
                special = np.where(y == 0, 0.0, special)
            # a finite logit whose shift overflowed to −inf (a float64 row spanning more
            # than the float64 maximum): exactly 0 for a zero label; otherwise the exact
            # tier decides (the term is finite but beyond this arithmetic)
            over = ~fin_d & ~self.neg & ~self.bad[:, None]
            special = np.where(over & (y == 0), 0.0, special)
            over_row = (over & (y != 0)).any(axis=1)
            th = np.where(fin_d, th, 0.0)
            tl = np.where(fin_d, tl, 0.0)
            t_rad = np.where(fin_d, t_rad, 0.0)
            Lh, Ll, serr = dd.dd_sum(th, tl)
            rad = (t_rad.sum(axis=1) + serr) * SLACK
            sp = special.sum(axis=1)  # NaN, ±inf or 0 by IEEE rules
            Lh = np.where(sp != 0, sp, np.where(np.isnan(sp), np.nan, Lh))
            Ll = np.where(np.isfinite(Lh), Ll, 0.0)
            rad = np.where(np.isfinite(Lh), rad, 0.0)
            big = (np.abs(th) > 1e300).any(axis=1) | ~np.isfinite(y).all(axis=1) | over_row
            rad = np.where(big, np.inf, rad)
            Lh = np.where(over_row & ~np.isnan(sp), 0.0, Lh)  # any finite stand-in: rad = inf
        return Lh, Ll, rad

    def dense_bp(self, y):
        dd = self.dd
        ph, pl, prad = self.p()
        with np.errstate(all="ignore"):
            bh, bl = dd.dd_sub(ph, pl, y, np.zeros_like(y))
            rad = (prad + dd.ADD_REL * np.abs(bh)) * SLACK
            fin = np.isfinite(y)
            bh = np.where(fin, bh, -y)
            bl = np.where(fin, bl, 0.0)
            rad = np.where(fin, rad, 0.0)
        return bh, bl, rad


class _ProbRows:
    """Float64 values and bounds of a block of Keras probability rows."""

    def __init__(self, x: np.ndarray, clip):
        lo, hi = (float(b) for b in clip)  # exact: the bounds are float values
        self.lo, self.hi = lo, hi
        self.x = x
        self.n, self.c = x.shape
        with np.errstate(all="ignore"):
            self.nan = np.isnan(x).any(axis=1)
            self.cl = np.clip(x, lo, hi)  # exact; ±inf clip to the bounds
            self.passes = (x >= lo) & (x <= hi)

    def sparse(self, lab: np.ndarray):
        """Loss (mid, rad) and unit-coefficient gradient (mid, rad) of −log(c_y / Σ c)."""
        idx = np.arange(self.n)
        cy = self.cl[idx, lab]
        others = self.cl.copy()
        others[idx, lab] = 0.0
        with np.errstate(all="ignore"):
            so, lev = pairwise_sum(others)  # Σ_{j≠y} c_j, positive terms
            so_rad = so * lev * U * SLACK
            q = so / cy
            q_rad = (so_rad / cy + U * q) * SLACK
            L = np.log1p(q)
            L_rad = q_rad / np.maximum(1 + q - q_rad, 1.0) * SLACK + C_FN * L
            s = cy + so
            s_rad = so_rad + U * s
            inv_s = 1 / s
            inv_s_rad = inv_s * (s_rad / s + U) * SLACK
            # j = y: 1/S − 1/c_y = −(Σ_{j≠y} c_j) / (S c_y), no cancellation
            gy = -so / (s * cy)
            gy_rad = np.abs(gy) * (lev * U + s_rad / s + 3 * U) * SLACK
            g = np.broadcast_to(inv_s[:, None], self.cl.shape).copy()
            grad_rad = np.broadcast_to(inv_s_rad[:, None], self.cl.shape).copy()
            g[idx, lab] = gy
            grad_rad[idx, lab] = gy_rad
            g = np.where(self.passes, g, 0.0)
            grad_rad = np.where(self.passes, grad_rad, 0.0)
        return (L, L_rad), (g, grad_rad)

    def dense(self, y: np.ndarray, y_rad: np.ndarray):
        """Loss and gradient of −Σ Y_j log clip(x_j / Σ x); rows whose clip decisions or
        sums are not certain get an infinite radius (the exact tier decides them)."""
        x = self.x
        with np.errstate(all="ignore"):
            s, lev = pairwise_sum(x)
            mag, _ = pairwise_sum(np.abs(x))
            s_rad = lev * U * mag * SLACK
            q = x / s[:, None]
            q_rad = np.abs(q) * ((s_rad / np.abs(s))[:, None] + U) * SLACK
            unsure = (np.abs(q - self.lo) <= q_rad) | (np.abs(q - self.hi) <= q_rad)
            row_unsure = unsure.any(axis=1) | (s_rad >= np.abs(s)) | ~np.isfinite(s) | \
                ~np.isfinite(x).all(axis=1)
            c = np.clip(q, self.lo, self.hi)
            passes = (q >= self.lo) & (q <= self.hi)
            c_rad = np.where(passes, q_rad, 0.0)
            lc = np.log(c)
            lc_rad = c_rad / np.maximum(c - c_rad, self.lo / 2) * SLACK + C_FN * np.abs(lc)
            term = -y * lc
            tr = np.abs(y) * lc_rad + y_rad * np.abs(lc) + U * np.abs(term)
            L, lev2 = pairwise_sum(term)
            tmag, _ = pairwise_sum(np.abs(term))
            L_rad = tr.sum(axis=1) * SLACK + lev2 * U * tmag * SLACK
            # gradient: G_k = (H_k − Σ_j H_j q_j) / S with H_j = −Y_j [pass_j] / c_j
            h = np.where(passes, -y / c, 0.0)
            h_rad = np.where(passes, np.abs(h) * (c_rad / c + U) + y_rad / c, 0.0)
            hq, lev3 = pairwise_sum(h * q)
            hq_mag, _ = pairwise_sum(np.abs(h * q))
            hq_rad = (np.abs(h) * q_rad + h_rad * np.abs(q)).sum(axis=1) + \
                (lev3 + 1) * U * hq_mag
            num = h - hq[:, None]
            num_rad = h_rad + hq_rad[:, None] + U * np.abs(num)
            g = num / s[:, None]
            g_rad = (num_rad / np.abs(s)[:, None] + np.abs(g) * ((s_rad / np.abs(s))[:, None]
                                                                   + U)) * SLACK
            L_rad = np.where(row_unsure, np.inf, L_rad)
            g_rad = np.where(row_unsure[:, None], np.inf, g_rad)
            # y may be non-finite (then the exact tier decides the row)
            bad_y = ~np.isfinite(y).all(axis=1)
            L_rad = np.where(bad_y, np.inf, L_rad)
            g_rad = np.where(bad_y[:, None], np.inf, g_rad)
        return (L, L_rad), (g, g_rad)



"""The vectorized tier: the oracle's answers for millions of rows, certified.

Same plans (:mod:`xentconf.oracle.semantics` decides once), same expectation objects,
different arithmetic: rows are evaluated with numpy in float64 (double-double where the
output is float64), each element carries an a-priori error bound, and an element is
*certified* when both ends of ``value ± bound`` round to the same value of the output
format. The few elements whose bound straddles a rounding boundary go to the exact tier
(Ziv's strategy across tiers), so every rounded value the engine returns is the
correctly rounded exact value — the same answer as the exact tier, much faster.

Error model (``u = 2**-53``): ``+ − × ÷`` are correctly rounded; ``np.log1p`` (and
``np.exp`` where the dense and double-double paths use it) is within ``C_FN = 4u``
relative (measured ≤ 1.11u here); the logits rows' exponential is the engine's own
:func:`~xentconf.oracle.vexp.exp_nonpos` (≤ ``EXP_REL = 3u`` relative, derived there; the
optional compiled kernel in :mod:`xentconf.oracle.accel` evaluates the same operations and
gives the same bits); an exponential that underflows into float64's subnormals errs by at
most ``ETA`` absolutely. For a sparse row (``k`` = the first maximum, ``d = z − m`` with
its rounding error ``d_lo`` from an error-free ``two_sum``; for float32 logits the shift
is exact and ``two_sum`` is skipped where that is proven):

* ``e_j = exp(d_j)``: relative error ``C_FN + |d_lo_j|`` (``exp(d + d_lo) = exp(d)(1 +
  d_lo + …)``), plus ``ETA``.
* ``t = Σ_{j≠k} e_j`` by the engine's own summation order (:func:`lane_sum`: chunks of
  ``LANES`` summed as vectors in a binary tree, then the lanes pairwise, ``levels =
  ⌈log2 ⌈C/LANES⌉⌉ + 3``, each adding one rounding to every partial sum): radius
  ``C_FN·t + Σ e_j·|d_lo_j| + levels·u·t`` (the middle sum ``terr`` in the same order).
* ``log s = log1p(t)``: absolute error ``rad(t)/(1 + t − rad(t)) + C_FN·log s``.
* ``L = log s + (−d_y)``, both terms non-negative (no cancellation even for a loss of
  1e-30): ``rad(log s) + u·L + |d_lo_y|``.
* ``p_j = e_j / (1 + t)``; ``p_y − 1 = −t_y / s`` without cancellation (``t_y = t`` when
  ``y = k``, else ``(1 − e_y) + t`` with both terms non-negative).

Dense rows sum ``Y_j (log s − d_j)`` with the same bounds (a cancelling sum just gets a
wide bound and goes to the exact tier). Reductions add ``|c_i|·rad(L_i)`` and a pairwise
summation term; gradients scale row bounds by ``|γ_r|``. Rows are processed in blocks
so scratch memory stays bounded (``BLOCK_BYTES``) whatever the input size.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import accel as _accel
from . import budgets as _budgets
from .evaluate import evaluate as _exact_evaluate
from .evaluate import row_exact
from .exact import certify as _certify_exact
from .expectation import Expectation, OutputExpectation
from .formats import FORMATS, Format, round_to_format
from .plan import Plan
from .vexp import LANES, exp_nonpos

U = 2.0 ** -53
C_FN = 4 * U  # np.exp / np.log1p relative error bound
ETA = 2.0 ** -1060  # absolute slack for exponentials that underflow
# Every radius is itself computed in float64: a sum or product of n non-negative rounded
# terms comes out at least (1 − u)^n times its exact value, so a radius multiplied by SLACK
# bounds the exact radius again for any n ≤ MAX_OPS, more operations than any radius here
# is built from ((1 − u)^-n ≤ e^{1.01·n·u} = 1.00006 for n = 2^39).
MAX_OPS = 2**39
SLACK = 1.0001
assert (1 - U) ** -MAX_OPS <= SLACK
USE_ACCEL = True  # tests switch the compiled kernel off to compare both paths
KERNEL_BLOCK_BYTES = 4 << 20  # input rows per kernel call (bounds a non-contiguous copy)
KERNEL_BLOCK_ROWS = 1 << 16  # and at most this many (bounds the row-level temporaries)
BLOCK_BYTES = 1 << 20  # per float64 scratch array: small enough that freed blocks are reused
# (fresh 8 MiB temporaries spent half the time in page faults), a block uses about 10
F64 = FORMATS["float64"]


# --------------------------------------------------------------------------- rounding


F32 = FORMATS["float32"]


def _round(x: np.ndarray, fmt: Format) -> np.ndarray:
    """:func:`round_to_format`, with float32 by the hardware cast (one IEEE rounding, ties
    to even, overflow to ±inf) where the result is a normal float32, zero or not finite;
    the float32-subnormal range keeps the scaled rounding (immune to flush-to-zero)."""
    if fmt is not F32:
        return round_to_format(x, fmt)
    with np.errstate(all="ignore"):
        out = x.astype(np.float32).astype(np.float64)
        tiny = (np.abs(x) < 2.0 ** -126) & (x != 0)
        if tiny.any():
            out[tiny] = round_to_format(x[tiny], fmt)
    return out


def certify_ball(mid: np.ndarray, rad: np.ndarray, fmt: Format):
    """(rounded, ok): ok where both ends of ``mid ± rad`` round alike in ``fmt``.

    The ends are widened by two float64 roundings so that forming them cannot move them
    inward. Non-finite ``mid`` with zero radius is taken as exact (NaN, ±inf).
    """
    mid = np.asarray(mid, dtype=np.float64)
    rad = np.asarray(rad, dtype=np.float64)
    with np.errstate(all="ignore"):
        # a zero radius means mid is exact: nothing to widen
        w = np.where(rad == 0, 0.0, rad * (1 + 4 * U) + 4 * U * np.abs(mid) + 2.0 ** -1074)
        lo = _round(mid - w, fmt)
        hi = _round(mid + w, fmt)
        special = ~np.isfinite(mid) & (rad == 0)
        ok = ((lo == hi) | special) & np.isfinite(rad)
        if fmt is F64:
            ok &= rad == 0  # float64 outputs are certified by the double-double path only
        rounded = np.where(special, mid, _round(mid, fmt))
    return rounded, ok


# --------------------------------------------------------------------------- sums


def pairwise_sum(a: np.ndarray):
    """Sum along the last axis in a fixed pairwise order; returns (sum, levels).

    Each level adds two partial sums with one rounding, so for non-negative terms the
    relative error is at most ``levels · u``; in general ``levels · u · Σ|a|``.
    """
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[-1]
    if n == 0:
        return np.zeros(a.shape[:-1]), 0
    levels = 0
    while a.shape[-1] > 1:
        m = a.shape[-1]
        if m % 2:
            a = np.concatenate([a, np.zeros(a.shape[:-1] + (1,))], axis=-1)
        a = a[..., 0::2] + a[..., 1::2]
        levels += 1
    return a[..., 0], levels


def two_sum(a, b):
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    return s, err


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

    ``bad`` rows (a NaN, a +inf, or no finite logit) are NaN by TF's rules; ``k`` is a
    maximum; ``d + d_lo = x − max x`` exactly (``two_sum``), ``d = −inf`` for −inf logits.
    """
    with np.errstate(all="ignore"):
        finite = np.isfinite(x)
        bad = np.isnan(x).any(axis=1) | (x == np.inf).any(axis=1) | ~finite.any(axis=1)
        xm = np.where(finite, x, -np.inf)
        k = np.argmax(xm, axis=1)
        m = np.where(bad, 0.0, xm.max(axis=1))
        d, dlo = two_sum(x, -m[:, None])
        neg = x == -np.inf
        d = np.where(neg, -np.inf, np.where(bad[:, None], 0.0, d))
        dlo = np.where(finite & ~bad[:, None] & np.isfinite(d), dlo, 0.0)  # overflow: −inf
    return bad, k, d, dlo, finite, neg


def _row_max(xs: np.ndarray):
    """TF's per-row rules: (bad, m, k). ``bad`` rows (a NaN, a +inf, or no finite logit)
    are NaN by TF's rules; ``m`` is the maximum (0 in bad rows), ``k`` its first index."""
    with np.errstate(all="ignore"):
        m = xs.max(axis=1).astype(np.float64)  # NaN and +inf win; all −inf stays −inf
        bad = ~np.isfinite(m)
        k = np.argmax(xs, axis=1)
    return bad, np.where(bad, 0.0, m), k


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
            logs = np.log1p(t)
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


class _Rows:
    """Float64 values and bounds of a block of logits rows (sparse or dense)."""

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

    def sparse_loss(self, labels: np.ndarray):
        lab = np.clip(labels, 0, max(self.c - 1, 0))
        xy = np.asarray(self.x[np.arange(self.n), lab], dtype=np.float64)
        return sparse_loss_rows(self.c, (self.bad, self.m, self.k, self.t, self.terr, xy))

    def sparse_bp(self, labels: np.ndarray):
        idx = np.arange(self.n)
        lab = np.clip(labels, 0, max(self.c - 1, 0))
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
            L, lev = pairwise_sum(term)
            mag, _ = pairwise_sum(np.where(fin, np.abs(term), 0.0))
            rad = tr.sum(axis=1) * SLACK + lev * U * mag * SLACK
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


def certify_dd_f64(hi: np.ndarray, lo: np.ndarray, rad: np.ndarray):
    """(rounded, ok) for float64 outputs of double-double values ``hi + lo ± rad``.

    A normalised dd has ``|lo| ≤ ulp(hi)/2``, so the float64 rounding is ``hi`` exactly
    when ``lo ± rad`` stays strictly inside the half-ulps around ``hi`` (the one below a
    power of two is half as wide). Anything else — a tie, a straddle — is not certified.
    """
    hi = np.asarray(hi, dtype=np.float64)
    with np.errstate(all="ignore"):
        special = ~np.isfinite(hi)
        ahi = np.abs(hi)
        up = np.spacing(ahi)
        pow2 = (np.frexp(ahi)[0] == 0.5) & (ahi >= 2.0 ** -1021)
        down = np.where(pow2, up / 2, up)
        sgn = np.where(hi < 0, -1.0, 1.0)
        w = rad * (1 + 2.0 ** -50) + 2.0 ** -1074 * (rad > 0)
        dev_hi = sgn * lo + w
        dev_lo = sgn * lo - w
        shrink = 1 - 2.0 ** -50
        ok = (dev_hi < up / 2 * shrink) & (dev_lo > -down / 2 * shrink) & (hi != 0)
        ok |= (hi == 0) & (lo == 0) & (rad == 0)
        ok |= special & (rad == 0)
        ok &= np.isfinite(rad)
    return np.where(ok, hi, np.nan), ok


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
            self.log_rad = (lerr + self.t_rad / np.maximum(1 + th - self.t_rad, 1.0)) * SLACK
            sh, sl = dd.dd_add_d(th, tl, 1.0)
            self.sh, self.sl = sh, sl
            self.s_rad = (self.t_rad + dd.ADD_D_REL * sh) * SLACK

    def p(self):
        dd = self.dd
        with np.errstate(all="ignore"):
            sh, sl = self.sh[:, None], self.sl[:, None]
            ph, pl = dd.dd_div(self.eh, self.el, sh, sl)
            rel_s = (self.s_rad / self.sh)[:, None]
            rad = (np.abs(ph) * (dd.DIV_REL + rel_s) + self.eerr / sh) * SLACK
        return ph, pl, rad

    def sparse_loss(self, labels):
        dd = self.dd
        idx = np.arange(self.n)
        lab = np.clip(labels, 0, max(self.c - 1, 0))
        ah, al = -self.dh[idx, lab], -self.dl[idx, lab]
        with np.errstate(all="ignore"):
            fin = np.isfinite(ah)
            Lh, Ll = dd.dd_add(self.lh, self.ll, np.where(fin, ah, 0.0), np.where(fin, al, 0.0))
            rad = (self.log_rad + dd.ADD_REL * np.abs(Lh)) * SLACK
            Lh = np.where(fin, Lh, np.inf)
            Ll = np.where(fin, Ll, 0.0)
            rad = np.where(fin, rad, 0.0)
        return Lh, Ll, rad

    def sparse_bp(self, labels):
        dd = self.dd
        idx = np.arange(self.n)
        lab = np.clip(labels, 0, max(self.c - 1, 0))
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
            b_rad = (np.abs(bh) * (dd.DIV_REL + self.s_rad / self.sh) + n_rad / self.sh) * SLACK
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

    def sparse(self, labels: np.ndarray):
        """Loss (mid, rad) and unit-coefficient gradient (mid, rad) of −log(c_y / Σ c)."""
        idx = np.arange(self.n)
        lab = np.clip(labels, 0, max(self.c - 1, 0))
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


# --------------------------------------------------------------------------- driver


class _Fallback(Exception):
    pass


def _smoothed(rows, lo: int, hi: int):
    y = rows.y[lo:hi].astype(np.float64)
    if not rows.smoothing:
        return y, np.zeros_like(y)
    eps = float(rows.smoothing)
    cs = rows.smoothing_classes or rows.c
    exact_eps = Fraction(eps) == rows.smoothing
    with np.errstate(all="ignore"):
        ys = y * (1 - eps) + eps / cs
        rad = (np.abs(y * (1 - eps)) * 2 * U + abs(eps / cs) * U + U * np.abs(ys)) * SLACK
        if not exact_eps:
            rad = np.full_like(ys, np.inf)
        rad = np.where(np.isfinite(ys), rad, 0.0)
    return ys, rad


def _block_rows(n: int, c: int) -> int:
    return max(1, min(n, BLOCK_BYTES // max(8 * max(c, 1), 1)))


def _frac_to_float(v) -> tuple[float, float]:
    """(float64 value, its absolute error bound) of an exact coefficient."""
    if isinstance(v, float):
        return v, 0.0
    f = float(v)
    if math.isfinite(f) and Fraction(f) == v:
        return f, 0.0
    return f, abs(f) * U


def _frac_to_dd(v) -> tuple[float, float]:
    """A double-double (hi, lo) with |hi + lo − v| ≤ 2**-106·|v| (exact when dyadic)."""
    if isinstance(v, float):
        return v, 0.0
    hi = float(v)
    if not math.isfinite(hi):
        return hi, 0.0
    return hi, float(v - Fraction(hi))


class Engine:
    """Carries out one plan in the vectorized tier."""

    def __init__(self, plan: Plan, upstream=None):
        self.plan = plan
        self.upstream = upstream
        rows = plan.rows
        self.supported = rows.kind in ("sparse", "dense", "sparse_probs", "dense_probs")
        # the compiled kernel (same answers, bit for bit) where numba is installed
        self.accel = USE_ACCEL and rows.kind == "sparse" and \
            rows.source.dtype in (np.float32, np.float64) and _accel.enabled()
        self._exact = None
        self._loss_rows = None
        self._ws = _Workspace()

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
        if kind == "sparse" and not need_grad:
            lab = np.clip(rows.labels[lo:hi], 0, max(rows.c - 1, 0))
            stats = sparse_row_stats(rows.source[lo:hi], lab, self.accel, self._ws)
            return sparse_loss_rows(rows.c, stats), None, stats[0]
        if kind in ("sparse", "dense"):
            blk = _Rows(rows.source[lo:hi] if kind == "sparse" else rows.x_block(lo, hi))
            if kind == "sparse":
                loss = blk.sparse_loss(rows.labels[lo:hi])
                grad = blk.sparse_bp(rows.labels[lo:hi]) if need_grad else None
            else:
                ys, yr = _smoothed(rows, lo, hi)
                loss = blk.dense_loss(ys, yr, rows.xla_zero_labels)
                grad = blk.dense_bp(ys, yr) if need_grad else None
            return loss, grad, blk.bad
        pb = _ProbRows(rows.x_block(lo, hi), rows.clip)
        if kind == "sparse_probs":
            loss, grad = pb.sparse(rows.labels[lo:hi])
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
        L = np.zeros(n)
        R = np.zeros(n)
        if c == 0:
            self._loss_rows = (L, R)
            return self._loss_rows
        if rows.kind == "sparse" and self.accel:  # the kernel's scratch does not grow with C
            step = max(1, min(n, KERNEL_BLOCK_ROWS,
                              KERNEL_BLOCK_BYTES // (c * rows.source.itemsize)))
        else:
            step = _block_rows(n, c)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            (m, r), _g, bad0 = self._block(lo, hi, need_grad=False)
            bad = bad0 | rows.nan_rows[lo:hi]
            m = np.where(bad, np.nan, m)
            r = np.where(bad, 0.0, r)
            ign = rows.ignored[lo:hi]
            L[lo:hi] = np.where(ign, 0.0, m)
            R[lo:hi] = np.where(ign, 0.0, r)
        self._ws = _Workspace()  # release the scratch
        self._loss_rows = (L, R)
        return self._loss_rows

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
            step = _block_rows(n, 2 * c)
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                blk = _RowsDD(rows.x_block(lo, hi))
                if rows.kind == "sparse":
                    h, l_, r = blk.sparse_loss(rows.labels[lo:hi])
                else:
                    h, l_, r = blk.dense_loss(rows.y[lo:hi].astype(np.float64),
                                              rows.xla_zero_labels)
                bad = blk.bad | rows.nan_rows[lo:hi]
                ign = rows.ignored[lo:hi]
                Lh[lo:hi] = np.where(ign, 0.0, np.where(bad, np.nan, h))
                Ll[lo:hi] = np.where(ign | bad, 0.0, l_)
                R[lo:hi] = np.where(ign | bad, 0.0, r)
        self._dd_rows = (Lh, Ll, R)
        return self._dd_rows

    def loss_dd(self) -> np.ndarray:
        from . import dd

        red = self.plan.reduction
        Lh, Ll, R = self._row_values_dd()
        idx = red.index
        if isinstance(red.coef, np.ndarray):
            ch, cl = red.coef, np.zeros(red.coef.shape)
        else:
            cs = [_frac_to_dd(v) for v in red.coef]
            ch = np.array([a for a, _ in cs], dtype=np.float64)
            cl = np.array([b for _, b in cs], dtype=np.float64)
        with np.errstate(all="ignore"):
            vh, vl = dd.dd_mul(ch, cl, Lh[idx], Ll[idx]) if idx.size else (np.zeros(0),) * 2
            vr = (np.abs(ch) * R[idx] + dd.MUL_REL * np.abs(vh)) * SLACK if idx.size \
                else np.zeros(0)
            spec = ch * Lh[idx] if idx.size else np.zeros(0)  # IEEE specials (0·inf, NaN)
            nonfin = ~np.isfinite(spec)
            vh = np.where(nonfin, spec, vh)
            vl = np.where(nonfin, 0.0, vl)
            vr = np.where(nonfin, 0.0, vr)
        if red.kind == "none":
            rounded, ok = certify_dd_f64(vh, vl, vr)
            out = np.where(ok, rounded, 0.0)
            if not ok.all():
                self._fallback_loss_elements(out, np.flatnonzero(~ok))
            return out.reshape(red.shape)
        denom = red.denom if red.kind == "div" else None
        if denom is not None and not isinstance(denom, float) and denom == 0:
            return np.array(np.nan if red.zero_denominator == "nan" else 0.0).reshape(())
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

    def grad_rows_dd(self, with_gamma: bool) -> np.ndarray:
        from . import dd

        rows = self.plan.rows
        n, c = rows.n, rows.c
        out = np.zeros((n, c))
        if c == 0 or n == 0:
            return out
        if with_gamma:
            try:
                exact = self._gamma_fractions()
            except _Fallback:
                self.fallbacks += n * c
                return self._rows_from_exact("grad_logits")
            if exact is None:  # identity weighting with float coefficients: γ = u·c exactly
                red = self.plan.reduction
                u = self._upstream_floats().ravel()
                gh, gl = dd.two_prod(u, red.coef)
            else:
                gs = [_frac_to_dd(v) for v in exact]
                gh = np.array([a for a, _ in gs])
                gl = np.array([b for _, b in gs])
        else:
            gh, gl = np.ones(n), np.zeros(n)
        step = _block_rows(n, 2 * c)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            blk = _RowsDD(rows.x_block(lo, hi))
            if rows.kind == "sparse":
                bh, bl, br = blk.sparse_bp(rows.labels[lo:hi])
            else:
                bh, bl, br = blk.dense_bp(rows.y[lo:hi].astype(np.float64))
            g_h, g_l = gh[lo:hi, None], gl[lo:hi, None]
            with np.errstate(all="ignore"):
                vh, vl = dd.dd_mul(np.broadcast_to(g_h, bh.shape), np.broadcast_to(g_l, bh.shape),
                                   bh, bl)
                vr = (np.abs(g_h) * br + dd.MUL_REL * np.abs(vh)) * SLACK
                spec = g_h * bh
                nonfin = ~np.isfinite(spec)
                vh = np.where(nonfin, spec, vh)
                vl = np.where(nonfin, 0.0, vl)
                vr = np.where(nonfin, 0.0, vr)
            bad = (blk.bad | rows.nan_rows[lo:hi])[:, None]
            ign = rows.ignored[lo:hi, None]
            vh = np.where(ign, 0.0, np.where(bad, np.nan, vh))
            vl = np.where(ign | bad, 0.0, vl)
            vr = np.where(ign | bad, 0.0, vr)
            rounded, ok = certify_dd_f64(vh, vl, vr)
            rounded = np.where(ok, rounded, 0.0)
            if not ok.all():
                self._fallback_grad(rounded, ok, lo, gam_exact=with_gamma, fmt=F64)
            out[lo:hi] = rounded
        return out

    def _gamma_fractions(self) -> list | None:
        """Exact γ per row, or None when γ = upstream·coefficient elementwise (identity
        weighting with float coefficients): then two_prod gives it exactly."""
        from .evaluate import _upstream_fracs, exact_gammas

        red = self.plan.reduction
        idx = red.index
        if red.kind == "none" and isinstance(red.coef, np.ndarray) and \
                idx.size == self.plan.rows.n and np.array_equal(idx, np.arange(idx.size)):
            u = self._upstream_floats().ravel()
            au, ac = np.abs(u), np.abs(red.coef)
            with np.errstate(all="ignore"):
                # two_prod is exact for products in [2**-968, 2**1000) and for zero factors
                fits = (au == 0) | (ac == 0) | ((au * ac >= 2.0 ** -900) & (au * ac < 2.0 ** 1000))
            if np.isfinite(u).all() and np.isfinite(red.coef).all() and fits.all():
                return None
        gam = exact_gammas(red, _upstream_fracs(self.upstream, red.shape))
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
        L, R = self._row_values()
        cw, cr = red.floats()
        idx = red.index
        with np.errstate(all="ignore"):
            vals = cw * L[idx] if idx.size else np.zeros(0)
            vr = np.abs(cw) * R[idx] + cr * np.abs(L[idx]) + U * np.abs(vals) if idx.size \
                else np.zeros(0)
            vr = np.where(np.isfinite(vals), vr, 0.0)
        if red.kind == "none":
            exact_one = red.exactly_one()
            vr = np.where(exact_one, R[idx] if idx.size else vr, vr)
            rounded, ok = certify_ball(vals, vr, fmt)
            out = rounded.copy()
            if not ok.all():
                self._fallback_loss_elements(out, np.flatnonzero(~ok))
            return out.reshape(red.shape)
        with np.errstate(all="ignore"):
            s, lev = pairwise_sum(vals[None, :]) if vals.size else (np.zeros(1), 0)
            s = s[0]
            srad = vr.sum() * SLACK + lev * U * np.nansum(np.abs(vals)) * SLACK
        denom = red.denom if red.kind == "div" else None
        if denom is not None and not isinstance(denom, float) and denom == 0:
            v = np.nan if red.zero_denominator == "nan" else 0.0
            return np.array(v).reshape(())
        if denom is not None:
            dv, dr = _frac_to_float(denom)
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
            form = scale(row_exact(self.plan.rows, r).loss, red.fractions()[i])
            out[i] = _certify_exact(form, fmt)
            self.fallbacks += 1

    def _upstream_floats(self) -> np.ndarray:
        red = self.plan.reduction
        if self.upstream is None:
            return np.ones(red.shape)
        arr = np.asarray(self.upstream)
        if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
            from .semantics import OracleInputError

            raise OracleInputError(f"upstream: must be numeric, got dtype {arr.dtype}")
        try:
            return np.broadcast_to(arr.astype(np.float64), red.shape)
        except ValueError:
            from .semantics import OracleInputError

            raise OracleInputError(f"upstream: shape {tuple(arr.shape)} does not match the "
                                   f"output shape {tuple(red.shape)}") from None

    def _gammas(self):
        """(γ_r, rad) float64 per row: ∂(Σ upstream·loss)/∂L_r, with an error bound."""
        red = self.plan.reduction
        n = self.plan.rows.n
        cv, cr = red.floats()
        up = self._upstream_floats().ravel()
        denom = red.denom if red.kind == "div" else None
        if isinstance(denom, float) or not np.isfinite(cv).all() or not np.isfinite(up).all():
            raise _Fallback  # special coefficients: the exact tier applies IEEE rules
        u = up if red.kind == "none" else np.full(cv.shape, up[0] if up.size else 1.0)
        with np.errstate(all="ignore"):
            t = u * cv
            rad = np.abs(t) * U + np.abs(u) * cr
            if denom is not None:
                if denom == 0:
                    t, rad = np.zeros_like(t), np.zeros_like(t)
                else:
                    dv, dr = _frac_to_float(denom)
                    t = t / dv
                    rad = rad / abs(dv) + np.abs(t) * (U + dr / abs(dv))
            gam = np.zeros(n)
            grad = np.zeros(n)
            np.add.at(gam, red.index, t)
            np.add.at(grad, red.index, rad + np.abs(t) * U * 2)
            counts = np.bincount(red.index, minlength=n)
            grad += np.abs(gam) * U * np.maximum(counts - 1, 0)
        return gam, grad * SLACK

    def _gamma_exact(self, rows_needed) -> dict:
        """Exact γ_r for the given rows (special values by IEEE rules)."""
        from .evaluate import _upstream_fracs, exact_gammas

        red = self.plan.reduction
        return exact_gammas(red, _upstream_fracs(self.upstream, red.shape), rows_needed)

    def grad_rows(self, with_gamma: bool) -> np.ndarray:
        """Certified gradient (or backprop) rows [N, C] in the grad/loss format."""
        plan = self.plan
        rows = plan.rows
        fmt = plan.grad_format if with_gamma else plan.loss_format
        if fmt is F64:
            return self.grad_rows_dd(with_gamma)
        n, c = rows.n, rows.c
        out = np.zeros((n, c))
        if c == 0 or n == 0:
            return out
        if with_gamma:
            try:
                gam, grad_rad = self._gammas()
            except _Fallback:
                self.fallbacks += n * c
                name = "grad_logits"
                return self._rows_from_exact(name)
        else:
            gam, grad_rad = np.ones(n), np.zeros(n)
        step = _block_rows(n, c)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            _l, (bp, rad), bad0 = self._block(lo, hi, need_grad=True)
            g = gam[lo:hi, None]
            with np.errstate(all="ignore"):
                val = g * bp
                vr = np.abs(g) * rad + grad_rad[lo:hi, None] * np.abs(bp) + U * np.abs(val)
                vr = np.where(np.isfinite(val), vr, 0.0)
            bad = (bad0 | rows.nan_rows[lo:hi])[:, None]
            val = np.where(bad, np.nan, val)
            vr = np.where(bad, 0.0, vr)
            ign = rows.ignored[lo:hi, None]
            val = np.where(ign, 0.0, val)
            vr = np.where(ign, 0.0, vr)
            rounded, ok = certify_ball(val, vr, fmt)
            if not ok.all():
                self._fallback_grad(rounded, ok, lo, gam_exact=with_gamma, fmt=fmt)
            out[lo:hi] = rounded
        return out

    def _rows_from_exact(self, name: str) -> np.ndarray:
        o = self.exact[name]
        plan = self.plan
        v = o.rounded64
        if name == "grad_logits" and plan.grad_perm is not None:
            v = np.transpose(v, plan.grad_perm)
        return v.reshape(plan.rows.n, plan.rows.c)

    def _fallback_grad(self, rounded, ok, lo, *, gam_exact: bool, fmt: Format) -> None:
        plan = self.plan
        bis, js = np.nonzero(~ok)
        gam = self._gamma_exact({lo + int(b) for b in bis}) if gam_exact else {}
        for bi, j in zip(bis, js):
            r = lo + int(bi)
            g = gam.get(r, Fraction(0)) if gam_exact else Fraction(1)
            form = row_exact(plan.rows, r).grad(g)[int(j)]
            rounded[bi, j] = _certify_exact(form, fmt)
            self.fallbacks += 1


def _to_grad_shape(plan: Plan, rows_arr: np.ndarray) -> np.ndarray:
    v = rows_arr
    if plan.grad_perm is not None:
        v = np.transpose(v.reshape(plan.moved_shape), np.argsort(plan.grad_perm))
    return v.reshape(plan.grad_shape)


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
            lambda: _to_grad_shape(plan, eng.grad_rows(True)))
    result = Expectation(plan.api, plan.profile, outputs=outs, notes=list(plan.notes))
    result.engine = eng
    return result

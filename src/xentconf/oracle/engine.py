"""The vectorized tier: the oracle's answers for millions of rows, certified.

Same plans (:mod:`xentconf.oracle.semantics` decides once), same expectation objects,
different arithmetic: rows are evaluated with numpy in float64 (double-double where the
output is float64), each element carries an a-priori error bound, and an element is
*certified* when both ends of ``value ± bound`` round to the same value of the output
format. The few elements whose bound straddles a rounding boundary go to the exact tier
(Ziv's strategy across tiers), so every rounded value the engine returns is the
correctly rounded exact value — the same answer as the exact tier, much faster.

Error model (``u = 2**-53``): ``+ − × ÷`` are correctly rounded; ``np.exp`` and
``np.log1p`` are within ``C_FN = 4u`` relative (measured ≤ 1.11u here); an exponential
that underflows into float64's subnormals errs by at most ``ETA`` absolutely. For a
sparse row (``d = z − m`` formed with an error-free ``two_sum``, ``k`` = a maximum):

* ``e_j = exp(d_j)``: relative error ``C_FN + |d_lo_j|`` (``exp(d + d_lo) = exp(d)(1 +
  d_lo + …)``), plus ``ETA``.
* ``t = Σ_{j≠k} e_j`` by the engine's own pairwise sum (``⌈log2 C⌉`` levels, each adding
  one rounding to every partial sum): relative error ``max rel(e) + levels·u``.
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

from . import budgets as _budgets
from .evaluate import evaluate as _exact_evaluate
from .evaluate import row_exact
from .exact import certify as _certify_exact
from .expectation import Expectation, OutputExpectation
from .formats import FORMATS, Format
from .plan import Plan

U = 2.0 ** -53
C_FN = 4 * U  # np.exp / np.log1p relative error bound
ETA = 2.0 ** -1060  # absolute slack for exponentials that underflow
BLOCK_BYTES = 8 << 20  # per float64 scratch array; a block uses about 8 of them (≤ 64 MB)
F64 = FORMATS["float64"]


# --------------------------------------------------------------------------- rounding


def round_to_format(x: np.ndarray, fmt: Format) -> np.ndarray:
    """Round float64 values to ``fmt`` (ties to even), vectorized; values stay float64.

    Scaling by powers of two is exact and ``np.rint`` rounds half to even, so this is a
    single correct rounding (numpy's and ml_dtypes' casts are not used: the latter
    double-rounds to bfloat16).
    """
    x = np.asarray(x, dtype=np.float64)
    if fmt is F64:
        return x.copy()
    out = x.copy()
    fin = np.isfinite(x) & (x != 0)
    if fin.any():
        v = x[fin]
        e = np.frexp(v)[1] - 1  # v in [2**e, 2**(e+1))
        q = np.maximum(e, fmt.emin) - (fmt.p - 1)
        r = np.ldexp(np.rint(np.ldexp(v, -q)), q)
        r = np.where(np.abs(r) > fmt.max_finite, np.copysign(np.inf, v), r)
        out[fin] = r
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
        lo = round_to_format(mid - w, fmt)
        hi = round_to_format(mid + w, fmt)
        special = ~np.isfinite(mid) & (rad == 0)
        ok = ((lo == hi) | special) & np.isfinite(rad)
        if fmt is F64:
            ok &= rad == 0  # float64 outputs are certified by the double-double path only
        rounded = np.where(special, mid, round_to_format(mid, fmt))
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


class _Rows:
    """Float64 values and bounds of a block of logits rows (sparse or dense)."""

    def __init__(self, x: np.ndarray):
        with np.errstate(all="ignore"):
            n, c = x.shape
            self.n, self.c = n, c
            finite = np.isfinite(x)
            self.bad = np.isnan(x).any(axis=1) | (x == np.inf).any(axis=1) | \
                ~finite.any(axis=1)
            xm = np.where(finite, x, -np.inf)
            self.k = np.argmax(xm, axis=1)
            m = np.where(self.bad, 0.0, xm.max(axis=1))
            d, dlo = two_sum(x, -m[:, None])
            neg = x == -np.inf
            d = np.where(neg, -np.inf, d)
            dlo = np.where(finite, dlo, 0.0)
            self.d, self.dlo = d, dlo
            e = np.exp(d)
            self.e = e
            rel_e = C_FN + np.abs(dlo) * 1.0001
            rel_e = np.where(neg | (d == 0), 0.0, rel_e)
            self.rel_e = rel_e
            idx = np.arange(n)
            ek = e.copy()
            ek[idx, self.k] = 0.0
            t, lev = pairwise_sum(ek)
            self.levels = lev
            self.t = t
            rel_t = (rel_e.max(axis=1) if c else np.zeros(n)) + lev * U * 1.0001
            self.t_rad = t * rel_t + c * ETA
            logs = np.log1p(t)
            self.logs = logs
            self.logs_rad = self.t_rad / np.maximum(1 + t - self.t_rad, 1.0) * 1.0001 + \
                C_FN * logs
            self.s = 1 + t
            self.s_rad = self.t_rad + U * self.s

    def p(self):
        """(mid, rad) of softmax, [N, C]."""
        with np.errstate(all="ignore"):
            p = self.e / self.s[:, None]
            rel = self.rel_e + (self.s_rad / self.s)[:, None] + U
            return p, p * rel * 1.0001 + ETA

    def sparse_loss(self, labels: np.ndarray):
        idx = np.arange(self.n)
        lab = np.clip(labels, 0, max(self.c - 1, 0))
        a = -self.d[idx, lab]
        alo = -self.dlo[idx, lab]
        with np.errstate(all="ignore"):
            L = self.logs + a
            rad = self.logs_rad + U * np.abs(L) + np.abs(alo) * 1.0001
            rad = np.where(np.isinf(a), 0.0, rad)
        return L, rad

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
                                     + U) * 1.0001
            bpy_rad = np.where(num > 0, bpy_rad, num_rad / self.s)
            bp, rad = p.copy(), prad.copy()
            bp[idx, lab] = bpy
            rad[idx, lab] = bpy_rad
        return bp, rad

    def dense_loss(self, y: np.ndarray, y_rad: np.ndarray, xla: bool):
        with np.errstate(all="ignore"):
            a = self.logs[:, None] - self.d  # +inf where d = -inf
            a_rad = self.logs_rad[:, None] + U * a + np.abs(self.dlo) * 1.0001
            term = y * a
            if xla:
                term = np.where(y == 0, 0.0, term)
            fin = np.isfinite(term)
            tr = np.where(fin, np.abs(y) * a_rad + U * np.abs(term) + y_rad * a, 0.0)
            L, lev = pairwise_sum(term)
            mag, _ = pairwise_sum(np.where(fin, np.abs(term), 0.0))
            rad = tr.sum(axis=1) * 1.0001 + lev * U * mag * 1.0001
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
            so_rad = so * lev * U * 1.0001
            q = so / cy
            q_rad = (so_rad / cy + U * q) * 1.0001
            L = np.log1p(q)
            L_rad = q_rad / np.maximum(1 + q - q_rad, 1.0) * 1.0001 + C_FN * L
            s = cy + so
            s_rad = so_rad + U * s
            inv_s = 1 / s
            inv_s_rad = inv_s * (s_rad / s + U) * 1.0001
            # j = y: 1/S − 1/c_y = −(Σ_{j≠y} c_j) / (S c_y), no cancellation
            gy = -so / (s * cy)
            gy_rad = np.abs(gy) * (lev * U + s_rad / s + 3 * U) * 1.0001
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
            s_rad = lev * U * mag * 1.0001
            q = x / s[:, None]
            q_rad = np.abs(q) * ((s_rad / np.abs(s))[:, None] + U) * 1.0001
            unsure = (np.abs(q - self.lo) <= q_rad) | (np.abs(q - self.hi) <= q_rad)
            row_unsure = unsure.any(axis=1) | (s_rad >= np.abs(s)) | ~np.isfinite(s) | \
                ~np.isfinite(x).all(axis=1)
            c = np.clip(q, self.lo, self.hi)
            passes = (q >= self.lo) & (q <= self.hi)
            c_rad = np.where(passes, q_rad, 0.0)
            lc = np.log(c)
            lc_rad = c_rad / np.maximum(c - c_rad, self.lo / 2) * 1.0001 + C_FN * np.abs(lc)
            term = -y * lc
            tr = np.abs(y) * lc_rad + y_rad * np.abs(lc) + U * np.abs(term)
            L, lev2 = pairwise_sum(term)
            tmag, _ = pairwise_sum(np.abs(term))
            L_rad = tr.sum(axis=1) * 1.0001 + lev2 * U * tmag * 1.0001
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
                                                                   + U)) * 1.0001
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
        rad = (np.abs(y * (1 - eps)) * 2 * U + abs(eps / cs) * U + U * np.abs(ys)) * 1.0001
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


class Engine:
    """Carries out one plan in the vectorized tier."""

    def __init__(self, plan: Plan, upstream=None):
        self.plan = plan
        self.upstream = upstream
        rows = plan.rows
        self.supported = rows.kind in ("sparse", "dense", "sparse_probs", "dense_probs")
        self._exact = None
        self._loss_rows = None

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
        if kind in ("sparse", "dense"):
            blk = _Rows(rows.x[lo:hi])
            if kind == "sparse":
                loss = blk.sparse_loss(rows.labels[lo:hi])
                grad = blk.sparse_bp(rows.labels[lo:hi]) if need_grad else None
            else:
                ys, yr = _smoothed(rows, lo, hi)
                loss = blk.dense_loss(ys, yr, rows.xla_zero_labels)
                grad = blk.dense_bp(ys, yr) if need_grad else None
            return loss, grad, blk.bad
        pb = _ProbRows(rows.x[lo:hi], rows.clip)
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
        self._loss_rows = (L, R)
        return self._loss_rows

    def loss(self) -> np.ndarray:
        plan = self.plan
        red = plan.reduction
        fmt = plan.loss_format
        L, R = self._row_values()
        coef = [_frac_to_float(v) for v in red.coef]
        cw = np.array([v for v, _ in coef], dtype=np.float64)
        cr = np.array([r for _, r in coef], dtype=np.float64)
        idx = red.index
        with np.errstate(all="ignore"):
            vals = cw * L[idx] if idx.size else np.zeros(0)
            vr = np.abs(cw) * R[idx] + cr * np.abs(L[idx]) + U * np.abs(vals) if idx.size \
                else np.zeros(0)
            vr = np.where(np.isfinite(vals), vr, 0.0)
        if red.kind == "none":
            exact_one = np.array([v == 1 for v in red.coef], dtype=bool)
            vr = np.where(exact_one, R[idx] if idx.size else vr, vr)
            rounded, ok = certify_ball(vals, vr, fmt)
            out = rounded.copy()
            if not ok.all():
                self._fallback_loss_elements(out, np.flatnonzero(~ok))
            return out.reshape(red.shape)
        with np.errstate(all="ignore"):
            s, lev = pairwise_sum(vals[None, :]) if vals.size else (np.zeros(1), 0)
            s = s[0]
            srad = vr.sum() * 1.0001 + lev * U * np.nansum(np.abs(vals)) * 1.0001
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
                rrad = srad / abs(dv) + abs(res) * (dr / abs(dv) + U) * 1.0001
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
            form = scale(row_exact(self.plan.rows, r).loss, red.coef[i])
            out[i] = _certify_exact(form, fmt)
            self.fallbacks += 1

    def _gammas(self):
        """(γ_r, rad) float64 per row: ∂(Σ upstream·loss)/∂L_r."""
        from .evaluate import _upstream_fracs

        red = self.plan.reduction
        n = self.plan.rows.n
        ups = _upstream_fracs(self.upstream, red.shape)
        denom = red.denom if red.kind == "div" else None
        exact: list = [Fraction(0)] * n
        zero_den = denom is not None and not isinstance(denom, float) and denom == 0
        for i, (r, g) in enumerate(zip(red.index.tolist(), red.coef)):
            u = ups[i] if red.kind == "none" else ups[0]
            if isinstance(u, float) or isinstance(g, float) or isinstance(denom, float):
                raise _Fallback  # special coefficients: leave them to the exact tier
            t = u * g
            if denom is not None:
                t = Fraction(0) if zero_den else t / denom
            exact[r] += t
        vals = [_frac_to_float(v) for v in exact]
        return (np.array([v for v, _ in vals]), np.array([r for _, r in vals]))

    def grad_rows(self, with_gamma: bool) -> np.ndarray:
        """Certified gradient (or backprop) rows [N, C] in the grad/loss format."""
        plan = self.plan
        rows = plan.rows
        fmt = plan.grad_format if with_gamma else plan.loss_format
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
        from .evaluate import _upstream_fracs

        plan = self.plan
        red = plan.reduction
        if gam_exact:
            ups = _upstream_fracs(self.upstream, red.shape)
            denom = red.denom if red.kind == "div" else None
            gam: dict = {}
            zero_den = denom is not None and not isinstance(denom, float) and denom == 0
            for i, (r, g) in enumerate(zip(red.index.tolist(), red.coef)):
                u = ups[i] if red.kind == "none" else ups[0]
                t = u * g
                if denom is not None:
                    t = Fraction(0) if zero_den else t / denom
                gam[r] = gam.get(r, Fraction(0)) + t
        for bi, j in zip(*np.nonzero(~ok)):
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
    if not eng.supported or plan.loss_format is F64 or plan.grad_format is F64:
        exact.notes.append("vectorized tier: evaluated by the exact tier")
        return exact
    bud = _budgets.Budgets(plan, _upstream_list(plan, upstream))
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


def _upstream_list(plan: Plan, upstream) -> list:
    from .evaluate import _upstream_fracs

    return _upstream_fracs(upstream, plan.reduction.shape)

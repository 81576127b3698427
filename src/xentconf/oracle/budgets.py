r"""Error budgets that follow each element's conditioning (SPEC §3).

An implementation evaluated in a floating-point format with unit roundoff ``u``
(``fl(a ∘ b) = (a ∘ b)(1 + δ)``, ``|δ| ≤ u``, and ``exp``/``log`` within ``u`` of their
result) cannot be asked for more than a backward-stable answer. The budgets below are
first-order bounds of that error, element by element, multiplied by a safety factor
``K``. Every budget is ``u_stage · A_stage`` summed over the stages of the computation
(the probability pre-stage, the row stage, the weighting/reduction stage) plus an
underflow allowance ``η · E`` (``η`` = smallest subnormal of the row stage's format),
plus the final rounding to the output format (half an ulp). The ``stable`` budget uses the
input format's ``u`` for every stage; ``tf-precision`` uses the formats TensorFlow
evaluates in (``Precision`` of the plan) and is capped by ``stable``, so the grades stay
ordered (``tf-precision`` ⊂ ``stable``).

Derivation — one logits row ``z`` (``C`` classes), ``m = max z``, ``d = z − m``,
``s = Σ exp d_j``, ``p = softmax z``, label ``y``, loss ``L = log s − d_y``:

* ``d̂_j = d_j (1 + δ)``: absolute error ``u |d_j|``.
* ``ê_j = exp(d̂_j)(1 + δ) = e_j (1 + u|d_j| + u)``.
* ``ŝ``: the terms' errors give ``u Σ_j p_j |d_j| + u`` relative; summing ``C`` positive
  terms adds ``g(C) u`` relative, with ``g(n) = log2 n + 2 √n`` (a tree or vectorised sum
  is ``O(log n)``; a plain loop's typical error is ``O(√n)``; ``n − 1`` is the worst case,
  too loose to be useful at ``C = 256 000``).
* ``log ŝ``: absolute error ``rel(ŝ) + u log s``.
* ``L̂ = fl(log ŝ − d̂_y)``: ``+ u|d_y| + u|L|``.

  ``A_loss = |L| + 2 log s + |d_y| + Σ_j p_j |d_j| + 2 + g(C)``,  ``E_loss = C``.

* backprop ``b_j = p_j − [j = y]``, ``p̂_j = ê_j / ŝ``: relative error
  ``|d_j| + Σ_k p_k|d_k| + 3 + g(C)`` (times ``u``), and the subtraction adds ``u|b_j|``:

  ``A_bp = p_j (|d_j| + Σ p|d| + 3 + g(C)) + |b_j|``,  ``E_bp = 1``.

Dense rows (``L = Σ_j Y_j a_j``, ``a_j = log s − d_j ≥ 0``): each term carries the error of
``log s`` plus ``u|d_j|`` plus two roundings, and the sum over ``C`` terms adds
``g(C) u Σ |Y_j a_j|``; label smoothing's ``Y'`` adds ``2u |Y'_j|`` per term:

  ``A_loss = Σ_j |Y_j| (E_logs + |d_j| + 2 a_j) + (g(C) + 1) Σ_j |Y_j| a_j``, with
  ``E_logs = 2 log s + Σ p|d| + 2 + g(C)``; ``A_bp = p_j rel_j + |b_j| + 2 |Y_j|``.

Keras probability rows: ``l_j = log clip(x_j)`` is computed first (the pre-stage,
absolute error ``u|l_j|``, propagated with weights ``q_j = c_j / Σ c`` and 1 at the label),
then the logits row on ``l``; the gradient divides the row's backprop by ``c_j``. Dense
probability rows normalise (``g(C) + 1`` relative), clip, take logs (``u |log c_j|``) and sum.

Weighting and reductions, ``v_i = w_i L_i``, ``R = Σ_i v_i / D``: the elements' budgets
are carried with ``|w_i| / |D|``; products, the sum and the division add
``u ((g(M) + 2) Σ|v_i| / |D| + |R|)``, and a denominator that is itself a sum of weights
(``weighted_mean``, ``mean_with_sample_weight``) adds ``u |R| g(M) Σ|w_i| / |D|``.
Gradients through a reduction are ``γ_r b_rj`` with ``γ_r`` the exact coefficient of row
``r``: budget ``|γ_r| · budget(b_rj) + 3u |γ_r b_rj|``.

``K`` and ``g`` are calibrated so that TensorFlow's own CPU results grade ``stable`` or
better on well-conditioned inputs (``tests/oracle/test_tensorflow_calibration.py``).
"""

from __future__ import annotations

import math

import numpy as np

from .certify import SLACK, U, frac_to_float
from .formats import Format
from .plan import Plan

K = 2.0  # safety factor on every first-order bound


def g(n) -> np.ndarray:
    """Summation allowance for ``n`` terms (in units of u)."""
    n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    return np.log2(n) + 2.0 * np.sqrt(n)


def _ffloat(v) -> float:
    return float(v)


def row_gammas(red, n: int, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """γ_r per row in float64, with an absolute error bound: the rule of
    :class:`~xentconf.oracle.plan.Reduction` (``evaluate.exact_gammas`` carries it out on
    exact Fractions). ``up`` holds the upstream gradient (one value per output element)."""
    cv, cr = red.floats()
    denom = red.gamma_denom()
    u = red.upstream_per_element(up)
    with np.errstate(all="ignore"):
        t = u * cv
        rad = np.abs(t) * U + np.abs(u) * cr
        if denom is not None:
            if red.divides_by_zero:
                t, rad = np.zeros_like(t), np.zeros_like(t)
            else:
                dv, dr = frac_to_float(denom)
                t = t / dv
                rad = rad / abs(dv) + np.abs(t) * (U + dr / abs(dv))
        if red.is_identity(n):  # row r is element r
            return t + 0.0, (rad + np.abs(t) * U * 2) * SLACK  # 0 + t, as the sum below
        # bincount adds in index order from 0, as np.add.at on zeros does (and much faster)
        gam = np.bincount(red.index, weights=t, minlength=n)[:n]
        grad = np.bincount(red.index, weights=rad + np.abs(t) * U * 2, minlength=n)[:n]
        counts = np.bincount(red.index, minlength=n)[:n]
        grad += np.abs(gam) * U * np.maximum(counts - 1, 0)
    return gam, grad * SLACK


class _RowStats:
    """Float64 approximations of each row's quantities (magnitudes only)."""

    def __init__(self, plan: Plan):
        rows = plan.rows
        n, c = rows.n, rows.c
        self.n, self.c = n, c
        with np.errstate(all="ignore"):
            if rows.kind in ("sparse", "dense"):
                z = rows.x
            elif rows.kind == "sparse_probs":
                lo, hi = (float(b) for b in rows.clip)
                cl = np.clip(rows.x, lo, hi)
                z = np.log(cl)
                self.l = z
                self.cl = cl
            else:  # dense_probs
                lo, hi = (float(b) for b in rows.clip)
                ssum = rows.x.sum(axis=1, keepdims=True)
                q = rows.x / ssum
                cl = np.clip(q, lo, hi)
                self.q, self.cl, self.ssum = q, cl, ssum[:, 0]
                z = np.log(cl)
            finite = np.where(np.isfinite(z), z, -np.inf)
            m = finite.max(axis=1, keepdims=True) if c else np.zeros((n, 1))
            m = np.where(np.isfinite(m), m, 0.0)
            self.m = m[:, 0]  # the maximum over finite values (0 where none)
            d = np.where(np.isfinite(z), z - m, -np.inf)
            e = np.exp(d)
            s = e.sum(axis=1, keepdims=True)
            s = np.where(s > 0, s, 1.0)
            p = e / s
            absd = np.where(np.isfinite(d), np.abs(d), 0.0)
            self.d, self.absd, self.p = d, absd, p
            self.logs = np.log(s[:, 0])
            self.pd = (p * absd).sum(axis=1)
            self.gC = float(g(c))
            if rows.kind in ("sparse", "sparse_probs"):
                lab = rows.labels_block(0, n) if c else rows.labels
                idx = np.arange(n)
                self.dy = absd[idx, lab] if c else np.zeros(n)
                onehot = np.zeros((n, c))
                if c:
                    onehot[idx, lab] = 1.0
                self.Y = onehot
            else:
                y = rows.y.astype(np.float64)
                if rows.smoothing:
                    cs = rows.smoothing_divisor
                    eps = float(rows.smoothing)
                    y = y * (1 - eps) + eps / cs
                self.Y = np.where(np.isfinite(y), y, 0.0)

    def loss_terms(self, kind: str):
        """(A_pre, A_row, E_row) of each row's loss."""
        n = self.n
        zeros = np.zeros(n)
        with np.errstate(all="ignore"):
            if kind in ("sparse", "sparse_probs"):
                L = self.logs + self.dy
                a_row = np.abs(L) + 2 * self.logs + self.dy + self.pd + 2 + self.gC
                if kind == "sparse_probs":
                    absl = np.abs(self.l)
                    idx = np.arange(n)
                    lab = np.argmax(self.Y, axis=1) if self.c else np.zeros(n, dtype=int)
                    a_pre = (self.p * absl).sum(axis=1) + (absl[idx, lab] if self.c else 0)
                    return a_pre, a_row, np.full(n, float(self.c))
                return zeros, a_row, np.full(n, float(self.c))
            if kind == "dense":
                a = self.logs[:, None] + self.absd
                aY = np.abs(self.Y)
                e_logs = 2 * self.logs + self.pd + 2 + self.gC
                a_row = (aY * (e_logs[:, None] + self.absd + 2 * a)).sum(axis=1) + \
                    (self.gC + 1) * (aY * a).sum(axis=1)
                return zeros, np.nan_to_num(a_row, posinf=0.0), np.full(n, float(self.c))
            # dense_probs
            lc = np.abs(np.log(self.cl))
            aY = np.abs(self.Y)
            a_row = (aY * (self.gC + 3 + lc)).sum(axis=1) + (self.gC + 1) * (aY * lc).sum(axis=1)
            return zeros, np.nan_to_num(a_row, posinf=0.0), zeros

    def smoothing_terms(self, rows):
        """Extra error of labels smoothed in a rounding format: (loss [N], bp [N, C])."""
        if not rows.smoothing or rows.kind not in ("dense", "dense_probs"):
            return np.zeros(self.n), np.zeros((self.n, self.c))
        with np.errstate(all="ignore"):
            aY = np.abs(self.Y)
            if rows.kind == "dense":
                a = self.logs[:, None] + self.absd
            else:
                a = np.abs(np.log(self.cl))
            return np.nan_to_num(2 * (aY * a).sum(axis=1)), 2 * aY

    def bp_terms(self, kind: str):
        """(A_pre, A_row, E_row) of each row's backprop / unit-coefficient gradient, [N, C]."""
        with np.errstate(all="ignore"):
            rel = self.absd + self.pd[:, None] + 3 + self.gC
            b = self.p - self.Y
            if kind in ("sparse", "dense"):
                a_row = self.p * rel + np.abs(b) + 2 * np.abs(self.Y) * (kind == "dense")
                return np.zeros_like(a_row), a_row, np.ones_like(a_row)
            if kind == "sparse_probs":
                a_row = (self.p * rel + np.abs(b)) / self.cl
                a_pre = 2 * np.abs(b / self.cl)
                # an underflowed row gradient is divided by c_j
                return a_pre, np.nan_to_num(a_row), np.nan_to_num(1.0 / self.cl)
            # dense_probs: G_k = (H_k − Σ H q)/S
            h = np.abs(self.Y / self.cl)
            hq = (h * np.abs(self.q)).sum(axis=1, keepdims=True)
            a_row = (3 * h + (self.gC + 3) * hq) / np.abs(self.ssum)[:, None]
            return np.zeros_like(a_row), np.nan_to_num(a_row), np.zeros_like(a_row)


class Budgets:
    """Budget arrays of a plan's outputs (without the final half-ulp rounding)."""

    def __init__(self, plan: Plan, upstream):
        self.plan = plan
        self._up = upstream  # a float64 array, or a function returning one
        self._stats = None

    @property
    def up(self) -> np.ndarray:
        if callable(self._up):
            self._up = self._up()
        return np.asarray(self._up, dtype=np.float64)

    @property
    def stats(self) -> _RowStats:
        if self._stats is None:
            self._stats = _RowStats(self.plan)
        return self._stats

    def _combine(self, parts: dict) -> dict[str, np.ndarray]:
        with np.errstate(all="ignore"):
            return self._combine_(parts)

    def _combine_(self, parts: dict) -> dict[str, np.ndarray]:
        """parts: {'pre': A, 'row': A, 'red': A, 'E': E} → budgets for both grades."""
        prec = self.plan.precision
        fin = self.plan.input_format

        inter = parts.get("inter", 0.0)
        probs = self.plan.rows.kind in ("sparse_probs", "dense_probs")

        def total(f_pre: Format, f_row: Format, f_red: Format, f_int: Format) -> np.ndarray:
            # the underflow allowance is in the format the exponentials / 1/x land in
            f_e = f_pre if probs else f_row
            return (f_pre.u * parts["pre"] + f_row.u * parts["row"] + f_red.u * parts["red"]
                    + f_int.u * inter + f_e.min_subnormal * parts["E"]) * K

        stable = total(fin, fin, fin, fin)
        tfp = total(prec.pre or prec.elem, prec.elem, prec.reduce, prec.inter or prec.elem)
        with np.errstate(invalid="ignore"):
            capped = np.fmin(tfp, stable)
        # "tensorflow": TensorFlow's own formats, uncapped — wider than stable where TF
        # evaluates in a narrower format than the input's (oracle.mechanisms)
        return {"stable": stable, "tf-precision": capped, "tensorflow": tfp}

    def loss(self) -> dict[str, np.ndarray]:
        plan = self.plan
        red = plan.reduction
        st = self.stats
        a_pre, a_row, e_row = st.loss_terms(plan.rows.kind)
        ign = plan.rows.ignored
        a_pre, a_row, e_row = (np.where(ign, 0.0, v) for v in (a_pre, a_row, e_row))
        idx = red.index
        w = red.floats()[0]
        aw = np.abs(w)
        with np.errstate(all="ignore"):
            L = np.where(ign, 0.0, st.logs + st.dy) if plan.rows.kind in (
                "sparse", "sparse_probs") else self._dense_loss_approx()
            v = w * L[idx] if idx.size else np.zeros(0)
            sm_loss, _ = st.smoothing_terms(plan.rows)
            sm_loss = np.where(ign, 0.0, sm_loss)
            # per-element losses stored in an intermediate format (compat.v1)
            stored = np.abs(L) if plan.precision.inter is not None else 0.0
            inter_el = (stored + sm_loss)[idx] * aw if idx.size else np.zeros(0)
            if red.kind == "none":
                exact_one = red.exactly_one()
                parts = {"pre": aw * a_pre[idx], "row": aw * a_row[idx],
                         "red": np.where(exact_one, 0.0, np.abs(v)), "E": aw * e_row[idx],
                         "inter": inter_el}
                return {k: np.nan_to_num(b, nan=0.0, posinf=0.0).reshape(red.shape)
                        for k, b in self._combine(parts).items()}
            den = 1.0 if red.kind == "sum" else abs(_ffloat(red.denom))
            if den == 0 or not math.isfinite(den):
                zero = np.zeros(())
                return {"stable": zero, "tf-precision": zero, "tensorflow": zero}
            M = max(idx.size, 1)
            res = abs(np.nansum(v)) / den
            red_part = ((float(g(M)) + 2) * np.nansum(np.abs(v)) / den + res)
            if red.denom_from_weights:
                red_part += res * float(g(M)) * np.nansum(aw) / den
            parts = {"pre": np.nansum(aw * a_pre[idx]) / den,
                     "row": np.nansum(aw * a_row[idx]) / den,
                     "red": red_part, "E": np.nansum(aw * e_row[idx]) / den,
                     "inter": np.nansum(inter_el) / den}
            return {k: np.nan_to_num(np.asarray(b), nan=0.0, posinf=0.0).reshape(())
                    for k, b in self._combine(parts).items()}

    def _dense_loss_approx(self) -> np.ndarray:
        st = self.stats
        with np.errstate(all="ignore"):
            if self.plan.rows.kind == "dense":
                a = st.logs[:, None] + st.absd
                return np.nan_to_num((st.Y * a).sum(axis=1))
            return np.nan_to_num(-(st.Y * np.log(st.cl)).sum(axis=1))

    def _row_gammas(self) -> np.ndarray:
        return row_gammas(self.plan.reduction, self.plan.rows.n, self.up)[0]

    def _bp_parts(self, gam: np.ndarray | None):
        st = self.stats
        kind = self.plan.rows.kind
        a_pre, a_row, e_row = st.bp_terms(kind)
        ag = np.ones((st.n, 1)) if gam is None else np.abs(gam)[:, None]
        with np.errstate(all="ignore"):
            bval = np.abs(st.p - st.Y)
            red = 3 * ag * bval if gam is not None else np.zeros_like(a_row)
            parts = {"pre": ag * a_pre, "row": ag * a_row, "red": red, "E": ag * e_row}
            _, sm_bp = st.smoothing_terms(self.plan.rows)
            # γ and the smoothed labels are rounded to the intermediate format
            stored = gam is not None and self.plan.precision.inter is not None
            parts["inter"] = ag * sm_bp + (ag * bval if stored else 0.0)
        ign = self.plan.rows.ignored[:, None]
        return {k: np.where(ign, 0.0, np.nan_to_num(v, nan=0.0, posinf=0.0))
                for k, v in parts.items()}

    def backprop(self) -> dict[str, np.ndarray]:
        return {k: v.reshape(self.plan.backprop_shape)
                for k, v in self._combine(self._bp_parts(None)).items()}

    def grad(self) -> dict[str, np.ndarray]:
        plan = self.plan
        parts = self._bp_parts(self._row_gammas())
        out = {}
        for k, v in self._combine(parts).items():
            out[k] = plan.grad_from_rows(v)
        return out

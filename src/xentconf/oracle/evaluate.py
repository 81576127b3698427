"""The exact tier's driver: a :class:`Plan` in, an :class:`Expectation` out.

Row by row it builds the exact forms of :mod:`xentconf.oracle.exact` for every loss,
backprop and gradient element, applies the plan's weighting and reduction exactly
(``div_no_nan`` included), and attaches the error budgets of
:mod:`xentconf.oracle.budgets`. Nothing here decides semantics; it only does arithmetic.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from mpmath.libmp import from_float, mpf_sub

from . import budgets as _budgets
from .exact import Const, LinLog, LogRat, Partition, SoftAff, frac, sign_of
from .expectation import Expectation, OutputExpectation
from .plan import Plan, logit_row_max

NAN = Const(math.nan)
ZERO = Const(0)


# --------------------------------------------------------------------------- special arithmetic


def _mul_special(form, g) -> Const:
    """``g · form`` where ``g`` (or the form) is NaN/±inf, by IEEE rules."""
    if isinstance(g, float) and math.isnan(g):
        return NAN
    if isinstance(form, Const) and isinstance(form.v, float):
        v = form.v
        if math.isnan(v):
            return NAN
        gs = (g > 0) - (g < 0)
        return NAN if gs == 0 else Const(math.copysign(math.inf, v * gs))
    s = sign_of(form)
    if s == 0:
        return NAN
    return Const(math.copysign(math.inf, s * g))


def scale(form, g):
    """``g · form`` for an exact coefficient ``g`` (Fraction, or a special float)."""
    if isinstance(g, float):
        return _mul_special(form, g)
    if isinstance(form, Const):
        if isinstance(form.v, float):
            return _mul_special(form, 0.0) if g == 0 and not math.isnan(form.v) else (
                form if math.isnan(form.v) or g > 0 else Const(-form.v))
        return Const(form.v * g)
    if g == 1:
        return form
    if isinstance(form, LinLog):
        return LinLog.make(form.r * g, [(c * g, arg) for c, arg in form.terms.values()])
    if isinstance(form, SoftAff):
        return form.scaled(g)
    raise TypeError(form)


def _combine_specials(vals: list[float]) -> Const:
    if any(math.isnan(v) for v in vals) or (math.inf in vals and -math.inf in vals):
        return NAN
    return Const(vals[0])


def linear_sum(pairs, denom) -> object:
    """``(Σ g_i · form_i) / denom`` exactly, for LinLog/Const forms (IEEE specials)."""
    specials = []
    r = Fraction(0)
    terms = []
    for g, form in pairs:
        if isinstance(g, float) or (isinstance(form, Const) and isinstance(form.v, float)):
            specials.append(scale(form, g).v)
            continue
        if g == 0:
            continue
        if isinstance(form, Const):
            r += g * form.v
        else:
            r += g * form.r
            terms.extend((g * c, arg) for c, arg in form.terms.values())
    if specials:
        total = _combine_specials([float(v) for v in specials])
        if denom is None:
            return total
        if isinstance(denom, float):
            return NAN  # ±inf or NaN over ±inf or NaN
        if denom == 0:
            return ZERO
        return total if (denom > 0 or math.isnan(total.v)) else Const(-total.v)
    if denom is None:
        return LinLog.make(r, terms)
    if isinstance(denom, float):
        if math.isnan(denom):
            return NAN
        return ZERO  # finite / ±inf (the sign of zero is not judged)
    if denom == 0:
        return ZERO
    return LinLog.make(r / denom, [(c / denom, arg) for c, arg in terms])


# --------------------------------------------------------------------------- rows


def _d_row(x: np.ndarray):
    """Exact ``d = x − max x`` as mpf tuples (None for −inf); None if the row is NaN by TF
    (:func:`~xentconf.oracle.plan.logit_row_max`)."""
    if x.size == 0:
        return None
    m, bad = logit_row_max(x[None, :])
    if bad[0]:
        return None
    m = float(m[0])
    fm = from_float(m)
    return [None if v == -math.inf else (mpf_sub(from_float(v), fm, 0)) for v in x.tolist()]


def _mpf_to_frac(t) -> Fraction:
    sign, man, exp, _bc = t
    if not man:
        return Fraction(0)
    v = Fraction(man) * (Fraction(2) ** exp) if exp < 0 else Fraction(man << exp)
    return -v if sign else v


class RowExact:
    """Exact loss of one row, and its gradient row for a given coefficient."""

    __slots__ = ("loss", "_grad", "c")

    def __init__(self, loss, grad_fn, c):
        self.loss = loss
        self._grad = grad_fn
        self.c = c

    def grad(self, g) -> list:
        return self._grad(g)


def _nan_row(c: int) -> RowExact:
    return RowExact(NAN, lambda g: [NAN] * c, c)


def _zero_row(c: int) -> RowExact:
    return RowExact(ZERO, lambda g: [ZERO] * c, c)


def _smoothed(rows, r: int) -> list:
    y = [frac(v) for v in rows.y[r].tolist()]
    eps = rows.smoothing
    if not eps:
        return y
    cs = rows.smoothing_divisor
    add = eps / cs
    keep = 1 - eps
    out = []
    for v in y:
        if isinstance(v, float):
            out.append(math.nan if (math.isnan(v) or keep == 0) else math.copysign(math.inf,
                                                                                  v * keep))
        else:
            out.append(v * keep + add)
    return out


def _grad_list(bp_forms_fn, g) -> list:
    """``g · bp`` for each element; ``bp_forms_fn(g)`` builds the finite-coefficient case."""
    if isinstance(g, float):
        return [_mul_special(f, g) for f in bp_forms_fn(Fraction(1))]
    return bp_forms_fn(g)


def _sparse_row(rows, r: int) -> RowExact:
    c = rows.c
    x = rows.x_block(r, r + 1)[0]
    y = int(rows.labels[r])
    d = _d_row(x)
    if d is None:
        return _nan_row(c)
    part = Partition(d)
    dy = d[y]
    loss = Const(math.inf) if dy is None else LinLog.make(-_mpf_to_frac(dy), [(Fraction(1), part)])

    def bp(g):
        return [SoftAff.make(Fraction(0), g, part, j, j == y) for j in range(c)]

    return RowExact(loss, lambda g: _grad_list(bp, g), c)


def _dense_row(rows, r: int) -> RowExact:
    c = rows.c
    x = rows.x_block(r, r + 1)[0]
    d = _d_row(x)
    if d is None:
        return _nan_row(c)
    part = Partition(d)
    yv = _smoothed(rows, r)
    specials = []
    a_sum = Fraction(0)
    rsum = Fraction(0)
    single = part.n_finite == 1
    for yj, dj in zip(yv, d):
        if isinstance(yj, float):
            if math.isnan(yj) or (single and dj is not None and dj[1] == 0):
                specials.append(math.nan)  # NaN label, or inf · (lse − z_j = 0)
            else:
                specials.append(yj)
        elif dj is None:
            if yj == 0:
                if not rows.xla_zero_labels:
                    specials.append(math.nan)  # 0 · ∞ (§1.2)
            else:
                specials.append(math.copysign(math.inf, yj))
        else:
            a_sum += yj
            rsum -= yj * _mpf_to_frac(dj)
    loss = _combine_specials(specials) if specials else LinLog.make(rsum, [(a_sum, part)])

    def bp(g):
        out = []
        for j, yj in enumerate(yv):
            if isinstance(yj, float):
                out.append(NAN if math.isnan(yj) else scale(Const(-yj), g))
            else:
                out.append(SoftAff.make(-g * yj, g, part, j, False))
        return out

    return RowExact(loss, lambda g: _grad_list(bp, g), c)


def _clip(v: Fraction | float, lo: Fraction, hi: Fraction):
    """TF clip_by_value on an exact value; NaN passes through. Returns (clipped, passes)."""
    if isinstance(v, float):
        if math.isnan(v):
            return math.nan, False
        return (hi if v > 0 else lo), False
    if v < lo:
        return lo, False
    if v > hi:
        return hi, False
    return v, True


def _sparse_probs_row(rows, r: int) -> RowExact:
    c = rows.c
    y = int(rows.labels[r])
    lo, hi = rows.clip
    xs = [frac(v) for v in rows.x_block(r, r + 1)[0].tolist()]
    clipped = [_clip(v, lo, hi) for v in xs]
    if any(isinstance(cv, float) for cv, _ in clipped):
        return _nan_row(c)
    cs = [cv for cv, _ in clipped]
    total = sum(cs, Fraction(0))
    loss = LinLog.make(Fraction(0), [(Fraction(1), LogRat(total / cs[y]))])

    def bp(g):
        out = []
        for j, (_cv, ok) in enumerate(clipped):
            if not ok:
                out.append(ZERO)
                continue
            v = 1 / total - (1 / cs[y] if j == y else 0)
            out.append(Const(g * v))
        return out

    return RowExact(loss, lambda g: _grad_list(bp, g), c)


def _dense_probs_row(rows, r: int) -> RowExact:
    c = rows.c
    lo, hi = rows.clip
    xs = [frac(v) for v in rows.x_block(r, r + 1)[0].tolist()]
    if any(isinstance(v, float) for v in xs):
        return _nan_row(c)
    s = sum(xs, Fraction(0))
    if s == 0:
        if any(v == 0 for v in xs):
            return _nan_row(c)  # 0/0 = NaN survives the clip
        qs = [math.inf if v > 0 else -math.inf for v in xs]
    else:
        qs = [v / s for v in xs]
    clipped = [_clip(q, lo, hi) for q in qs]
    yv = _smoothed(rows, r)
    specials = []
    terms = []
    for yj, (cv, _ok) in zip(yv, clipped):
        if isinstance(yj, float):
            if math.isnan(yj) or cv == 1:
                specials.append(math.nan)
            else:
                specials.append(math.copysign(math.inf, yj))  # −y·log c with log c < 0
        else:
            terms.append((-yj, LogRat(cv)))
    loss = _combine_specials(specials) if specials else LinLog.make(Fraction(0), terms)

    def bp(g):
        if s == 0 or specials:
            return [NAN] * c
        h = [(-yj * 1 / cv if ok else Fraction(0)) for yj, (cv, ok) in zip(yv, clipped)]
        hq = sum((hj * q for hj, q in zip(h, qs)), Fraction(0))
        return [Const(g * (hk - hq) / s) for hk in h]

    return RowExact(loss, lambda g: _grad_list(bp, g), c)


_ROW_BUILDERS = {
    "sparse": _sparse_row,
    "dense": _dense_row,
    "sparse_probs": _sparse_probs_row,
    "dense_probs": _dense_probs_row,
}


def row_exact(rows, r: int) -> RowExact:
    """The exact loss and gradient builder of row ``r`` of a plan's rows (the row rules of
    :meth:`~xentconf.oracle.plan.Rows.rule_masks`; bad logits are found by the builders)."""
    if rows.c == 0:
        return _zero_row(rows.c)  # an empty sum over zero classes is 0 (§1.2)
    nan, ign = rows.rule_masks(r, r + 1)
    if ign[0]:
        return _zero_row(rows.c)
    if nan[0]:
        return _nan_row(rows.c)
    return _ROW_BUILDERS[rows.kind](rows, r)


# --------------------------------------------------------------------------- plan → expectation


class _UpstreamFracs:
    """The upstream gradient's exact values by flat index, each converted when first asked
    for (a fallback of a few rows must not convert millions of upstream values)."""

    def __init__(self, values: np.ndarray):
        self._values = values.flat  # a broadcast view stays one: no copy of its size
        self._fracs: dict = {}

    def __getitem__(self, i: int):
        got = self._fracs.get(i)
        if got is None:
            got = self._fracs[i] = frac(float(self._values[i]))
        return got


def _upstream_fracs(upstream, shape: tuple) -> _UpstreamFracs:
    from .semantics import upstream_values

    return _UpstreamFracs(upstream_values(upstream, shape))


def exact_gammas(red, ups: list, rows=None) -> dict:
    """γ_r exactly, by row (all rows, or those in ``rows``): the rule of
    :class:`~xentconf.oracle.plan.Reduction` (``budgets.row_gammas`` in float64).

    Coefficients, upstream values and the denominator are exact (Fractions, or NaN/±inf
    floats combined by IEEE rules). The exact tier and the engine's fallbacks both use this.
    """
    idx = red.index
    denom = red.gamma_denom()
    if rows is None:
        cand = range(idx.size)
    elif red.kind == "none" and red.is_identity(idx.size):
        cand = sorted(int(r) for r in rows if r < idx.size)  # element i is row i
    else:
        cand = np.flatnonzero(np.isin(idx, list(rows))).tolist()
    out: dict = {}
    for i in cand:
        r = int(idx[i])
        t = _fmul(ups[red.upstream_at(i)], red.fraction_at(i))
        if denom is not None:
            t = Fraction(0) if red.divides_by_zero else _fdiv(t, denom)
        out[r] = _fadd(out.get(r, Fraction(0)), t)
    return out


def evaluate(plan: Plan, upstream=None) -> Expectation:
    """Carry out ``plan`` in the exact tier."""
    rows = plan.rows
    red = plan.reduction
    cache: dict[int, RowExact] = {}

    def row(r: int) -> RowExact:
        got = cache.get(r)
        if got is None:
            got = cache[r] = row_exact(rows, r)
        return got

    def loss_forms():
        if red.kind == "none":
            return [scale(row(int(r)).loss, g) for r, g in zip(red.index, red.fractions())]
        if red.divides_by_zero:
            return [NAN if red.zero_denominator == "nan" else ZERO]
        pairs = [(g, row(int(r)).loss) for r, g in zip(red.index, red.fractions())]
        return [linear_sum(pairs, red.gamma_denom())]

    loss_shape = red.shape
    ups = _upstream_fracs(upstream, loss_shape)  # validated now, converted when needed

    def row_coefs() -> list:
        gam = exact_gammas(red, ups)
        return [gam.get(r, Fraction(0)) for r in range(rows.n)]

    def grad_rows():
        gam = row_coefs()
        out = []
        for r in range(rows.n):
            out.extend(row(r).grad(gam[r]))
        return out

    def backprop_forms():
        out = []
        for r in range(rows.n):
            out.extend(row(r).grad(Fraction(1)))
        return out

    def grad_forms():
        flat = grad_rows()
        arr = np.empty(len(flat), dtype=object)
        arr[:] = flat
        return list(plan.grad_from_rows(arr).ravel())

    bud = _budgets.Budgets(plan, lambda: ups._values)
    outputs = {
        "loss": OutputExpectation("loss", plan.loss_format, loss_shape, loss_forms,
                                  bud.loss),
    }
    if plan.backprop_shape is not None:
        outputs["backprop"] = OutputExpectation("backprop", plan.loss_format,
                                                plan.backprop_shape, backprop_forms,
                                                bud.backprop)
    if plan.grad_available:
        outputs["grad_logits"] = OutputExpectation("grad_logits", plan.grad_format,
                                                   plan.grad_shape, grad_forms, bud.grad)
    return Expectation(plan.api, plan.profile, outputs=outputs, notes=list(plan.notes))


def _fmul(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return float(a) * float(b)
    return a * b


def _fdiv(a, b):
    if isinstance(a, float) or isinstance(b, float):
        fb = float(b)
        if fb == 0:
            return 0.0
        return float(a) / fb
    return a / b


def _fadd(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return float(a) + float(b)
    return a + b

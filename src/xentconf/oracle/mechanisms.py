r"""TensorFlow's mechanisms: how TensorFlow's CPU and XLA arithmetic moves a result off the
truth, element by element (SPEC §2, "Precision artefacts are not semantics, but they are
TensorFlow").

The truth of an element stays the exact value of the documented formula. Where TensorFlow
merely loses precision or range, each way it does so is a *mechanism*: given a call (its
:class:`~xentconf.oracle.plan.Plan`, the upstream gradient) and the device profile,
:func:`allowances` says which output elements the mechanism affects and which values it
allows there — an interval around the exact value (a radius), or a set of values such as
``{+inf}`` or ``{NaN}``. A verdict uses them to tell an answer that differs from the truth
only as TensorFlow itself does (``as-tensorflow``) from any other discrepancy: a mechanism
never allows anything outside the elements it affects.

The mechanisms (:data:`MECHANISMS`):

``flush-denormals``
    TensorFlow's CPU kernels and XLA's CPU code run with denormals flushed to zero
    (FTZ/DAZ; profiles ``cpu`` and ``xla``). Every exponential, product or result below
    the smallest normal of the evaluation format (float32 for float16, bfloat16 and
    float32 work, float64 otherwise) may become 0. Allowed: a radius of the flushed
    quantities' size — ``(C + 2)·η·max(1, Σ|Y|)`` per row loss, ``(C + 1)·η`` per softmax
    element, carried through the weights, the reduction and the upstream gradient, plus
    the output format's own smallest normal (a float16 output keeps its subnormals: the
    float32→float16 conversion does not flush). Results of normal size are untouched.
``compat-v1-float32``
    ``tf.compat.v1.losses`` casts float64 losses and weights to float32, weights and
    reduces there, and casts back (TF-SEMANTICS §5.2 step 3). Affects every loss and
    gradient element of a float64 call; allows the budget of that evaluation (the
    ``tf-precision`` model of :mod:`budgets` with float32 reduction, not capped by the
    float64 ``stable`` budget): about 1e-7 relative, never 1e-3.
``keras3-float32``
    Keras 3 converts float64 ``y_pred`` to its float32 loss dtype, differentiates there and
    casts the gradient back (TF-SEMANTICS §6.1): float64 gradient elements carry float32's
    range — a value below float32's smallest normal times the row's coefficient may be 0.
``native-half``
    The raw kernels (and ``tf.nn``'s sparse bfloat16 path, compat.v1's and tf_keras's on
    top of it) evaluate float16/bfloat16 in that format (TF-SEMANTICS §1.1, §2): allowed,
    the budget of evaluating in the half format (visible when a run demands ``faithful``
    or ``exact``).
``dense-shift-overflow``
    The dense kernels shift a row by its maximum in the evaluation format; when the row
    spans more than the format's largest finite value, ``z_j − max`` overflows to −inf and
    the label times it gives ``+inf`` (``−inf`` for a negative label, NaN for a zero label
    — 0 under XLA). Affects the loss of such rows and the reductions over them; allows
    exactly that IEEE value.
``held-loss-overflow``
    Before a reduction, per-element losses are held in a format (compat.v1: the output
    dtype, then float32; Keras: the loss dtype): a row loss above that format's largest
    finite value is ``±inf`` there, so a weighted element or the reduction over it is
    ``±inf`` (``0·inf``: NaN) where the exact mean is finite. Allows exactly those values.
``sum-overflow``
    Reductions sum the weighted losses in the reduction format and divide afterwards; when
    the positive (negative) terms add up past that format's largest finite value, the sum
    — and the mean — is ``+inf`` (``−inf``; both: NaN as well), though the exact mean is
    finite. Allows those values where the terms' magnitudes reach the limit.

``xla-nan-rows``
    Under the ``cpu`` profile the eager kernel raises for an out-of-range sparse label;
    TensorFlow's XLA on the same CPU does not check labels and returns NaN in exactly those
    rows (the loss, its backprop/gradient row, and any reduction over them; TF-SEMANTICS
    §1.1). :func:`xla_nan_rows` gives that call's expectation: an answer that conforms to it
    (or differs from it only as the mechanisms above allow) is as TensorFlow. Under the
    ``xla`` and ``gpu`` profiles the NaN rows are the semantics themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import budgets as _budgets
from .formats import FORMATS, Format
from .plan import Plan

__all__ = ["MECHANISMS", "Allowance", "allowances", "excused", "xla_nan_rows"]

MECHANISMS = ("flush-denormals", "compat-v1-float32", "keras3-float32", "native-half",
              "dense-shift-overflow", "held-loss-overflow", "sum-overflow", "xla-nan-rows")

F16, BF16, F32, F64 = (FORMATS[k] for k in ("float16", "bfloat16", "float32", "float64"))
_V1 = ("tf.compat.v1.losses.sparse_softmax_cross_entropy",
       "tf.compat.v1.losses.softmax_cross_entropy")
_KERAS = ("tf.keras.losses.SparseCategoricalCrossentropy",
          "tf.keras.losses.CategoricalCrossentropy")
_FTZ_PROFILES = ("cpu", "xla")


@dataclass
class Allowance:
    """What one mechanism allows in one output: for the elements of ``mask`` (flat,
    row-major), any value within ``radius`` of the exact value, or any value of ``values``
    (flat ``[n, k]`` float64; NaN stands for any NaN; NaN-padded where an element allows
    fewer)."""

    mechanism: str
    output: str
    mask: np.ndarray  # bool [n]
    radius: np.ndarray | None = None  # float64 [n]: allowed |value − exact|
    values: np.ndarray | None = None  # float64 [n, k]: allowed values
    nan: np.ndarray | None = None  # bool [n]: NaN allowed
    note: str = ""

    def allows(self, got: np.ndarray, exact: np.ndarray, slack: np.ndarray) -> np.ndarray:
        """Per element: ``got`` is a value this mechanism allows (``slack``: the required
        grade's own budget, added to the radius)."""
        g = np.asarray(got, dtype=np.float64).ravel()
        ok = np.zeros(g.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            if self.radius is not None:
                fin = np.isfinite(g) & np.isfinite(exact)
                ok |= fin & (np.abs(g - exact) <= self.radius + slack)
            if self.values is not None and self.values.size:
                ok |= np.any(g[:, None] == self.values, axis=1)
            if self.nan is not None:
                ok |= self.nan & np.isnan(g)
        return ok & self.mask


@dataclass
class _Ctx:
    plan: Plan
    profile: str
    upstream: object
    bud: _budgets.Budgets
    _cache: dict = field(default_factory=dict)

    @property
    def stats(self):
        return self.bud.stats

    def gammas(self) -> np.ndarray:
        if "gam" not in self._cache:
            with np.errstate(all="ignore"):
                self._cache["gam"] = np.nan_to_num(self.bud._row_gammas(), nan=0.0,
                                                   posinf=0.0, neginf=0.0)
        return self._cache["gam"]

    def tf_budgets(self, name: str) -> np.ndarray:
        """The budget of TensorFlow's own evaluation formats, not capped by ``stable``."""
        key = "tf:" + name
        if key not in self._cache:
            parts = {"loss": self.bud.loss, "backprop": self.bud.backprop,
                     "grad_logits": self.bud.grad}[name]()
            self._cache[key] = np.asarray(parts["tensorflow"], dtype=np.float64).ravel()
        return self._cache[key]

    def loss_values(self) -> np.ndarray:
        """Float64 approximations of the loss output's elements (magnitudes for budgets)."""
        red = self.plan.reduction
        L = np.nan_to_num(self.row_losses(), nan=0.0, posinf=0.0, neginf=0.0)
        coef = np.nan_to_num(np.asarray(red.floats()[0], dtype=np.float64), nan=0.0,
                             posinf=0.0, neginf=0.0)
        v = coef * L[red.index] if red.index.size else np.zeros(0)
        if red.kind == "none":
            return v.reshape(-1)
        den = 1.0 if red.kind == "sum" else abs(float(red.denom or 0)) or 1.0
        return np.array([np.sum(np.abs(v)) / den])

    def row_losses(self) -> np.ndarray:
        """Float64 approximations of each row's loss, overflowing to ±inf where the loss is
        beyond float64's range (NaN where the truth is NaN or undefined)."""
        if "L" in self._cache:
            return self._cache["L"]
        rows = self.plan.rows
        st = self.stats
        n, c = rows.n, rows.c
        with np.errstate(all="ignore"):
            if c == 0:
                L = np.zeros(n)
            elif rows.kind == "sparse":
                L = st.logs + (st.m - rows.x[np.arange(n), rows.labels_block(0, n)])
            elif rows.kind == "dense":
                a = st.logs[:, None] + (st.m[:, None] - rows.x)
                L = np.where(st.Y == 0, 0.0, st.Y * a).sum(axis=1)
            elif rows.kind == "sparse_probs":
                L = st.logs + st.dy
            else:
                L = -(st.Y * np.log(st.cl)).sum(axis=1)
            L = rows.apply_rules(0, n, False, L)[0]
        self._cache["L"] = L
        return L


# ----------------------------------------------------------------------------- helpers


def _eval_tiny(plan: Plan) -> float:
    """The smallest normal of the format TensorFlow's arithmetic flushes at: float32 for
    any half, bfloat16 or float32 stage (half arithmetic runs through float32), else
    float64."""
    p = plan.precision
    fmts = [p.elem, p.reduce, p.pre, p.inter, plan.input_format, plan.loss_format]
    return F32.min_normal if any(f is not None and f.p < 53 for f in fmts) else F64.min_normal


def _out_tiny(fmt: Format) -> float:
    # converting float32 to float16 keeps float16's subnormals; every other output flushes
    return 0.0 if fmt is F16 else fmt.min_normal


def _weighted(red, per_row: np.ndarray) -> tuple[np.ndarray, float]:
    """(|coef| · per_row[index] per weighted element, the reduction's |denominator|)."""
    w = np.abs(np.nan_to_num(red.floats()[0], nan=0.0, posinf=0.0, neginf=0.0))
    v = w * per_row[red.index] if red.index.size else np.zeros(0)
    if red.kind == "div":
        den = abs(float(red.denom)) if red.denom is not None else 0.0
    else:
        den = 1.0
    return v, den


def _special_sum(terms: np.ndarray) -> float:
    """IEEE sum of special terms (finite terms stand for 0)."""
    with np.errstate(invalid="ignore"):
        t = np.where(np.isfinite(terms), 0.0, terms)
        return float(np.sum(t)) if t.size else 0.0


def _loss_specials(ctx: _Ctx, row_special: np.ndarray, n_out: int) -> np.ndarray:
    """Given each row's special value (NaN where unaffected is marked by ``0``), the
    loss output's resulting special values (0 where no special arises)."""
    red = ctx.plan.reduction
    coef = np.asarray(red.floats()[0], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        prod = coef * row_special[red.index] if red.index.size else np.zeros(0)
        prod = np.where(row_special[red.index] == 0, 0.0, prod) if red.index.size else prod
    if red.kind == "none":
        return prod.reshape(-1)[:n_out] if prod.size == n_out else np.zeros(n_out)
    s = _special_sum(prod)
    if red.kind == "div" and not math.isfinite(s):
        den = float(red.denom) if red.denom is not None else 0.0
        if den == 0:
            return np.zeros(1)  # div_no_nan: 0 whatever the sum
        s = s / den
    return np.array([s])


def _set_allowance(name: str, output: str, specials: np.ndarray, note: str) -> Allowance | None:
    """An allowance of one value per element (0 = unaffected)."""
    specials = np.asarray(specials, dtype=np.float64).ravel()
    mask = ~np.isfinite(specials)
    if not mask.any():
        return None
    vals = np.where(mask & ~np.isnan(specials), specials, np.nan)[:, None]
    return Allowance(name, output, mask, values=vals, nan=mask & np.isnan(specials), note=note)


# ----------------------------------------------------------------------------- mechanisms


def _flush(ctx: _Ctx, names: tuple[str, ...], sizes: dict) -> list[Allowance]:
    plan = ctx.plan
    if ctx.profile not in _FTZ_PROFILES:
        return []
    eta = _eval_tiny(plan)
    st = ctx.stats
    c = plan.rows.c
    red = plan.reduction
    out = []
    rho = (c + 2) * eta * np.maximum(1.0, np.abs(st.Y).sum(axis=1)) if plan.rows.n else \
        np.zeros(0)
    note = (f"denormals flushed to zero (FTZ/DAZ): quantities below {eta:.3g} may be 0")
    for name in names:
        n = sizes[name]
        if name == "loss":
            v, den = _weighted(red, rho)
            if red.kind == "none":
                r = v + _out_tiny(plan.loss_format)
            else:
                r = np.array([(np.sum(v) + max(red.index.size, 1) * eta) / den
                              + _out_tiny(plan.loss_format) if den else 0.0])
            r = np.broadcast_to(r.reshape(-1), (n,)) if r.size in (1, n) else np.zeros(n)
        else:
            fmt = plan.loss_format if name == "backprop" else plan.grad_format
            gam = np.ones(plan.rows.n) if name == "backprop" else np.abs(ctx.gammas())
            per_row = gam * (c + 1) * eta
            r = np.repeat(per_row, c)
            if name == "grad_logits":
                r = plan.grad_from_rows(r)
            r = r.reshape(-1) + _out_tiny(fmt)
            if r.size != n:
                continue
        out.append(Allowance("flush-denormals", name, np.ones(n, dtype=bool),
                             radius=np.asarray(r, dtype=np.float64), note=note))
    return out


def _precision(ctx: _Ctx, names: tuple[str, ...], sizes: dict) -> list[Allowance]:
    plan = ctx.plan
    out = []
    mech = []
    if plan.api in _V1 and plan.loss_format is F64:
        mech.append(("compat-v1-float32", ("loss", "grad_logits"),
                     "compat.v1 casts float64 losses and weights to float32 and reduces there"))
    if plan.api in _KERAS and plan.grad_format is F64 and plan.input_format.p < 53:
        mech.append(("keras3-float32", ("grad_logits",),
                     "Keras 3 computes in its float32 loss dtype and casts the gradient to "
                     "float64"))
    if plan.precision.elem in (F16, BF16):
        mech.append(("native-half", ("loss", "backprop", "grad_logits"),
                     f"evaluated natively in {plan.precision.elem.name}"))
    for mname, outs, note in mech:
        for name in names:
            if name not in outs:
                continue
            b = ctx.tf_budgets(name)
            if b.size != sizes[name]:
                continue
            if mname == "compat-v1-float32" and name == "loss":
                # the float32 casts of each loss, weight, product and the cast back, which
                # the budget leaves out where a weight is exactly 1
                b = b + 4 * F32.u * np.abs(ctx.loss_values())
            if mname == "keras3-float32":  # float32's range in a float64 result
                gam = np.abs(ctx.gammas())
                r = np.repeat(gam * (plan.rows.c + 1) * F32.min_normal, plan.rows.c)
                b = b + plan.grad_from_rows(r).reshape(-1)
            out.append(Allowance(mname, name, np.ones(b.size, dtype=bool), radius=b, note=note))
    return out


def _dense_shift(ctx: _Ctx, names: tuple[str, ...], sizes: dict) -> list[Allowance]:
    plan = ctx.plan
    rows = plan.rows
    if rows.kind != "dense" or "loss" not in names or rows.n == 0 or rows.c == 0:
        return []
    fmt = plan.precision.elem
    big = fmt.max_finite
    x = rows.x
    with np.errstate(all="ignore"):
        fin = np.isfinite(x)
        m = np.where(fin, x, -np.inf).max(axis=1, keepdims=True)
        # z − max overflows in the format where it rounds past the largest finite value
        gap = m - x
        over = fin & np.isfinite(m) & (gap >= big * (1 + fmt.u))
        edge = fin & np.isfinite(m) & (gap > big) & ~over  # rounding may go either way
        if not (over | edge).any():
            return []
        Y = ctx.stats.Y
        term = np.where(Y == 0, 0.0 if rows.xla_zero_labels else np.nan, Y * np.inf)
        special = np.where(over, term, 0.0)
        row_special = np.array([_special_sum(r) for r in special])
        rs_edge = np.array([_special_sum(r) for r in np.where(over | edge, term, 0.0)])
    out = []
    for rs in (row_special, rs_edge):
        specials = _loss_specials(ctx, rs, sizes["loss"])
        a = _set_allowance("dense-shift-overflow", "loss", specials,
                           f"the dense shift z − max overflows {fmt.name}")
        if a is not None:
            out.append(a)
    return out


def _hold_format(plan: Plan) -> Format:
    if plan.api in _V1:
        # held in the output dtype, then cast to float32 for the reduction
        return min((plan.loss_format, F32), key=lambda f: f.max_finite)
    return plan.loss_format


def _held(ctx: _Ctx, names: tuple[str, ...], sizes: dict) -> list[Allowance]:
    plan = ctx.plan
    red = plan.reduction
    if "loss" not in names or plan.rows.n == 0:
        return []
    if red.kind == "none" and bool(np.all(red.exactly_one())):
        return []  # the loss is the output itself: its overflow is the truth's
    fmt = _hold_format(plan)
    L = ctx.row_losses()
    with np.errstate(invalid="ignore"):
        over = np.isfinite(L) & (np.abs(L) >= fmt.max_finite * (1 - 4 * fmt.u)) | np.isinf(L)
    if not over.any():
        return []
    row_special = np.where(over, np.sign(L) * np.inf, 0.0)
    specials = _loss_specials(ctx, row_special, sizes["loss"])
    a = _set_allowance("held-loss-overflow", "loss", specials,
                       f"a per-element loss above {fmt.name}'s maximum is held as inf before "
                       "the reduction")
    return [a] if a is not None else []


def _sum_overflow(ctx: _Ctx, names: tuple[str, ...], sizes: dict) -> list[Allowance]:
    plan = ctx.plan
    red = plan.reduction
    if "loss" not in names or plan.rows.n == 0 or not red.index.size:
        return []
    if red.kind == "none" and bool(np.all(red.exactly_one())):
        return []
    fmt = plan.precision.reduce
    L = ctx.row_losses()
    coef = np.asarray(red.floats()[0], dtype=np.float64)
    with np.errstate(all="ignore"):
        t = coef * L[red.index]
        t = np.where(np.isfinite(t), t, 0.0)  # non-finite terms: held-loss-overflow's
    M = red.index.size
    limit = fmt.max_finite * (1 - (M + 2) * fmt.u)
    if red.kind == "none":
        big = np.abs(t) >= limit
        if not big.any():
            return []
        specials = np.where(big, np.sign(t) * np.inf, 0.0)
        a = _set_allowance("sum-overflow", "loss", specials,
                           f"a weighted loss overflows {fmt.name}")
        return [a] if a is not None else []
    pos, neg = float(np.sum(np.maximum(t, 0))), float(np.sum(np.maximum(-t, 0)))
    if pos < limit and neg < limit:
        return []
    den = float(red.denom) if red.kind == "div" and red.denom is not None else 1.0
    if den == 0:
        return []
    sgn = 1.0 if den > 0 else -1.0
    vals = []
    if pos >= limit:
        vals.append(sgn * np.inf)
    if neg >= limit:
        vals.append(-sgn * np.inf)
    nan = pos >= limit and neg >= limit
    n = sizes["loss"]
    return [Allowance("sum-overflow", "loss", np.ones(n, dtype=bool),
                      values=np.tile(np.array(vals, dtype=np.float64), (n, 1)),
                      nan=np.full(n, nan),
                      note=f"the sum of the weighted losses overflows {fmt.name} before "
                           "the division")]


_ALL = (_flush, _precision, _dense_shift, _held, _sum_overflow)


def allowances(plan: Plan, sizes: dict[str, int], *, upstream=None,
               profile: str | None = None) -> dict[str, list[Allowance]]:
    """Every mechanism that applies to ``plan`` under ``profile`` (default: the plan's),
    per output named in ``sizes`` (output name → element count)."""
    profile = profile or plan.profile
    up = (lambda: np.ones(sizes.get("loss", 1))) if upstream is None else \
        (lambda: np.asarray(upstream, dtype=np.float64).ravel())
    bud = _budgets.Budgets(plan, up)
    ctx = _Ctx(plan, profile, upstream, bud)
    names = tuple(sizes)
    out: dict[str, list[Allowance]] = {n: [] for n in names}
    with np.errstate(all="ignore"):
        for fn in _ALL:
            for a in fn(ctx, names, sizes):
                out[a.output].append(a)
    return out


def xla_nan_rows(exp):
    """For an expectation that raises under the ``cpu`` profile because of out-of-range
    sparse labels: the same call's expectation under XLA on the CPU (NaN in exactly the bad
    rows), else None. ``exp`` must come from ``oracle_call``."""
    make = getattr(exp, "xla", None)
    if exp.raises is None or make is None:
        return None
    try:
        alt = make()
    except Exception:  # noqa: BLE001 - no XLA alternative for this call
        return None
    plan = getattr(alt, "plan", None)
    if alt.raises is not None or plan is None or not plan.rows.nan_rows.any():
        return None
    return alt


def excused(allowed: list[Allowance], got: np.ndarray, exact: np.ndarray,
            slack: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """For the elements of ``where`` (flat indices): whether the mechanisms together allow
    ``got`` there, and the names of those that were needed.

    Radii add up (TensorFlow's mechanisms act together: a float32 reduction of flushed
    values), value sets are alternatives. ``slack`` is the required grade's own budget.
    """
    if where.size == 0 or not allowed:
        return np.zeros(where.size, dtype=bool), ()
    g = np.asarray(got, dtype=np.float64).ravel()[where]
    x = np.asarray(exact, dtype=np.float64).ravel()[where]
    # against the exact value, the required grade's budget is the slack (no rounding
    # allowance on top: grade_output decided the miss on the exact value too)
    sl = np.asarray(slack, dtype=np.float64).ravel()[where]
    ok = np.zeros(where.size, dtype=bool)
    used: list[str] = []
    radius = np.zeros(where.size)
    radial = []
    for a in allowed:
        if a.radius is not None:
            radius = radius + np.where(a.mask[where], a.radius[where], 0.0)
            radial.append(a)
    with np.errstate(invalid="ignore"):
        fin = np.isfinite(g) & np.isfinite(x)
        within = fin & (np.abs(g - x) <= radius + sl)
        alone = fin & (np.abs(g - x) <= sl)
    ok |= within
    hit = within & ~alone
    if hit.any():
        # name only the mechanisms needed: drop each whose radius the others do without
        need = radius[hit]
        dist = np.abs(g - x)[hit] - sl[hit]
        for a in sorted(radial, key=lambda a: float(np.max(a.radius[where][hit]))):
            part = np.where(a.mask[where][hit], a.radius[where][hit], 0.0)
            if np.all(dist <= need - part):
                need = need - part
            elif np.any(part > 0):
                used.append(a.mechanism)
    for a in allowed:
        if a.radius is not None and a.values is None and a.nan is None:
            continue
        sub = Allowance(a.mechanism, a.output, a.mask[where], None,
                        None if a.values is None else a.values[where],
                        None if a.nan is None else a.nan[where])
        m = sub.allows(g, x, sl) & ~ok
        if m.any():
            ok |= m
            used.append(a.mechanism)
    return ok, tuple(dict.fromkeys(used))

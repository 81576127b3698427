"""What the semantics decide, as data: the plan an arithmetic tier carries out.

:mod:`xentconf.oracle.semantics` turns one API call into either a :class:`Raises`
(TensorFlow rejects the input) or a :class:`Plan`: the rows a softmax cross-entropy is
taken over (after every reshape, transpose, squeeze, broadcast and input conversion TF
performs), how row losses are weighted and reduced, and the shapes and dtypes of the
outputs. A tier (the exact mpmath tier here; the vectorized engine later) only does
arithmetic on a plan. So the semantics exist once, and both tiers share them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .formats import Format

ROW_KINDS = ("sparse", "dense", "sparse_probs", "dense_probs")


@dataclass(frozen=True)
class Raises:
    """TensorFlow rejects the input: the error class and TF's message, for reference."""

    error: str
    message: str


def logit_row_max(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(maximum, bad) of each row of a block of logits ``[N, C]`` (``C ≥ 1``).

    TF's NaN rows, the one rule every tier asks (the exact tier one row at a time, the
    vectorized tier by blocks): a NaN, a +inf, or no finite logit — exactly the rows whose
    maximum is not finite (NaN and +inf win the maximum; a row of −inf keeps −inf). The
    compiled kernels (:mod:`xentconf.oracle._kernels`) decide the same rows in their loops.
    """
    with np.errstate(all="ignore"):
        m = x.max(axis=1)
        return m, ~np.isfinite(m)


@dataclass
class Rows:
    """``N`` rows of ``C`` classes, and what each row's loss is.

    ``kind``:
      ``sparse``       ``lse(x) − x_y`` (TF's sparse kernel), label ``labels[i]``;
      ``dense``        ``Σ_j Y_j (lse(x) − x_j)`` (TF's dense kernel, product taken literally);
      ``sparse_probs`` Keras on probabilities: ``−log(c_y / Σ c)``, ``c = clip(x, lo, hi)``;
      ``dense_probs``  Keras on probabilities: ``−Σ Y_j log clip(x_j / Σ x, lo, hi)``.
    ``Y`` is ``y`` after label smoothing: ``y (1 − ε) + ε / C``.
    """

    kind: str
    # [N, C]: exact values after TF's input conversions, as float64 or as a narrower numpy
    # float dtype that float64 holds exactly (float32, float16); ``x`` is the float64 view
    source: np.ndarray
    labels: np.ndarray | None = None  # int64 [N] (sparse kinds)
    y: np.ndarray | None = None  # float64 [N, C] (dense kinds), before smoothing
    smoothing: Fraction = Fraction(0)
    smoothing_classes: int | None = None  # the C of ε/C when it is not the row length
    nan_rows: np.ndarray | None = None  # bool [N]: bad label under gpu/xla → NaN row
    ignored: np.ndarray | None = None  # bool [N]: Keras ignore_class → loss 0, gradient 0
    xla_zero_labels: bool = False  # dense under XLA: a zero label times −inf adds 0, not NaN
    clip: tuple[Fraction, Fraction] | None = None  # Keras probability clip bounds

    @property
    def n(self) -> int:
        return self.source.shape[0]

    @property
    def c(self) -> int:
        return self.source.shape[1]

    @property
    def x(self) -> np.ndarray:
        """float64 [N, C] values (converted from a narrower ``source`` on first use, kept)."""
        x = self.__dict__.get("_x")
        if x is None:
            x = np.asarray(self.source, dtype=np.float64)
            self.__dict__["_x"] = x
        return x

    def x_block(self, lo: int, hi: int) -> np.ndarray:
        """float64 rows ``lo:hi`` (without converting the whole of a narrower ``source``)."""
        x = self.__dict__.get("_x")
        if x is not None:
            return x[lo:hi]
        return np.asarray(self.source[lo:hi], dtype=np.float64)

    @property
    def smoothing_divisor(self) -> int:
        """The ``C`` of label smoothing's ``Y = y (1 − ε) + ε / C``."""
        return self.smoothing_classes or self.c

    def labels_block(self, lo: int, hi: int) -> np.ndarray:
        """The labels of rows ``lo:hi`` clipped into ``[0, C)``: a row whose label is out of
        range is decided by the row rules (a NaN row, an ignored row or an error before
        any plan), and its clipped label only keeps the arithmetic in bounds."""
        return np.clip(self.labels[lo:hi], 0, max(self.c - 1, 0))

    def rule_masks(self, lo: int, hi: int, bad=False) -> tuple[np.ndarray, np.ndarray]:
        """TF's row rules for rows ``lo:hi``, said once for every tier: ``(nan, ignored)``.

        An ignored row (Keras ``ignore_class``) has loss 0 and gradient 0 whatever its
        values; any other row is NaN when its logits are bad (:func:`logit_row_max`, passed
        in as ``bad`` by a tier that has found them) or the device profile makes it NaN
        (``nan_rows``: a label out of range on gpu/xla)."""
        ign = self.ignored[lo:hi]
        return (bad | self.nan_rows[lo:hi]) & ~ign, ign

    def apply_rules(self, lo: int, hi: int, bad, mid, *others, cols: bool = False) -> tuple:
        """:meth:`rule_masks` on the values of rows ``lo:hi``: ``mid`` becomes NaN in NaN rows
        and 0 in ignored rows; the other arrays (radii, low parts) become 0 in both.
        ``cols``: the arrays are ``[rows, C]``."""
        nan, ign = self.rule_masks(lo, hi, bad)
        if cols:
            nan, ign = nan[:, None], ign[:, None]
        skip = ign | nan
        return (np.where(ign, 0.0, np.where(nan, np.nan, mid)),
                *(np.where(skip, 0.0, a) for a in others))

    def __post_init__(self):
        if self.nan_rows is None or self.ignored is None:
            # no row of this kind: one all-false array serves both (they are only read),
            # so a call allocates, and its kernels read, one mask instead of two
            none = np.zeros(self.n, dtype=bool)
            self.nan_rows = none if self.nan_rows is None else self.nan_rows
            self.ignored = none if self.ignored is None else self.ignored


@dataclass
class Reduction:
    """How row losses ``L[r]`` become the loss output.

    Weighted elements: ``v[i] = coef[i] · L[index[i]]`` over the broadcast of losses and
    weights (``coef`` holds exact Fractions, or floats for NaN/±inf weights).
    ``kind``: ``none`` (output = v, shape ``shape``), ``sum`` (Σ v), ``div``
    (Σ v / ``denom``; a zero denominator gives 0 — ``div_no_nan`` — or NaN, per
    ``zero_denominator``).
    """

    kind: str
    index: np.ndarray  # int64 [M]
    coef: list | np.ndarray  # M exact coefficients: Fractions/special floats, or float64
    shape: tuple  # output shape
    denom: Fraction | float | None = None
    zero_denominator: str = "zero"
    denom_from_weights: bool = False  # the denominator is a sum of weights (error budget)

    # γ, the rule every tier follows (budgets.row_gammas in float64 with a bound,
    # evaluate.exact_gammas exactly): γ_r = ∂(Σ upstream·output)/∂L_r
    #   = Σ_{i: index[i] = r} up[upstream_at(i)] · coef[i] / gamma_denom(),
    # and γ_r = 0 when the reduction divides by zero (div_no_nan's gradient, whichever
    # value the loss takes: zero_value).

    def upstream_at(self, i: int) -> int:
        """The upstream element weighted element ``i`` is multiplied by in γ: its own for an
        unreduced output, the one scalar's otherwise."""
        return i if self.kind == "none" else 0

    def upstream_per_element(self, up: np.ndarray) -> np.ndarray:
        """:meth:`upstream_at` for all ``M`` elements at once (``up`` flat; 1 where a reduced
        output has no upstream value)."""
        if self.kind == "none":
            return up
        return np.full(self.index.shape, up[0] if up.size else 1.0)

    def gamma_denom(self):
        """What γ's products are divided by: the denominator of a ``div``, else None."""
        return self.denom if self.kind == "div" else None

    @property
    def divides_by_zero(self) -> bool:
        """A ``div`` whose denominator is exactly zero: the loss is :attr:`zero_value`, γ = 0."""
        d = self.gamma_denom()
        return d is not None and not isinstance(d, float) and d == 0

    @property
    def zero_value(self) -> float:
        """The loss of a division by zero (``zero_denominator``)."""
        return math.nan if self.zero_denominator == "nan" else 0.0

    def fractions(self) -> list:
        """The coefficients as exact Fractions (special floats kept as floats)."""
        if isinstance(self.coef, np.ndarray):
            self.coef = [v if not math.isfinite(v) else Fraction(v)
                         for v in self.coef.tolist()]
            self._floats = None
        return self.coef

    def fraction_at(self, i: int):
        """Coefficient ``i`` as an exact Fraction (a special float kept), converting no
        other coefficient (a fallback of a few elements must not convert them all)."""
        v = self.coef[i]
        if isinstance(v, Fraction):
            return v
        v = float(v)
        return Fraction(v) if math.isfinite(v) else v

    def floats(self) -> tuple[np.ndarray, np.ndarray]:
        """(float64 values, absolute error bounds) of the coefficients (vectorized)."""
        cached = getattr(self, "_floats", None)
        if cached is not None:
            return cached
        if isinstance(self.coef, np.ndarray):
            out = (self.coef, np.zeros(self.coef.shape))
        else:
            vals = np.array([float(v) for v in self.coef], dtype=np.float64)
            exact = np.array([isinstance(v, float) or Fraction(float(v)) == v
                              for v in self.coef], dtype=bool)
            out = (vals, np.where(exact, 0.0, np.abs(vals) * 2.0 ** -53))
        self._floats = out
        return out

    def is_identity(self, n: int) -> bool:
        """Whether element ``i`` is row ``i`` for all ``n`` rows (no broadcast, no reorder)."""
        got = self.__dict__.get("_identity")
        if got is None or got[0] != n:
            idx = self.index
            same = idx.size == n and (n == 0 or (idx[0] == 0 and idx[-1] == n - 1 and
                                                 bool((np.diff(idx) == 1).all())))
            got = self.__dict__["_identity"] = (n, same)
        return got[1]

    def unit(self, n: int) -> bool:
        """Whether the output is the ``n`` row losses themselves (:meth:`is_identity`, every
        coefficient exactly 1), known without a pass over them when the plan built it so."""
        if self.__dict__.get("_unit") == n:
            return True
        return self.is_identity(n) and bool(self.exactly_one().all())

    def exactly_one(self) -> np.ndarray:
        vals, rad = self.floats()
        return (vals == 1.0) & (rad == 0)


class IdentityReduction(Reduction):
    """Reduction ``none`` of ``n`` row losses as they are (element ``i`` is row ``i``, every
    coefficient exactly 1): the coefficients a read-only view of one 1.0 and the index
    made only when something asks for it, so that neither is an [N] array filled on the
    calling thread in front of the engine's threaded work (the index was 2 ms of a 25 ms
    call at C = 10). :meth:`unit` and :meth:`is_identity` are known without a pass."""

    def __init__(self, n: int, shape: tuple):
        self._n = n
        super().__init__("none", None, np.broadcast_to(np.float64(1.0), (n,)), tuple(shape))
        self.__dict__["_unit"] = n
        self.__dict__["_identity"] = (n, True)

    @property  # type: ignore[override]
    def index(self) -> np.ndarray:
        idx = self.__dict__.get("_index")
        if idx is None:
            idx = self.__dict__["_index"] = np.arange(self._n, dtype=np.int64)
        return idx

    @index.setter
    def index(self, value) -> None:
        self.__dict__["_index"] = value


@dataclass(frozen=True)
class Precision:
    """Formats TensorFlow evaluates in (for the ``tf-precision`` budget)."""

    elem: Format  # the per-row loss / softmax arithmetic
    reduce: Format  # the weighting and reduction
    pre: Format | None = None  # Keras probability path: clip and log before the kernel
    # where TF stores values in the input dtype between stages: per-element losses before
    # a float32 reduction and the reduction's gradient coefficient (compat.v1), labels
    # smoothed in the input dtype before an upcast kernel (compat.v1, tf_keras)
    inter: Format | None = None


@dataclass
class Plan:
    """Everything an arithmetic tier needs to produce an :class:`Expectation`."""

    api: str
    profile: str
    rows: Rows
    reduction: Reduction
    loss_format: Format
    input_format: Format  # the format of the logits/probabilities as given (stable budget)
    precision: Precision
    grad_shape: tuple  # shape of the logits input as given
    grad_format: Format
    grad_perm: tuple | None = None  # logits.transpose(perm).reshape(N, C) gives the rows
    moved_shape: tuple | None = None  # shape after the transpose (before the reshape)
    backprop_shape: tuple | None = None  # raw ops: backprop output shape
    grad_available: bool = True
    notes: list = field(default_factory=list)
    # the documented contract rejects the input (TensorFlow's binding coerced it): the
    # error the contract implies; raising it conforms as well (SPEC §2)
    contract: Raises | None = None

    def grad_from_rows(self, rows_arr):
        """A gradient laid out by rows (``[N, C]``, or flat) in the logits' own layout."""
        import numpy as np

        v = rows_arr
        if self.grad_perm is not None:
            v = np.transpose(v.reshape(self.moved_shape), np.argsort(self.grad_perm))
        return v.reshape(self.grad_shape)

    def grad_to_rows(self, grad_arr):
        """A gradient in the logits' layout as ``[N, C]`` rows (:meth:`grad_from_rows`'s
        inverse)."""
        import numpy as np

        v = grad_arr
        if self.grad_perm is not None:
            v = np.transpose(v, self.grad_perm)
        return v.reshape(self.rows.n, self.rows.c)

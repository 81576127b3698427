"""What the oracle answers: an expectation, not a bare array.

An :class:`Expectation` is either ``raises`` (TensorFlow rejects the input; its error class
and message are given for reference) or a set of :class:`OutputExpectation` — ``loss``,
``backprop`` (raw ops) and ``grad_logits`` — each with, per element, the exact value, its
correctly rounded value in the output dtype, and absolute error budgets for the graded
accuracy levels of SPEC §3. Exact values and roundings are computed lazily, on first use,
and cached: a verdict that needs only the loss never pays for the gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .exact import certify, decimal_string, to_float64
from .formats import Format, ulp_array
from .plan import Raises


class OutputExpectation:
    """One output of an API call: per-element exact values, roundings and budgets."""

    def __init__(self, name: str, fmt: Format, shape: tuple, forms_fn: Callable[[], list],
                 budget_fn: Callable[[], dict[str, np.ndarray]]):
        self.name = name
        self.format = fmt
        self.shape = tuple(int(d) for d in shape)
        self._forms_fn = forms_fn
        self._budget_fn = budget_fn

    @property
    def dtype(self) -> np.dtype:
        return self.format.dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @cached_property
    def forms(self) -> list:
        """The exact values (row-major), as exact-tier forms."""
        forms = self._forms_fn()
        if len(forms) != self.size:
            raise AssertionError(f"{self.name}: {len(forms)} values for shape {self.shape}")
        return forms

    @cached_property
    def rounded64(self) -> np.ndarray:
        """Correctly rounded values (in the output dtype) held exactly in float64."""
        out = np.array([certify(f, self.format) for f in self.forms], dtype=np.float64)
        return out.reshape(self.shape)

    @property
    def rounded(self) -> np.ndarray:
        """Correctly rounded values as an array of the output dtype."""
        return self.rounded64.astype(self.format.dtype)

    #: Where the oracle knows a cheaper road to the same :attr:`exact64` (see
    #: ``api.WIDE_EXACT``): a function giving it, or None when it does not apply after all.
    exact64_source: Callable[[], np.ndarray | None] | None = None
    #: Where the caller knows that rows are independent (the sweeps): a function giving,
    #: for some flat indices, this output of the same call on just their rows and where
    #: those indices lie in it. :meth:`exact64_at` and :meth:`budget_at` take that road
    #: when few elements are asked about.
    subset: Callable[[np.ndarray], tuple[OutputExpectation, np.ndarray]] | None = None

    def _on_rows(self, flat: np.ndarray, cached: str):
        if self.subset is None or cached in self.__dict__ or 2 * flat.size >= self.size:
            return None
        return self.subset(flat)

    @cached_property
    def exact64(self) -> np.ndarray:
        """The exact values rounded to float64 (for display and error measurement)."""
        if self.exact64_source is not None:
            v = self.exact64_source()
            if v is not None:
                return np.asarray(v, dtype=np.float64).reshape(self.shape)
        return np.array([to_float64(f) for f in self.forms], dtype=np.float64).reshape(self.shape)

    def exact64_at(self, flat: np.ndarray) -> np.ndarray:
        """:attr:`exact64` at flat indices ``flat`` only: the whole array where it is cheap
        (the widened call) or wanted anyway, else one exact form per element asked about
        (rounding every form of an output, a Ziv loop each, was most of a conformance run's
        time when a few elements were borderline)."""
        flat = np.asarray(flat, dtype=np.intp)
        if flat.size == 0:
            return np.zeros(0)
        sub = self._on_rows(flat, "exact64")
        if sub is not None:
            return sub[0].exact64.ravel()[sub[1]]
        if self.exact64_source is not None or "exact64" in self.__dict__ or \
                2 * flat.size >= self.size:
            return self.exact64.ravel()[flat]
        forms = self.forms
        return np.array([to_float64(forms[int(i)]) for i in flat], dtype=np.float64)

    def exact_strings(self, digits: int = 30) -> list[str]:
        """Exact values as decimal strings with ``digits`` significant digits (row-major)."""
        return [decimal_string(f, digits) for f in self.forms]

    def budget_at(self, key: str, flat: np.ndarray) -> np.ndarray:
        """``budgets[key]`` at flat indices ``flat`` only (see :attr:`subset`)."""
        flat = np.asarray(flat, dtype=np.intp)
        if flat.size == 0:
            return np.zeros(0)
        sub = self._on_rows(flat, "budgets")
        if sub is not None:
            return sub[0].budgets[key].ravel()[sub[1]]
        return self.budgets[key].ravel()[flat]

    @cached_property
    def budgets(self) -> dict[str, np.ndarray]:
        """Absolute error budgets per element for ``faithful``, ``tf-precision``, ``stable``.

        ``faithful`` is one ulp of the output format at the exact value: an answer within
        it (strictly) is one of the two format values bracketing the truth. The other two
        include the final rounding to the output format (half an ulp). Non-finite expected
        values have budget 0: they must be matched exactly (NaN by any NaN).
        """
        model = self._budget_fn()
        r = self.rounded64.ravel()
        faithful = np.nan_to_num(ulp_array(r, self.format), nan=0.0)
        half = 0.5 * faithful
        out = {"faithful": faithful.reshape(self.shape)}
        for key in ("tf-precision", "stable"):
            b = np.asarray(model[key], dtype=np.float64).ravel() + half
            b[~np.isfinite(r)] = 0.0
            out[key] = b.reshape(self.shape)
        return out


@dataclass
class Expectation:
    """The oracle's answer for one call of one API under one device profile."""

    api: str
    profile: str
    raises: Raises | None = None
    outputs: dict[str, OutputExpectation] = field(default_factory=dict)
    notes: list = field(default_factory=list)
    engine: Any = None  # the vectorized tier's Engine (its path and fallback count), if used
    # the documented contract rejects this input, but TensorFlow's Python binding coerces
    # a numpy array of it (SPEC §2): raising as the contract says conforms too
    contract: Raises | None = None
    plan: object = field(default=None, repr=False)  # the Plan evaluated (None: raises)
    upstream: object = field(default=None, repr=False)
    # where TF raises under the cpu profile: the same call's Expectation under "xla", as a
    # function (set by oracle_call; see oracle.mechanisms.xla_nan_rows)
    xla: object = field(default=None, repr=False)

    def mechanisms(self, names: tuple[str, ...] | None = None) -> dict:
        """TensorFlow's mechanisms that apply here, per output (``oracle.mechanisms``):
        output name → list of :class:`~xentconf.oracle.mechanisms.Allowance`."""
        from .mechanisms import allowances

        if self.plan is None or self.raises is not None:
            return {}
        names = tuple(self.outputs) if names is None else names
        sizes = {n: self.outputs[n].size for n in names if n in self.outputs}
        return allowances(self.plan, sizes, upstream=self.upstream, profile=self.profile)


    def __getitem__(self, name: str) -> OutputExpectation:
        return self.outputs[name]

    def __repr__(self) -> str:
        if self.raises:
            return f"Expectation({self.api}, {self.profile}, raises {self.raises.error})"
        outs = ", ".join(f"{k}{list(v.shape)}:{v.dtype}" for k, v in self.outputs.items())
        return f"Expectation({self.api}, {self.profile}, {outs})"

"""Hypothesis strategies for conformance cases, in the style of ``hypothesis.extra.numpy``.

:func:`cases` gives a strategy of :class:`Case` — one call of one API (SPEC §1) with
inputs of one dtype, built to exercise one *feature* (a column of the conformance table;
:data:`FEATURES_OF` lists the features of each API). Hypothesis draws only the small
decisions — shapes, the regime of the logits, the kind of labels or weights, edge
positions and a seed — and numpy fills the arrays from the seed, so an example costs
well under a millisecond to generate whatever its size, and shrinking moves toward small
shapes, the first regime and seed 0.

What the features reach (SPEC §5):

* ``basic`` — moderate logits, labels in range (edges 0 and C−1 included), C from 1;
  dense labels one-hot or soft; Keras probabilities from a softmax.
* ``regimes`` — huge logits (±1e30, near the dtype's max), tiny and subnormal ones, exact
  ties, one dominant logit (loss down to the underflow threshold), gaps past exp
  underflow, a large common offset; dense labels unnormalised, negative, all-zero.
* ``special_values`` — ±inf and NaN in and out of the label position.
* ``large_classes`` — C from 50,000.
* ``batch0``, ``rank1``, ``rank3+``, ``axis`` — shapes: an empty batch, no batch
  dimension, 3 and 4 dimensions, the class axis elsewhere than last.
* ``bad_labels`` — −1, −100, C, far out of range, beyond int32, the label dtype's extremes.
* ``weights`` — Python float and 0-d array scalars (zero or not), ``[B]``, ``[B,1]``,
  broadcastable higher rank, zeros, negative, NaN, and non-broadcastable shapes.
* ``reduction`` — every reduction of the API (Keras 3's own when asked).
* ``label_smoothing`` — 0, inside (0, 1), 1 and out of range.
* ``ignore_class`` — in range, out of range, every label ignored.
* ``from_logits`` / ``probabilities`` — the Keras paths; probability rows with zeros,
  exact one-hot, unnormalised.
* ``broadcast_labels`` — dense labels ``[C]`` or ``[1, C]`` against ``[B, C]`` logits.
* ``invalid`` — shapes, ranks, dtypes and arguments TensorFlow rejects.

Whether a case is valid is never decided here: the oracle says what TensorFlow does with
it (SPEC §2), errors included.
"""

from __future__ import annotations

import contextvars
import math
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from xentconf.oracle.semantics import (
    COMPAT_V1_REDUCTIONS,
    KERAS2_REDUCTIONS,
    KERAS3_REDUCTIONS,
)
from xentconf.protocol import API_IDS, API_SHORT, DTYPES, KERAS_VARIANTS

__all__ = ["BAD_LABELS", "FEATURES_OF", "IGNORE_KINDS", "PROBABILITIES", "REGIMES", "SMOOTHING",
           "Case", "cases", "categories", "dtype_of", "upstream_for"]

_R = {short: api for api, short in API_SHORT.items()}
_COMMON = ("basic", "regimes", "special_values", "large_classes", "batch0")

#: The features (test columns) of each API.
FEATURES_OF: dict[str, tuple[str, ...]] = {
    _R["raw_sparse"]: (*_COMMON, "bad_labels", "invalid"),
    _R["raw_dense"]: (*_COMMON, "broadcast_labels", "invalid"),
    _R["nn_sparse"]: (*_COMMON, "rank1", "rank3+", "bad_labels", "invalid"),
    _R["nn_dense"]: (*_COMMON, "rank1", "rank3+", "axis", "broadcast_labels", "invalid"),
    _R["v1_sparse"]: (*_COMMON, "rank3+", "bad_labels", "weights", "reduction", "invalid"),
    _R["v1_dense"]: (*_COMMON, "weights", "reduction", "label_smoothing", "invalid"),
    _R["keras_sparse"]: (*_COMMON, "rank3+", "from_logits", "probabilities", "bad_labels",
                         "weights", "reduction", "ignore_class", "invalid"),
    _R["keras_dense"]: (*_COMMON, "rank3+", "from_logits", "probabilities", "weights",
                        "reduction", "label_smoothing", "axis", "invalid"),
}

#: Logit regimes of the ``regimes`` feature.
REGIMES = ("huge", "near_max", "tiny", "ties", "dominant", "underflow_gap", "offset")

_DT = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16),
       "float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
# exp(-g) underflows the dtype (below its smallest subnormal) for a gap g beyond this
_UNDERFLOW = {k: -math.log(float(ml_dtypes.finfo(dt).smallest_subnormal))
              for k, dt in _DT.items()}


def dtype_of(name: str) -> np.dtype:
    """The numpy dtype of a dtype name of :data:`xentconf.protocol.DTYPES`."""
    return _DT[name]


@dataclass(frozen=True)
class Case:
    """One generated call: the API, TensorFlow's arguments, Keras constructor kwargs.

    ``tags`` describe what was drawn (the regime, label and weight kinds, the reduction);
    they extend the test id into a case id for known-deviation patterns. ``seed`` also
    seeds the upstream gradient (:func:`upstream_for`)."""

    api: str
    dtype: str
    feature: str
    args: dict[str, Any]
    init: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    seed: int = 0

    def __repr__(self) -> str:
        def show(v):
            if isinstance(v, np.ndarray):
                return f"array{list(v.shape)}:{v.dtype}"
            return repr(v)
        args = ", ".join(f"{k}={show(v)}" for k, v in self.args.items())
        init = f" init={self.init}" if self.init else ""
        return f"Case({API_SHORT[self.api]}/{self.feature} {args}{init} tags={self.tags})"


def upstream_for(shape: tuple, dtype: np.dtype, seed: int) -> np.ndarray:
    """The upstream gradient used with a case: small exact values with both signs."""
    rng = np.random.default_rng(seed ^ 0x5EED)
    vals = rng.choice([1.0, 0.5, -1.25, 2.0, -0.75, 0.0], size=shape)
    return np.asarray(vals, dtype=np.float64).astype(dtype)


#: Categories of out-of-range sparse labels (``bad_labels``): -1, -100 (many frameworks'
#: "ignore" label), C, C + 1000, a label beyond int32 in an int64 array, and the label
#: dtype's extremes. Each is a category of its own, as frameworks treat them apart.
BAD_LABELS = ("minus_one", "minus_hundred", "classes", "far", "beyond_int32", "extreme")

#: ``label_smoothing`` values by category: 0, inside (0, 1), 1, below 0 and above 1 (a
#: framework may refuse one side of the range and not the other).
SMOOTHING = {"ls_zero": (0, 0.0), "ls_inside": (0.1, 0.25, 0.5), "ls_one": (1, 1.0),
             "ls_negative": (-0.125,), "ls_above_one": (1.5,)}

#: Kinds of probability rows for the Keras probability path (``probabilities``).
PROBABILITIES = ("softmax", "onehot", "zeros", "unnormalised")

#: Kinds of ``ignore_class`` (``ignore_class``).
IGNORE_KINDS = ("in_range", "out_of_range", "all")

# The category a case must take (see :func:`categories`), while one is forced.
_FORCED: contextvars.ContextVar[str | None] = contextvars.ContextVar("forced", default=None)


def _choose(draw, choices: tuple[str, ...]) -> str:
    """One of ``choices``: the forced category if it is one of them, else drawn."""
    forced = _FORCED.get()
    return forced if forced in choices else draw(st.sampled_from(choices))


def categories(api: str, feature: str, keras: str = "keras2") -> tuple[str, ...]:
    """The categories a case of ``feature`` falls in (its main drawn tag: the kind of bad
    label, regime, weights, invalid input, label smoothing, probabilities or ignored
    class, or the reduction); ``cases(..., category=...)`` draws only that one. Empty for
    features without one. ``keras``: the Keras semantics, whose reductions differ."""
    short = API_SHORT[api]
    dense = "sparse" not in short
    return {"bad_labels": BAD_LABELS, "regimes": REGIMES + (("labels",) if dense else ()),
            "weights": _WEIGHT_KINDS if short[:2] in ("v1", "ke") else (),
            "invalid": _invalid_kinds(api), "label_smoothing": tuple(SMOOTHING),
            "probabilities": PROBABILITIES, "ignore_class": IGNORE_KINDS,
            "reduction": tuple(str(r) for r in _reductions(short, keras))}.get(feature, ())


def _reductions(short: str, keras: str) -> tuple:
    """The reductions an API takes (none for the raw ops and ``tf.nn``)."""
    if short.startswith("v1"):
        return COMPAT_V1_REDUCTIONS
    if short.startswith("keras"):
        return KERAS3_REDUCTIONS if keras == "keras3" else KERAS2_REDUCTIONS
    return ()


# ----------------------------------------------------------------------------- filling


def _finfo(dt: str):
    return ml_dtypes.finfo(_DT[dt])


def _cast(x: np.ndarray, dt: str) -> np.ndarray:
    """float64 values to ``dt``; bfloat16 goes through float32, which is exact enough for
    generated inputs (only the result's dtype matters, not how it was rounded)."""
    if dt == "bfloat16":
        return np.asarray(x, np.float64).astype(np.float32).astype(_DT[dt])
    return np.asarray(x, np.float64).astype(_DT[dt])


def _moderate(rng, shape, scale=3.0):
    return rng.standard_normal(shape) * scale


def _regime_rows(rng, n: int, c: int, dt: str, regime: str, labels=None) -> np.ndarray:
    """``[n, c]`` float64 logits of one regime (exactly representable after ``_cast``)."""
    fi = _finfo(dt)
    big = float(fi.max)
    if regime == "huge":
        mag = 1e30 if big > 1e30 else big / 4
        return rng.choice([-1.0, 1.0], (n, c)) * mag * rng.uniform(0.25, 1.0, (n, c))
    if regime == "near_max":
        x = rng.choice([-1.0, 1.0], (n, c)) * big * rng.uniform(0.5, 1.0, (n, c))
        return np.minimum(x, big)
    if regime == "tiny":
        tiny = float(fi.smallest_normal)
        sub = float(fi.smallest_subnormal)
        x = rng.standard_normal((n, c)) * (tiny * 16 if dt != "float64" else 1e-300)
        mask = rng.random((n, c)) < 0.4
        x[mask] = rng.integers(-7, 8, mask.sum()) * sub
        return x
    if regime == "ties":
        x = np.repeat(_moderate(rng, (n, 1)), c, axis=1)
        if c > 2:  # some rows with two or three tied maxima among other values
            for i in range(0, n, 2):
                row = _moderate(rng, c)
                top = rng.choice(c, size=min(c, int(rng.integers(2, 4))), replace=False)
                row[top] = row.max() + 1.0
                x[i] = row
        return np.round(x * 4) / 4
    if regime == "dominant":
        x = _moderate(rng, (n, c), 1.0)
        where = labels if labels is not None else rng.integers(0, c, n)
        gap = rng.uniform(4.0, 1.25 * _UNDERFLOW[dt], n)
        x[np.arange(n), where] = x.max(axis=1) + gap
        return x
    if regime == "underflow_gap":
        x = _moderate(rng, (n, c), 1.0)
        mask = rng.random((n, c)) < 0.5
        x[mask] -= rng.uniform(1.0, 3.0, mask.sum()) * _UNDERFLOW[dt]
        return x
    if regime == "offset":
        return _moderate(rng, (n, c)) + (1e4 if dt != "float16" else 6e3)
    raise AssertionError(regime)


def _specials(rng, x: np.ndarray, labels=None) -> np.ndarray:
    """Put ±inf and NaN into some rows, at the label position or elsewhere."""
    n, c = x.shape
    x = x.copy()
    for i in range(n):
        kind = rng.integers(0, 7)
        if kind == 0:
            continue
        if kind == 6 and c >= 2:  # two +inf logits in one row (TF: NaN)
            x[i, rng.choice(c, 2, replace=False)] = math.inf
            continue
        value = [math.inf, -math.inf, math.nan, math.inf, -math.inf, math.inf][kind - 1]
        at_label = labels is not None and rng.random() < 0.5
        j = int(labels[i]) if at_label and 0 <= labels[i] < c else int(rng.integers(0, c))
        x[i, j] = value
        if rng.random() < 0.3:  # a second special value in the same row
            x[i, int(rng.integers(0, c))] = [math.inf, -math.inf, math.nan][rng.integers(0, 3)]
    return x


def _labels(rng, n: int, c: int, *, edges: bool = True) -> np.ndarray:
    y = rng.integers(0, max(c, 1), n)
    if edges and n:
        pick = rng.random(n)
        y[pick < 0.15] = 0
        y[(pick >= 0.15) & (pick < 0.3)] = c - 1
    return y


def _label_dtype(rng) -> np.dtype:
    return np.dtype(np.int64) if rng.random() < 0.5 else np.dtype(np.int32)


def _soft(rng, n: int, c: int, kind: str = "soft") -> np.ndarray:
    """Dense label rows: ``onehot``, ``soft`` (multiples of 1/64 summing to exactly 1),
    ``unnormalised``, ``negative`` or ``zero``."""
    if kind == "onehot":
        y = np.zeros((n, c))
        if c:
            y[np.arange(n), _labels(rng, n, c)] = 1.0
        return y
    if kind == "zero":
        return np.zeros((n, c))
    if kind == "unnormalised":
        return rng.integers(0, 9, (n, c)) / 4
    if kind == "negative":
        return (rng.integers(-8, 9, (n, c)) / 8).astype(np.float64)
    if c == 0:
        return np.zeros((n, 0))
    counts = rng.multinomial(64, [1 / c] * c, size=n)
    return counts / 64


def _softmax_rows(rng, n: int, c: int, dt: str) -> np.ndarray:
    x = _moderate(rng, (n, c))
    e = np.exp(x - x.max(axis=-1, keepdims=True)) if c else x
    return e / e.sum(axis=-1, keepdims=True) if c else e


def _probabilities(rng, n: int, c: int, kind: str) -> np.ndarray:
    """Keras ``y_pred`` probability rows: ``softmax``, ``onehot`` (exact), ``zeros`` (some
    exact zeros), ``unnormalised`` (rows not summing to 1)."""
    if kind == "onehot":
        return _soft(rng, n, c, "onehot")
    p = _softmax_rows(rng, n, c, "float64")
    if kind == "zeros":
        p = np.where(rng.random((n, c)) < 0.4, 0.0, p)
    elif kind == "unnormalised":
        p = p * rng.uniform(0.2, 3.0, (n, 1))
    return p


# ----------------------------------------------------------------------------- shapes


def _shape_for(feature: str, draw, large: bool) -> tuple[tuple[int, ...], int]:
    """(batch shape, C) for the feature."""
    if large:
        return (draw(st.integers(1, 3)),), draw(st.integers(50_000, 70_000))
    c = draw(st.one_of(st.just(1), st.integers(2, 12)) if feature == "basic"
             else st.integers(2, 12))
    if feature == "batch0":  # an empty batch, or rows of no class (C = 0)
        return ((0,), c) if draw(st.booleans()) else ((draw(st.integers(1, 4)),), 0)
    if feature == "rank1":
        return (), c
    if feature == "rank3+":
        rank = draw(st.integers(3, 4))
        return tuple(draw(st.integers(1, 3)) for _ in range(rank - 1)), c
    return (draw(st.integers(1, 8)),), c


# ----------------------------------------------------------------------------- per API


def _weights(rng, kind: str, bshape: tuple, dt: str, api_short: str):
    """Weights of ``kind`` for a loss of shape ``bshape``."""
    wdt = _DT["float32"] if rng.random() < 0.6 or dt == "bfloat16" else _DT[dt]
    n = int(np.prod(bshape)) if bshape else 1
    if kind == "python_zero":
        return 0.0
    if kind == "python":
        return float(rng.choice([0.5, 2.0, 1.0, 3.25]))
    if kind == "scalar_array":
        return np.asarray(rng.choice([0.0, 0.5, 2.0]), wdt)
    if kind == "per_row":
        return (rng.integers(0, 9, bshape) / 4).astype(wdt)
    if kind == "column":
        return (rng.integers(0, 9, (*bshape, 1)) / 4).astype(wdt)
    if kind == "broadcast":
        shape = (bshape[0],) + (1,) * (len(bshape) - 1) if bshape else ()
        return (rng.integers(0, 9, shape) / 4).astype(wdt)
    if kind == "zeros":
        return np.zeros(bshape, wdt)
    if kind == "negative":
        return (rng.integers(-8, 9, bshape) / 4).astype(wdt)
    if kind == "nan":
        w = (rng.integers(0, 9, n) / 4).astype(np.float64)
        w[rng.integers(0, n)] = np.nan
        return w.reshape(bshape).astype(wdt)
    if kind == "mismatch":
        shape = (bshape[0] + 1,) if bshape else (2,)
        return np.ones(shape, wdt)
    raise AssertionError(kind)


def _weighting(draw, rng, feature: str, store: dict, tags: list, *, weight_name: str,
               red_store: dict, keras: str, bshape: tuple, dt: str, short: str) -> None:
    """The ``weights`` / ``reduction`` features: a weight of some kind (``weights``) or
    per-row weights (``reduction``), and a reduction drawn from ``reductions``."""
    if feature == "weights":
        kind = _choose(draw, _WEIGHT_KINDS)
        tags.append(kind)
        store[weight_name] = _weights(rng, kind, bshape, dt, short)
    if feature in ("weights", "reduction", "label_smoothing"):
        reductions = _reductions(short, keras)
        names = {str(r): r for r in reductions}
        red = names[_choose(draw, tuple(names))] if feature == "reduction" else \
            draw(st.sampled_from(reductions))
        if feature == "reduction":
            store[weight_name] = _weights(rng, "per_row", bshape, dt, short)
        red_store["reduction"] = red
        tags.append(str(red))


def _keras_prediction(draw, rng, feature: str, logits, tags: list, *, n: int, c: int,
                      dt: str, bshape: tuple, axis: int = -1):
    """(from_logits, y_pred): logits, or probability rows of some kind for the Keras
    probability path (``basic``, ``weights`` and ``reduction`` draw either; ``probabilities``
    and ``batch0`` use it)."""
    from_logits = feature not in ("basic", "probabilities", "batch0", "weights", "reduction") \
        or (feature in ("basic", "weights", "reduction") and draw(st.booleans()))
    if from_logits:
        return True, logits
    kind = _choose(draw, PROBABILITIES) if feature == "probabilities" else "softmax"
    tags += ["probs", kind]
    p = _cast(_probabilities(rng, n, c, kind), dt).reshape((*bshape, c))
    return False, (np.moveaxis(p, -1, axis) if axis != -1 else p)


def _smoothing(draw, tags: list, *, python_ints: bool):
    """A ``label_smoothing`` of some category of :data:`SMOOTHING` (compat.v1 takes a Python
    int too; Keras takes floats)."""
    kind = _choose(draw, tuple(SMOOTHING))
    ls = draw(st.sampled_from(tuple(v for v in SMOOTHING[kind]
                                    if python_ints or isinstance(v, float))))
    tags += [kind, f"ls{ls}"]
    return ls


_WEIGHT_KINDS = ("python_zero", "python", "scalar_array", "per_row", "column", "broadcast",
                 "zeros", "negative", "nan", "mismatch")


def _case_shape(draw, api: str, feature: str):
    """(short name, batch shape, C, rows, tags) of a case; a raw op's batch has rank 1."""
    short = API_SHORT[api]
    bshape, c = _shape_for(feature, draw, feature == "large_classes")
    if short in ("raw_sparse", "raw_dense") and len(bshape) != 1:
        bshape = (max(bshape[0] if bshape else 1, 1),)
    n = int(np.prod(bshape)) if bshape else 1
    tags: list[str] = ["classes0"] if c == 0 else []
    return short, bshape, c, n, tags


def _sparse_case(draw, rng, api: str, dt: str, feature: str, keras: str):
    short, bshape, c, n, tags = _case_shape(draw, api, feature)
    y = _labels(rng, n, c)
    regime = "moderate"
    if feature == "regimes" or (feature in ("large_classes", "from_logits")
                                 and draw(st.booleans())):
        regime = _choose(draw, REGIMES) if feature == "regimes" else \
            draw(st.sampled_from(REGIMES))
        tags.append(regime)
    x = _moderate(rng, (n, c)) if regime == "moderate" else _regime_rows(rng, n, c, dt, regime, y)
    if feature == "special_values":
        x = _specials(rng, x, y)
        tags.append("inf_nan")
    if feature == "bad_labels":
        bad = _choose(draw, BAD_LABELS)
        k = int(rng.integers(0, n)) if n else 0
        tags.append(bad)
        ldt = np.dtype(np.int64) if bad == "beyond_int32" else _label_dtype(rng)
        if n:
            y[k] = {"minus_one": -1, "classes": c, "far": c + 1000, "minus_hundred": -100,
                    "beyond_int32": 2**31 + int(rng.integers(0, c)),
                    "extreme": int(np.iinfo(ldt).max if rng.random() < 0.5
                                   else np.iinfo(ldt).min)}[bad]
    else:
        ldt = _label_dtype(rng)
    labels = y.astype(ldt).reshape(bshape)
    logits = _cast(x, dt).reshape((*bshape, c))
    init: dict[str, Any] = {}
    if short == "raw_sparse":
        return {"features": logits, "labels": labels}, init, tags
    if short == "nn_sparse":
        return {"labels": labels, "logits": logits}, init, tags
    if short == "v1_sparse":
        args: dict[str, Any] = {"labels": labels, "logits": logits}
        if feature == "weights":
            kind = _choose(draw, _WEIGHT_KINDS)
            tags.append(kind)
            args["weights"] = _weights(rng, kind, bshape, dt, short)
            if kind == "column" and draw(st.booleans()):
                args["labels"] = labels.reshape((*bshape, 1))  # [B,1] labels are squeezed
                tags.append("labels_B1")
        if feature == "reduction":
            _weighting(draw, rng, feature, args, tags, weight_name="weights", red_store=args,
                       keras=keras, bshape=bshape, dt=dt, short=short)
        elif feature == "weights":
            red = draw(st.sampled_from(COMPAT_V1_REDUCTIONS))
            args["reduction"] = red
            tags.append(red)
        return args, init, tags
    # keras_sparse
    from_logits, logits = _keras_prediction(draw, rng, feature, logits, tags, n=n, c=c,
                                            dt=dt, bshape=bshape)
    init = {"from_logits": from_logits}
    args = {"y_true": labels, "y_pred": logits}
    if feature == "basic" and len(bshape) == 1 and draw(st.booleans()):
        args["y_true"] = labels.reshape((*bshape, 1))
        tags.append("labels_B1")
    _weighting(draw, rng, feature, args, tags, weight_name="sample_weight", red_store=init,
               keras=keras, bshape=bshape, dt=dt, short=short)
    if feature == "ignore_class":
        kind = _choose(draw, IGNORE_KINDS)
        tags.append(kind)
        flat = args["y_true"].reshape(-1).copy()
        if kind == "in_range":
            ign = int(rng.integers(0, c))
            flat[rng.random(flat.size) < 0.4] = ign
        elif kind == "out_of_range":
            ign = int(rng.choice([-1, c]))
            flat[rng.random(flat.size) < 0.4] = ign
        else:
            ign = int(rng.integers(0, c))
            flat[:] = ign
        args["y_true"] = flat.reshape(args["y_true"].shape)
        init["ignore_class"] = ign
    return args, init, tags


def _dense_case(draw, rng, api: str, dt: str, feature: str, keras: str):
    short, bshape, c, n, tags = _case_shape(draw, api, feature)
    label_kind = draw(st.sampled_from(("onehot", "soft")))
    regime = "moderate"
    if feature == "regimes":
        regime = _choose(draw, REGIMES + ("labels",))
        tags.append(regime)  # the category, "labels" included
        if regime == "labels":  # unnormalised, negative or all-zero label rows, moderate logits
            label_kind = draw(st.sampled_from(("unnormalised", "negative", "zero")))
            regime = "moderate"
    tags.append(label_kind)
    y = _soft(rng, n, c, label_kind)
    hot = np.argmax(y, axis=1) if c else None
    x = _moderate(rng, (n, c)) if regime == "moderate" else \
        _regime_rows(rng, n, c, dt, regime, hot)
    if feature == "special_values":
        x = _specials(rng, x, hot)
        tags.append("inf_nan")
    ldt = dt if (short != "keras_dense" or draw(st.booleans())) else "float32"
    logits = _cast(x, dt).reshape((*bshape, c))
    labels = _cast(y, ldt).reshape((*bshape, c))
    if feature == "broadcast_labels":
        row = labels.reshape(-1, c)[:1]
        labels = row[0] if draw(st.booleans()) else row
        tags.append(f"labels{list(labels.shape)}")
    axis = -1
    if feature == "axis":
        rank = len(bshape) + 1
        axis = draw(st.integers(0, rank - 2)) if rank > 1 else 0
        logits = np.moveaxis(logits, -1, axis)
        labels = np.moveaxis(labels, -1, axis)
        tags.append(f"axis{axis}")
    init: dict[str, Any] = {}
    if short == "raw_dense":
        return {"features": logits, "labels": labels}, init, tags
    if short == "nn_dense":
        args: dict[str, Any] = {"labels": labels, "logits": logits}
        if axis != -1:
            args["axis"] = axis
        return args, init, tags
    if short == "v1_dense":
        args = {"onehot_labels": labels, "logits": logits}
        _weighting(draw, rng, feature, args, tags, weight_name="weights", red_store=args,
                   keras=keras, bshape=bshape, dt=dt, short=short)
        if feature == "label_smoothing":
            args["label_smoothing"] = _smoothing(draw, tags, python_ints=True)
        return args, init, tags
    # keras_dense
    from_logits, logits = _keras_prediction(draw, rng, feature, logits, tags, n=n, c=c,
                                            dt=dt, bshape=bshape, axis=axis)
    init = {"from_logits": from_logits}
    if axis != -1:
        init["axis"] = axis
    args = {"y_true": labels, "y_pred": logits}
    _weighting(draw, rng, feature, args, tags, weight_name="sample_weight", red_store=init,
               keras=keras, bshape=bshape, dt=dt, short=short)
    if feature == "label_smoothing":
        init["label_smoothing"] = _smoothing(draw, tags, python_ints=False)
    return args, init, tags


_REFUSED_LABEL_DTYPES = ("float32", "uint8", "int16")


def _invalid_kinds(api: str) -> tuple[str, ...]:
    short = API_SHORT[api]
    kinds = ["logits_rank", "batch_mismatch", "labels_rank"]
    if "sparse" in short:  # label dtypes TensorFlow refuses, each a category of its own
        kinds += [f"label_{d}" for d in _REFUSED_LABEL_DTYPES]
    if short == "nn_sparse":  # [B,1] labels: tf.nn raises (compat.v1 and Keras squeeze)
        kinds.append("labels_B1")
    if short.startswith("v1") or short.startswith("keras"):
        kinds += ["reduction_name", "weights_shape"]
    return tuple(kinds)


def _invalid_case(draw, rng, api: str, dt: str, keras: str):
    """A call TensorFlow rejects (the oracle has the last word on each)."""
    short = API_SHORT[api]
    sparse = "sparse" in short
    c = draw(st.integers(2, 6))
    b = draw(st.integers(1, 4))
    x = _cast(_moderate(rng, (b, c)), dt)
    y = _labels(rng, b, c).astype(_label_dtype(rng)) if sparse else _cast(_soft(rng, b, c), dt)
    kind = _choose(draw, _invalid_kinds(api))
    if kind == "logits_rank":
        x = x[0] if draw(st.booleans()) or short.startswith("raw") else np.asarray(x[0, 0])
        if short.startswith("raw") and draw(st.booleans()):
            x = _cast(_moderate(rng, (b, 2, c)), dt)
    elif kind == "batch_mismatch":
        y = np.concatenate([y, y[:1]])
    elif kind == "labels_rank":
        y = y[:, None, None] if sparse else y[None]
    elif kind == "labels_B1":
        y = y[:, None]
    elif kind.removeprefix("label_") in _REFUSED_LABEL_DTYPES:
        y = y.astype(kind.removeprefix("label_"))
    names = {"raw_sparse": ("features", "labels"), "raw_dense": ("features", "labels"),
             "nn_sparse": ("logits", "labels"), "nn_dense": ("logits", "labels"),
             "v1_sparse": ("logits", "labels"), "v1_dense": ("logits", "onehot_labels"),
             "keras_sparse": ("y_pred", "y_true"), "keras_dense": ("y_pred", "y_true")}[short]
    args: dict[str, Any] = {names[1]: y, names[0]: x}
    init: dict[str, Any] = {}
    if short.startswith("keras"):
        init["from_logits"] = True
    if kind == "reduction_name":
        bad = draw(st.sampled_from(("mean", "SUM", "weighted", "")))
        if short.startswith("v1"):
            args["reduction"] = bad  # "mean" is no compat.v1 reduction either
        else:
            init["reduction"] = bad if bad != "mean" or keras == "keras2" else "avg"
    if kind == "weights_shape":
        w = np.ones((b + 1,), np.float32)
        args["weights" if short.startswith("v1") else "sample_weight"] = w
    return args, init, [kind]


# ----------------------------------------------------------------------------- public


@st.composite
def _case(draw, api: str, dtype: str, feature: str, keras: str, category=None) -> Case:
    token = _FORCED.set(category)
    try:
        return _draw_case(draw, api, dtype, feature, keras)
    finally:
        _FORCED.reset(token)


def _draw_case(draw, api: str, dtype: str, feature: str, keras: str) -> Case:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if feature == "invalid":
        args, init, tags = _invalid_case(draw, rng, api, dtype, keras)
    elif "sparse" in API_SHORT[api]:
        args, init, tags = _sparse_case(draw, rng, api, dtype, feature, keras)
    else:
        args, init, tags = _dense_case(draw, rng, api, dtype, feature, keras)
    return Case(api, dtype, feature, args, init, tuple(tags), seed)


def cases(api: str, dtype: str, feature: str, *, keras: str = "keras2",
          category: str | None = None) -> st.SearchStrategy:
    """Cases of ``api`` with logits (``y_pred``) of ``dtype`` exercising ``feature``.

    ``keras`` picks the Keras semantics whose reductions are drawn (Keras APIs only);
    ``category`` keeps to one of :func:`categories` (all of them by default).
    Arguments are checked eagerly: a wrong one raises ``InvalidArgument`` at once.
    """
    if api not in FEATURES_OF:
        raise InvalidArgument(f"api={api!r} is not an API id; use one of {', '.join(API_IDS)}")
    if dtype not in DTYPES:
        raise InvalidArgument(f"dtype={dtype!r}; use one of {', '.join(DTYPES)}")
    if feature not in FEATURES_OF[api]:
        raise InvalidArgument(f"feature={feature!r} is not a feature of {API_SHORT[api]}; "
                              f"use one of {', '.join(FEATURES_OF[api])}")
    if keras not in KERAS_VARIANTS:
        raise InvalidArgument(f"keras={keras!r}; use one of {', '.join(KERAS_VARIANTS)}")
    if category is not None and category not in categories(api, feature, keras):
        raise InvalidArgument(f"category={category!r} is not one of {feature}'s: "
                              f"{', '.join(categories(api, feature, keras)) or 'none'}")
    return _case(api, dtype, feature, keras, category)

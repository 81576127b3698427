"""The oracle's public entries, one per API id, named and parametrised as TensorFlow's.

``tf`` mirrors TensorFlow's namespace (as jax's ``lax_reference`` mirrors ``lax``)::

    from xentconf.oracle import tf
    e = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    e = tf.keras.losses.SparseCategoricalCrossentropy(reduction="sum")(y_true, y_pred)

Each entry takes TensorFlow's parameters with TensorFlow's names and defaults, plus
keyword-only ``profile`` (``"cpu"``, ``"gpu"`` or ``"xla"``) and ``upstream`` (the
upstream gradient of the loss output for ``grad_logits``; ones when omitted), and returns
an :class:`~xentconf.oracle.expectation.Expectation`. TF-only parameters with no effect
on values (``name``, ``scope``, ``loss_collection``) are accepted and ignored.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import numpy as np

from xentconf.vocabulary import API_IDS, KERAS_APIS

from . import semantics as S
from .evaluate import evaluate
from .expectation import Expectation
from .plan import Plan, Raises

SBNZ = "weighted_sum_by_nonzero_weights"
#: The APIs whose exact results depend on the arguments' values alone, never on their
#: dtype (no constant — smoothing, clipping epsilon, weights — is cast to the logits'
#: dtype): the same call on the arguments widened to float64 has the same exact values,
#: so the vectorized tier's float64 path gives their float64 rounding cheaply.
WIDE_EXACT = API_IDS[:4]
_NARROW = ("float16", "bfloat16", "float32")
_DEFAULT = object()


def build(evaluator, tier: str) -> SimpleNamespace:
    """Every public entry, carried out by ``evaluator(plan, upstream)`` (one per tier)."""

    def _finish(api: str, profile: str, plan: Plan | Raises, upstream) -> Expectation:
        if isinstance(plan, Raises):
            return Expectation(api, profile, raises=plan)
        exp = evaluator(plan, upstream)
        exp.plan, exp.upstream, exp.contract = plan, upstream, plan.contract
        return exp


    def SparseSoftmaxCrossEntropyWithLogits(features, labels, name=None, *, profile="cpu",
                                            upstream=None) -> Expectation:
        """``tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits``: outputs ``loss``, ``backprop``."""
        return _finish("tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits", profile,
                       S.plan_raw_sparse(features, labels, profile=profile), upstream)


    def SoftmaxCrossEntropyWithLogits(features, labels, name=None, *, profile="cpu",
                                      upstream=None) -> Expectation:
        """``tf.raw_ops.SoftmaxCrossEntropyWithLogits``: outputs ``loss``, ``backprop``."""
        return _finish("tf.raw_ops.SoftmaxCrossEntropyWithLogits", profile,
                       S.plan_raw_dense(features, labels, profile=profile), upstream)


    def sparse_softmax_cross_entropy_with_logits(labels, logits, name=None, *, profile="cpu",
                                                 upstream=None) -> Expectation:
        """``tf.nn.sparse_softmax_cross_entropy_with_logits`` (TF 2.21 v2 signature)."""
        return _finish("tf.nn.sparse_softmax_cross_entropy_with_logits", profile,
                       S.plan_nn_sparse(labels, logits, profile=profile), upstream)


    def softmax_cross_entropy_with_logits(labels, logits, axis=-1, name=None, *, profile="cpu",
                                          upstream=None) -> Expectation:
        """``tf.nn.softmax_cross_entropy_with_logits`` (TF 2.21 v2 signature)."""
        return _finish("tf.nn.softmax_cross_entropy_with_logits", profile,
                       S.plan_nn_dense(labels, logits, axis, profile=profile), upstream)


    def sparse_softmax_cross_entropy(labels, logits, weights=1.0, scope=None,
                                     loss_collection=None, reduction=SBNZ, *, profile="cpu",
                                     upstream=None) -> Expectation:
        """``tf.compat.v1.losses.sparse_softmax_cross_entropy``."""
        return _finish("tf.compat.v1.losses.sparse_softmax_cross_entropy", profile,
                       S.plan_v1_sparse(labels, logits, weights, reduction, profile=profile),
                       upstream)


    def softmax_cross_entropy(onehot_labels, logits, weights=1.0, label_smoothing=0, scope=None,
                              loss_collection=None, reduction=SBNZ, *, profile="cpu",
                              upstream=None) -> Expectation:
        """``tf.compat.v1.losses.softmax_cross_entropy``."""
        return _finish("tf.compat.v1.losses.softmax_cross_entropy", profile,
                       S.plan_v1_dense(onehot_labels, logits, weights, label_smoothing, reduction,
                                       profile=profile), upstream)


    class _KerasLoss:
        """Shared behaviour of the two Keras loss classes (Keras 2 by default, or Keras 3)."""

        api = ""
        _name = ""
        _keys2: tuple = ()
        _keys3: tuple = ()

        @staticmethod
        def _plan(*args, **kw):  # the class's planner in semantics
            raise NotImplementedError

        def __init__(self, keras: str = "keras2", **kw):
            if kw.get("reduction") is _DEFAULT:
                kw["reduction"] = "auto" if keras == "keras2" else "sum_over_batch_size"
            if keras not in ("keras2", "keras3"):
                raise S.OracleInputError(f"keras: {keras!r} is not one of keras2, keras3")
            self.keras = keras
            self._kw = kw

        def __call__(self, y_true, y_pred, sample_weight=None, *, profile="cpu",
                     upstream=None) -> Expectation:
            kw = {k: v for k, v in self._kw.items() if k != "name"}
            plan = self._plan(y_true, y_pred, sample_weight, **kw, variant=self.keras,
                              profile=profile)
            return _finish(self.api, profile, plan, upstream)

        def get_config(self) -> dict:
            """The config TensorFlow's class returns (Keras 3 drops ``axis``/``dtype`` — §6.1)."""
            keys = self._keys2 if self.keras == "keras2" else self._keys3
            cfg = {k: self._kw[k] for k in keys}
            if self.keras == "keras2":
                cfg["fn"] = self._name
            return cfg

        @classmethod
        def from_config(cls, config: dict, *, keras: str = "keras2"):
            cfg = {k: v for k, v in config.items() if k != "fn"}
            return cls(**cfg, keras=keras)

        def __repr__(self) -> str:
            args = ", ".join(f"{k}={v!r}" for k, v in self._kw.items())
            return f"{type(self).__name__}({args}, keras={self.keras!r})"


    class SparseCategoricalCrossentropy(_KerasLoss):
        """``tf.keras.losses.SparseCategoricalCrossentropy`` (Keras 2 semantics unless
        ``keras="keras3"``)."""

        api = "tf.keras.losses.SparseCategoricalCrossentropy"
        _name = "sparse_categorical_crossentropy"
        _keys2 = ("reduction", "name", "from_logits", "ignore_class")
        _keys3 = ("name", "reduction", "from_logits", "ignore_class")

        _plan = staticmethod(S.plan_keras_sparse)

        def __init__(self, from_logits=False, ignore_class=None, reduction=_DEFAULT, axis=-1,
                     name="sparse_categorical_crossentropy", dtype=None, *, keras="keras2"):
            super().__init__(keras, from_logits=from_logits, ignore_class=ignore_class,
                             reduction=reduction, axis=axis, name=name, dtype=dtype)


    class CategoricalCrossentropy(_KerasLoss):
        """``tf.keras.losses.CategoricalCrossentropy`` (Keras 2 semantics unless
        ``keras="keras3"``)."""

        api = "tf.keras.losses.CategoricalCrossentropy"
        _name = "categorical_crossentropy"
        _keys2 = ("reduction", "name", "from_logits", "label_smoothing", "axis")
        _keys3 = ("name", "reduction", "from_logits", "label_smoothing", "axis")

        _plan = staticmethod(S.plan_keras_dense)

        def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction=_DEFAULT,
                     name="categorical_crossentropy", dtype=None, *, keras="keras2"):
            super().__init__(keras, from_logits=from_logits, label_smoothing=label_smoothing,
                             axis=axis, reduction=reduction, name=name, dtype=dtype)


    tf = SimpleNamespace(
        raw_ops=SimpleNamespace(
            SparseSoftmaxCrossEntropyWithLogits=SparseSoftmaxCrossEntropyWithLogits,
            SoftmaxCrossEntropyWithLogits=SoftmaxCrossEntropyWithLogits,
        ),
        nn=SimpleNamespace(
            sparse_softmax_cross_entropy_with_logits=sparse_softmax_cross_entropy_with_logits,
            softmax_cross_entropy_with_logits=softmax_cross_entropy_with_logits,
        ),
        compat=SimpleNamespace(v1=SimpleNamespace(losses=SimpleNamespace(
            sparse_softmax_cross_entropy=sparse_softmax_cross_entropy,
            softmax_cross_entropy=softmax_cross_entropy,
        ))),
        keras=SimpleNamespace(losses=SimpleNamespace(
            SparseCategoricalCrossentropy=SparseCategoricalCrossentropy,
            CategoricalCrossentropy=CategoricalCrossentropy,
        )),
    )

    # in the order of vocabulary.API_IDS
    entries: dict[str, object] = dict(zip(API_IDS, (
        SparseSoftmaxCrossEntropyWithLogits, SoftmaxCrossEntropyWithLogits,
        sparse_softmax_cross_entropy_with_logits, softmax_cross_entropy_with_logits,
        sparse_softmax_cross_entropy, softmax_cross_entropy,
        SparseCategoricalCrossentropy, CategoricalCrossentropy)))


    def oracle_call(api: str, args: dict, init: dict | None = None, *, profile: str = "cpu",
                    keras: str = "keras2", upstream=None) -> Expectation:
        """Evaluate one call given as data: the API id, its arguments, Keras constructor kwargs."""
        if not isinstance(api, str) or api not in entries:
            raise S.OracleInputError(
                f"api: {api!r} is not a known API id; choose one of {', '.join(API_IDS)}")
        if not isinstance(args, dict):
            raise S.OracleInputError("args: must be a mapping of argument names to values")
        entry = entries[api]
        if api in KERAS_APIS:
            _bind(entry, init or {}, "init")
            fn = entry(**(init or {}), keras=keras)
            _bind(fn.__call__, args, "args")
        else:
            if init:
                raise S.OracleInputError("init: only the Keras APIs take constructor arguments, "
                                         f"not {api}")
            fn = entry
            _bind(fn, args, "args")
        exp = fn(**args, profile=profile, upstream=upstream)
        if tier != "exact" and exp.raises is None and api in WIDE_EXACT:
            _widened(exp, args, lambda a, u: oracle_call(api, a, None, profile=profile,
                                                         upstream=u))
        if exp.raises is not None and profile == "cpu":
            # where the eager CPU kernel raises, XLA on the same CPU may not (NaN rows for
            # out-of-range labels): oracle.mechanisms.xla_nan_rows asks for this
            exp.xla = lambda: oracle_call(api, args, init, profile="xla", keras=keras,
                                          upstream=upstream)
        return exp



    return SimpleNamespace(tf=tf, oracle_call=oracle_call, tier=tier,
                           SparseCategoricalCrossentropy=SparseCategoricalCrossentropy,
                           CategoricalCrossentropy=CategoricalCrossentropy)


def _widened(exp: Expectation, args: dict, call) -> None:
    """Give ``exp``'s outputs of a narrow dtype the float64 rounding of their exact values
    from ``call`` on the arguments widened to float64 (evaluated once, when first asked;
    None when the widened call does not give the same outputs)."""
    narrow = [o for o in exp.outputs.values() if o.dtype.name in _NARROW]
    dtypes = {a.dtype for a in args.values() if getattr(a, "dtype", None) is not None and
              a.dtype.name in _NARROW}
    if not narrow or len(dtypes) != 1:
        return
    (dt,) = dtypes
    wide = lambda a: a.astype(np.float64) if getattr(a, "dtype", None) == dt else a  # noqa: E731
    got: list = []

    def widened() -> Expectation | None:
        if not got:
            try:
                w = call({k: wide(v) for k, v in args.items()},
                         None if exp.upstream is None else wide(exp.upstream))
            except S.OracleInputError:
                w = None
            got.append(w if w is not None and w.raises is None else None)
        return got[0]

    for o in narrow:
        def source(name=o.name, shape=o.shape):
            w = widened()
            if w is None or name not in w.outputs or w.outputs[name].shape != shape:
                return None
            return w.outputs[name].rounded64
        o.exact64_source = source


def _bind(fn, kwargs: dict, what: str) -> None:
    """Check ``kwargs`` against ``fn``'s TensorFlow parameters (not the oracle's own)."""
    sig = inspect.signature(fn)
    own = {"profile", "upstream", "keras"}
    names = [p.name for p in sig.parameters.values() if p.name not in own and
             p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        raise S.OracleInputError(f"{what}: unknown argument {unknown[0]!r}; the parameters are "
                                 f"{', '.join(names)}")
    missing = [p.name for p in sig.parameters.values() if p.name in names and
               p.default is p.empty and p.name not in kwargs]
    if missing:
        raise S.OracleInputError(f"{what}: missing required argument {missing[0]!r}")


EXACT = build(evaluate, "exact")
tf = EXACT.tf
oracle_call = EXACT.oracle_call
SparseCategoricalCrossentropy = EXACT.SparseCategoricalCrossentropy
CategoricalCrossentropy = EXACT.CategoricalCrossentropy
SparseSoftmaxCrossEntropyWithLogits = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits
SoftmaxCrossEntropyWithLogits = tf.raw_ops.SoftmaxCrossEntropyWithLogits
sparse_softmax_cross_entropy_with_logits = tf.nn.sparse_softmax_cross_entropy_with_logits
softmax_cross_entropy_with_logits = tf.nn.softmax_cross_entropy_with_logits
sparse_softmax_cross_entropy = tf.compat.v1.losses.sparse_softmax_cross_entropy
softmax_cross_entropy = tf.compat.v1.losses.softmax_cross_entropy

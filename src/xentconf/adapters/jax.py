"""The JAX/optax target: TensorFlow's softmax cross-entropy APIs through ``optax``.

What is native and what is composed (the report shows it):

- ``tf.nn.sparse_softmax_cross_entropy_with_logits`` is
  ``optax.softmax_cross_entropy_with_integer_labels(logits, labels)`` (any rank, class
  axis last) and ``tf.nn.softmax_cross_entropy_with_logits`` is
  ``optax.softmax_cross_entropy(logits, labels, axis=axis)``; both are native. The dense
  labels are converted to the logits dtype first, as TensorFlow converts them at its API
  boundary (otherwise JAX's promotion would change the output dtype).
- The raw ops take their loss from the same optax functions; their ``backprop`` output,
  which optax does not have, is composed as ``jax.nn.softmax(features) − labels`` (one-hot
  labels from ``jax.nn.one_hot`` for the sparse op).
- The compat.v1 losses take the per-element loss from optax and compose TensorFlow's
  pipeline around it in ``jax.numpy``: the ``[B, 1]`` label / weight squeezes, the
  weighting, the five reductions with ``div_no_nan`` denominators, and label smoothing
  through ``optax.smooth_labels`` when ``label_smoothing > 0`` (TensorFlow ignores
  ``ε ≤ 0``). The weighting runs in JAX's promotion of the loss and weights dtypes and the
  result is returned in the logits dtype (TensorFlow's output dtype).
- The Keras classes are not offered: optax has no Keras-style loss objects, and composing
  Keras's clipping, ``ignore_class`` masking and sample-weight rules here would be writing
  Keras, not adapting optax.

Gradients are ``jax.vjp`` of the loss output with respect to the logits, with the call's
upstream gradient as the cotangent. JAX is XLA on every backend, so both modes follow the
``xla`` device profile: out-of-range sparse labels never raise. The adapter never checks
labels, shapes or values; whatever optax does with them is the outcome judged.

64-bit types are enabled with the scoped ``jax.enable_x64`` context around each
evaluation (not the process-global flag, so other JAX users in the process are
unaffected). Inputs keep their dtypes under it: float16, bfloat16, float32 and float64
logits give outputs of the same dtype, and int64 labels reach optax as int64 (its gather,
``jnp.take_along_axis``, then narrows them to 32 bits: a finding, not something to patch).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any

import numpy as np

from ..protocol import (
    API_IDS,
    API_PARAMS,
    KERAS_APIS,
    ApiSupport,
    Call,
    Mode,
    Runner,
    Setup,
    Target,
    TargetError,
    TargetInfo,
)
from . import _source as src

__all__ = ["JaxTarget"]

RAW_SPARSE, RAW_DENSE, NN_SPARSE, NN_DENSE, V1_SPARSE, V1_DENSE = API_IDS[:6]

#: Call arguments that are Python-level configuration (hashable, static under jax.jit).
_STATIC_ARGS = frozenset({"axis", "reduction", "label_smoothing"})

#: The argument holding the logits, per API (the input gradients are taken with respect to).
_LOGITS_ARG = {RAW_SPARSE: "features", RAW_DENSE: "features"}

_COMMON = frozenset({"batch0", "special_values", "grad"})
_SUPPORT: dict[str, ApiSupport] = {
    RAW_SPARSE: ApiSupport(
        native=_COMMON | {"bad_labels"}, composed=frozenset({"backprop"}),
        notes="loss: optax.softmax_cross_entropy_with_integer_labels; backprop composed as "
              "jax.nn.softmax(features) - jax.nn.one_hot(labels); no rank/shape checks"),
    RAW_DENSE: ApiSupport(
        native=_COMMON | {"probabilities", "broadcast_labels"},
        composed=frozenset({"backprop"}),
        notes="loss: optax.softmax_cross_entropy (labels converted to the features dtype); "
              "backprop composed as jax.nn.softmax(features) - labels; no rank/shape checks"),
    NN_SPARSE: ApiSupport(
        native=_COMMON | {"rank1", "rank3+", "bad_labels"},
        notes="optax.softmax_cross_entropy_with_integer_labels(logits, labels)"),
    NN_DENSE: ApiSupport(
        native=_COMMON | {"rank1", "rank3+", "probabilities", "broadcast_labels", "axis"},
        notes="optax.softmax_cross_entropy(logits, labels, axis=axis) with labels converted "
              "to the logits dtype; any axis optax accepts (TF rejects negative axes != -1)"),
    V1_SPARSE: ApiSupport(
        native=_COMMON | {"rank1", "rank3+", "bad_labels"},
        composed=frozenset({"weights", "reduction"}),
        notes="per-element loss from optax; TF's label/weight squeezes, weights and "
              "reductions (div_no_nan) composed in jax.numpy in the promoted loss/weights "
              "dtype, not float32; weights broadcast numpy-style (no rank check)"),
    V1_DENSE: ApiSupport(
        native=_COMMON | {"rank1", "rank3+", "probabilities", "label_smoothing"},
        composed=frozenset({"weights", "reduction"}),
        notes="per-element loss from optax.softmax_cross_entropy, label smoothing by "
              "optax.smooth_labels when label_smoothing > 0; weights and reductions "
              "(div_no_nan) composed in jax.numpy; labels broadcast (no shape check)"),
}
_NO_KERAS = "optax has no Keras loss classes"
_KERAS_SUPPORT = {
    KERAS_APIS[0]: ApiSupport(
        unsupported=_COMMON | {"rank1", "rank3+", "bad_labels", "weights", "reduction",
                               "from_logits", "probabilities", "ignore_class"},
        dtypes=(), notes=_NO_KERAS),
    KERAS_APIS[1]: ApiSupport(
        unsupported=_COMMON | {"rank1", "rank3+", "weights", "reduction", "from_logits",
                               "probabilities", "label_smoothing", "axis"},
        dtypes=(), notes=_NO_KERAS),
}
_INSTALL_HINT = "pip install 'xentconf[jax]'"


def _missing_modules() -> list[str]:
    return [m for m in ("jax", "optax") if importlib.util.find_spec(m) is None]


@cache
def _gpu_probe() -> tuple[bool, str]:
    """Whether JAX has a GPU backend here, and why not."""
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError as exc:
        return False, f"JAX has no GPU backend here ({exc})"
    return True, ""


class JaxTarget(Target):
    """TensorFlow's APIs evaluated by optax under ``jax.jit`` (XLA)."""

    name = "jax"

    def info(self) -> TargetInfo:
        apis = {**_SUPPORT, **_KERAS_SUPPORT}
        missing = _missing_modules()
        reason = f"{' and '.join(missing)} not installed: {_INSTALL_HINT}" if missing else ""
        if not missing:
            try:
                import jax
                import optax

                version = f"jax {jax.__version__} / optax {optax.__version__}"
                gpu, why = _gpu_probe()
            except Exception as exc:  # a broken installation: say why, never raise
                reason = f"jax/optax failed to import: {exc}"
        if reason:
            return TargetInfo(self.name, False, reason=reason, apis=apis, modes=(
                Mode("cpu", "xla", available=False, reason=reason, name="xla"),
                Mode("cuda", "xla", available=False, reason=reason, name="xla")))
        modes = (
            Mode("cpu", "xla", "jax.jit on the CPU (XLA: bad labels never raise)", name="xla"),
            Mode("cuda", "xla", "jax.jit on the GPU backend", available=gpu, reason=why,
                 name="xla"),
        )
        return TargetInfo(
            self.name, True, version=version, modes=modes, apis=apis,
            description="optax losses under jax.jit; raw-op backprop and compat.v1 "
                        "weights/reductions composed in jax.numpy; no Keras APIs")

    def snippet(self, setup: Setup, call: Call) -> str | None:
        """JAX source for ``call``: the optax loss (and the compositions the runner makes
        for this API: raw-op backprop, compat.v1 squeezes, weights, the one reduction asked
        for, label smoothing) in one ``jax.jit`` function, ``jax.vjp`` for the gradient,
        under ``jax.enable_x64`` on the runner's device."""
        if call.api != setup.api or call.api not in _SUPPORT or \
                setup.device not in ("cpu", "cuda"):
            return None
        try:
            return _snippet(call.api, dict(call.args), call.upstream, setup.device)
        except Exception:  # an input the runner rejects before JAX sees it
            return None

    def prepare(self, setup: Setup) -> Runner:
        if setup.api in KERAS_APIS:
            raise TargetError(f"{setup.api} is not supported by the jax target: "
                              f"{_NO_KERAS}")
        if setup.api not in _SUPPORT:
            raise TargetError(f"unknown API id {setup.api!r}; choose one of "
                              f"{', '.join(API_IDS)}")
        missing = _missing_modules()
        if missing:
            raise TargetError(f"{' and '.join(missing)} not installed: {_INSTALL_HINT}")
        import jax

        if setup.device == "cpu":
            device = jax.devices("cpu")[0]
        elif setup.device == "cuda":
            gpu, why = _gpu_probe()
            if not gpu:
                raise TargetError(why)
            device = jax.devices("gpu")[0]
        else:
            raise TargetError(f"device {setup.device!r}: the jax target runs on cpu or cuda")
        return _JaxRunner(setup, device)


class _JaxRunner(Runner):
    def __init__(self, setup: Setup, device):
        self.setup = setup
        self.device = device
        self.logits_arg = _LOGITS_ARG.get(setup.api, "logits")
        self._forward, self._with_grad = _jitted(setup.api)

    def run(self, call: Call) -> dict[str, np.ndarray]:
        import jax

        if call.api != self.setup.api:
            raise TargetError(f"runner prepared for {self.setup.api}, called with {call.api}")
        args = dict(API_PARAMS[call.api][0])
        unknown = set(call.args) - set(args)
        if unknown:
            raise TypeError(f"{call.api}: unexpected argument(s) {sorted(unknown)}")
        args.update(call.args)
        static = tuple(sorted((k, _static(v)) for k, v in args.items() if k in _STATIC_ARGS))
        dynamic = {k: _array_or_scalar(v) for k, v in args.items() if k not in _STATIC_ARGS}
        logits = dynamic.pop(self.logits_arg)
        with jax.enable_x64(True), jax.default_device(self.device):
            logits, dynamic = jax.device_put((logits, dynamic), self.device)
            if call.upstream is None:
                outs = self._forward(logits, dynamic, static=static)
            else:
                upstream = jax.device_put(np.asarray(call.upstream), self.device)
                outs = self._with_grad(logits, dynamic, upstream, static=static)
            return {k: np.asarray(v) for k, v in outs.items()}


def _static(value: Any) -> Any:
    """A 0-d numpy value as the Python scalar it holds (jit's static arguments hash)."""
    if isinstance(value, (np.ndarray, np.generic)) and value.ndim == 0:
        return value.item()
    return value


def _array_or_scalar(value: Any) -> Any:
    """Python scalars stay scalars (weakly typed in JAX); everything else becomes an array."""
    if value is None or isinstance(value, (bool, int, float, np.ndarray)):
        return value
    return np.asarray(value)


@cache
def _jitted(api: str):
    """The API's jitted evaluation without and with the gradient, built once per API and
    shared by every runner (new shapes, dtypes and devices retrace automatically)."""
    import jax

    fn = _api_function(api)
    return (jax.jit(_forward(fn), static_argnames=("static",)),
            jax.jit(_with_grad(fn), static_argnames=("static",)))


def _forward(fn):
    def forward(logits, dynamic, *, static):
        loss, aux = fn(logits, dynamic, dict(static))
        return {"loss": loss, **aux}

    return forward


def _with_grad(fn):
    import jax

    def with_grad(logits, dynamic, upstream, *, static):
        def loss_of(z):
            return fn(z, dynamic, dict(static))

        loss, vjp, aux = jax.vjp(loss_of, logits, has_aux=True)
        if upstream.shape != loss.shape:
            # the loss is not TensorFlow's shape, so TensorFlow's upstream gradient does
            # not fit it: the outputs as they are (the verdict names the shape), no
            # gradient, rather than jax's complaint about the upstream
            return {"loss": loss, **aux}
        (grad,) = vjp(upstream.astype(loss.dtype))
        return {"loss": loss, **aux, "grad_logits": grad}

    return with_grad


def _api_function(api: str):
    """``fn(logits, dynamic_args, static_args) -> (loss, extra_outputs)`` for one API."""
    import jax
    import jax.numpy as jnp
    import optax

    def raw_sparse(z, a, s):
        labels = a["labels"]
        loss = optax.softmax_cross_entropy_with_integer_labels(z, labels)
        onehot = jax.nn.one_hot(labels, z.shape[-1], dtype=z.dtype)
        return loss, {"backprop": jax.nn.softmax(z) - onehot}

    def raw_dense(z, a, s):
        labels = jnp.asarray(a["labels"]).astype(z.dtype)
        loss = optax.softmax_cross_entropy(z, labels)
        return loss, {"backprop": jax.nn.softmax(z) - labels}

    def nn_sparse(z, a, s):
        return optax.softmax_cross_entropy_with_integer_labels(z, a["labels"]), {}

    def nn_dense(z, a, s):
        labels = jnp.asarray(a["labels"]).astype(z.dtype)
        return optax.softmax_cross_entropy(z, labels, axis=s["axis"]), {}

    def v1_sparse(z, a, s):
        labels, weights, zz = jnp.asarray(a["labels"]), a["weights"], z
        # TF's remove_squeezable_dimensions (expected rank difference 1), then its
        # squeeze of weights one rank above the labels (§5.1).
        if zz.ndim - labels.ndim == 2 and zz.shape[-1] == 1:
            zz = zz[..., 0]
        elif zz.ndim == labels.ndim and labels.ndim > 0 and labels.shape[-1] == 1:
            labels = labels[..., 0]
        if jnp.ndim(weights) - labels.ndim == 1:
            weights = jnp.squeeze(weights, -1)
        loss = optax.softmax_cross_entropy_with_integer_labels(zz, labels)
        return _reduce(jnp, loss, weights, s["reduction"], z.dtype), {}

    def v1_dense(z, a, s):
        labels = jnp.asarray(a["onehot_labels"]).astype(z.dtype)
        if s["label_smoothing"] > 0:  # TF applies smoothing only for ε > 0 (§4)
            labels = optax.smooth_labels(labels, s["label_smoothing"])
        loss = optax.softmax_cross_entropy(z, labels)
        return _reduce(jnp, loss, a["weights"], s["reduction"], z.dtype), {}

    return {RAW_SPARSE: raw_sparse, RAW_DENSE: raw_dense, NN_SPARSE: nn_sparse,
            NN_DENSE: nn_dense, V1_SPARSE: v1_sparse, V1_DENSE: v1_dense}[api]


def _reduce(jnp, loss, weights, reduction: str, out_dtype):
    """compat.v1 ``compute_weighted_loss`` composed in jax.numpy (§5.2) as TensorFlow runs
    it in an XLA context: no broadcast assert, so the weights meet the losses in the
    multiply (both ways: ``[B, 1]`` against ``[B]`` is ``[B, B]``), and the sum of weights
    and the nonzero count run over that broadcast."""
    dtype = jnp.result_type(loss, weights)  # a Python-scalar weight is weak: the loss dtype
    weighted = jnp.asarray(weights, dtype) * loss.astype(dtype)
    w = jnp.broadcast_to(jnp.asarray(weights, dtype), weighted.shape)
    if reduction == "none":
        out = weighted
    elif reduction == "weighted_sum":
        out = jnp.sum(weighted)
    else:
        denominators = {
            "weighted_sum_over_batch_size": lambda: jnp.asarray(loss.size, dtype),
            "weighted_mean": lambda: jnp.sum(w),
            "weighted_sum_by_nonzero_weights": lambda: jnp.count_nonzero(w).astype(dtype),
        }
        if reduction not in denominators:
            raise ValueError(f"Invalid Reduction Key {reduction}.")
        total, denom = jnp.sum(weighted), denominators[reduction]()
        # div_no_nan, with a safe divisor so that the gradient is 0 (not NaN) there too
        zero = denom == 0
        out = jnp.where(zero, jnp.zeros_like(total), total / jnp.where(zero, 1, denom))
    return out.astype(out_dtype)


# --------------------------------------------------------------------------- snippets


def _src_reduce(reduction: str) -> list[str]:
    """:func:`_reduce` as source (``losses``, ``weights`` -> ``loss``)."""
    lines = ["# compat.v1 weights and reduction, composed in jax.numpy",
             "dtype = jnp.result_type(losses, weights)",
             "weighted = jnp.asarray(weights, dtype) * losses.astype(dtype)",
             "w = jnp.broadcast_to(jnp.asarray(weights, dtype), weighted.shape)"]
    if reduction == "none":
        return [*lines, "loss = weighted"]
    if reduction == "weighted_sum":
        return [*lines, "loss = jnp.sum(weighted)"]
    den = {"weighted_sum_over_batch_size": "jnp.asarray(losses.size, dtype)",
           "weighted_mean": "jnp.sum(w)",
           "weighted_sum_by_nonzero_weights": "jnp.count_nonzero(w).astype(dtype)",
           }.get(reduction)
    if den is None:
        return [*lines, f"raise ValueError({f'Invalid Reduction Key {reduction}.'!r})"]
    return [*lines, "total = jnp.sum(weighted)", f"den = {den}",
            "# div_no_nan, with a safe divisor (a zero gradient there, not NaN)",
            "loss = jnp.where(den == 0, jnp.zeros_like(total), "
            "total / jnp.where(den == 0, 1, den))"]


def _snippet(api: str, call_args: dict, upstream, device: str) -> str | None:
    """Standalone JAX source computing what ``_JaxRunner.run`` returns for one call."""
    args = dict(API_PARAMS[api][0])
    if set(call_args) - set(args):
        return None  # the runner raises TypeError before JAX sees the call
    args.update(call_args)
    static = {k: _static(v) for k, v in args.items() if k in _STATIC_ARGS}
    if any(src.literal(v) is None for v in static.values()):
        return None
    logits_arg = _LOGITS_ARG.get(api, "logits")
    params, feeds, values = [], [], {}
    for k, v in args.items():  # the runner's order: logits first, then the rest
        if k in _STATIC_ARGS:
            continue
        lit = src.literal(v)
        if lit is not None:
            feed = lit
        elif _array_or_scalar(v) is v:
            feed = f"args[{k!r}]"
        else:
            feed = f"np.asarray(args[{k!r}])"
        values[k] = _array_or_scalar(v)
        if k == logits_arg:
            params.insert(0, k)
            feeds.insert(0, feed)
        else:
            params.append(k)
            feeds.append(feed)
    rest = [p for p in params if p != logits_arg]
    aux = api in (RAW_SPARSE, RAW_DENSE)
    if api == RAW_SPARSE:
        body = ["loss = optax.softmax_cross_entropy_with_integer_labels(z, labels)",
                "onehot = jax.nn.one_hot(labels, z.shape[-1], dtype=z.dtype)",
                "return loss, jax.nn.softmax(z) - onehot"]
    elif api == RAW_DENSE:
        body = ["labels = jnp.asarray(labels).astype(z.dtype)",
                "loss = optax.softmax_cross_entropy(z, labels)",
                "return loss, jax.nn.softmax(z) - labels"]
    elif api == NN_SPARSE:
        body = ["return optax.softmax_cross_entropy_with_integer_labels(z, labels)"]
    elif api == NN_DENSE:
        axis = "" if static["axis"] == -1 else f", axis={static['axis']!r}"
        body = ["labels = jnp.asarray(labels).astype(z.dtype)",
                f"return optax.softmax_cross_entropy(z, labels{axis})"]
    elif api == V1_SPARSE:
        zshape, lshape = np.shape(values["logits"]), np.shape(values["labels"])
        body = ["labels = jnp.asarray(labels)", "# compat.v1's remove_squeezable_dimensions"]
        x = "z"
        if len(zshape) - len(lshape) == 2 and zshape[-1] == 1:
            body.append("x = z[..., 0]")
            x = "x"
        elif len(zshape) == len(lshape) and lshape and lshape[-1] == 1:
            body.append("labels = labels[..., 0]")
            lshape = lshape[:-1]
        else:
            body.pop()
        if np.ndim(values["weights"]) - len(lshape) == 1:
            body.append("weights = jnp.squeeze(weights, -1)")
        body.append(f"losses = optax.softmax_cross_entropy_with_integer_labels({x}, labels)")
        body += _src_reduce(static["reduction"])
        body.append("return loss.astype(z.dtype)")
    else:  # V1_DENSE
        eps = static["label_smoothing"]
        body = ["labels = jnp.asarray(onehot_labels).astype(z.dtype)",
                *[f"labels = optax.smooth_labels(labels, {eps!r})"] * (eps > 0),
                "losses = optax.softmax_cross_entropy(z, labels)",
                *_src_reduce(static["reduction"]),
                "return loss.astype(z.dtype)"]
    names = ["loss", "backprop"] if aux else ["loss"]
    lines = ["import jax", "import jax.numpy as jnp", "import optax", "", "",
             f"def loss_fn({', '.join(['z', *rest])}):", *src.indent(body), "", ""]
    closure = f"lambda z: loss_fn({', '.join(['z', *rest])})"
    if upstream is None:
        compute = [f"{', '.join(names)} = loss_fn({', '.join(params)})"]
        inputs = params
    else:
        lhs = "loss, vjp, backprop" if aux else "loss, vjp"
        compute = [f"{lhs} = jax.vjp({closure}, {logits_arg}{', has_aux=True' * aux})",
                   "(grad_logits,) = vjp(up.astype(loss.dtype))"]
        names.append("grad_logits")
        inputs = [*params, "up"]
    lines += ["@jax.jit", f"def compute({', '.join(inputs)}):", *src.indent(compute),
              f"    return {', '.join(names)}", "", "",
              f"device = jax.devices({'cpu' if device == 'cpu' else 'gpu'!r})[0]",
              "with jax.enable_x64(True), jax.default_device(device):",
              f"    {', '.join(params)} = jax.device_put(({', '.join(feeds)}), device)"]
    if upstream is not None:
        lines.append("    up = jax.device_put(np.asarray(upstream), device)")
    lines += [f"    {', '.join(names)} = compute({', '.join(inputs)})",
              "outputs = {" + ", ".join(f"{n!r}: np.asarray({n})" for n in names) + "}"]
    return "\n".join(lines) + "\n"

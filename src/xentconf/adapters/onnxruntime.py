"""ONNX Runtime as a target: one small ONNX model per call signature, run by an
InferenceSession on the CPU (or CUDA) execution provider.

Translation, not emulation. The sparse APIs run ONNX's ``SoftmaxCrossEntropyLoss``
(opset 13, ``reduction="none"``), whose class axis is 1: TF's class-last logits are
transposed (rank ≥ 3) or given a batch axis (rank 1) inside the graph. Everything ONNX has
no operator for is *composed* from ONNX operators in the same graph and declared so:

* raw sparse op's ``backprop``: ``Exp(log_prob) − OneHot(labels)`` from the op's optional
  ``log_prob`` output;
* TF's per-element ``weights`` and the compat.v1 reductions (``Mul``, ``ReduceSum``, and
  ``div_no_nan`` as ``Where(D == 0, 0, S / D)``; the ``[B, 1]`` label/weight squeezes as
  ``Squeeze``) — ONNX's own ``weights`` input is per *class*, a different thing;
* dense labels (``SoftmaxCrossEntropyLoss`` has none): ``−ReduceSum(labels ·
  LogSoftmax(logits))``, the raw dense op's backprop as ``Softmax − labels``, and compat.v1
  label smoothing ``y·(1 − ε) + ε / C``.

Labels are never checked here: what ORT does with a bad label is the outcome (on the CPU
its ``GatherElements`` raises for labels outside ``[−C, C)`` and wraps ``[−C, −1]`` to the
last classes, as ONNX's negative-index rule says); an empty batch makes the op's function
body fail to reshape (ORT 1.31), and that is the outcome too. The graph is typed in the
logits dtype (float16, float32, float64 — ORT's CPU provider may run float16 nodes through
float32 kernels, its choice); bfloat16 has no CPU kernels. There are no gradients.

Models use symbolic dimensions, so one InferenceSession serves every shape with the same
dtypes and ranks; sessions are cached per runner. ``onnxruntime`` and ``onnx`` are imported
lazily.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from xentconf.protocol import (
    API_IDS,
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

__all__ = ["OnnxRuntimeTarget"]

OPSET = 13
IR_VERSION = 8  # the IR of opset 13's era; every ORT release since 1.10 loads it
DTYPES = ("float16", "float32", "float64")
SBNZ = "weighted_sum_by_nonzero_weights"
REDUCTIONS = ("none", "weighted_sum", "weighted_sum_over_batch_size", "weighted_mean", SBNZ)

(RAW_SPARSE, RAW_DENSE, NN_SPARSE, NN_DENSE, V1_SPARSE, V1_DENSE) = API_IDS[:6]

_DENSE_NOTE = ("ONNX has no dense-label cross-entropy: composed as "
               "−ReduceSum(labels · LogSoftmax(logits))")


def _support(native=(), composed=(), notes="") -> ApiSupport:
    return ApiSupport(native=frozenset(native), composed=frozenset(composed),
                      unsupported=frozenset({"grad"}), dtypes=DTYPES, notes=notes)


#: What each supported API uses: ONNX's own operator (native) or a composition (composed).
#: The Keras APIs are not supported (ONNX has nothing of Keras' probability pipeline).
SUPPORT: dict[str, ApiSupport] = {
    RAW_SPARSE: _support(
        native=("rank1", "rank3+", "batch0", "bad_labels", "special_values"),
        composed=("backprop",),
        notes="loss from SoftmaxCrossEntropyLoss; backprop = Exp(log_prob) − OneHot(labels)"),
    RAW_DENSE: _support(
        composed=("rank1", "rank3+", "batch0", "special_values", "broadcast_labels",
                  "backprop"),
        notes=_DENSE_NOTE + "; backprop = Softmax(features) − labels"),
    NN_SPARSE: _support(
        native=("rank3+", "batch0", "bad_labels", "special_values"),
        composed=("rank1",),
        notes="SoftmaxCrossEntropyLoss, class axis moved to 1 (Transpose) for rank ≥ 3; "
              "rank 1 gets a batch axis (Unsqueeze/Squeeze)"),
    NN_DENSE: _support(
        composed=("rank1", "rank3+", "batch0", "special_values", "axis", "broadcast_labels"),
        notes=_DENSE_NOTE + "; any valid axis is computed (TF 2.21 raises for a negative "
              "axis other than -1)"),
    V1_SPARSE: _support(
        native=("rank3+", "batch0", "bad_labels", "special_values"),
        composed=("rank1", "weights", "reduction"),
        notes="SoftmaxCrossEntropyLoss(reduction='none'); TF's per-element weights and "
              "reductions composed (ONNX's weights input is per class); weights broadcast "
              "as ONNX's Mul does (TF's stricter broadcast check is not reproduced)"),
    V1_DENSE: _support(
        composed=("rank1", "rank3+", "batch0", "special_values", "weights", "reduction",
                  "label_smoothing"),
        notes=_DENSE_NOTE + "; weights, reductions and label smoothing composed; labels "
              "and weights broadcast as ONNX's Mul does (TF rejects mismatched shapes)"),
}

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
PROFILE_OF = {"cpu": "cpu", "cuda": "gpu"}


# --------------------------------------------------------------------------- conventions


def _tensor(value: Any) -> np.ndarray:
    """A TF argument as an array, converted as ``tf.convert_to_tensor`` does (numpy keeps its
    dtype; Python floats become float32, Python ints int32, or int64 when out of range)."""
    if isinstance(value, np.ndarray):
        return value
    arr = np.asarray(value)
    if isinstance(value, np.generic):
        return arr
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu":
        fits = arr.size == 0 or (arr.min() >= -2**31 and arr.max() < 2**31)
        return arr.astype(np.int32 if fits else np.int64)
    return arr


class _Graph:
    """A one-model ONNX graph under construction (names are generated)."""

    def __init__(self, dtype: np.dtype):
        from onnx import TensorProto, helper

        self.helper = helper
        self.T = helper.np_dtype_to_tensor_dtype(dtype)
        self.INT64 = TensorProto.INT64
        self.dtype = dtype
        self.nodes: list = []
        self.inputs: list = []
        self.outputs: list = []
        self.inits: list = []
        self._n = 0

    def _name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def input(self, name: str, dtype: np.dtype, rank: int) -> str:
        try:
            elem = self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        except Exception as exc:
            raise TypeError(f"{name}: numpy dtype {dtype} has no ONNX tensor type") from exc
        dims = [f"{name}_dim{i}" for i in range(rank)]
        self.inputs.append(self.helper.make_tensor_value_info(name, elem, dims))
        return name

    def const(self, value: Any, dtype: Any) -> str:
        from onnx import numpy_helper

        name = self._name("const")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: Any):
        names = [self._name(op_type) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else tuple(names)

    def output(self, value: str, name: str) -> None:
        self.nodes.append(self.helper.make_node("Identity", [value], [name]))
        self.outputs.append(self.helper.make_tensor_value_info(name, self.T, None))

    def model(self) -> bytes:
        h = self.helper
        graph = h.make_graph(self.nodes, "xentconf", self.inputs, self.outputs,
                             initializer=self.inits)
        model = h.make_model(graph, producer_name="xentconf",
                             opset_imports=[h.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        return model.SerializeToString()

    # small compositions used by several APIs

    def axes(self, *axes: int) -> str:
        return self.const(list(axes), np.int64)

    def zero(self) -> str:
        return self.const(0, self.dtype)

    def cast(self, value: str) -> str:
        return self.op("Cast", value, to=self.T)


def _sparse_loss(g: _Graph, x: str, y: str, rank: int, log_prob: bool = False):
    """SoftmaxCrossEntropyLoss(reduction='none') on class-last logits of ``rank``."""
    outs = 2 if log_prob else 1
    if rank <= 1:  # TF's rank-1 logits with a scalar label: give both a batch axis
        x1 = g.op("Unsqueeze", x, g.axes(0))
        y1 = g.op("Unsqueeze", y, g.axes(0))
        loss = g.op("SoftmaxCrossEntropyLoss", x1, y1, reduction="none")
        return g.op("Squeeze", loss, g.axes(0))
    if rank > 2:  # ONNX's class axis is 1
        x = g.op("Transpose", x, perm=[0, rank - 1, *range(1, rank - 1)])
    return g.op("SoftmaxCrossEntropyLoss", x, y, reduction="none", outputs=outs)


def _dense_loss(g: _Graph, x: str, y: str, axis: int, xrank: int, yrank: int) -> str:
    """−Σ_axis y · LogSoftmax(x): TF's dense cross-entropy, from ONNX operators."""
    lsm = g.op("LogSoftmax", x, axis=axis)
    # Sum over the same axis of the (broadcast) product, named by a non-negative index:
    # ORT 1.31's ReduceSum with a negative axis returns an empty input's shape unreduced.
    prank = max(xrank, yrank)
    red = prank + (axis if axis < 0 else axis - xrank)
    if not 0 <= red < prank:
        red = axis  # not a valid axis: leave it for ORT to reject
    total = g.op("ReduceSum", g.op("Mul", y, lsm), g.axes(red), keepdims=0)
    return g.op("Neg", total)


def _div_no_nan(g: _Graph, num: str, den: str) -> str:
    zero = g.zero()
    return g.op("Where", g.op("Equal", den, zero), zero, g.op("Div", num, den))


def _weighted(g: _Graph, loss: str, w: str, reduction: str) -> str:
    """compat.v1 ``compute_weighted_loss`` from ONNX operators (in the logits dtype)."""
    weighted = g.op("Mul", loss, w)
    if reduction == "none":
        return weighted
    total = g.op("ReduceSum", weighted, keepdims=0)
    if reduction == "weighted_sum":
        return total
    if reduction == "weighted_sum_over_batch_size":
        den = g.cast(g.op("Size", loss))
    else:
        w_full = g.op("Expand", w, g.op("Shape", loss))  # weights broadcast to the loss
        if reduction == "weighted_mean":
            den = g.op("ReduceSum", w_full, keepdims=0)
        else:  # SBNZ: count of non-zero broadcast weights (NaN counts), counted exactly
            nonzero = g.op("Not", g.op("Equal", w_full, g.zero()))
            den = g.cast(g.op("ReduceSum", g.op("Cast", nonzero, to=g.INT64), keepdims=0))
    return _div_no_nan(g, total, den)


def _reduction(args: dict) -> str:
    reduction = args.get("reduction", SBNZ)
    if reduction not in REDUCTIONS:
        raise ValueError(f"no ONNX composition for reduction {reduction!r}; TF's compat.v1 "
                         f"reductions are {', '.join(REDUCTIONS)}")
    return reduction


# --------------------------------------------------------------------------- the APIs
#
# Each plan function reads a call's arguments and returns (key, feeds, build, outputs):
# ``key`` identifies the model (dtypes, ranks, static options), ``build`` writes the graph.

Plan = tuple[tuple, dict[str, np.ndarray], Callable[[_Graph], None], tuple[str, ...]]


def _sig(feeds: dict[str, np.ndarray]) -> tuple:
    return tuple((k, v.dtype.str, v.ndim) for k, v in feeds.items())


def _plan_raw_sparse(args: dict) -> Plan:
    feeds = {"features": _tensor(args["features"]), "labels": _tensor(args["labels"])}

    def build(g: _Graph) -> None:
        # the kernel's signature: features [B, C], labels [B] (other ranks are rejected)
        x = g.input("features", feeds["features"].dtype, 2)
        y = g.input("labels", feeds["labels"].dtype, 1)
        loss, log_prob = _sparse_loss(g, x, y, 2, log_prob=True)
        depth = g.op("Gather", g.op("Shape", x), g.const(1, np.int64), axis=0)
        onehot = g.op("OneHot", g.op("Cast", y, to=g.INT64), depth,
                      g.const([0, 1], np.float32), axis=-1)
        g.output(loss, "loss")
        g.output(g.op("Sub", g.op("Exp", log_prob), g.cast(onehot)), "backprop")

    return (RAW_SPARSE, *_sig(feeds)), feeds, build, ("loss", "backprop")


def _plan_raw_dense(args: dict) -> Plan:
    feeds = {"features": _tensor(args["features"]), "labels": _tensor(args["labels"])}
    label_rank = feeds["labels"].ndim if feeds["labels"].ndim in (1, 2) else 2

    def build(g: _Graph) -> None:
        x = g.input("features", feeds["features"].dtype, 2)
        y = g.cast(g.input("labels", feeds["labels"].dtype, label_rank))
        g.output(_dense_loss(g, x, y, 1, 2, label_rank), "loss")
        g.output(g.op("Sub", g.op("Softmax", x, axis=1), y), "backprop")

    return (RAW_DENSE, *_sig(feeds)), feeds, build, ("loss", "backprop")


def _plan_nn_sparse(args: dict) -> Plan:
    feeds = {"labels": _tensor(args["labels"]), "logits": _tensor(args["logits"])}
    rank = feeds["logits"].ndim

    def build(g: _Graph) -> None:
        y = g.input("labels", feeds["labels"].dtype, max(rank - 1, 0))
        x = g.input("logits", feeds["logits"].dtype, rank)
        g.output(_sparse_loss(g, x, y, rank), "loss")

    return (NN_SPARSE, *_sig(feeds)), feeds, build, ("loss",)


def _plan_nn_dense(args: dict) -> Plan:
    feeds = {"labels": _tensor(args["labels"]), "logits": _tensor(args["logits"])}
    axis = int(args.get("axis", -1))

    def build(g: _Graph) -> None:
        yrank, xrank = feeds["labels"].ndim, feeds["logits"].ndim
        y = g.cast(g.input("labels", feeds["labels"].dtype, yrank))
        x = g.input("logits", feeds["logits"].dtype, xrank)
        g.output(_dense_loss(g, x, y, axis, xrank, yrank), "loss")

    return (NN_DENSE, axis, *_sig(feeds)), feeds, build, ("loss",)


def _plan_v1_sparse(args: dict) -> Plan:
    feeds = {"labels": _tensor(args["labels"]), "logits": _tensor(args["logits"]),
             "weights": _tensor(args.get("weights", 1.0))}
    reduction = _reduction(args)
    lrank, xrank, wrank = (feeds[k].ndim for k in ("labels", "logits", "weights"))

    def build(g: _Graph) -> None:
        y = g.input("labels", feeds["labels"].dtype, lrank)
        x = g.input("logits", feeds["logits"].dtype, xrank)
        w = g.cast(g.input("weights", feeds["weights"].dtype, wrank))
        # TF's "remove squeezable dimensions" (static ranks): [B, 1] labels, [.., C, 1] logits
        lr, xr = lrank, xrank
        if xr - lr == 0:
            y, lr = g.op("Squeeze", y, g.axes(-1)), lr - 1
        elif xr - lr == 2:
            x, xr = g.op("Squeeze", x, g.axes(-1)), xr - 1
        if wrank - lr == 1:
            w = g.op("Squeeze", w, g.axes(-1))
        g.output(_weighted(g, _sparse_loss(g, x, y, xr), w, reduction), "loss")

    return (V1_SPARSE, reduction, *_sig(feeds)), feeds, build, ("loss",)


def _plan_v1_dense(args: dict) -> Plan:
    feeds = {"onehot_labels": _tensor(args["onehot_labels"]), "logits": _tensor(args["logits"]),
             "weights": _tensor(args.get("weights", 1.0))}
    reduction = _reduction(args)
    smoothing = float(args.get("label_smoothing", 0))
    dtype = feeds["logits"].dtype
    if smoothing > 0:  # TF smooths only for ε > 0, with (1 − ε) and ε in the logits dtype
        feeds["smooth_positives"] = np.asarray(1.0 - smoothing).astype(dtype)
        feeds["label_smoothing"] = np.asarray(smoothing).astype(dtype)

    def build(g: _Graph) -> None:
        y = g.cast(g.input("onehot_labels", feeds["onehot_labels"].dtype,
                           feeds["onehot_labels"].ndim))
        x = g.input("logits", dtype, feeds["logits"].ndim)
        w = g.cast(g.input("weights", feeds["weights"].dtype, feeds["weights"].ndim))
        if smoothing > 0:
            pos = g.input("smooth_positives", dtype, 0)
            eps = g.input("label_smoothing", dtype, 0)
            classes = g.cast(g.op("Gather", g.op("Shape", y), g.const(-1, np.int64), axis=0))
            y = g.op("Add", g.op("Mul", y, pos), g.op("Div", eps, classes))
        loss = _dense_loss(g, x, y, -1, feeds["logits"].ndim, feeds["onehot_labels"].ndim)
        g.output(_weighted(g, loss, w, reduction), "loss")

    return (V1_DENSE, reduction, *_sig(feeds)), feeds, build, ("loss",)


PLANS: dict[str, Callable[[dict], Plan]] = {
    RAW_SPARSE: _plan_raw_sparse,
    RAW_DENSE: _plan_raw_dense,
    NN_SPARSE: _plan_nn_sparse,
    NN_DENSE: _plan_nn_dense,
    V1_SPARSE: _plan_v1_sparse,
    V1_DENSE: _plan_v1_dense,
}


# --------------------------------------------------------------------------- snippets


class _SourceGraph(_Graph):
    """A :class:`_Graph` that also writes itself down as ``onnx.helper`` source: the same
    plan builds the same model, node for node, for a standalone reproducer."""

    def __init__(self, dtype: np.dtype):
        super().__init__(dtype)
        self.src: dict[str, list[str]] = {"inputs": [], "initializers": [], "nodes": [],
                                          "outputs": []}

    def _type(self, elem: int) -> str:
        from onnx import TensorProto

        return f"TensorProto.{TensorProto.DataType.Name(elem)}"

    def _attr(self, key: str, v: Any) -> str:
        return f"{key}={self._type(v)}" if key == "to" else f"{key}={v!r}"

    def input(self, name: str, dtype: np.dtype, rank: int) -> str:
        super().input(name, dtype, rank)
        info = self.inputs[-1].type.tensor_type
        dims = [d.dim_param for d in info.shape.dim]
        self.src["inputs"].append(f"helper.make_tensor_value_info({name!r}, "
                                  f"{self._type(info.elem_type)}, {dims!r}),")
        return name

    def const(self, value: Any, dtype: Any) -> str:
        name = super().const(value, dtype)
        self.src["initializers"].append(
            f"numpy_helper.from_array(np.asarray({value!r}, "
            f"{src.numpy_dtype(np.dtype(dtype))}), {name!r}),")
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: Any):
        result = super().op(op_type, *inputs, outputs=outputs, **attrs)
        names = [result] if outputs == 1 else list(result)
        extra = "".join(", " + self._attr(k, v) for k, v in attrs.items())
        self.src["nodes"].append(f"helper.make_node({op_type!r}, {list(inputs)!r}, "
                                 f"{names!r}{extra}),")
        return result

    def output(self, value: str, name: str) -> None:
        super().output(value, name)
        self.src["nodes"].append(f"helper.make_node('Identity', [{value!r}], [{name!r}]),")
        self.src["outputs"].append(f"helper.make_tensor_value_info({name!r}, "
                                   f"{self._type(self.T)}, None),")


def _feed_source(name: str, args: dict, feeds: dict[str, np.ndarray]) -> str:
    """Source for the feed ``name``, converted from ``args`` as :func:`_tensor` does."""
    arr = feeds[name]
    if name in ("smooth_positives", "label_smoothing"):  # (1 − ε) and ε, in the logits dtype
        eps = float(args["label_smoothing"])
        v = f"1.0 - {eps!r}" if name == "smooth_positives" else repr(eps)
        return f"np.asarray({v}).astype({src.numpy_dtype(arr.dtype)})"
    if name not in args:  # the default weights
        return f"np.asarray(1.0, {src.numpy_dtype(arr.dtype)})"
    v = args[name]
    if isinstance(v, np.ndarray):
        return f"args[{name!r}]"
    if isinstance(v, np.generic) or np.asarray(v).dtype == arr.dtype:
        return f"np.asarray(args[{name!r}])"
    lit = src.literal(v)
    return f"np.asarray({lit or f'args[{name!r}]'}, {src.numpy_dtype(arr.dtype)})"


def _snippet(api: str, args: dict, providers: list[str], threads: int | None) -> str:
    _, feeds, build, outputs = PLANS[api](args)
    dtype = next(v.dtype for k, v in feeds.items() if k in ("features", "logits"))
    g = _SourceGraph(dtype)
    build(g)
    lines = ["import onnxruntime as ort", "from onnx import TensorProto, helper, numpy_helper",
             ""]
    for part in ("inputs", "initializers", "nodes"):
        lines += [f"{part} = [", *src.indent(g.src[part]), "]"]
    lines += [f"graph_outputs = [{' '.join(g.src['outputs']).rstrip(',')}]",
              "graph = helper.make_graph(nodes, 'softmax_cross_entropy', inputs, "
              "graph_outputs, initializer=initializers)",
              f"model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', "
              f"{OPSET})])",
              f"model.ir_version = {IR_VERSION}",
              "options = ort.SessionOptions()"]
    if threads is not None:
        lines.append(f"options.intra_op_num_threads = {threads!r}")
    lines += [f"session = ort.InferenceSession(model.SerializeToString(), options, "
              f"providers={providers!r})",
              "feeds = {" + ", ".join(f"{k!r}: {_feed_source(k, args, feeds)}" for k in feeds)
              + "}",
              f"outputs = dict(zip({list(outputs)!r}, session.run({list(outputs)!r}, feeds)))"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- target


class _OrtRunner(Runner):
    def __init__(self, setup: Setup, providers: list[str], threads: int | None):
        self._setup = setup
        self._providers = providers
        self._threads = threads
        self._sessions: dict[tuple, Any] = {}

    def _session(self, key: tuple, dtype: np.dtype, build: Callable[[_Graph], None]):
        session = self._sessions.get(key)
        if session is None:
            import onnxruntime as ort

            g = _Graph(dtype)
            build(g)
            options = ort.SessionOptions()
            options.log_severity_level = 4  # failures surface as exceptions; keep stderr quiet
            if self._threads is not None:
                options.intra_op_num_threads = self._threads
            session = ort.InferenceSession(g.model(), options, providers=self._providers)
            self._sessions[key] = session
        return session

    def run(self, call: Call) -> dict[str, np.ndarray]:
        api = self._setup.api
        if call.api != api:
            raise TargetError(f"this runner was prepared for {api}, not {call.api}")
        if call.upstream is not None:
            raise TargetError("ONNX Runtime inference has no gradients (feature 'grad' is "
                              "unsupported); do not pass an upstream gradient")
        key, feeds, build, outputs = PLANS[api](dict(call.args))
        dtype = next(v.dtype for k, v in feeds.items() if k in ("features", "logits"))
        session = self._session(key, dtype, build)
        results = session.run(list(outputs), feeds)
        return dict(zip(outputs, results))


def _installed() -> str:
    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed: pip install "
                "'xentconf[onnxruntime]'")
    return ""


class OnnxRuntimeTarget(Target):
    """ONNX Runtime's ``SoftmaxCrossEntropyLoss`` and compositions of ONNX operators.

    ``intra_op_num_threads`` is passed to the sessions; when None, ``OMP_NUM_THREADS`` if
    it is set (as a sweep's workers set it: one thread each), else ORT's default (a
    spinning thread per core: in each of two one-core sweep workers it took 45% more CPU
    per chunk than one thread).
    """

    name = "onnxruntime"

    def __init__(self, intra_op_num_threads: int | None = None):
        if intra_op_num_threads is None:
            env = os.environ.get("OMP_NUM_THREADS", "").strip()
            intra_op_num_threads = int(env) if env.isdigit() and int(env) > 0 else None
        self.threads = intra_op_num_threads

    def _modes(self, reason: str) -> tuple[Mode, ...]:
        available: list[str] = []
        if not reason:
            import onnxruntime as ort

            available = ort.get_available_providers()
        modes = []
        for device, provider in PROVIDERS.items():
            why = reason or ("" if provider in available else
                             f"{provider} is not among onnxruntime's available providers "
                             f"({', '.join(available)}): install onnxruntime-gpu with CUDA")
            modes.append(Mode(device, PROFILE_OF[device], f"ONNX Runtime {provider}",
                              available=not why, reason=why))
        return tuple(modes)

    def info(self) -> TargetInfo:
        reason = _installed()
        version = None
        if not reason:
            import onnxruntime as ort

            version = ort.__version__
        return TargetInfo(
            name=self.name,
            available=not reason,
            reason=reason,
            version=version,
            modes=self._modes(reason),
            apis=dict(SUPPORT),
            description="ONNX Runtime inference: SoftmaxCrossEntropyLoss (opset 13) and "
                        "compositions of ONNX operators; no Keras APIs, no gradients",
        )

    def snippet(self, setup: Setup, call: Call) -> str | None:
        """The ONNX model the runner builds for ``call`` written out with ``onnx.helper``
        (the same nodes, initializers and symbolic input shapes), run by an
        ``InferenceSession`` on the runner's execution providers."""
        if call.api != setup.api or call.api not in SUPPORT or call.upstream is not None \
                or setup.device not in PROVIDERS or _installed():
            return None
        providers = [PROVIDERS[setup.device]] + ["CPUExecutionProvider"] * (
            setup.device != "cpu")
        try:
            return _snippet(call.api, dict(call.args), providers, self.threads)
        except Exception:  # an input the runner rejects before ONNX Runtime sees it
            return None

    def prepare(self, setup: Setup) -> Runner:
        if setup.api not in SUPPORT:
            raise TargetError(f"the onnxruntime target does not support {setup.api!r}; it "
                              f"supports {', '.join(SUPPORT)}")
        if setup.grad:
            raise TargetError("ONNX Runtime inference has no gradients (feature 'grad' is "
                              "unsupported)")
        mode = next((m for m in self._modes(_installed()) if m.device == setup.device), None)
        if mode is None or mode.profile != setup.profile:
            raise TargetError(f"the onnxruntime target runs as cpu/cpu or cuda/gpu, not "
                              f"{setup.device}/{setup.profile}")
        if not mode.available:
            raise TargetError(f"onnxruntime on {setup.device} is unavailable: {mode.reason}")
        providers = [PROVIDERS[setup.device]]
        if setup.device != "cpu":
            providers.append(PROVIDERS["cpu"])  # ORT places nodes CUDA lacks on the CPU
        return _OrtRunner(setup, providers, self.threads)

"""The certified gradient at C > 2: the raw ops' loss and backprop, against torch.

``tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits`` answers a loss and a backprop (the
gradient of the loss, ``softmax − onehot``) for every row: the oracle certifies both, every
backprop element correctly rounded to the logits' format (float32 here). What is timed,
one process, one thread, float32 logits ~ N(0, 3) and uniform labels (seeded), at C = 3,
10, 100 and 1,000 (``--shapes``), about 2·10⁶ logits each:

* ``numba``: ``xentconf.oracle.fast``'s raw op, then ``["loss"].rounded64`` and
  ``["backprop"].rounded64`` (the compiled kernels: at C > 2 the loss's range kernel and
  the gradient's, ``rows.sparse_grad_into``);
* ``numpy``: the same with the compiled kernels switched off (``engine.USE_ACCEL =
  False``): the numpy path, which gives the same bits;
* ``torch``: ``F.cross_entropy(x, y, reduction="none")`` and its ``backward`` on a leaf
  tensor (``torch.set_num_threads(1)``), float32 and not correctly rounded: the named
  baseline.

``--labels onehot`` or ``soft`` times the dense raw op,
``tf.raw_ops.SoftmaxCrossEntropyWithLogits``, instead (``backprop`` = ``softmax − y``;
``rows.dense_loss_into`` and ``rows.dense_grad_into``), with float32 labels: the uniform
labels one-hot, or rows of uniform random numbers each divided by its sum; torch is given
the same rows as class probabilities (``F.cross_entropy`` with a float target).

The contenders alternate within each repeat; the median of ``--repeats`` is reported, by
wall time and by the process's CPU time. The two engine paths' answers (and fallbacks) are
checked to be identical on every shape.

    python3 benchmarks/bench_gradient.py [--shapes C:ROWS,...] [--repeats R]
        [--labels sparse|onehot|soft] [--json PATH]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XENTCONF_THREADS",
             "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bench_small_c import shapes  # noqa: E402  (run as a script: benchmarks/ is on the path)
from xentconf.oracle import engine as E  # noqa: E402
from xentconf.oracle.fast import tf  # noqa: E402

SHAPES = "3:700000,10:200000,100:20000,1000:2000"


LABELS = ("sparse", "onehot", "soft")


def inputs(n: int, c: int, seed: int, labels: str = "sparse"):
    rng = np.random.default_rng([seed, c])
    x, y = (rng.standard_normal((n, c)) * 3).astype(np.float32), rng.integers(0, c, n)
    if labels == "onehot":
        y = np.eye(c, dtype=np.float32)[y]
    elif labels == "soft":
        y = rng.random((n, c)).astype(np.float32)
        y /= y.sum(axis=1, keepdims=True)
    return x, y


def engine(accel: bool):
    def run(x, y):
        E.USE_ACCEL = accel
        op = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits if y.ndim == 1 else \
            tf.raw_ops.SoftmaxCrossEntropyWithLogits
        e = op(features=x, labels=y)
        out = e["loss"].rounded64, e["backprop"].rounded64, e.engine.fallbacks
        E.USE_ACCEL = True
        return out
    return run


def torch_1t():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(1)

    def run(x, y):
        t = torch.from_numpy(x).requires_grad_()
        loss = F.cross_entropy(t, torch.from_numpy(y), reduction="none")
        loss.backward(torch.ones_like(loss))
        return loss.detach().numpy(), t.grad.numpy()
    return run


def bench(c: int, n: int, repeats: int, seed: int, labels: str = "sparse") -> dict:
    x, y = inputs(n, c, seed, labels)
    runs = {"numba": engine(True), "numpy": engine(False), "torch": torch_1t()}
    runs = {k: v for k, v in runs.items() if v is not None}
    answers = {k: fn(x, y) for k, fn in runs.items()}  # compile, warm the caches
    a, b = answers["numba"], answers["numpy"]
    assert np.array_equal(a[0], b[0], equal_nan=True), "the engine's paths disagree (loss)"
    assert np.array_equal(a[1], b[1], equal_nan=True), "the engine's paths disagree (backprop)"
    assert a[2] == b[2], "the engine's paths disagree (fallbacks)"
    wall: dict = {k: [] for k in runs}
    cpu: dict = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            w, cp = time.perf_counter(), time.process_time()
            fn(x, y)
            wall[k].append(time.perf_counter() - w)
            cpu[k].append(time.process_time() - cp)
    return {"C": c, "rows": n, "fallbacks": a[2],
            "wall": {k: n / statistics.median(v) for k, v in wall.items()},
            "cpu": {k: n / statistics.median(v) for k, v in cpu.items()}}


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return int(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", type=shapes, default=shapes(SHAPES), help=f"default {SHAPES}")
    ap.add_argument("--repeats", type=_positive, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", choices=LABELS, default="sparse",
                    help="sparse: the sparse raw op; onehot or soft: the dense raw op")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    results = [bench(c, n, a.repeats, a.seed, a.labels) for c, n in a.shapes]
    for clock in ("cpu", "wall"):
        print(f"\nrows/s of loss + backprop by {clock} time, median of {a.repeats}, one thread, "
              f"{a.labels} labels")
        print("| C | rows | numba | numpy | torch | numba / numpy | numba / torch | fallbacks |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            v = r[clock]
            t = v.get("torch")
            print(f"| {r['C']:,} | {r['rows']:,} | {v['numba']:,.0f} | {v['numpy']:,.0f} | "
                  + (f"{t:,.0f}" if t else "-") + f" | {v['numba'] / v['numpy']:.2f}x | "
                  + (f"{v['numba'] / t:.2f}x" if t else "-") + f" | {r['fallbacks']} |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

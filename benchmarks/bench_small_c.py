"""The certified engine at small C against torch and jax/XLA, on 1 and 2 threads.

Rows/s of ``tf.nn.sparse_softmax_cross_entropy_with_logits`` (reduction ``none``, the
loss correctly rounded to float32) at C = 2 and C = 10, float32 logits ~ N(0, 3) and
uniform labels (seeded), side by side in one run:

* ``engine 1t``: ``xentconf.oracle.fast`` with ``engine.set_threads(1)``;
* ``engine 2t``: the same with ``set_threads(2)`` (row ranges and the certification on
  the engine's thread pool);
* ``torch 1t``: ``torch.nn.functional.cross_entropy(..., reduction="none")`` with
  ``torch.set_num_threads(1)``;
* ``jax 2t``: ``-take_along_axis(log_softmax(x), y)`` under ``jax.jit`` (XLA's CPU
  backend, float32), on the machine's threads (2 here); not correctly rounded.

Each repeat runs every contender on the same arrays, in turn; the median of ``--repeats`` is
reported, by wall time (``perf_counter``) and by the process's CPU time (``process_time``).
With ``--calls K`` each contender's turn is K calls in a row of which the last is timed (as
in a loop: the allocator has the memory of the call before; with the default, 1, a call
follows the other contenders' and may fault its outputs in afresh, which at 2·10⁶ rows cost
the engine, with its several [N] arrays, up to half its time). On a shared machine CPU time
is the fairer measure of a 1-thread contender; a 2-thread speed-up can only be seen in wall
time, and only when two cores are free (the header prints the load average before and
after).

Then the engine's **fallback rate** on every-16-bit-pattern rows: the C = 2 rows of the
float16 sweep (every float16 bit pattern of one logit against the sweep's grid of the
other, both labels: 1,048,576 rows) and 2,000,000 rows of two uniformly random float16
bit patterns, and as many of bfloat16 ones; loss and backprop of the raw op, fallbacks per
output element.

    python3 benchmarks/bench_small_c.py [--rows2 N] [--rows10 N] [--repeats R] [--calls K]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from xentconf.oracle import engine as E
from xentconf.oracle.fast import tf


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def inputs(n: int, c: int, seed: int):
    rng = np.random.default_rng(seed + c)
    return (rng.standard_normal((n, c)) * 3).astype(np.float32), rng.integers(0, c, n)


def engine(threads: int):
    def run(x, y):
        E.set_threads(threads)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(y, x)["loss"].rounded64
    return run


def torch_1t():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(1)

    def run(x, y):
        return F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y),
                               reduction="none").numpy()
    return run


def jax_2t():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    @jax.jit
    def f(x, y):
        return -jnp.take_along_axis(jax.nn.log_softmax(x, axis=-1), y[:, None], axis=-1)[:, 0]

    def run(x, y):
        return np.asarray(f(x, y.astype(np.int32)).block_until_ready())
    return run


def timed(fn, x, y, calls: int = 1) -> tuple[float, float]:
    for _ in range(calls - 1):
        fn(x, y)
    w, c = time.perf_counter(), time.process_time()
    fn(x, y)
    return time.perf_counter() - w, time.process_time() - c


def bench(c: int, n: int, repeats: int, seed: int, calls: int = 1) -> dict:
    x, y = inputs(n, c, seed)
    runs = {"engine 1t": engine(1), "engine 2t": engine(2), "torch 1t": torch_1t(),
            "jax 2t": jax_2t()}
    runs = {k: v for k, v in runs.items() if v is not None}
    for fn in runs.values():  # compile, warm the caches and the allocator
        fn(x[: n // 10], y[: n // 10])
        fn(x, y)
    wall: dict = {k: [] for k in runs}
    cpu: dict = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            w, cp = timed(fn, x, y, calls)
            wall[k].append(w)
            cpu[k].append(cp)
    a = runs["engine 1t"](x, y)
    b = runs["engine 2t"](x, y)
    assert np.array_equal(a, b, equal_nan=True), "thread counts disagree"
    return {"C": c, "rows": n,
            "wall": {k: n / statistics.median(v) for k, v in wall.items()},
            "cpu": {k: n / statistics.median(v) for k, v in cpu.items()}}


def fallback_rates() -> list[dict]:
    from xentconf.conformance.sweep import SHARDS, SweepShard, shard_rows

    out = []
    xs, ls = zip(*(shard_rows(SweepShard("", "", "float16", i, SHARDS))
                   for i in range(SHARDS)))
    grid_x, grid_y = np.concatenate(xs), np.concatenate(ls)
    rng = np.random.default_rng(0)
    rand_x = rng.integers(0, 65536, (2_000_000, 2), dtype=np.uint16).view(np.float16)
    rand_y = rng.integers(0, 2, 2_000_000).astype(np.int32)
    import ml_dtypes

    rand_b = rand_x.view(np.uint16).view(ml_dtypes.bfloat16)
    for name, x, y in (("every float16 value against the sweep grid", grid_x, grid_y),
                       ("random pairs of float16 bit patterns", rand_x, rand_y),
                       ("random pairs of bfloat16 bit patterns", rand_b, rand_y)):
        E.set_threads(os.cpu_count() or 1)
        w = time.perf_counter()
        e = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(x, y)
        _ = e["loss"].rounded64
        loss_fb = e.engine.fallbacks
        _ = e["backprop"].rounded64
        out.append({"rows": name, "n": int(y.size), "loss_fallbacks": loss_fb,
                    "backprop_fallbacks": e.engine.fallbacks - loss_fb,
                    "seconds": time.perf_counter() - w})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows2", type=int, default=2_000_000, help="rows at C = 2")
    p.add_argument("--rows10", type=int, default=500_000, help="rows at C = 10")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=1,
                   help="calls per contender's turn, the last one timed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    print(f"cores {os.cpu_count()}, load average before: {load()}")
    calls = max(1, a.calls)
    results = [bench(2, a.rows2, a.repeats, a.seed, calls),
               bench(10, a.rows10, a.repeats, a.seed, calls)]
    for clk in ("cpu", "wall"):
        print(f"\nrows/s by {clk} time, median of {a.repeats}"
              f"{f' (the last of {calls} calls a turn)' if calls > 1 else ''}")
        print("| C | rows | " + " | ".join(results[0][clk]) +
              " | engine 1t / torch 1t | engine 2t / engine 1t | engine 2t / jax 2t |")
        for r in results:
            v = r[clk]

            def ratio(p_, q, v=v):
                return f"{v[p_] / v[q]:.2f}x" if p_ in v and q in v else "-"
            print(f"| {r['C']} | {r['rows']:,} | " +
                  " | ".join(f"{x:,.0f}" for x in v.values()) +
                  f" | {ratio('engine 1t', 'torch 1t')} | {ratio('engine 2t', 'engine 1t')}"
                  f" | {ratio('engine 2t', 'jax 2t')} |")
    fb = fallback_rates()
    print("\nfallbacks on every-16-bit-pattern rows (raw op)")
    for f in fb:
        print(f"  {f['rows']}: {f['n']:,} rows; loss {f['loss_fallbacks']} "
              f"({f['loss_fallbacks'] / f['n']:.2e}/row), backprop {f['backprop_fallbacks']} "
              f"({f['backprop_fallbacks'] / (2 * f['n']):.2e}/element); {f['seconds']:.2f} s")
    print(f"\nload average after: {load()}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"speed": results, "fallbacks": fb}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The certified engine against torch and jax/XLA, on 1 and 2 threads, small C and large.

Rows/s of ``tf.nn.sparse_softmax_cross_entropy_with_logits`` (reduction ``none``, the
loss correctly rounded to float32) at C = 2, 10, 1000 and 32,000 (``--shapes``), float32
logits ~ N(0, 3) and uniform labels (seeded), side by side in one run:

* ``engine 1t``: ``xentconf.oracle.fast`` with ``engine.set_threads(1)``;
* ``engine 2t``: the same with ``set_threads(2)`` (row ranges and the certification on
  the engine's thread pool);
* ``torch 1t``: ``torch.nn.functional.cross_entropy(..., reduction="none")`` with
  ``torch.set_num_threads(1)``;
* ``jax 2t``: ``-take_along_axis(log_softmax(x), y)`` under ``jax.jit`` (XLA's CPU
  backend, float32), on the machine's threads (2 here); not correctly rounded.

Each repeat runs every contender on the same arrays, in turn; a turn is ``--calls K``
calls in a row (default 2) of which the last is timed, as in a loop. The untimed call
takes what the turn before left behind: XLA's threads spin for about 10 ms after each
jax call, on the same cores and, being this process's threads, in its CPU time (timing a
turn's first call charged them to the contender after jax), the allocator's memory, and
a core that went idle (until commit 3324c3b a rest made the engine's 2 threads no
faster than one for a call or two: Linux put both on one core). The median of
``--repeats`` is reported, by wall time (``perf_counter``) and by the process's CPU time
(``process_time``). On a shared machine CPU time is the fairer measure
of a 1-thread contender; a 2-thread speed-up can only be seen in wall time, and only when
two cores are free (the header prints the load average before and after).

Beside it, the **kernel ceiling**: what 2 threads give over 1 for the engine's own
compiled kernel at that C with nothing in the way (a cache-resident block each, called
over and over: no memory traffic, no Python, nothing shared), the most the engine's
2-thread speed-up could be on this machine.

And the **process ceiling**: the same 1-thread engine call in two processes of their own
at once (each with its own copy of the arrays), against one alone. Two processes share
nothing but the machine (its cores' common parts, caches and memory), so their combined
speed-up is the most any threading of the whole call could give here, memory traffic and
all: ``2 × (one alone) / (two at once)``, median of ``--repeats`` turns of at least half
a second each.

Then the engine's **fallback rate** on every-16-bit-pattern rows: the C = 2 rows of the
float16 sweep (every float16 bit pattern of one logit against the sweep's grid of the
other, both labels: 1,048,576 rows) and 2,000,000 rows of two uniformly random float16
bit patterns, and as many of bfloat16 ones; loss and backprop of the raw op, fallbacks per
output element.

    python3 benchmarks/bench_small_c.py [--shapes C:ROWS,...] [--repeats R] [--calls K]
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

SHAPES = "2:2000000,10:500000,1000:20000,32000:625"  # C:rows, about 4e6 to 2e7 logits each


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


def torch_kernels() -> str:
    try:
        import torch
    except ImportError:
        return "-"
    return torch.backends.cpu.get_cpu_capability()


def engine_target() -> str:
    try:
        import llvmlite.binding as ll
        from numba.core.config import CPU_NAME
    except ImportError:
        return "numpy (no numba)"
    return CPU_NAME or ll.get_host_cpu_name()


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


def timed(fn, x, y, calls: int = 2) -> tuple[float, float]:
    for _ in range(calls - 1):
        fn(x, y)
    w, c = time.perf_counter(), time.process_time()
    fn(x, y)
    return time.perf_counter() - w, time.process_time() - c


def bench(c: int, n: int, repeats: int, seed: int, calls: int = 2) -> dict:
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


def ceiling(c: int, rounds: int, seconds: float = 0.2) -> float:
    """The most 2 threads can give over 1 on this machine for the engine's own compiled row
    kernel at ``C``: the kernel alone on a block of rows that stays in a core's cache,
    called over and over (no memory traffic, no Python between calls, nothing shared),
    on 1 thread and then on 2 with a block each; 2 × (1-thread time) / (2-thread time),
    median of ``rounds``. The C = 2 closed form's first kernel (the difference and the
    exponential) at C = 2, the row kernel (maximum, exponentials, sums) above."""
    import threading

    from xentconf.oracle import _kernels as K

    rng = np.random.default_rng(c)
    if c == 2:
        m = 16384

        def block():
            x = (rng.standard_normal((2, m)) * 3).astype(np.float32)
            return (x[0], x[1], rng.integers(0, 2, m), np.empty(m, dtype=bool),
                    np.empty(m), np.empty(m), np.empty(m))
        kern = K.two_class_pre
    else:
        m = max(1, 65536 // c)  # 256 KB of float32 logits

        def block():
            return (rng.standard_normal((m, c)) * 3).astype(np.float32), rng.integers(0, c, m)
        kern = K.run
    args = [block(), block()]
    kern(*args[0])
    w = time.perf_counter()
    kern(*args[0])
    reps = max(1, int(seconds / max(time.perf_counter() - w, 1e-6)))

    def work(k):
        for _ in range(reps):
            kern(*args[k])

    def on(nth):
        ths = [threading.Thread(target=work, args=(k,)) for k in range(nth)]
        w = time.perf_counter()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        return time.perf_counter() - w
    return statistics.median(2 * on(1) / on(2) for _ in range(rounds))


def _pair_worker(conn, c: int, n: int, seed: int) -> None:
    """One process of :func:`process_ceiling`: the engine on 1 thread, ``calls`` calls
    timed as one per request."""
    x, y = inputs(n, c, seed)
    run = engine(1)
    run(x, y)
    run(x, y)
    conn.send("ready")
    while (calls := conn.recv()) is not None:
        w = time.perf_counter()
        for _ in range(calls):
            run(x, y)
        conn.send((time.perf_counter() - w) / calls)


def process_ceiling(c: int, n: int, seed: int, repeats: int, calls: int,
                    seconds: float = 0.5) -> float:
    """``2 × (one process alone) / (two at once)`` for the engine's 1-thread call at ``C``
    (see the module docstring), the median of ``repeats`` turns; each turn times process
    A alone, then A and B together (the slower of the two), over at least ``calls`` calls
    and ``seconds`` (so that the two starting a few milliseconds apart, or on one core
    for a moment, does not count)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    pair = []
    for _ in range(2):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_pair_worker, args=(theirs, c, n, seed), daemon=True)
        proc.start()
        pair.append((proc, mine))
    try:
        for _, conn in pair:
            conn.recv()
        pair[0][1].send(1)
        calls = max(calls, int(seconds / pair[0][1].recv()) + 1)
        ratios = []
        for _ in range(repeats):
            pair[0][1].send(calls)
            alone = pair[0][1].recv()
            for _, conn in pair:
                conn.send(calls)
            together = max(conn.recv() for _, conn in pair)
            ratios.append(2 * alone / together)
        for _, conn in pair:
            conn.send(None)
        return statistics.median(ratios)
    finally:
        for proc, _ in pair:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


def shapes(text: str) -> list[tuple[int, int]]:
    try:
        out = [tuple(int(v) for v in part.split(":")) for part in text.split(",")]
        if not out or any(len(t) != 2 or t[0] < 2 or t[1] < 1 for t in out):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected C:ROWS pairs with C >= 2, e.g. 2:2000000,10:500000") from None
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", type=shapes, default=shapes(SHAPES),
                   help=f"C:ROWS pairs, comma-separated (default {SHAPES})")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=2,
                   help="calls per contender's turn, the last one timed (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--torch-capability", metavar="NAME",
                   help="the kernels torch runs (its ATEN_CPU_CAPABILITY: default, avx2, "
                        "avx512 on x86); by default the best this CPU has. On AMD Zen 4 its "
                        "avx512 softmax is about 3x slower at C = 10 than its avx2 one")
    a = p.parse_args(argv)
    if a.torch_capability:  # torch reads it once, when it loads its kernels
        os.environ["ATEN_CPU_CAPABILITY"] = a.torch_capability
        if torch_kernels() == "-":
            p.error("--torch-capability needs torch: pip install torch==2.13.0, or leave the "
                    "option out")
        if torch_kernels().lower() != a.torch_capability:
            p.error(f"torch runs its {torch_kernels()} kernels, not {a.torch_capability!r}: "
                    "give --torch-capability one that this CPU has, in lower case "
                    "(default, avx2, avx512 on x86)")
    print(f"cores {os.cpu_count()}, load average before: {load()}")
    print(f"torch's kernels: {torch_kernels()}; the engine compiled for: {engine_target()}")
    calls = max(1, a.calls)
    results = [bench(c, n, a.repeats, a.seed, calls) for c, n in a.shapes]
    for r in results:
        r["ceiling 2t/1t"] = ceiling(r["C"], a.repeats)
        r["processes 2/1"] = process_ceiling(r["C"], r["rows"], a.seed, a.repeats, calls)
    for clk in ("cpu", "wall"):
        print(f"\nrows/s by {clk} time, median of {a.repeats}"
              f"{f' (the last of {calls} calls a turn)' if calls > 1 else ''}")
        print("| C | rows | " + " | ".join(results[0][clk]) +
              " | engine 1t / torch 1t | engine 2t / engine 1t | kernel ceiling 2t / 1t"
              " | process ceiling 2 / 1 | engine 2t / jax 2t |")
        for r in results:
            v = r[clk]

            def ratio(p_, q, v=v):
                return f"{v[p_] / v[q]:.2f}x" if p_ in v and q in v else "-"
            print(f"| {r['C']} | {r['rows']:,} | " +
                  " | ".join(f"{x:,.0f}" for x in v.values()) +
                  f" | {ratio('engine 1t', 'torch 1t')} | {ratio('engine 2t', 'engine 1t')}"
                  f" | {r['ceiling 2t/1t']:.2f}x | {r['processes 2/1']:.2f}x"
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

"""``xentconf sweep`` throughput with 1 and 2 local Dask workers (not run by the tests).

Runs the same slice of the float16 pair sweep of tf.nn.sparse_softmax_cross_entropy_with_logits
against a target on a LocalCluster of 1 worker, then of 2, each into a fresh folder (so
nothing is reused), and prints rows/s of each, the ratio, the mean seconds per chunk, and
what the whole 2^33-row sweep would take at these rates (and on 64 workers at the
per-chunk rate of one).

    python benchmarks/bench_sweep.py [--target reference] [--pairs START:STOP] [--chunk N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from xentconf.conformance import sweeper
from xentconf.conformance.sandbox import TargetSpec
from xentconf.conformance.sweep import pair_total

NN = "tf.nn.sparse_softmax_cross_entropy_with_logits"


def one(workers: int, plan, job, chunk: int) -> tuple[float, float, int]:
    client, cluster = sweeper.connect(None, workers)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            got = sweeper.execute(plan, [job], Path(tmp), client=client, chunk=chunk)
            wall = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    s = got.document["sweeps"][0]
    return s["rows_done"] / wall, s["duration_s"] / max(s["chunks_done"], 1), s["rows_done"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="reference")
    ap.add_argument("--pairs", default="0x3c000000:0x3c010000")
    ap.add_argument("--chunk", type=int, default=8192)
    a = ap.parse_args()
    start, stop = sweeper.parse_pairs(a.pairs, "float16")
    plan = sweeper.SweepPlan(spec=TargetSpec(a.target), target_name=a.target, device="cpu",
                             profile="cpu", accuracy="stable", keras=None, timeout=60.0,
                             isolate=True, callable_target=False)
    job = (NN, "float16", start, stop)
    rates = {}
    for workers in (1, 2):
        rate, per_chunk, rows = one(workers, plan, job, a.chunk)
        rates[workers] = rate
        print(f"{workers} worker(s): {rows} rows, {rate:,.0f} rows/s "
              f"({per_chunk:.2f} s per chunk of {2 * a.chunk} rows)")
        if workers == 1:
            one_chunk = per_chunk
    print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")
    total = 2 * pair_total("float16")
    print(f"every float16 pair ({total} rows) at the 2-worker rate: "
          f"{total / rates[2] / 3600:,.1f} h; on 64 workers at one worker's per-chunk rate: "
          f"{total / (2 * a.chunk / one_chunk * 64) / 3600:,.1f} h")


if __name__ == "__main__":
    main()

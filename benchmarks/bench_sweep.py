"""``xentconf sweep`` throughput with 1 and 2 local Dask workers (not run by the tests).

Runs the same slice of the float16 pair sweep of tf.nn.sparse_softmax_cross_entropy_with_logits
against a target on a LocalCluster of 1 worker, then of 2, each into a fresh folder (so
nothing is reused), and prints rows/s of each (wall time of the whole call; the cluster's
start and each worker's warm-up, which loads the target and the compiled kernels, are not
in it: a whole sweep pays them once in 16,384 chunks), the ratio, the mean wall and CPU
seconds per chunk (CPU: the worker process's own, from the chunk files; with ``--isolate
process`` the target's process is not in it), and what the whole 2^33-row sweep would take
at these rates and on 64 workers at one worker's per-chunk rate (wall, and CPU: what a
worker with a core to itself would do).

    python benchmarks/bench_sweep.py [--target reference] [--pairs START:STOP] [--chunk N]
        [--isolate process|none] [--workers 1,2] [--repeats 3]

With ``--repeats R`` (default 3) the worker counts run R times in turn (1, 2, 1, 2, ...)
and the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from xentconf.conformance import sweeper
from xentconf.conformance.sandbox import TargetSpec
from xentconf.conformance.sweep import pair_total, parse_pairs

NN = "tf.nn.sparse_softmax_cross_entropy_with_logits"


def one(workers: int, plan, job, chunk: int) -> tuple[float, float, float, int]:
    client, cluster = sweeper.connect(None, workers)
    try:
        api, dtype, start, _ = job
        client.run(sweeper.run_chunk, plan, api, dtype, start, start + 1024)  # warm-up
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            got = sweeper.execute(plan, [job], Path(tmp), client=client, chunk=chunk)
            wall = time.perf_counter() - t0
            cpu = [json.loads(f.read_text())["cpu_seconds"]
                   for f in (Path(tmp) / "chunks").glob("*.json")]
    finally:
        client.close()
        cluster.close()
    s = got.document["sweeps"][0]
    n = max(s["chunks_done"], 1)
    return s["rows_done"] / wall, s["duration_s"] / n, sum(cpu) / n, s["rows_done"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="reference")
    ap.add_argument("--pairs", default="0x3c000000:0x3e000000")  # 128 chunks
    ap.add_argument("--chunk", type=int, default=sweeper.CHUNK_PAIRS)
    ap.add_argument("--isolate", choices=("process", "none"), default="process")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    ap.add_argument("--repeats", type=int, default=3,
                    help="rounds of the worker counts, in turn; medians are compared (one "
                         "worker's rate moved by 20%% between runs on a shared machine)")
    a = ap.parse_args()
    start, stop = parse_pairs(a.pairs, "float16")
    plan = sweeper.SweepPlan(spec=TargetSpec(a.target), target_name=a.target, device="cpu",
                             profile="cpu", accuracy="stable", keras=None, timeout=60.0,
                             isolate=a.isolate == "process", callable_target=False)
    job = (NN, "float16", start, stop)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rates: dict[int, list[float]] = {}
    total = 2 * pair_total("float16")
    for workers in [int(w) for w in a.workers.split(",")] * max(1, a.repeats):
        rate, per_chunk, cpu_chunk, rows = one(workers, plan, job, a.chunk)
        rates.setdefault(workers, []).append(rate)
        print(f"{workers} worker(s): {rows} rows, {rate:,.0f} rows/s "
              f"({per_chunk:.3f} s wall, {cpu_chunk:.3f} s CPU per chunk of "
              f"{2 * a.chunk} rows); every float16 pair at this rate: "
              f"{total / rate / 60:,.1f} min")
        if workers == 1:
            for what, sec in (("wall", per_chunk), ("CPU", cpu_chunk)):
                print(f"  on 64 workers at one worker's per-chunk {what} rate: "
                      f"{total / (2 * a.chunk / sec * 64) / 60:,.1f} min")
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in med.items():
        print(f"{k} worker(s), median of {len(rates[k])}: {v:,.0f} rows/s; every float16 "
              f"pair at this rate: {total / v / 60:,.1f} min")
    if 1 in med and 2 in med:
        print(f"2 workers / 1 worker (medians): {med[2] / med[1]:.2f}x")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""How long a default conformance run takes, and what generating a case costs.

1. ``xentconf run --target reference -n WORKERS`` — every API x the four dtypes x every
   feature, the pinned deviations and the exhaustive 16-bit sweeps, in the default ``ci``
   example profile — timed end to end, with the time per feature from the results file.
   The goal is at most 3 minutes with ``-n 2`` on a 2-core machine.
2. Generating cases: milliseconds per example of :func:`xentconf.conformance.strategies.cases`
   over every API x feature x dtype, against a named baseline measured in the same run:
   ``hypothesis.extra.numpy.arrays`` drawing a float32 array of the same size element by
   element (what a strategy without the seed-and-fill design would cost). The goal is at
   most 10 ms per example on average.

Usage: ``python benchmarks/bench_conformance.py [--workers N] [--examples-per-test N]``
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xentconf.conformance.strategies import FEATURES_OF, cases
from xentconf.protocol import API_SHORT, DTYPES


def time_run(workers: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "xentconf", "run", "--target", "reference", "-n",
               workers, "--out", str(out), "--no-report"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit(f"the reference run failed (exit {proc.returncode})")
        doc = json.loads((out / "results.json").read_text())
    return wall, doc


def time_generation(n: int) -> tuple[float, float, int]:
    """(ms per example of xentconf's strategies, ms per example of the baseline, count)."""
    sizes: list[int] = []
    t_ours = 0.0
    count = 0
    def make(api, feature, dtype):
        @settings(max_examples=n, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def gen(data):
            nonlocal t_ours, count
            t0 = time.perf_counter()
            case = data.draw(cases(api, dtype, feature))
            t_ours += time.perf_counter() - t0
            count += 1
            arrays = [v for v in case.args.values() if isinstance(v, np.ndarray)]
            sizes.append(max((a.size for a in arrays), default=1))
        return gen

    for api, feats in FEATURES_OF.items():
        for feature in feats:
            for dtype in DTYPES:
                make(api, feature, dtype)()
    t_base = 0.0
    def make_base(size):
        @settings(max_examples=1, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def base(data):
            nonlocal t_base
            t0 = time.perf_counter()
            data.draw(hnp.arrays(np.float32, min(size, 20_000),
                                 elements=st.floats(-10, 10, width=32)))
            t_base += time.perf_counter() - t0
        return base

    for size in sizes[:: max(1, len(sizes) // 200)]:
        make_base(size)()
    n_base = len(sizes[:: max(1, len(sizes) // 200)])
    return 1000 * t_ours / count, 1000 * t_base / n_base, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="2")
    ap.add_argument("--examples-per-test", type=int, default=5,
                    help="examples per API x feature x dtype for the generation timing")
    args = ap.parse_args()

    ours, base, count = time_generation(args.examples_per_test)
    print(f"case generation: {ours:.2f} ms/example over {count} examples "
          f"(goal <= 10 ms); baseline hypothesis.extra.numpy.arrays at the same sizes "
          f"(capped at 20,000 elements): {base:.2f} ms/example; ratio {base / ours:.1f}x")

    wall, doc = time_run(args.workers)
    outcomes = doc["outcomes"]
    verdicts = collections.Counter(o["verdict"] for o in outcomes)
    print(f"\nxentconf run --target reference -n {args.workers}: {wall:.1f} s wall "
          f"({wall / 180:.2f} of the 3-minute goal); {len(outcomes)} tests: "
          + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
    by_feature: dict[str, float] = collections.defaultdict(float)
    by_api: dict[str, float] = collections.defaultdict(float)
    for o in outcomes:
        by_feature[o["feature"]] += o["duration_s"]
        by_api[API_SHORT.get(o["api"], o["api"])] += o["duration_s"]
    total = sum(by_feature.values())
    print(f"test time summed over workers: {total:.1f} s")
    print("by feature: " + ", ".join(f"{k} {v:.1f} s" for k, v in
                                       sorted(by_feature.items(), key=lambda kv: -kv[1])))
    print("by API:     " + ", ".join(f"{k} {v:.1f} s" for k, v in
                                       sorted(by_api.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()

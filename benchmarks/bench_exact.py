"""Speed of the oracle's exact tier, against a naive mpmath baseline measured in the same run.

What is timed, per class count ``C`` (float32 logits ~ N(0, sd 3), uniform int32 labels,
seeded), on one core in one process:

``loss``           ``tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(logits, labels)``, then
                   ``e["loss"].rounded64``: exact evaluation and correct rounding of every
                   loss element (Ziv, certified).
``loss+backprop``  the same, then ``e["backprop"].rounded64`` as well.

Every measurement builds a fresh Expectation (its outputs cache their results), and the
clock covers the call that builds it as well as the rounding.

The baseline ("mpmath high-level API, naive") computes the same outputs for the same
inputs with mpmath's high-level API in a private ``MPContext`` at ``prec = 48`` bits (the
exact tier's first Ziv step for float32, p + 24): per row
``lse = log(fsum(exp(z_j - m)))``, ``loss = lse - (z_y - m)``, and for backprop
``exp(z_j - m) / s - [j = y]``, each converted with ``float()`` and then to float32. It
is double-rounded and NOT certified: the price of mpmath's high-level API alone. Each
repeat times the exact tier and the baseline back to back, so that noise on a shared
machine hits both alike; ``exact/baseline`` (a ratio of rows per second, > 1 means the
exact tier is faster) is the number to compare across machines.

Usage::

    python benchmarks/bench_exact.py [--quick] [--classes 10 1000 32000] [--repeats 3]
                                     [--clock cpu|wall] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import os

# One core: pin every BLAS / OpenMP pool to a single thread before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import mpmath  # noqa: E402
import numpy as np  # noqa: E402

from xentconf.oracle import tf  # noqa: E402

DEFAULT_CLASSES = (10, 1000, 32000)
MODES = ("loss", "loss+backprop")
BASELINE_PREC = 48  # float32's p = 24, plus the exact tier's 24 guard bits: its first Ziv step
GOALS = {10: 5000.0, 1000: 50.0}  # project goals, rows/s of the loss output
CLOCKS = {
    "cpu": "CPU time of this process (time.process_time; time spent descheduled on a busy "
           "machine is not counted)",
    "wall": "wall clock (time.perf_counter)",
}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def rows_for(c: int, quick: bool) -> int:
    """Rows per measurement: about 2e5 logits, at most 16,000 rows, which takes about 2-5 s
    of CPU on a 2020s core (C = 10: 16,000; 1000: 200; 32000: 6); ``--quick`` about 1/20."""
    if quick:
        return int(min(800, max(1, round(1e4 / c))))
    return int(min(16_000, max(3, round(2e5 / c))))


def make_inputs(c: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, c])
    logits = (rng.standard_normal((n, c)) * 3.0).astype(np.float32)
    labels = rng.integers(0, c, size=n).astype(np.int32)
    return logits, labels


# --------------------------------------------------------------------------- the two contenders


def run_exact(logits: np.ndarray, labels: np.ndarray, backprop: bool):
    e = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(logits, labels)
    loss = e["loss"].rounded64
    bp = e["backprop"].rounded64 if backprop else None
    return loss, bp


_CTX = mpmath.MPContext()
_CTX.prec = BASELINE_PREC


def run_baseline(logits: np.ndarray, labels: np.ndarray, backprop: bool):
    """Naive, double-rounded, uncertified softmax cross-entropy with mpmath's high-level API."""
    ctx = _CTX
    n, c = logits.shape
    loss = np.empty(n, dtype=np.float32)
    bp = np.empty((n, c), dtype=np.float32) if backprop else None
    for r, (row, y) in enumerate(zip(logits.tolist(), labels.tolist())):
        m = ctx.mpf(max(row))
        e = [ctx.exp(ctx.mpf(v) - m) for v in row]
        s = ctx.fsum(e)
        lse = ctx.log(s)
        loss[r] = np.float32(float(lse - (ctx.mpf(row[y]) - m)))
        if backprop:
            out = [float(ej / s) for ej in e]
            out[y] = float(e[y] / s - 1)
            bp[r] = np.array(out, dtype=np.float64).astype(np.float32)
    return loss, bp


# --------------------------------------------------------------------------- timing


def timed(fn, *args):
    """(result, wall seconds, CPU seconds) of one call, with the collector off (as timeit)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args)
        w1, c1 = time.perf_counter(), time.process_time()
    finally:
        if was_enabled:
            gc.enable()
    return out, w1 - w0, c1 - c0


def mismatches(exact, base) -> int:
    """Elements where the naive baseline's float32 differs from the certified rounding."""
    e_loss, e_bp = exact
    b_loss, b_bp = base
    bad = int(np.sum(e_loss.astype(np.float32) != b_loss))
    if e_bp is not None:
        bad += int(np.sum(e_bp.astype(np.float32) != b_bp))
    return bad


def bench_one(c: int, n: int, mode: str, repeats: int, seed: int, clock: str) -> dict:
    logits, labels = make_inputs(c, n, seed)
    backprop = mode == "loss+backprop"
    # Warm-up on two rows: imports, first-call caches, code paths.
    run_exact(logits[:2], labels[:2], backprop)
    run_baseline(logits[:2], labels[:2], backprop)
    ex_wall, ex_cpu, bl_wall, bl_cpu = [], [], [], []
    exact_out = base_out = None
    for _ in range(repeats):
        exact_out, w, cpu = timed(run_exact, logits, labels, backprop)
        ex_wall.append(w)
        ex_cpu.append(cpu)
        base_out, w, cpu = timed(run_baseline, logits, labels, backprop)
        bl_wall.append(w)
        bl_cpu.append(cpu)
    ex_med = statistics.median(ex_cpu if clock == "cpu" else ex_wall)
    bl_med = statistics.median(bl_cpu if clock == "cpu" else bl_wall)
    ex_rps = n / ex_med
    bl_rps = n / bl_med
    return {
        "classes": c,
        "rows": n,
        "mode": mode,
        "elements": n * (c + 1 if backprop else 1),
        "exact_wall_s": ex_wall,
        "exact_cpu_s": ex_cpu,
        "baseline_wall_s": bl_wall,
        "baseline_cpu_s": bl_cpu,
        "clock": clock,
        "exact_median_s": ex_med,
        "baseline_median_s": bl_med,
        "exact_rows_per_s": ex_rps,
        "baseline_rows_per_s": bl_rps,
        "ratio_exact_over_baseline": ex_rps / bl_rps,
        "baseline_mismatches": mismatches(exact_out, base_out),
    }


# --------------------------------------------------------------------------- report


def header_lines(args, repeats: int) -> list[str]:
    backend = mpmath.libmp.BACKEND
    kind = "GMP integers via gmpy2" if backend == "gmpy" else "pure-Python integers"
    lines = [
        "xentconf exact-tier benchmark: tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits, float32",
        f"  python {platform.python_version()} ({platform.python_implementation()}), "
        f"numpy {np.__version__}, mpmath {mpmath.__version__}, "
        f"mpmath.libmp.BACKEND = {backend!r} ({kind})",
        f"  machine: {platform.machine()}, {os.cpu_count()} logical CPUs; single process, "
        + ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARS),
    ]
    if backend == "gmpy":
        lines.append("  --gmpy-compare: gmpy2 is installed, so mpmath uses GMP integers; run "
                     "with MPMATH_NOGMPY=1 (or in an environment without gmpy2) to compare "
                     "with pure-Python integers.")
    else:
        lines.append("  --gmpy-compare: mpmath is using pure-Python integers; installing the "
                     "optional gmpy2 extra (pip install -e '.[gmpy2]') switches mpmath to "
                     "GMP integers; run this again there to compare.")
    lines += [
        f"  inputs: logits ~ N(0, sd 3) as float32, labels uniform in [0, C) (seed {args.seed});"
        f" fresh Expectation per measurement",
        f"  timing: {CLOCKS[args.clock]}, median of {repeats} repeat(s), garbage collector off "
        "during a measurement; exact tier and baseline alternate within each repeat",
        f"  baseline: mpmath high-level API, private MPContext, prec = {BASELINE_PREC} "
        "(float32's first Ziv step); naive, double-rounded, NOT certified",
        "  exact/baseline = exact rows/s / baseline rows/s (> 1: the exact tier is faster); "
        "'exact s' is the exact tier's median seconds per measurement; 'baseline != exact' "
        "counts output elements whose naive float32 differs from the certified rounding",
    ]
    if args.quick:
        lines.append("  QUICK MODE: small sizes for smoke testing; the numbers are not "
                     "meaningful")
    return lines


def table_lines(results: list[dict]) -> list[str]:
    head = (f"{'C':>6} {'rows':>6}  {'output':<14} {'exact s':>8} {'exact rows/s':>13} "
            f"{'baseline rows/s':>16} {'exact/baseline':>15}  {'baseline != exact':>18}")
    out = [head, "-" * len(head)]
    for r in results:
        mis = f"{r['baseline_mismatches']} / {r['elements']}"
        out.append(f"{r['classes']:>6} {r['rows']:>6}  {r['mode']:<14} "
                   f"{r['exact_median_s']:>8.2f} {r['exact_rows_per_s']:>13.1f} "
                   f"{r['baseline_rows_per_s']:>16.1f} "
                   f"{r['ratio_exact_over_baseline']:>14.2f}x  {mis:>18}")
    return out


def goal_results(results: list[dict]) -> list[dict]:
    got = {r["classes"]: r["exact_rows_per_s"] for r in results if r["mode"] == "loss"}
    out = []
    for c, target in GOALS.items():
        measured = got.get(c)
        out.append({"classes": c, "target_rows_per_s": target, "measured_rows_per_s": measured,
                    "met": None if measured is None else measured >= target})
    return out


def goal_lines(goals: list[dict], quick: bool) -> list[str]:
    out = ["project goals (exact tier, loss output):"]
    for g in goals:
        if g["met"] is None:
            verdict = "not measured (add it to --classes)"
        else:
            verdict = (f"measured {g['measured_rows_per_s']:.1f}: "
                       f"{'MET' if g['met'] else 'NOT MET'}")
            if quick:
                verdict += " (quick mode: indicative only)"
        target = f">= {g['target_rows_per_s']:,.0f} rows/s"
        out.append(f"  C = {g['classes']:<5} {target:<17} {verdict}")
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes, one repeat unless --repeats is given (smoke test)")
    p.add_argument("--classes", type=int, nargs="+", default=list(DEFAULT_CLASSES),
                   metavar="C", help="class counts to measure (default: 10 1000 32000)")
    p.add_argument("--repeats", type=int, default=None,
                   help="repeats per measurement; the median is reported (default: 3, or 1 "
                        "with --quick)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                   help="cpu: this process's CPU time (robust on a shared machine; the default)"
                        "; wall: elapsed time. Both go to --json.")
    p.add_argument("--seed", type=int, default=0, help="input seed (default: 0)")
    p.add_argument("--json", metavar="PATH", help="also write the numbers as JSON to PATH")
    args = p.parse_args(argv)
    if any(c < 1 for c in args.classes):
        p.error("--classes: every class count must be at least 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats: must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    for line in header_lines(args, repeats):
        print(line)
    print(flush=True)
    results = []
    for c in args.classes:
        n = rows_for(c, args.quick)
        for mode in MODES:
            results.append(bench_one(c, n, mode, repeats, args.seed, args.clock))
            print(f"  measured C={c} {mode}", file=sys.stderr, flush=True)
    for line in table_lines(results):
        print(line)
    print()
    goals = goal_results(results)
    for line in goal_lines(goals, args.quick):
        print(line)
    if args.json:
        doc = {
            "benchmark": "xentconf exact tier, tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits",
            "argv": sys.argv,
            "quick": args.quick,
            "repeats": repeats,
            "seed": args.seed,
            "clock": args.clock,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "mpmath": mpmath.__version__,
            "mpmath_backend": mpmath.libmp.BACKEND,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": {v: os.environ[v] for v in THREAD_VARS},
            "baseline_prec": BASELINE_PREC,
            "results": results,
            "goals": goals,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed and accuracy of the oracle's vectorized engine, against torch and naive numpy.

The engine is ``xentconf.oracle.fast``: float64 arithmetic with per-element error bounds,
certified, handing the rare uncertain element to the exact tier. Its answer is the
correctly rounded loss. It has two paths that give the same answers bit for bit: the
compiled row kernel (``xentconf.oracle.accel``, numba, the optional ``fast`` extra) and the
pure-numpy path; both are timed. What is timed, one process, every thread pool at one
thread, float32 logits ~ N(0, sd 3) and uniform int64 labels (seeded):

``numba``   ``ftf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)`` (reduction
            ``none``) or ``ftf.compat.v1.losses.sparse_softmax_cross_entropy(labels,
            logits, reduction="weighted_sum_over_batch_size")`` (``mean``), then
            ``e["loss"].rounded64``, with the compiled kernel (left out without numba).
            The clock covers the call (semantics and plan; the plan keeps the float32
            logits as they are) as well as the evaluation, fallbacks included.
``numpy``   the same with the kernel switched off (``engine.USE_ACCEL = False``).
``torch``   ``torch.nn.functional.cross_entropy(torch.from_numpy(logits),
            torch.from_numpy(labels), reduction=...)``, ``torch.set_num_threads(1)``.
``naive``   float32 numpy: ``m = x.max(1); lse = log(sum(exp(x - m[:, None]), 1)) + m;
            loss = lse - x[arange, y]`` (and ``loss.mean()``), every step in float32.

The contenders alternate within every repeat (so load on a shared machine hits them
alike); CPU time (``time.process_time``) and wall time (``time.perf_counter``) are both
recorded, the median of ``--repeats`` is reported, the garbage collector is off during a
measurement. The two engine paths' answers are compared on every shape.

Also reported: the engine's fallbacks per row (elements it handed to the exact tier) on
the timed shapes and on a separate count of up to 1e6 random rows per C (C = 10, 100,
1000; goal <= 1e-5 per row), each engine path's input bandwidth (bytes of float32 logits,
read once, per second of engine time) against the machine's copy bandwidth measured in the
same run (``np.copyto`` of a 1 GiB float32 array), the error of every contender in float32
ulps against the exact tier on adversarial rows, and the rows/s of the combined oracle at
C = 10 (goal: 500,000 rows/s on one core). ``--profile C`` instead runs cProfile on the
engine (its default path) for the shape with C classes (numpy calls are charged to the
engine function that makes them; time in the compiled kernel to the kernel's wrapper).

Usage::

    python benchmarks/bench_engine.py [--quick] [--scale F] [--repeats N] [--seed S]
                                      [--json PATH] [--profile C]
"""

from __future__ import annotations

import os

# One core: pin every BLAS / OpenMP pool, and the engine's own threads, to a single thread
# before numpy/torch are imported (benchmarks/bench_small_c.py measures 2 threads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS",
             "XENTCONF_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from xentconf.oracle import accel as xaccel  # noqa: E402
from xentconf.oracle import engine as xengine  # noqa: E402
from xentconf.oracle import tf as xtf  # noqa: E402
from xentconf.oracle.fast import tf as ftf  # noqa: E402

try:  # torch is optional: without it the torch column is left out
    import torch  # noqa: E402

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started
        pass
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

SHAPES = ((8192, 32000), (65536, 1000), (1_000_000, 10), (64, 256_000))
QUICK_SHAPES = ((16, 3200), (512, 1000), (20_000, 10), (2, 25_600))
REDUCTIONS = ("none", "mean")
# the engine's two paths: the compiled kernel (numba, optional) and the numpy path
ENGINES = ("numba", "numpy")
CONTENDERS = ENGINES + ("torch", "naive")
CLOCKS = ("cpu", "wall")
COPY_BYTES = 1 << 30  # the copy-bandwidth probe: a 1 GiB float32 array
QUICK_COPY_BYTES = 64 << 20
COMBINED_ROWS, QUICK_COMBINED_ROWS = 100_000, 5_000
# (C, rows) for the fallback-rate count: 3e5 rows with none seen bound the rate below 1e-5
FALLBACK_SIZES = ((10, 1_000_000), (100, 1_000_000), (1000, 300_000))
QUICK_FALLBACK_SIZES = ((10, 20_000), (100, 5_000), (1000, 1_000))
GOAL_COMBINED_C10 = 500_000.0  # rows/s, combined oracle (engine + fallbacks), C = 10, none
GOAL_FALLBACK_PER_ROW = 1e-5  # engine fallbacks per row on random data, for C <= 1000
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- inputs


def make_inputs(n: int, c: int, seed: int, tag: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 logits ~ N(0, sd 3) [n, c] and uniform int64 labels, seeded by (seed, c)."""
    rng = np.random.default_rng([seed, c, tag])
    logits = rng.standard_normal((n, c), dtype=np.float32)
    logits *= np.float32(3.0)
    labels = rng.integers(0, c, size=n, dtype=np.int64)
    return logits, labels


def adversarial_sets(seed: int, quick: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, logits, labels): small sets where float32 formulas go wrong, sized so the exact
    tier stays fast."""
    k = 10 if quick else 1
    rng = np.random.default_rng([seed, 7919])

    def normal(n, c):
        return (rng.standard_normal((n, c)) * 3.0).astype(np.float32), \
            rng.integers(0, c, size=n, dtype=np.int64)

    out = []
    # dominant label: z_y += 70, so the loss is about sum_j exp(z_j - z_y) ~ 1e-27
    x, y = normal(200 // k, 1000)
    x[np.arange(len(y)), y] += np.float32(70.0)
    out.append(("dominant label, C=1000 (loss ~1e-27)", x, y))
    # a huge row: C = 256,000 (25,600 with --quick)
    x, y = normal(2 if not quick else 1, 256_000 // k)
    out.append((f"large C, C={x.shape[1]}", x, y))
    # +-1e30 entries among N(0, 3) ones; the label on a 1e30 entry in half of the rows
    x, y = normal(100 // k, 100)
    pick = rng.random(x.shape)
    x[pick < 0.05] = np.float32(1e30)
    x[pick > 0.95] = np.float32(-1e30)
    half = np.arange(len(y)) % 2 == 0
    x[half, y[half]] = np.float32(1e30)
    out.append(("+-1e30 entries, C=100", x, y))
    # ties: integer logits in [-2, 2] (many tied maxima), and constant rows (loss = log C)
    x = rng.integers(-2, 3, size=(100 // k, 1000)).astype(np.float32)
    x[::4] = np.float32(5.25)
    y = rng.integers(0, 1000, size=len(x), dtype=np.int64)
    out.append(("ties, integer logits / constant rows, C=1000", x, y))
    # offset: N(0, 3) + 1e4 (float32 spacing 2**-10 there)
    x, y = normal(200 // k, 1000)
    x += np.float32(1e4)
    out.append(("offset +1e4, C=1000", x, y))
    return out


# --------------------------------------------------------------------------- contenders


def run_engine(logits: np.ndarray, labels: np.ndarray, reduction: str, path: str | None = None):
    """(rounded loss as float64, fallbacks, seconds spent in the API call before evaluation);
    ``path`` 'numba' or 'numpy' picks the engine's path (default: numba where installed)."""
    if path is not None:
        xengine.USE_ACCEL = path == "numba"
    try:
        return _run_engine(logits, labels, reduction, path)
    finally:
        xengine.USE_ACCEL = True


def _run_engine(logits, labels, reduction, path):
    t0 = time.perf_counter()
    if reduction == "none":
        e = ftf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    else:
        e = ftf.compat.v1.losses.sparse_softmax_cross_entropy(
            labels, logits, reduction="weighted_sum_over_batch_size")
    t1 = time.perf_counter()
    loss = e["loss"].rounded64
    engine = getattr(e, "engine", None)
    if path is not None and engine is not None:
        assert engine.accel == (path == "numba"), "the engine did not take the path asked for"
    return loss, (engine.fallbacks if engine is not None else None), t1 - t0


def run_exact(logits: np.ndarray, labels: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        e = xtf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    else:
        e = xtf.compat.v1.losses.sparse_softmax_cross_entropy(
            labels, logits, reduction="weighted_sum_over_batch_size")
    return e["loss"].rounded64


def run_torch(logits: np.ndarray, labels: np.ndarray, reduction: str) -> np.ndarray:
    out = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels),
                                            reduction=reduction)
    return out.numpy()


def run_naive(logits: np.ndarray, labels: np.ndarray, reduction: str) -> np.ndarray:
    x = logits
    m = x.max(axis=1)
    lse = np.log(np.sum(np.exp(x - m[:, None]), axis=1)) + m
    loss = lse - x[np.arange(x.shape[0]), labels]
    return loss.mean(dtype=np.float32) if reduction == "mean" else loss


RUNNERS = {"numba": lambda x, y, r: run_engine(x, y, r, "numba"),
           "numpy": lambda x, y, r: run_engine(x, y, r, "numpy"),
           "torch": run_torch, "naive": run_naive}


def engines() -> tuple[str, ...]:
    """The engine paths measurable here: numba's only where it is installed."""
    return ENGINES if xaccel.enabled() else ("numpy",)


def contenders() -> tuple[str, ...]:
    return engines() + (("torch",) if torch is not None else ()) + ("naive",)


def others() -> tuple[str, ...]:
    return tuple(c for c in contenders() if c not in ENGINES)


# --------------------------------------------------------------------------- timing


def timed(fn, *args):
    """(result, wall seconds, CPU seconds, of which kernel seconds) of one call, with the
    collector off (as timeit). The kernel part is mostly page faults of fresh arrays."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        s0 = os.times().system
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args)
        w1, c1 = time.perf_counter(), time.process_time()
        s1 = os.times().system
    finally:
        if was_enabled:
            gc.enable()
    return out, w1 - w0, c1 - c0, s1 - s0


def copy_bandwidth(nbytes: int, repeats: int) -> dict:
    """GB/s of ``np.copyto`` between two float32 arrays of ``nbytes`` (bytes copied per second;
    the memory traffic is twice that: one read and one write)."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in
    wall, cpu = [], []
    for _ in range(max(3, repeats)):
        _, w, c, _ = timed(np.copyto, dst, src)
        wall.append(w)
        cpu.append(c)
    del src, dst
    return {"bytes": nbytes, "wall_s": wall, "cpu_s": cpu,
            "gb_per_s": {"cpu": nbytes / statistics.median(cpu) / 1e9,
                         "wall": nbytes / statistics.median(wall) / 1e9}}


def bench_shape(n: int, c: int, repeats: int, seed: int, copy_gbs: dict) -> list[dict]:
    logits, labels = make_inputs(n, c, seed)
    names = contenders()
    engs = engines()
    for red in REDUCTIONS:  # warm-up on two rows: imports, first-call caches, code paths
        for name in names:
            RUNNERS[name](logits[:2], labels[:2], red)
    times = {(red, name, clk): [] for red in REDUCTIONS for name in names for clk in CLOCKS}
    plan_s = {(red, e): [] for red in REDUCTIONS for e in engs}
    sys_s = {(red, e): [] for red in REDUCTIONS for e in engs}
    fallbacks = {(red, e): None for red in REDUCTIONS for e in engs}
    agree = {}
    paths_identical = {red: True for red in REDUCTIONS}
    for rep in range(repeats):
        for red in REDUCTIONS:
            outs = {}
            for name in names:
                out, w, cpu, ksys = timed(RUNNERS[name], logits, labels, red)
                times[(red, name, "wall")].append(w)
                times[(red, name, "cpu")].append(cpu)
                if name in engs:
                    out, fallbacks[(red, name)], p = out
                    plan_s[(red, name)].append(p)
                    sys_s[(red, name)].append(ksys)
                if rep == 0:
                    outs[name] = out
                del out
            if rep == 0 and len(engs) > 1:  # the two paths must give the same answers
                paths_identical[red] &= bool(np.array_equal(outs[engs[0]], outs[engs[1]],
                                                            equal_nan=True))
            if rep == 0 and red == "none":  # random data: how often torch / naive differ
                ref = outs[engs[0]].astype(np.float32)
                agree = {k: int(np.count_nonzero(v != ref)) for k, v in outs.items()
                         if k not in engs}
            del outs
        log(f"[{n}, {c}] repeat {rep + 1}/{repeats}")
    nbytes = logits.nbytes
    del logits, labels
    results = []
    for red in REDUCTIONS:
        r = {"rows": n, "classes": c, "reduction": red, "input_bytes": nbytes,
             "engines": list(engs), "engine_paths_identical": paths_identical[red]}
        for name in names:
            for clk in CLOCKS:
                ts = times[(red, name, clk)]
                r[f"{name}_{clk}_s"] = ts
                r[f"{name}_{clk}_median_s"] = statistics.median(ts)
                r[f"{name}_{clk}_rows_per_s"] = n / statistics.median(ts)
        for e in engs:
            r[f"{e}_fallbacks"] = fallbacks[(red, e)]
            r[f"{e}_api_call_wall_s"] = plan_s[(red, e)]
            r[f"{e}_kernel_cpu_s"] = sys_s[(red, e)]
            for clk in CLOCKS:
                eng = r[f"{e}_{clk}_rows_per_s"]
                for other in others():
                    r[f"{e}_over_{other}_{clk}"] = eng / r[f"{other}_{clk}_rows_per_s"]
                gbs = nbytes / r[f"{e}_{clk}_median_s"] / 1e9
                r[f"{e}_input_gb_per_s_{clk}"] = gbs
                r[f"{e}_fraction_of_copy_bw_{clk}"] = gbs / copy_gbs[clk]
            r[f"{e}_api_call_share_wall"] = (statistics.median(plan_s[(red, e)])
                                             / r[f"{e}_wall_median_s"])
            cpu_total = sum(times[(red, e, "cpu")])  # os.times ticks at 10 ms: use sums
            r[f"{e}_kernel_share_cpu"] = sum(sys_s[(red, e)]) / cpu_total if cpu_total >= 1.0 \
                else None
            if red == "none":
                r[f"{e}_fallbacks_per_row"] = fallbacks[(red, e)] / n
        if red == "none":
            r["elements_differing_from_engine"] = agree
        results.append(r)
    return results


def bench_combined(n: int, repeats: int, seed: int) -> dict:
    """Rows/s of the combined oracle (engine + its fallbacks) at C = 10, reduction none."""
    logits, labels = make_inputs(n, 10, seed, tag=1)
    run_engine(logits[:2], labels[:2], "none")
    wall, cpu, fb = [], [], []
    for _ in range(repeats):
        (_, f, _), w, c, _ = timed(run_engine, logits, labels, "none")
        wall.append(w)
        cpu.append(c)
        fb.append(f)
    rps = {"cpu": n / statistics.median(cpu), "wall": n / statistics.median(wall)}
    return {"rows": n, "classes": 10, "reduction": "none", "cpu_s": cpu, "wall_s": wall,
            "fallbacks": fb, "rows_per_s": rps, "goal_rows_per_s": GOAL_COMBINED_C10,
            "met_cpu": rps["cpu"] >= GOAL_COMBINED_C10}


def bench_fallback_rate(sizes, seed: int) -> list[dict]:
    """Fallbacks per row of the engine (reduction none) on fresh random rows, for C <= 1000,
    on enough rows to resolve the 1e-5/row goal; evaluated in chunks to bound memory."""
    out = []
    for c, n in sizes:
        fb, t0 = 0, time.process_time()
        chunk = max(1, min(n, (64 << 20) // (4 * c)))
        for i, lo in enumerate(range(0, n, chunk)):
            logits, labels = make_inputs(min(chunk, n - lo), c, seed, tag=100 + i)
            fb += run_engine(logits, labels, "none")[1]
        out.append({"classes": c, "rows": n, "fallbacks": fb, "per_row": fb / n,
                    "upper_95": (fb + 3.0) / n if fb == 0 else None,  # rule of three
                    "cpu_s": time.process_time() - t0})
        log(f"fallback rate: C={c}, {n} rows")
    return out


def fallback_lines(results: list[dict]) -> list[str]:
    out = [f"engine fallback rate on random rows (reduction none; goal <= "
           f"{GOAL_FALLBACK_PER_ROW:g}/row for C <= 1000):"]
    for r in results:
        n, fb = r["rows"], r["fallbacks"]
        if fb / n > GOAL_FALLBACK_PER_ROW:
            verdict = "NOT MET"
        elif r["upper_95"] is not None and r["upper_95"] > GOAL_FALLBACK_PER_ROW:
            verdict = f"not resolved (0 seen; 95% bound {r['upper_95']:.1e})"
        else:
            verdict = "MET" + (f" (0 seen; 95% bound {r['upper_95']:.1e})"
                               if r["upper_95"] is not None else "")
        out.append(f"  C = {r['classes']:<5} {n:>9} rows: {fb} fallbacks = {fb / n:.2e}/row: "
                   f"{verdict}")
    return out


# --------------------------------------------------------------------------- accuracy


def ulp_errors(value: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|value - exact| in units of the float32 ulp of the correctly rounded ``exact``
    (``np.spacing`` of |exact| as float32); 0 where both are the same NaN or infinity,
    inf where only one of them is."""
    v = np.asarray(value, dtype=np.float64).ravel()
    r = np.asarray(exact, dtype=np.float64).ravel()
    ulp = np.spacing(np.abs(r).astype(np.float32)).astype(np.float64)
    with np.errstate(all="ignore"):
        err = np.abs(v - r) / ulp
    same = (v == r) | (np.isnan(v) & np.isnan(r))
    err = np.where(same, 0.0, err)
    return np.where(np.isfinite(err), err, np.inf)


def bench_accuracy(seed: int, quick: bool) -> list[dict]:
    names = contenders()
    results = []
    for label, x, y in adversarial_sets(seed, quick):
        for red in REDUCTIONS:
            t0 = time.process_time()
            exact = run_exact(x, y, red)
            t_exact = time.process_time() - t0
            row = {"set": label, "rows": int(x.shape[0]), "classes": int(x.shape[1]),
                   "reduction": red, "exact_cpu_s": t_exact, "exact_min": float(np.min(exact)),
                   "exact_max": float(np.max(exact))}
            for name in names:
                out = RUNNERS[name](x, y, red)
                if name in ENGINES:
                    out, row[f"{name}_fallbacks"], _ = out
                err = ulp_errors(out, exact)
                row[f"{name}_max_ulp"] = float(err.max())
                row[f"{name}_median_ulp"] = float(np.median(err))
            results.append(row)
        log(f"accuracy: {label}")
    return results


# --------------------------------------------------------------------------- profile


def profile_shape(n: int, c: int, seed: int, top: int = 25) -> None:
    """cProfile of the engine on one shape, both reductions (numpy calls are charged to the
    Python function that makes them)."""
    logits, labels = make_inputs(n, c, seed)
    for red in REDUCTIONS:
        run_engine(logits[:2], labels[:2], red)
        prof = cProfile.Profile()
        t0 = time.process_time()
        prof.enable()
        _, fb, api_s = run_engine(logits, labels, red)
        prof.disable()
        total = time.process_time() - t0
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
        print(f"=== cProfile: engine, [{n}, {c}], reduction {red}: {total:.3f} s CPU "
              f"(API call before evaluation {api_s:.3f} s wall), fallbacks {fb}")
        print(buf.getvalue())


# --------------------------------------------------------------------------- report


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def source_state() -> str:
    """The git commit of this checkout, and whether src/ has uncommitted changes (the engine
    is measured as it is in the working tree)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, text=True,
                              capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "../src"], cwd=here,
                               text=True, capture_output=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"commit {head}" + (" + uncommitted changes in src/" if dirty else "")


def header_lines(args, repeats: int, copy: dict) -> list[str]:
    tv = f"torch {torch.__version__} (threads {torch.get_num_threads()})" if torch else \
        "torch not installed (its column is left out)"
    return [
        "xentconf engine benchmark: xentconf.oracle.fast, sparse softmax cross-entropy, float32",
        f"  python {platform.python_version()}, numpy {np.__version__}, {tv}; "
        f"xentconf {source_state()}",
        f"  machine: {platform.machine()}, {cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"load average at start {os.getloadavg()[0]:.2f}; single process, "
        + ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARS),
        f"  inputs: logits ~ N(0, sd 3) float32, labels uniform int64 (seed {args.seed}); "
        f"batch scale {args.scale:g} (rows = round(scale * N)); fresh Expectation per call",
        f"  timing: median of {repeats} repeat(s), CPU time (process_time) and wall time "
        "(perf_counter), garbage collector off; the contenders alternate in each repeat",
        "  engine paths: 'numba' = the compiled kernel (xentconf.oracle.accel, numba "
        f"{_numba_version()}), 'numpy' = the pure-numpy path (XENTCONF_ACCEL=0); both = API "
        "call + e['loss'].rounded64 (semantics, plan, evaluation, certification, "
        "fallbacks); ratios are engine rows/s / other rows/s (> 1: the engine is faster)",
        f"  copy bandwidth: np.copyto of a {copy['bytes'] / 2**30:g} GiB float32 array: "
        f"{copy['gb_per_s']['cpu']:.2f} GB/s (CPU time), {copy['gb_per_s']['wall']:.2f} GB/s "
        "(wall) copied; memory traffic is twice that",
        "  GB/s = float32 input bytes (read once) / engine time; '%copy' = that / the "
        "copy GB/s on the same clock (the fraction of the machine's memory bandwidth reached)",
    ] + (["  QUICK MODE: tiny sizes for smoke testing; the numbers are not meaningful"]
         if args.quick else [])


def speed_table(results: list[dict], clk: str) -> list[str]:
    names = contenders()
    engs = engines()
    head = f"{'shape':>16} {'red':>4} " + "".join(f"{n + ' rows/s':>14}" for n in names)
    for e in engs:
        head += "".join(f"{e + '/' + o:>12}" for o in others())
        head += f"{e + ' GB/s':>12}{'%copy':>7}"
    out = [f"rows/s by {'CPU time' if clk == 'cpu' else 'wall time'}:", head, "-" * len(head)]
    for r in results:
        shape = f"[{r['rows']}, {r['classes']}]"
        line = f"{shape:>16} {r['reduction']:>4} "
        line += "".join(f"{fmt_rate(r[f'{n}_{clk}_rows_per_s']):>14}" for n in names)
        for e in engs:
            line += "".join(f"{r[f'{e}_over_{o}_{clk}']:>11.3f}x" for o in others())
            line += f"{r[f'{e}_input_gb_per_s_{clk}']:>12.3f}"
            line += f"{100 * r[f'{e}_fraction_of_copy_bw_{clk}']:>6.1f}%"
        out.append(line)
    return out


def engine_lines(results: list[dict]) -> list[str]:
    out = ["engine on the random data: fallbacks (elements handed to the exact tier); 'API "
           "call' = share of the engine's wall time spent before evaluation (semantics, "
           "plan); 'sys' = system share of its CPU time (page faults of fresh arrays, "
           "mostly); 'paths identical' = numba and numpy gave the same answers"]
    for r in results:
        shape = f"[{r['rows']}, {r['classes']}] {r['reduction']}"
        n = r["rows"]
        parts = []
        for e in r["engines"]:
            fb = r[f"{e}_fallbacks"]
            ks = r[f"{e}_kernel_share_cpu"]
            ks = "n/a (<1 s)" if ks is None else f"{100 * ks:.0f}%"
            part = (f"{e}: API call {100 * r[f'{e}_api_call_share_wall']:4.1f}%, sys {ks}, "
                    f"fallbacks {fb}")
            if r["reduction"] == "none":
                part += f" = {fb / n:.2e}/row"
            parts.append(part)
        line = f"  {shape:>21}: " + "; ".join(parts)
        if len(r["engines"]) > 1:
            line += f"; paths identical: {'yes' if r['engine_paths_identical'] else 'NO'}"
        if r["reduction"] == "none":
            diff = ", ".join(f"{k} {v}" for k, v in r["elements_differing_from_engine"].items())
            line += f"; differing from the engine: {diff} of {n}"
        out.append(line)
    return out


def accuracy_lines(results: list[dict]) -> list[str]:
    names = contenders()
    engs = engines()
    head = f"{'adversarial set':<46} {'rows':>4} {'red':>4} " + \
        "".join(f"{n + ' max':>14}{'med':>9}" for n in names) + \
        "".join(f"{e + ' fb':>9}" for e in engs) + f"{'exact s':>9}"
    out = ["accuracy: error in float32 ulps of the correctly rounded value (exact tier)",
           head, "-" * len(head)]

    def u(v):
        return "inf" if v == np.inf else f"{v:.3g}"

    for r in results:
        line = f"{r['set']:<46} {r['rows']:>4} {r['reduction']:>4} "
        line += "".join(f"{u(r[f'{n}_max_ulp']):>14}{u(r[f'{n}_median_ulp']):>9}" for n in names)
        line += "".join(f"{r[f'{e}_fallbacks']!s:>9}" for e in engs)
        line += f"{r['exact_cpu_s']:>9.2f}"
        out.append(line)
    bad = sorted({r["set"] for r in results for e in engs if r[f"{e}_max_ulp"] != 0})
    out.append(f"  engine ({', '.join(engs)}): 0 ulps everywhere (correctly rounded)" if not bad
               else f"  ENGINE NOT CORRECTLY ROUNDED on: {bad}")
    return out


def _numba_version() -> str:
    try:
        import numba
    except ImportError:
        return "not installed: the numba column is left out"
    return numba.__version__ if xaccel.enabled() else f"{numba.__version__}, switched off"


def combined_lines(cb: dict, quick: bool) -> list[str]:
    rps = cb["rows_per_s"]
    verdict = "MET" if cb["met_cpu"] else "NOT MET"
    if quick:
        verdict += " (quick mode: indicative only)"
    return [f"combined oracle (engine + fallbacks), C = 10, reduction none, {cb['rows']} rows: "
            f"{fmt_rate(rps['cpu'])} rows/s CPU, {fmt_rate(rps['wall'])} rows/s wall, "
            f"fallbacks {max(cb['fallbacks'])}",
            f"  goal >= {GOAL_COMBINED_C10:,.0f} rows/s on one core (CPU time): {verdict}"]


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, one repeat unless --repeats is given (smoke test)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every shape's batch dimension by F (default 1.0; e.g. 0.25 "
                        "when memory or time is short)")
    p.add_argument("--repeats", type=int, default=None,
                   help="repeats per measurement; the median is reported (default: 3, or 1 "
                        "with --quick)")
    p.add_argument("--seed", type=int, default=0, help="input seed (default: 0)")
    p.add_argument("--json", metavar="PATH", help="also write the numbers as JSON to PATH")
    p.add_argument("--profile", type=int, metavar="C", default=None,
                   help="only profile the engine (cProfile) on the shape with C classes, "
                        "both reductions, and exit")
    args = p.parse_args(argv)
    if not args.scale > 0:
        p.error("--scale: must be positive")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats: must be at least 1")
    shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.profile is not None and args.profile not in [c for _, c in shapes]:
        p.error(f"--profile: C must be one of {[c for _, c in shapes]}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    shapes = [(max(1, round(n * args.scale)), c)
              for n, c in (QUICK_SHAPES if args.quick else SHAPES)]
    if args.profile is not None:
        n, c = next(s for s in shapes if s[1] == args.profile)
        profile_shape(n, c, args.seed)
        return 0
    t_start = time.perf_counter()
    copy = copy_bandwidth(QUICK_COPY_BYTES if args.quick else COPY_BYTES, repeats)
    for line in header_lines(args, repeats, copy):
        print(line)
    print(flush=True)
    results = []
    for n, c in shapes:
        results += bench_shape(n, c, repeats, args.seed, copy["gb_per_s"])
    for clk in CLOCKS:
        for line in speed_table(results, clk):
            print(line)
        print()
    for line in engine_lines(results):
        print(line)
    print(flush=True)
    combined = bench_combined(QUICK_COMBINED_ROWS if args.quick else COMBINED_ROWS,
                              repeats, args.seed)
    for line in combined_lines(combined, args.quick):
        print(line)
    print(flush=True)
    fb_sizes = [(c, max(1, round(n * args.scale)))
                for c, n in (QUICK_FALLBACK_SIZES if args.quick else FALLBACK_SIZES)]
    fallback = bench_fallback_rate(fb_sizes, args.seed)
    for line in fallback_lines(fallback):
        print(line)
    print(flush=True)
    accuracy = bench_accuracy(args.seed, args.quick)
    for line in accuracy_lines(accuracy):
        print(line)
    elapsed = time.perf_counter() - t_start
    print(f"\ntotal {elapsed:.0f} s wall; load average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        doc = {
            "benchmark": "xentconf engine (xentconf.oracle.fast), sparse softmax cross-entropy",
            "argv": sys.argv,
            "quick": args.quick,
            "scale": args.scale,
            "repeats": repeats,
            "seed": args.seed,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__ if torch else None,
            "numba": _numba_version(),
            "machine": platform.machine(),
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "source": source_state(),
            "threads": {v: os.environ[v] for v in THREAD_VARS},
            "copy_bandwidth": copy,
            "speed": results,
            "combined_c10": combined,
            "fallback_rate": fallback,
            "accuracy": accuracy,
            "total_wall_s": elapsed,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

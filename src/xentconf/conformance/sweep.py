"""Exhaustive sweeps of the C = 2 sparse losses.

Two families of rows live here (the driver that runs them on Dask is
:mod:`xentconf.conformance.sweeper`):

* the pytest suite's shards (below): every 16-bit value of one logit against :data:`GRID`;
* ``xentconf sweep``'s *pair spaces* (:func:`pair_rows`): for float16 and bfloat16 every
  pair of bit patterns ``(a, b)`` (2³² pairs), for float32 every bit pattern of one logit
  against :data:`GRID` (2³² × 8 pairs); each pair gives two rows, the label on either
  logit. A pair index ``p`` is ``a << 16 | b`` (16-bit) or ``v * len(GRID) + g``
  (float32), so a slice of indices is a slice of the sweep.

The pytest shards:

For C = 2, the sparse loss (``tf.nn.sparse_softmax_cross_entropy_with_logits``) and the raw
op (``tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits``) are evaluated on the rows
``[v, g]`` for all 65,536 bit patterns ``v`` of the dtype (±0, subnormals, ±inf and NaNs
included) against a fixed grid of values ``g`` of the other logit, with the label on either
logit: 65,536 × |grid| × 2 rows per API and dtype. The rows are split into shards (one
test each, so xdist workers share them), each judged in one vectorized call of the
engine; the exact values the verdict consults come from the same rows in float64, where
the engine's double-double path is cheap and the exact value of the formula is the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from xentconf.protocol import API_SHORT
from xentconf.vocabulary import PAIR_DTYPES, SWEEP_APIS

__all__ = ["GRID", "PAIR_DTYPES", "SHARDS", "SWEEP_APIS", "SWEEP_DTYPES", "SweepShard",
           "map_axes", "map_bins", "pair_rows", "pair_total", "parse_pairs", "shard_rows",
           "sweep_shards"]

SWEEP_DTYPES = ("float16", "bfloat16")
#: The other logit's values (exact in both dtypes).
GRID = (0.0, 1.0, -1.0, 0.5, -3.0, 8.0, -20.0, 96.0)
SHARDS = 8
_BITS = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


@dataclass(frozen=True)
class SweepShard:
    id: str
    api: str
    dtype: str
    index: int
    count: int


def sweep_shards(target: str, device: str, api: str, dtype: str) -> list[SweepShard]:
    return [SweepShard(f"{target}-{device}-{dtype}-{API_SHORT[api]}-sweep{i + 1}of{SHARDS}",
                       api, dtype, i, SHARDS) for i in range(SHARDS)]


def shard_rows(shard: SweepShard) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N, 2] of the dtype, labels [N] int32) of one shard."""
    per = 65536 // shard.count
    bits = np.arange(shard.index * per, (shard.index + 1) * per, dtype=np.uint16)
    v = bits.view(_BITS[shard.dtype])
    g = np.array(GRID, dtype=np.float32).astype(_BITS[shard.dtype])
    vv = np.repeat(v, len(g) * 2)
    gg = np.tile(np.repeat(g, 2), v.size)
    label = np.tile(np.array([0, 1], np.int32), v.size * len(g))
    x = np.stack([vv, gg], axis=1)
    return x, label


# ------------------------------------------------------------------ pair spaces

MAP_BINS = 64  # sign and the top five exponent bits of a logit


def pair_total(dtype: str) -> int:
    """How many pairs the sweep of ``dtype`` has."""
    return (1 << 32) * (1 if dtype in _BITS else len(GRID))


def parse_pairs(text: str | None, dtype: str) -> tuple[int, int]:
    """``START:STOP`` (pair indices, decimal or 0x hex; either may be left out), or ``all``,
    as a range within the dtype's pair space; ValueError with what to fix."""
    total = pair_total(dtype)
    if not text or text.strip() == "all":
        return 0, total
    m = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+)?\s*:\s*(0x[0-9a-fA-F]+|\d+)?\s*", text)
    if not m:
        raise ValueError(f"{text!r}: give all, or START:STOP, pair indices such as "
                         "0:65536 or 0x3c000000:0x3c010000")
    start = int(m.group(1), 0) if m.group(1) else 0
    stop = int(m.group(2), 0) if m.group(2) else total
    if not 0 <= start < stop <= total:
        raise ValueError(f"{text!r}: need 0 <= START < STOP <= {total} (the {dtype} sweep "
                         f"has {total} pairs)")
    return start, stop


def _pair_bits(dtype: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    p = np.arange(start, stop, dtype=np.uint64)
    if dtype in _BITS:
        return (p >> np.uint64(16)).astype(np.uint16), (p & np.uint64(0xFFFF)).astype(np.uint16)
    return (p // np.uint64(len(GRID))).astype(np.uint32), \
        (p % np.uint64(len(GRID))).astype(np.uint32)


def pair_rows(dtype: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(logits [2n, 2] of ``dtype``, labels [2n] int32) of pairs ``start`` to ``stop``:
    row ``2k + l`` is pair ``start + k`` with label ``l``."""
    a, b = _pair_bits(dtype, start, stop)
    if dtype in _BITS:
        va, vb = a.view(_BITS[dtype]), b.view(_BITS[dtype])
    else:
        va, vb = a.view(np.float32), np.asarray(GRID, np.float32)[b]
    x = np.repeat(np.stack([va, vb], axis=1), 2, axis=0)
    labels = np.tile(np.array([0, 1], np.int32), a.size)
    return x, labels


def map_bins(dtype: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """The map cell (x: the first logit, y: the second) of every pair: sign and top five
    exponent bits of a 16-bit or float32 logit (64 bins); the grid value's index for the
    float32 sweep's second logit."""
    a, b = _pair_bits(dtype, start, stop)
    if dtype in _BITS:
        return (a >> 10).astype(np.intp), (b >> 10).astype(np.intp)
    return (a >> 26).astype(np.intp), b.astype(np.intp)


def _bin_label(dtype: str, k: int) -> str:
    sign = "−" if k >> 5 else "+"
    e5 = k & 31
    if dtype == "float16":
        if e5 == 31:
            return f"{sign}inf/nan"
        return f"{sign}0/sub" if e5 == 0 else f"{sign}2^{e5 - 15}"
    if e5 == 31:
        return f"{sign}2^{e5 * 8 - 127}…inf/nan"
    return f"{sign}0…2^{e5 * 8 + 7 - 127}" if e5 == 0 else f"{sign}2^{e5 * 8 - 127}"


def map_axes(dtype: str) -> tuple[list[str], list[str]]:
    """The labels of the map's x bins (the first logit) and y bins (the second)."""
    xs = [_bin_label(dtype, k) for k in range(MAP_BINS)]
    if dtype in _BITS:
        return xs, list(xs)
    return xs, [repr(g) for g in GRID]

"""Exhaustive 16-bit sweeps: every float16 and every bfloat16 value of one logit.

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

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from xentconf.protocol import API_IDS, API_SHORT

__all__ = ["GRID", "SHARDS", "SWEEP_APIS", "SWEEP_DTYPES", "SweepShard", "shard_rows",
           "sweep_shards"]

SWEEP_APIS = (API_IDS[0], API_IDS[2])  # raw sparse op, tf.nn sparse loss
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

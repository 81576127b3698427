"""Arrays in results files and reproducers: written compactly when mostly one value, and
rebuilt bit for bit by the reproducer's own ``arr`` (run here exactly as a script runs it)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from xentconf.conformance.reproducer import _PRELUDE, _literal, array_json


def rebuild(a: np.ndarray) -> np.ndarray:
    ns: dict = {}
    exec(_PRELUDE, ns)  # noqa: S102 - the reproducer's own prelude
    return eval(_literal(a), ns)  # noqa: S307


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
def test_mostly_one_value_is_compact_and_bit_exact(dtype):
    a = np.zeros((2, 50_000), dtype)
    a[1, 7] = np.asarray(-0.0, dtype)
    a[0, 3] = np.asarray(np.inf, dtype)
    a[1, 49_999] = np.asarray(np.finfo(np.float16).smallest_subnormal, np.float64).astype(dtype)
    a[0, 0] = np.asarray(1.5, dtype)
    j = array_json(a)
    assert "data" not in j and j["fill"] == "0x0.0p+0" and len(j["entries"]) == 4
    assert j["shape"] == [2, 50_000]
    b = rebuild(a)
    assert b.dtype == a.dtype and b.shape == a.shape and bits(b) == bits(a)


def test_a_varied_array_stays_plain_and_a_nan_fill_works():
    a = np.arange(100, dtype=np.float32) / 7
    assert "data" in array_json(a) and bits(rebuild(a)) == bits(a)
    n = np.full(80, np.nan, np.float64)
    n[5] = 2.0
    j = array_json(n)
    assert j["fill"] == "nan" and j["entries"] == [[5, "0x1.0000000000000p+1"]]
    b = rebuild(n)
    assert np.isnan(b[0]) and b[5] == 2.0 and np.isnan(b).sum() == 79


def test_integer_labels_and_the_entry_limit():
    y = np.zeros(1000, np.int64)
    y[[10, 20]] = [-1, 2**40]
    j = array_json(y)
    assert j == {"dtype": "int64", "shape": [1000], "fill": 0,
                 "entries": [[10, -1], [20, 2**40]]}
    assert bits(rebuild(y)) == bits(y)
    capped = array_json(y, limit=1)
    assert capped["truncated"] and capped["entries"] == [[10, -1]]

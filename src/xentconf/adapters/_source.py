"""Helpers for the adapters' :meth:`~xentconf.protocol.Target.snippet`: Python source for
the values of one call.

A snippet runs where ``np``, ``args``, ``init`` and ``upstream`` exist (the call's values),
so an argument is written either as a plain literal (a string, bool, int or float: the
reduction, an axis, a Python weight) or as a reference into ``args`` / ``init``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["indent", "is_floating", "kwargs", "literal", "numpy_dtype", "value"]


def literal(v: Any) -> str | None:
    """Python source evaluating to ``v`` itself (an equal value of the same type) for a
    str, bool, int, float or None; None for anything else (arrays, numpy scalars, lists)."""
    if v is None or type(v) in (bool, int, str):
        return repr(v)
    if type(v) is float:
        return repr(v) if math.isfinite(v) else f"float({str(v)!r})"
    return None


def value(name: str, v: Any, namespace: str = "args") -> str:
    """``v`` as a literal when it is one, else ``namespace[name]``."""
    lit = literal(v)
    return lit if lit is not None else f"{namespace}[{name!r}]"


def kwargs(mapping: Mapping[str, Any], namespace: str, **replace: str) -> str:
    """``k=v, ...`` for a call with ``mapping``'s items (``replace`` gives the source of some
    of them); ``**namespace`` when a key is not an identifier."""
    if not all(isinstance(k, str) and k.isidentifier() for k in mapping):
        return f"**{namespace}"
    return ", ".join(f"{k}={replace[k] if k in replace else value(k, v, namespace)}"
                     for k, v in mapping.items())


def numpy_dtype(dt: np.dtype) -> str:
    """Source for a numpy dtype (``np.float32``; ``ml_dtypes.bfloat16``)."""
    dt = np.dtype(dt)
    if dt.name == "bfloat16":
        return "ml_dtypes.bfloat16"
    if dt.name == "bool":
        return "np.bool_"
    return f"np.{dt.name}"


def is_floating(v: Any) -> bool:
    """Whether ``v`` is a numpy array (or scalar) of a floating dtype, bfloat16 included."""
    if not isinstance(v, (np.ndarray, np.generic)):
        return False
    dt = np.asarray(v).dtype
    return dt.kind == "f" or dt.name == "bfloat16"


def indent(lines: list[str], n: int = 4) -> list[str]:
    return [" " * n + line if line else line for line in lines]

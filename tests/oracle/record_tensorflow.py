"""Record what TensorFlow 2.21 returns or raises on every case of ``tf_cases.py``.

    python -m tests.oracle.record_tensorflow [--mode eager|xla] [--out DIR]

(``nox -s record-tensorflow`` installs TensorFlow, tf_keras and Keras 3 in its own
environment and runs this.) Each mode is run through the TensorFlow target
(``xentconf.adapters.tensorflow``: eager on ``/CPU:0``, or one
``tf.function(jit_compile=True)`` there), with ``tf_keras`` or Keras 3 as each case asks.
A call is made with the upstream gradient ones (of the loss's shape and dtype) whenever
the logits argument is a float array, so the gradient is recorded; a call whose gradient
fails is recorded without it (``grad_error``), one that fails outright as raising (the
error's class and message, with no file names). The files (``<mode>.json.gz``, format in
``tf_cases.py``) record the versions they came from; with ``PYTHONHASHSEED=0`` (as the nox
session sets it) an unchanged TensorFlow reproduces them byte for byte.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from tests.oracle.tf_cases import (
    API_IDS,
    DIFF_ARG,
    DTYPES,
    FIXTURES,
    FORMAT,
    MODES,
    TFResult,
    all_cases,
    encode_case,
    encode_result,
    recorded_in,
)

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _versions() -> dict:
    import keras
    import tensorflow as tf
    import tf_keras

    return {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def error_text(exc: BaseException) -> str:
    """The error's message, without the traceback of the traced function that
    ``tf.function`` puts before it ("in user code: File ..."), which names files of the
    recording machine; any other file name is blanked too."""
    text = str(exc)
    if text.startswith("in user code:"):
        blocks = [b for b in text.split("\n\n") if b.strip()]
        text = blocks[-1].strip()
    return re.sub(r'File "[^"]*"', 'File "..."', text)[:600]


def _differentiable(case) -> bool:
    x = case.args.get(DIFF_ARG[case.api])
    return isinstance(x, (np.ndarray, np.generic)) and np.asarray(x).dtype.name in DTYPES


def record_one(targets: dict, case, profile: str) -> tuple[TFResult, np.ndarray | None]:
    """TensorFlow's answer to ``case`` in one mode, and the upstream gradient it was given."""
    from xentconf.protocol import Call, Setup

    api = API_IDS[case.api]
    init = dict(case.init or {})
    target = targets[case.keras or "keras2"]
    setup = Setup(api, device="cpu", profile=profile, init=tuple(sorted(init.items())),
                  grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            runner = target.prepare(setup)
            out = runner.run(Call(api, dict(case.args), init))
        except Exception as exc:  # noqa: BLE001 - any error is TensorFlow rejecting the input
            return TFResult(error=type(exc).__name__, message=error_text(exc)), None
        if not _differentiable(case):
            return TFResult(outputs=out), None
        loss = out["loss"]
        up = np.ones(loss.shape, loss.dtype)
        try:
            return TFResult(outputs=runner.run(Call(api, dict(case.args), init, upstream=up))), up
        except Exception as exc:  # noqa: BLE001
            return TFResult(outputs=out,
                            grad_error=f"{type(exc).__name__}: {error_text(exc)}"[:400]), None


def record(mode: str, out_dir: Path) -> Path:
    from xentconf.adapters.tensorflow import TensorFlowTarget

    profile = MODES[mode]
    targets = {"keras2": TensorFlowTarget(keras="keras2"),
               "keras3": TensorFlowTarget(keras="keras3")}
    entries = []
    t0 = time.perf_counter()
    cases = [(g, c) for g, c in all_cases() if recorded_in(mode, g, c)]
    for i, (group, case) in enumerate(cases):
        res, up = record_one(targets, case, profile)
        entries.append({"id": case.id, "group": group,
                        "case": encode_case(case, profile, up), "result": encode_result(res)})
        if (i + 1) % 100 == 0:
            print(f"{mode}: {i + 1}/{len(cases)} ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr)
    doc = {"format": FORMAT, "mode": mode, "profile": profile, "versions": _versions(),
           "cases": entries}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{mode}.json.gz"
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(text.encode("utf-8"))
    raised = sum("raises" in e["result"] for e in entries)
    print(f"{path}: {len(entries)} cases ({raised} raise), {path.stat().st_size} bytes, "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=[*MODES, "all"], default="all")
    ap.add_argument("--out", type=Path, default=FIXTURES)
    ns = ap.parse_args(argv)
    for mode in MODES if ns.mode == "all" else [ns.mode]:
        record(mode, ns.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The oracle as a target: a self-check that must conform.

Each call is answered by :func:`xentconf.oracle.fast.oracle_call`: the correctly rounded
truth
(``OutputExpectation.rounded``, in the output dtype) for ``loss``, ``backprop`` (raw ops)
and ``grad_logits`` (when an upstream gradient is given). Where the oracle says TensorFlow
raises, the runner raises :class:`TensorFlowError` carrying TF's error class name and
message (the exception's class is named after TF's, e.g. ``InvalidArgumentError``).

All three device profiles are emulated on the CPU (``cpu``, ``gpu``, ``xla``), and the
Keras APIs follow Keras 2 (tf_keras) semantics unless ``keras="keras3"``.

Calls run through the oracle's vectorized engine (``xentconf.oracle.fast``), which
certifies every rounding and hands the rare undecided element to the exact tier.

The oracle is imported lazily, inside methods: this is the one adapter allowed to import
``xentconf.oracle`` (its "framework"), and listing targets should not load it.
"""

from __future__ import annotations

import builtins
import importlib.metadata
from functools import cache

import numpy as np

from xentconf.protocol import (
    API_IDS,
    DTYPES,
    FEATURES,
    KERAS_APIS,
    KERAS_VARIANTS,
    PROFILES,
    ApiSupport,
    Call,
    Mode,
    Runner,
    Setup,
    Target,
    TargetError,
    TargetInfo,
)

__all__ = ["ReferenceTarget", "TensorFlowError"]


class TensorFlowError(Exception):
    """TensorFlow would raise here: ``error`` is TF's exception class name, ``message`` its
    message. Raised as a subclass named after ``error`` (see :func:`tensorflow_error`)."""

    def __init__(self, error: str, message: str):
        super().__init__(f"{error}: {message}")
        self.error = error
        self.message = message


@cache
def tensorflow_error(error: str) -> type[TensorFlowError]:
    """The exception class standing for TF's ``error`` (also a subclass of the Python
    built-in of that name, e.g. ``ValueError``, where there is one)."""
    name = error.rsplit(".", 1)[-1]
    builtin = getattr(builtins, name, None)
    bases: tuple[type, ...] = (TensorFlowError,)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        bases += (builtin,)
    return type(name, bases, {"__module__": __name__, "__init__": TensorFlowError.__init__})


def _version() -> str | None:
    try:
        return importlib.metadata.version("xentconf")
    except importlib.metadata.PackageNotFoundError:
        return None


class _ReferenceRunner(Runner):
    def __init__(self, setup: Setup, keras: str):
        self._setup = setup
        self._keras = keras

    def run(self, call: Call) -> dict[str, np.ndarray]:
        from xentconf.oracle.fast import oracle_call

        api = self._setup.api
        if call.api != api:
            raise TargetError(f"this runner was prepared for {api}, not {call.api}")
        init = None
        if api in KERAS_APIS:
            init = dict(call.init) if call.init else dict(self._setup.init)
        exp = oracle_call(api, dict(call.args), init, profile=self._setup.profile,
                          keras=self._keras, upstream=call.upstream)
        if exp.raises is not None:
            raise tensorflow_error(exp.raises.error)(exp.raises.error, exp.raises.message)
        names = ["loss", "backprop"] + (["grad_logits"] if call.upstream is not None else [])
        return {n: exp.outputs[n].rounded for n in names if n in exp.outputs}


class ReferenceTarget(Target):
    """xentconf's own oracle, judged like any other target (it must conform exactly)."""

    name = "reference"

    def __init__(self, keras: str = "keras2"):
        if keras not in KERAS_VARIANTS:
            raise TargetError(f"unknown Keras variant {keras!r}; use one of: "
                              f"{', '.join(KERAS_VARIANTS)}")
        self.keras = keras

    def info(self) -> TargetInfo:
        support = ApiSupport(native=frozenset(FEATURES), dtypes=DTYPES,
                             notes="the oracle's vectorized engine, correctly rounded")
        modes = tuple(Mode("cpu", p, f"TensorFlow's {p} profile, emulated by the oracle")
                      for p in PROFILES)
        return TargetInfo(
            name=self.name,
            available=True,
            version=_version(),
            modes=modes,
            apis=dict.fromkeys(API_IDS, support),
            keras=self.keras,
            description="xentconf's reference oracle (a self-check)",
        )

    def snippet(self, setup: Setup, call: Call) -> str | None:
        """None: this target *is* xentconf's oracle, so a reproducer calls it through
        xentconf; there is no framework call to write out."""
        return None

    def prepare(self, setup: Setup) -> Runner:
        if setup.api not in API_IDS:
            raise TargetError(f"unknown API id {setup.api!r}; use one of: {', '.join(API_IDS)}")
        if setup.device != "cpu" or setup.profile not in PROFILES:
            raise TargetError(f"the reference target runs on cpu with profile "
                              f"{'/'.join(PROFILES)}, not {setup.device}/{setup.profile}")
        return _ReferenceRunner(setup, self.keras)

"""Running a target in a child process, so that it cannot take the run down with it.

A target is native code as often as not; a segfault, an ``abort()``, an endless loop or a
``sys.exit`` inside it must become an outcome (``crash``, ``timeout``), not the end of
the run. :class:`Sandbox` keeps one child process per test process: the child loads the
target by name through the registry, prepares runners and answers calls; the parent
sends a call, waits at most the per-case timeout, and on death or silence records the
outcome, kills what is left, and starts a fresh child for the next call.

``isolate=False`` runs the target in this process instead (faster to debug; no crash or
timeout protection).

Results of a call (:class:`Result`):

* ``("ok", outputs)``    — outputs by name, as numpy arrays;
* ``("raised", Raised)`` — the target rejected the input (any exception);
* ``("error", text)``    — the target malfunctioned (not an array, a wrong tuple) or
  could not be prepared;
* ``("crash", text)``    — the process died (the signal or exit status is given);
* ``("timeout", text)``  — no answer within the time limit.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from xentconf.protocol import Call, Setup, TargetError, TargetOutputError

from .verdict import Raised

__all__ = ["Result", "Sandbox", "TargetSpec", "load_target"]

# The child's first answer can take a while: it imports the framework.
STARTUP_TIMEOUT = 600.0


@dataclass(frozen=True)
class TargetSpec:
    """How to build the target: a name or ``package.module:attr`` and its options."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)


@dataclass
class Result:
    kind: str  # ok | raised | error | crash | timeout
    outputs: dict[str, np.ndarray] | None = None
    raised: Raised | None = None
    text: str = ""
    seconds: float = 0.0


def load_target(spec: TargetSpec):
    """The target, looked up by name through the registry (the one arrow from conformance
    to adapters, declared in the import contracts)."""
    from xentconf.adapters import registry

    return registry.get_target(spec.name, **spec.kwargs)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:2000] if text else "(no message)"


class _Local:
    """The target in this process; the same answers as the child's."""

    def __init__(self, spec: TargetSpec):
        self.spec = spec
        self.target = None
        self.runners: dict[Setup, Any] = {}

    def handle(self, setup: Setup, call: Call) -> tuple:
        if self.target is None:
            self.target = load_target(self.spec)
        runner = self.runners.get(setup)
        if runner is None:
            try:
                runner = self.target.prepare(setup)
            except TargetError as exc:
                if setup.init:  # a Keras constructor rejecting its arguments
                    return ("raised", type(exc).__name__, _one_line(exc))
                return ("error", f"cannot prepare {setup}: {_one_line(exc)}")
            except Exception as exc:
                if setup.init:
                    return ("raised", type(exc).__name__, _one_line(exc))
                return ("error", f"prepare raised {type(exc).__name__}: {_one_line(exc)}")
            self.runners[setup] = runner
        try:
            out = runner.run(call)
        except TargetOutputError as exc:
            return ("error", f"the target's answer is not usable: {_one_line(exc)}")
        except Exception as exc:
            return ("raised", type(exc).__name__, _one_line(exc))
        if not isinstance(out, dict):
            return ("error", f"the runner returned a {type(out).__name__}, not a dict of "
                             "outputs")
        try:
            arrays = {str(k): np.asarray(v) for k, v in out.items()}
        except Exception as exc:
            return ("error", f"an output is not array-like: {_one_line(exc)}")
        for k, v in arrays.items():
            if v.dtype == object:
                return ("error", f"output {k} is not a numeric array (dtype object)")
        return ("ok", arrays)


def _serve(conn, spec: TargetSpec) -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    local = _Local(spec)
    try:
        local.target = load_target(spec)
        conn.send(("ready", ""))
    except BaseException as exc:
        conn.send(("fatal", f"{type(exc).__name__}: {_one_line(exc)}"))
        return
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        try:
            if msg[0] == "info":
                reply = ("info", local.target.info())
            elif msg[0] == "snippet":
                reply = ("snippet", local.target.snippet(msg[1], msg[2]))
            else:
                reply = local.handle(msg[1], msg[2])
        except BaseException as exc:
            reply = ("error", f"harness error in the child: {type(exc).__name__}: "
                              f"{_one_line(exc)}\n{traceback.format_exc()}")
        try:
            conn.send(reply)
        except Exception as exc:  # unpicklable outputs
            conn.send(("error", f"the outputs cannot be sent back: {_one_line(exc)}"))


def _death(code: int | None) -> str:
    if code is None:
        return "the target's process died"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the target's process was killed by {name}"
    return f"the target's process exited with status {code}"


class Sandbox:
    """Calls into a target, isolated in a child process (see the module docstring)."""

    def __init__(self, spec: TargetSpec, *, timeout: float = 60.0, isolate: bool = True):
        self.spec = spec
        self.timeout = float(timeout)
        self.isolate = isolate
        self._local = _Local(spec) if not isolate else None
        self._proc = None
        self._conn = None

    # -------------------------------------------------------------- child management

    def _start(self) -> str | None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.spec), daemon=True,
                           name="xentconf-target")
        proc.start()
        child.close()
        if not parent.poll(STARTUP_TIMEOUT):
            proc.kill()
            proc.join(5)
            return f"the target did not start within {STARTUP_TIMEOUT:.0f} s"
        try:
            kind, text = parent.recv()
        except EOFError:
            proc.join(5)
            return f"{_death(proc.exitcode)} while loading"
        if kind != "ready":
            proc.join(5)
            return f"the target cannot be loaded: {text}"
        self._proc, self._conn = proc, parent
        return None

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
            except Exception:
                pass
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(None)
            except Exception:
                pass
        if self._proc is not None:
            self._proc.join(2)
        self._kill()

    # -------------------------------------------------------------- calls

    def _exchange(self, msg: tuple, limit: float) -> tuple[str, Any]:
        """Send ``msg`` to the child (started afresh if it is not running) and wait at
        most ``limit`` seconds: ``("reply", reply)``, or ``("error" | "crash" |
        "timeout", text)``; after a crash or a timeout the child is gone."""
        if self._proc is None or not self._proc.is_alive():
            if self._proc is not None:
                self._kill()
            problem = self._start()
            if problem is not None:
                return "error", problem
        try:
            self._conn.send(msg)
        except (BrokenPipeError, OSError):
            code = self._proc.exitcode
            self._kill()
            return "crash", _death(code)
        if not self._conn.poll(limit):
            self._kill()
            return "timeout", f"no answer within {limit:g} s"
        try:
            return "reply", self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            code = self._proc.exitcode
            self._kill()
            return "crash", _death(code)

    def call(self, setup: Setup, call: Call, timeout: float | None = None) -> Result:
        """Evaluate ``call`` on a runner prepared for ``setup``."""
        limit = self.timeout if timeout is None else timeout
        t0 = time.perf_counter()
        if self._local is not None:
            reply = self._local.handle(setup, call)
            return self._result(reply, time.perf_counter() - t0)
        kind, value = self._exchange(("call", setup, call), limit)
        seconds = time.perf_counter() - t0
        if kind == "reply":
            return self._result(value, seconds)
        if kind == "timeout":
            value += " (the per-case timeout; raise it with --xentconf-timeout)"
        return Result(kind, text=value, seconds=seconds)

    def _ask(self, msg: tuple, limit: float):
        """Send a non-call request; its answer, or RuntimeError saying why not."""
        if self._local is not None:
            if self._local.target is None:
                self._local.target = load_target(self.spec)
            if msg[0] == "info":
                return self._local.target.info()
            return self._local.target.snippet(msg[1], msg[2])
        kind, value = self._exchange(msg, limit)
        if kind != "reply":
            raise RuntimeError(value)
        if value[0] not in ("info", "snippet"):
            raise RuntimeError(str(value[1]))
        return value[1]

    def info(self):
        """The target's :class:`~xentconf.protocol.TargetInfo` (RuntimeError if the target
        cannot be loaded: the message says why)."""
        return self._ask(("info",), STARTUP_TIMEOUT)

    def snippet(self, setup: Setup, call: Call) -> str | None:
        """The target's standalone source for ``call`` (None if it cannot say or fails)."""
        try:
            return self._ask(("snippet", setup, call), max(self.timeout, 10.0))
        except Exception:
            return None

    @staticmethod
    def _result(reply: tuple, seconds: float) -> Result:
        kind = reply[0]
        if kind == "ok":
            return Result("ok", outputs=reply[1], seconds=seconds)
        if kind == "raised":
            return Result("raised", raised=Raised(reply[1], reply[2]), seconds=seconds)
        return Result("error", text=reply[1], seconds=seconds)

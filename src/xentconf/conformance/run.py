"""``xentconf run``: a conformance run as one command, driving the pytest plugin.

:func:`execute` takes a validated :class:`~xentconf.conformance.options.RunConfig`,
resolves the target before pytest starts (a target that cannot serve is a usage error,
exit 2), then runs pytest in this process on the conformance suite only — with an empty
configuration of its own, so the caller's ``pytest.ini``, ``conftest.py`` files and
``addopts`` cannot change the run — handing the plugin the config as an object. It writes
``OUT/results.json`` and ``OUT/junit.xml``. Exit status: 0 when the target conforms
(known deviations aside), 1 when it does not, 2 on usage errors (a message on stderr says
what to fix), 3 when the harness itself failed (pytest's internal error), 130 when
interrupted (the results file then holds what was done).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .options import RunConfig, UsageError, resolve_target

__all__ = ["EXIT_CONFORMS", "EXIT_FAILS", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_USAGE",
           "execute", "pytest_args"]

EXIT_CONFORMS, EXIT_FAILS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def pytest_args(*, out: Path, workers: str | None = None, verbose: int = 0) -> list[str]:
    """pytest's own command line for a conformance run (the run itself travels as an
    object, not as options)."""
    args = ["-p", "no:cacheprovider", "-p", "no:xentconf", "-p", "xentconf.conformance.plugin",
            "--junitxml", str(out / "junit.xml"), "-o", "junit_family=xunit2",
            "-o", "junit_suite_name=xentconf"]
    if workers not in (None, "0", "1"):
        args += ["-n", str(workers), "--dist", "load"]
    args += ["-v"] * verbose or ["-q"]
    args += ["-rfE", "--tb=no", "--no-header",
             "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    return args


def execute(run: RunConfig, out: Path, *, workers: str | None = None,
            verbose: int = 0) -> int:
    """Resolve the target, then run pytest on the suite alone; map its exit status (module
    docstring). A target that cannot serve prints one line and returns 2."""
    import pytest

    from .plugin import Carried
    from .sandbox import Sandbox

    probe = Sandbox(run.spec, timeout=run.timeout, isolate=run.isolate)
    try:
        resolve_target(run, probe)
    except UsageError as exc:
        print(f"xentconf run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        probe.close()
    from .suite import planned

    if not planned(run):
        print("xentconf run: no tests selected: the target implements none of the chosen "
              "APIs, dtypes and features", file=sys.stderr)
        return EXIT_USAGE
    args = pytest_args(out=out, workers=workers, verbose=verbose)
    with tempfile.TemporaryDirectory(prefix="xentconf-run-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        suite = str(Path(__file__).with_name("suite.py"))
        cwd = os.getcwd()
        try:
            os.chdir(tmp)  # no conftest.py of the caller's is picked up
            code = pytest.main([*args, "-c", str(ini), "--rootdir", tmp, suite],
                               plugins=[Carried(run)])
        finally:
            os.chdir(cwd)
    code = int(code)
    if code == pytest.ExitCode.OK:
        return EXIT_CONFORMS
    if code == pytest.ExitCode.TESTS_FAILED:
        return EXIT_FAILS
    if code == pytest.ExitCode.INTERRUPTED:
        return EXIT_INTERRUPTED
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED):
        return EXIT_USAGE
    return EXIT_INTERNAL

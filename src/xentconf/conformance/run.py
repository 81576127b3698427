"""``xentconf run``: a conformance run as one command, driving the pytest plugin.

:func:`execute` runs pytest in this process on the conformance suite only — with an
empty configuration of its own, so the caller's ``pytest.ini``, ``conftest.py`` files and
``addopts`` cannot change the run — and writes ``OUT/results.json`` and
``OUT/junit.xml``. Exit status: 0 when the target conforms (known deviations aside), 1 when
it does not, 2 on usage errors (a message on stderr says what to fix), 3 when the
harness itself failed (pytest's internal error), 130 when interrupted (the results file
then holds what was done).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["EXIT_CONFORMS", "EXIT_FAILS", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_USAGE",
           "execute",
           "pytest_args"]

EXIT_CONFORMS, EXIT_FAILS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def pytest_args(*, target: str, out: Path, apis: Sequence[str] = (), device: str = "cpu",
                profile: str | None = None, accuracy: str = "stable",
                examples: int | None = None, seed: int | None = None,
                workers: str | None = None, dtypes: Sequence[str] = (),
                features: Sequence[str] = (), keras: str | None = None,
                deviations: Sequence[str] = (), timeout: float | None = None,
                hypothesis: str = "ci", sweep: str = "on", isolate: str = "process",
                unsupported: str = "", verbose: int = 0, strict: bool = False) -> list[str]:
    """The pytest command line of a conformance run (without the config file options)."""
    args = ["-p", "no:cacheprovider", "-p", "no:xentconf", "-p", "xentconf.conformance.plugin",
            "--xentconf-target", target, "--xentconf-device", device,
            "--xentconf-accuracy", accuracy, "--xentconf-hypothesis", hypothesis,
            "--xentconf-sweep", sweep, "--xentconf-isolate", isolate,
            "--xentconf-results", str(out / "results.json"),
            "--junitxml", str(out / "junit.xml"), "-o", "junit_family=xunit2",
            "-o", "junit_suite_name=xentconf"]
    for a in apis:
        args += ["--xentconf-api", a]
    for d in dtypes:
        args += ["--xentconf-dtype", d]
    for f in features:
        args += ["--xentconf-feature", f]
    for d in deviations:
        args += ["--xentconf-deviations", d]
    if profile:
        args += ["--xentconf-profile", profile]
    if examples is not None:
        args += ["--xentconf-examples", str(examples)]
    if seed is not None:
        args += ["--xentconf-seed", str(seed)]
    if keras:
        args += ["--xentconf-keras", keras]
    if timeout is not None:
        args += ["--xentconf-timeout", str(timeout)]
    if unsupported:
        args += ["--xentconf-unsupported", unsupported]
    if strict:
        args += ["--xentconf-strict"]
    if workers not in (None, "0", "1"):
        args += ["-n", str(workers), "--dist", "load"]
    args += ["-v"] * verbose or ["-q"]
    args += ["-rfE", "--tb=no", "--no-header",
             "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    return args


def execute(args: list[str], out: Path) -> int:
    """Run pytest with ``args`` on the suite alone; map its exit status (module docstring)."""
    import pytest

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xentconf-run-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        suite = str(Path(__file__).with_name("suite.py"))
        cwd = os.getcwd()
        try:
            os.chdir(tmp)  # no conftest.py of the caller's is picked up
            code = pytest.main([*args, "-c", str(ini), "--rootdir", tmp, suite])
        finally:
            os.chdir(cwd)
    code = int(code)
    if code == pytest.ExitCode.OK:
        return EXIT_CONFORMS
    if code == pytest.ExitCode.TESTS_FAILED:
        return EXIT_FAILS
    if code == pytest.ExitCode.INTERRUPTED:
        return EXIT_INTERRUPTED
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("xentconf run: no tests selected: the target implements none of the chosen "
              "APIs, dtypes and features", file=sys.stderr)
        return EXIT_USAGE
    if code == pytest.ExitCode.USAGE_ERROR:
        return EXIT_USAGE
    return EXIT_INTERNAL

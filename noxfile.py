"""Nox sessions for xentconf: ``nox`` runs tests and lint; others are run by name."""

import nox

nox.options.sessions = ["tests", "lint"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite in parallel (extra arguments go to pytest)."""
    session.install(".", "pytest-xdist")
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff and check the import contracts between the parts."""
    session.install("ruff", "import-linter>=2.16")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    # lint-imports reads the source statically; it only needs to find the package.
    session.run("lint-imports", env={"PYTHONPATH": "src"})


@nox.session
def tensorflow(session: nox.Session) -> None:
    """Run the oracle's calibration tests against a real TensorFlow (tensorflow-cpu)."""
    session.install(".[tensorflow]")
    session.run("pytest", "-m", "tensorflow", "tests/oracle", *session.posargs)


#: Built-in targets and what their session installs. Each `conformance-<target>` session
#: installs its framework in its own virtual environment and runs the adapter tests with
#: XENTCONF_REQUIRE_TARGET set, so a missing framework fails there instead of skipping.
TARGET_INSTALLS = {
    "tensorflow": [".[tensorflow]"],
    "keras": [".[keras]"],
    "torch": [".[torch]"],
    "jax": [".[jax]"],
    "onnxruntime": [".[onnxruntime]"],
    "reference": ["."],
}


def _conformance(session: nox.Session, target: str) -> None:
    session.install(*TARGET_INSTALLS[target], "pytest-xdist")
    session.run("pytest", "-n", "auto", "tests/adapters", *session.posargs,
                env={"XENTCONF_REQUIRE_TARGET": target})


for _name in TARGET_INSTALLS:

    def _session(session: nox.Session, _target: str = _name) -> None:
        _conformance(session, _target)

    _session.__doc__ = (f"Install {_name} in its own environment and test its adapter "
                        "against the real framework.")
    nox.session(name=f"conformance-{_name}")(_session)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the exact tier's benchmark (arguments go to benchmarks/bench_exact.py)."""
    session.install(".")
    session.run("python", "benchmarks/bench_exact.py", *session.posargs)


@nox.session(name="bench-engine")
def bench_engine(session: nox.Session) -> None:
    """Run the engine's benchmark against torch with one thread (bench_engine.py); numba
    (the ``fast`` extra) gives the engine's compiled path, measured beside the numpy path."""
    session.install(".[fast]", "torch==2.13.0")
    session.run("python", "benchmarks/bench_engine.py", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Merge reports/*.json into reports/index.html."""
    from pathlib import Path

    files = sorted(str(p) for p in Path("reports").glob("*.json"))
    if not files:
        session.error("no results files: reports/*.json matches nothing; run the "
                      "conformance first (xentconf run writes reports/<target>.json)")
    session.install(".")
    session.run("xentconf", "report", *files, "--out", "reports")

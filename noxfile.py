"""Nox sessions for xentconf: ``nox`` runs tests and lint; others are run by name."""

import nox

nox.options.sessions = ["tests", "lint"]


#: The versions the tests were last checked with; `latest` runs without it.
CONSTRAINTS = ("-c", "constraints.txt")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite in parallel with the pinned versions (extra arguments go to
    pytest)."""
    session.install(*CONSTRAINTS, "-e", ".[dev,onnxruntime,kernels]")
    session.run("python", "-m", "pytest", "-n", "auto", "-q", "--durations=15",
                *session.posargs)


@nox.session
def latest(session: nox.Session) -> None:
    """Run the test suite against the newest releases of every dependency (no
    constraints), so that drift shows up here before it reaches CI's pinned run."""
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[dev,onnxruntime]")
    session.run("python", "-m", "pip", "freeze", "--exclude-editable")
    session.run("python", "-m", "pytest", "-n", "auto", "-q", "--durations=15",
                *session.posargs)


@nox.session(python="3.10")
def py310(session: nox.Session) -> None:
    """The oldest Python that requires-python admits: install, load the pytest plugin and
    run the command-line tests."""
    session.install("-e", ".")  # the dev extra's import-linter needs 3.11
    session.run("python", "-c", "import xentconf.conformance.plugin, xentconf.conformance."
                "deviations, xentconf.cli")
    session.run("python", "-m", "pytest", "-q", "tests/test_cli.py", "tests/test_cli_targets.py",
                *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff and check the import contracts between the parts."""
    session.install(*CONSTRAINTS, "ruff", "import-linter>=2.16")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    # lint-imports reads the source statically; it only needs to find the package.
    session.run("lint-imports", env={"PYTHONPATH": "src"})


@nox.session
def tensorflow(session: nox.Session) -> None:
    """Run the oracle's calibration tests against a real TensorFlow (tensorflow-cpu)."""
    session.install(".[tensorflow]")
    session.run("pytest", "-m", "tensorflow", "tests/oracle", *session.posargs)


@nox.session(name="record-tensorflow")
def record_tensorflow(session: nox.Session) -> None:
    """Record what TensorFlow 2.21 returns or raises (eager and XLA on the CPU, tf_keras and
    Keras 3) on every case of tests/oracle/tf_cases.py into tests/fixtures/tensorflow/,
    which the default tests read without TensorFlow (arguments go to the recorder)."""
    session.install(".[tensorflow,keras]")
    # a fixed hash seed: error texts that list a set come out in one order, so that
    # re-recording an unchanged TensorFlow reproduces the files byte for byte
    session.run("python", "-m", "tests.oracle.record_tensorflow", *session.posargs,
                env={"KERAS_BACKEND": "tensorflow", "PYTHONHASHSEED": "0"})


#: Built-in targets and what their session installs. Each `conformance-<target>` session
#: installs its framework in its own virtual environment, runs the adapter tests with
#: XENTCONF_REQUIRE_TARGET set (a missing framework fails there instead of skipping), then
#: a conformance run that writes reports/<target>.json for the `report` session.
TARGET_INSTALLS = {
    "tensorflow": [".[tensorflow]"],
    "keras": [".[keras,torch,jax]"],  # Keras 3 on each of its three backends
    "torch": [".[torch]"],
    "jax": [".[jax]"],
    "onnxruntime": [".[onnxruntime]"],
    "reference": ["."],
}
#: Targets that must conform (a failing verdict is a bug of xentconf's); the others'
#: verdicts are findings about the framework, recorded in the report, not session failures.
MUST_CONFORM = {"reference", "tensorflow"}
#: Targets with a CUDA mode: `conformance-<target>-gpu` runs it where nvidia-smi exists.
GPU_TARGETS = {"tensorflow": "gpu", "torch": "gpu", "jax": "gpu"}
#: Every CPU mode of each built-in target, as (mode, `xentconf run` arguments, environment):
#: `conformance-<target>` runs each and writes reports/<target>-<mode>.json. TensorFlow's
#: Keras APIs run on tf_keras (Keras 2 semantics) in both its modes; Keras 3 runs on each of
#: its backends (it picks one at import, from KERAS_BACKEND). A torch.compile call that
#: meets a new graph compiles it (inductor and a C++ compiler) within the per-case limit,
#: so that mode gets a longer one.
MODES = {
    "tensorflow": (("eager", ("--mode", "eager"), {}), ("xla", ("--mode", "xla"), {})),
    "keras": tuple((b, ("--mode", b), {"KERAS_BACKEND": b})
                   for b in ("tensorflow", "torch", "jax")),
    "torch": (("eager", ("--mode", "eager"), {}),
              ("compile", ("--mode", "compile", "--timeout", "600"), {})),
    "jax": (("xla", ("--mode", "xla"), {}),),
    "onnxruntime": (("eager", ("--mode", "eager"), {}),),
    "reference": (("eager", ("--mode", "eager"), {}),),
}


def _conformance(session: nox.Session, target: str, device: str = "cpu") -> None:
    import shutil
    from pathlib import Path

    if device == "cuda" and shutil.which("nvidia-smi") is None:
        session.skip("no NVIDIA GPU here (nvidia-smi not found)")
    # editable: `nox -R` (reuse the environment, skip the install) runs the current source
    session.install("-e", *TARGET_INSTALLS[target], "pytest-xdist")
    if device == "cpu":
        session.run("pytest", "-n", "auto", "-q", "tests/adapters",
                    env={"XENTCONF_REQUIRE_TARGET": target})
    codes = [0] if target in MUST_CONFORM else [0, 1]
    modes = MODES[target] if device == "cpu" else (("", (), {}),)
    for mode, args, env in modes:
        name = "-".join(p for p in (target, "" if device == "cpu" else device, mode) if p)
        out = Path("reports") / name
        session.run("xentconf", "run", "--target", target, "--device", device, *args,
                    "-n", "auto", "--out", str(out), "--no-report", *session.posargs,
                    env=env, success_codes=codes)
        if (out / "results.json").is_file():  # not with --install-only
            shutil.copyfile(out / "results.json", Path("reports") / f"{name}.json")
            session.log(f"wrote reports/{name}.json; `nox -s report` merges reports/*.json")


for _name in TARGET_INSTALLS:

    def _session(session: nox.Session, _target: str = _name) -> None:
        _conformance(session, _target)

    _what = "xentconf's own oracle" if _name == "reference" else _name
    _modes = ", ".join(m for m, _, _ in MODES[_name])
    _session.__doc__ = (f"Install {_what}, test its adapter, run the conformance suite in "
                        f"each CPU mode ({_modes}; writes reports/{_name}-<mode>.json).")
    nox.session(name=f"conformance-{_name}")(_session)

for _name in GPU_TARGETS:

    def _gpu_session(session: nox.Session, _target: str = _name) -> None:
        _conformance(session, _target, "cuda")

    _gpu_session.__doc__ = (f"Run the conformance suite on {_name} on CUDA (skipped without "
                            f"nvidia-smi; writes reports/{_name}-cuda.json).")
    nox.session(name=f"conformance-{_name}-gpu")(_gpu_session)


@nox.session
def scoreboard(session: nox.Session) -> None:
    """Every CPU mode of every built-in target to the end, each framework in its own
    environment (the conformance-<target> sessions, which run after this one; arguments go
    to each `xentconf run`), then `report`: the merged report and the standing table."""
    for target in MODES:
        session.notify(f"conformance-{target}", session.posargs)
    session.notify("report")


@nox.session
def standing(session: nox.Session) -> None:
    """Make this scoreboard run the committed baseline: each reports/<target>-<mode>.json
    gzipped into scoreboard/, the standing table generated from scoreboard/ between the
    README's markers, and the sweeps' maps drawn into scoreboard/maps/ (tests hold both
    equal to the committed results). `xentconf report ... --baseline
    scoreboard/*.json.gz` then shows what a new run changed."""
    import gzip
    import shutil
    from pathlib import Path

    runs = sorted(p for p in Path("reports").glob("*-*.json"))
    if not runs:
        session.error("no reports/<target>-<mode>.json: run `nox -s scoreboard` first")
    session.install("-e", ".")
    out = Path("scoreboard")
    out.mkdir(exist_ok=True)
    for p in runs:  # mtime=0: the same results give the same bytes
        (out / f"{p.name}.gz").write_bytes(gzip.compress(p.read_bytes(), 9, mtime=0))
    files = sorted(str(p) for p in out.glob("*.json.gz"))
    table = session.run("xentconf", "report", *files, "--markdown", "-", silent=True)
    # the sweeps' maps, as the merged report draws them, for the README to show
    import tempfile

    maps = out / "maps"
    shutil.rmtree(maps, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        session.run("xentconf", "report", *files, "--out", tmp, silent=True)
        maps.mkdir()
        for svg in sorted(Path(tmp).glob("*.svg")):
            shutil.copyfile(svg, maps / svg.name)
    readme = Path("README.md")
    text = readme.read_text(encoding="utf-8")
    begin, end = "<!-- standing:begin -->", "<!-- standing:end -->"
    head, rest = text.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{table}{end}{rest.split(end, 1)[1]}", encoding="utf-8")
    session.log(f"{len(files)} runs in scoreboard/; the README's table regenerated")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the exact tier's benchmark (arguments go to benchmarks/bench_exact.py)."""
    session.install(".")
    session.run("python", "benchmarks/bench_exact.py", *session.posargs)


@nox.session(name="bench-engine")
def bench_engine(session: nox.Session) -> None:
    """Run the engine's benchmark against torch with one thread (bench_engine.py); numba
    (the ``fast`` extra) gives the engine's compiled path, measured beside the numpy path."""
    session.install(".", "torch==2.13.0")
    session.run("python", "benchmarks/bench_engine.py", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Merge reports/*.json into reports/index.html and the standing table,
    reports/standing.md (the README's table; `scoreboard/` keeps the committed baseline)."""
    from pathlib import Path

    files = sorted(str(p) for p in Path("reports").glob("*.json"))
    if not files:
        session.error("no results files: reports/*.json matches nothing; run the "
                      "conformance first (xentconf run writes reports/<target>.json)")
    session.install("-e", ".")
    session.run("xentconf", "report", *files, "--out", "reports")
    session.run("xentconf", "report", *files, "--markdown", "reports/standing.md")

"""Command-line interface: ``xentconf <subcommand> ...``, a thin layer over the parts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from xentconf import __version__

PROG = "xentconf"


@dataclass(frozen=True)
class Subcommand:
    """One entry of the subcommand table.

    ``configure`` adds the subcommand's arguments to its parser; ``run`` receives
    the parsed namespace and returns the process exit status.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------- oracle


def _configure_oracle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "case",
        metavar="CASE",
        help="path to a JSON case file, or '-' to read the case from standard input",
    )


def _read_case(case: str) -> str:
    if case == "-":
        return sys.stdin.read()
    return Path(case).read_text(encoding="utf-8")


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()) or "(no message)"


def _run_oracle(args: argparse.Namespace) -> int:
    prefix = f"{PROG} oracle"
    try:
        text = _read_case(args.case)
    except OSError as exc:
        reason = f"{exc.strerror}: {args.case}" if exc.strerror else str(exc)
        print(f"{prefix}: cannot read CASE: {_one_line(reason)}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"{prefix}: cannot read CASE: not UTF-8 text ({exc.reason})", file=sys.stderr)
        return 2

    # Imported here so that the CLI starts (and --help works) without loading the oracle.
    from xentconf.oracle.cli_case import CaseError, run_case

    try:
        result = run_case(text)
    except CaseError as exc:
        print(f"{prefix}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


# --------------------------------------------------------------------- targets


def _configure_targets(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List every target xentconf knows (built-in adapters and those registered under the "
        "'xentconf.adapters' entry-point group) with availability, version, modes and APIs; "
        "or, with --target, load one target (a name, or a generic callable "
        "package.module:attr with --api) and describe it.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show each API's native, composed and unsupported features")
    parser.add_argument("--target", metavar="TARGET",
                        help="a target name, or package.module:attr (a generic callable, "
                        "imported from the current directory or sys.path; needs --api)")
    parser.add_argument("--api", metavar="ID",
                        help="the TensorFlow API id whose signature the callable follows "
                        "(with a target name: show only that API)")
    parser.add_argument("--profile", metavar="P",
                        help="the device profile the callable follows: cpu, gpu or xla")
    parser.add_argument("--keras", metavar="V",
                        help="the Keras semantics the target follows: keras2 or keras3")
    parser.add_argument("--unsupported", metavar="FEATURES",
                        help="comma-separated features the callable lacks (skipped, not "
                             "failed), e.g. backprop,weights")
    parser.add_argument("--deviations", metavar="FILE",
                        help="the callable's known-deviations file (TOML, [[deviation]] "
                             "tables with id and reason)")


def _check_deviations_file(path: str) -> str | None:
    """A one-line problem with a known-deviations file, or None if it is usable."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: read it as text only
        tomllib = None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return f"cannot read the deviations file {path}: {exc.strerror or exc}"
    except UnicodeDecodeError:
        return f"the deviations file {path} is not UTF-8 text"
    if tomllib is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return f"the deviations file {path} is not valid TOML: {_one_line(str(exc))}"
    entries = data.get("deviation", [])
    if not isinstance(entries, list):
        return f"the deviations file {path}: 'deviation' must be an array of tables " \
               "([[deviation]])"
    for i, entry in enumerate(entries):
        missing = [k for k in ("id", "reason") if not isinstance(entry.get(k), str)]
        if missing:
            return f"the deviations file {path}: entry {i + 1} needs a string " \
                   f"'{missing[0]}' (each [[deviation]] has an id pattern and a reason)"
    return None


def _features(names) -> str:
    return ", ".join(sorted(names)) or "-"


def _print_info(info, verbose: bool, only_api: str | None = None) -> None:
    status = "available" if info.available else f"unavailable: {info.reason}"
    version = f", version {info.version}" if info.version else ""
    print(f"{info.name} — {status}{version}")
    if info.description:
        print(f"  {info.description}")
    if info.modes:
        modes = [f"{m.device}/{m.profile}" + ("" if m.available else
                                              f" unavailable ({m.reason})")
                 for m in info.modes]
        print(f"  modes: {'; '.join(modes)}")
    if info.keras:
        print(f"  keras: {info.keras}")
    if info.deviations:
        print(f"  deviations: {info.deviations}")
    from xentconf.protocol import API_IDS

    # an API declared with no dtypes (every feature unsupported) is not implemented
    apis = {a: s for a, s in info.apis.items() if only_api in (None, a) and s.dtypes}
    if only_api is not None and not apis:
        print(f"  apis: {only_api} is not supported")
    elif not verbose:
        print(f"  apis: {len(apis)} of {len(API_IDS)}"
              + (f" ({', '.join(apis)})" if apis and len(apis) < len(API_IDS) else ""))
    else:
        print("  apis:" if apis else "  apis: none")
        for api, sup in apis.items():
            print(f"    {api}  [{' '.join(sup.dtypes)}]")
            print(f"      native: {_features(sup.native)}")
            print(f"      composed: {_features(sup.composed)}")
            print(f"      unsupported: {_features(sup.unsupported)}")
            if sup.notes:
                print(f"      notes: {sup.notes}")


def _run_targets(args: argparse.Namespace) -> int:
    prefix = f"{PROG} targets"
    from xentconf.adapters.registry import available_targets, get_target, info_to_dict
    from xentconf.protocol import TargetError

    def fail(message: str) -> int:
        print(f"{prefix}: {_one_line(message)}", file=sys.stderr)
        return 2

    if args.target is None:
        given = [f"--{k}" for k in ("api", "profile", "keras", "unsupported", "deviations")
                 if getattr(args, k) is not None]
        if given:
            return fail(f"{', '.join(given)}: give --target too (a target name or "
                        "package.module:attr)")
        infos = available_targets()
        if args.json:
            print(json.dumps([info_to_dict(i) for i in infos], indent=2))
        else:
            for info in infos:
                _print_info(info, args.verbose)
        return 0

    options = {k: getattr(args, k) for k in ("profile", "keras") if getattr(args, k) is not None}
    only_api = None
    if (args.unsupported or args.deviations) and ":" not in args.target:
        return fail("--unsupported and --deviations describe a generic callable "
                    "(package.module:attr); a built-in target declares its own")
    if args.unsupported:
        options["unsupported"] = [f.strip() for f in args.unsupported.split(",") if f.strip()]
    if args.deviations:
        problem = _check_deviations_file(args.deviations)
        if problem:
            return fail(problem)
        options["deviations"] = args.deviations
    if ":" in args.target:
        if args.api is None:
            return fail(f"{args.target} is a generic callable: give the id of the API whose "
                        "signature it follows with --api ID")
        options["api"] = args.api
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` would: find the user's module
    elif args.api is not None:
        from xentconf.protocol import API_IDS

        if args.api not in API_IDS:
            return fail(f"unknown API id {args.api!r}; use one of: {', '.join(API_IDS)}")
        only_api = args.api
    try:
        target = get_target(args.target, **options)
        info = target.info()
    except TargetError as exc:
        return fail(str(exc))
    except Exception as exc:  # a third-party target misbehaving
        return fail(f"{args.target}: {type(exc).__name__}: {exc}")
    if args.json:
        data = info_to_dict(info)
        if only_api is not None:
            data["apis"] = {k: v for k, v in data["apis"].items() if k == only_api}
        print(json.dumps(data, indent=2))
    else:
        _print_info(info, args.verbose or ":" in args.target, only_api)
    return 0


# --------------------------------------------------------------------- report


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Render results files (one per target run, merged into one scoreboard) as one "
        "self-contained HTML page, OUT/index.html; with --baseline, also list what changed.")
    parser.add_argument("results", metavar="RESULTS", nargs="*",
                        help="results.json files written by xentconf run")
    parser.add_argument("--baseline", metavar="OLD", nargs="+", action="extend",
                        help="earlier results file(s) to compare with, merged the same way")
    parser.add_argument("--out", metavar="DIR", help="folder to write index.html into")


def _run_report(args: argparse.Namespace) -> int:
    prefix = f"{PROG} report"

    def fail(message: str) -> int:
        print(f"{prefix}: {_one_line(message)}", file=sys.stderr)
        return 2

    if not args.results:
        hint = " (files after --baseline are baselines: put RESULTS first)" \
            if args.baseline else ""
        return fail(f"no RESULTS given: name the results.json files to report on{hint}")
    if args.out is None:
        return fail("give the folder to write the report into with --out DIR")
    # Imported here so that the CLI starts without jinja2 for the other subcommands.
    from xentconf.reports import ReportError, write_report

    try:
        path = write_report(args.results, args.out, baseline_paths=args.baseline)
    except ReportError as exc:
        return fail(str(exc))
    print(path)
    return 0


# --------------------------------------------------------------------- run


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Judge a target against the oracle on generated cases: one test per API x dtype x "
        "feature, graded per element. Writes OUT/results.json, OUT/junit.xml and the HTML "
        "report OUT/index.html. Exit status: 0 the target conforms (declared deviations "
        "aside), 1 it does not, 2 usage error, 3 harness failure, 130 interrupted (results "
        "so far are kept).")
    parser.add_argument("--target", required=True, metavar="T",
                        help="built-in (tensorflow, keras, torch, jax, onnxruntime, reference), "
                             "an entry-point name, or package.module:attr with --api")
    parser.add_argument("--api", action="append", default=[], metavar="ID",
                        help="API to test, TF id or short name (raw_sparse, nn_dense, ...); "
                             "repeatable; default: all the target implements")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--profile", choices=("cpu", "gpu", "xla"),
                        help="device profile of the target's mode (default: its first mode "
                             "on the device)")
    parser.add_argument("--accuracy", default="stable",
                        choices=("exact", "faithful", "tf-precision", "stable"),
                        help="grade every element must reach (default: stable)")
    parser.add_argument("--strict", action="store_true",
                        help="count as-tensorflow (differs only as TensorFlow's own "
                             "mechanisms make it: flushed denormals, float32 reductions, "
                             "overflow) as a failure")
    parser.add_argument("--examples", type=int, metavar="N",
                        help="examples per test (default: 20 in the ci profile)")
    parser.add_argument("--seed", type=int, metavar="S", help="random seed (default: "
                        "derandomized, the same cases every run)")
    parser.add_argument("-n", "--workers", metavar="N", default=None,
                        help="parallel worker processes (a number or 'auto'; default: one)")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="folder for results.json, junit.xml and index.html "
                             "(default: reports)")
    parser.add_argument("--dtype", action="append", default=[],
                        choices=("float16", "bfloat16", "float32", "float64"))
    parser.add_argument("--feature", action="append", default=[], metavar="F",
                        help="feature to test (basic, regimes, special_values, weights, ...); "
                             "repeatable")
    parser.add_argument("--keras", choices=("keras2", "keras3"),
                        help="Keras semantics of the target")
    parser.add_argument("--deviations", action="append", default=[], metavar="FILE",
                        help="extra known-deviations file (TOML); repeatable")
    parser.add_argument("--unsupported", default="", metavar="FEATURES",
                        help="comma-separated features a callable target lacks")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="per-case time limit (default 60)")
    parser.add_argument("--hypothesis", default="ci", choices=("ci", "dev", "thorough"),
                        help="example profile (default ci: derandomized, bounded shrinking)")
    parser.add_argument("--sweep", default="on", choices=("on", "off"),
                        help="exhaustive float16/bfloat16 sweeps of the C = 2 sparse losses "
                             "(default on)")
    parser.add_argument("--in-process", action="store_true",
                        help="run the target in this process (no crash/timeout isolation)")
    parser.add_argument("--no-report", action="store_true", help="skip OUT/index.html")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def _run_run(args: argparse.Namespace) -> int:
    prefix = f"{PROG} run"
    out = Path(args.out).resolve()
    if out.exists() and not out.is_dir():
        print(f"{prefix}: --out {args.out} is a file; give a folder", file=sys.stderr)
        return 2
    if args.examples is not None and args.examples < 1:
        print(f"{prefix}: --examples must be at least 1", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers != "auto" and not args.workers.isdigit():
        print(f"{prefix}: -n {args.workers}: give a number of workers or 'auto'",
              file=sys.stderr)
        return 2
    for d in args.deviations:
        if not Path(d).is_file():
            print(f"{prefix}: --deviations {d}: no such file", file=sys.stderr)
            return 2
    from xentconf.conformance.run import execute, pytest_args

    pargs = pytest_args(
        target=args.target, out=out, apis=args.api, device=args.device, profile=args.profile,
        accuracy=args.accuracy, examples=args.examples, seed=args.seed, workers=args.workers,
        dtypes=args.dtype, features=args.feature, keras=args.keras,
        deviations=[str(Path(d).resolve()) for d in args.deviations], timeout=args.timeout,
        hypothesis=args.hypothesis, sweep=args.sweep,
        isolate="none" if args.in_process else "process", unsupported=args.unsupported,
        verbose=args.verbose, strict=args.strict)
    code = execute(pargs, out)
    results_file = out / "results.json"
    if not args.no_report and code != 2 and results_file.is_file():
        from xentconf.reports import ReportError, write_report

        try:
            print(f"report: {write_report([results_file], out)}")
        except ReportError as exc:
            print(f"{prefix}: no report: {_one_line(str(exc))}", file=sys.stderr)
    return code


# --------------------------------------------------------------------- table

#: Add a subcommand by appending a ``Subcommand`` here.
SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        name="run",
        help="judge a target on generated cases; write results, JUnit XML and a report",
        configure=_configure_run,
        run=_run_run,
    ),
    Subcommand(
        name="oracle",
        help="print TensorFlow's expected answer for one case, as JSON",
        configure=_configure_oracle,
        run=_run_oracle,
    ),
    Subcommand(
        name="targets",
        help="list the targets xentconf can judge, or load and describe one",
        configure=_configure_targets,
        run=_run_targets,
    ),
    Subcommand(
        name="report",
        help="render results files as one self-contained HTML report",
        configure=_configure_report,
        run=_run_report,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser from ``SUBCOMMANDS``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Conformance suite and reference oracle for TensorFlow's "
        "softmax cross-entropy losses.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in SUBCOMMANDS:
        sub_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub_parser)
        sub_parser.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits for --help, --version (0) and usage errors (2); return instead.
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args._run(args))
    except BrokenPipeError:
        # the reader went away (`xentconf oracle case.json | head`): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

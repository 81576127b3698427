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
from xentconf.vocabulary import KERAS_VARIANTS, PROFILES

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
    from xentconf.oracle.case import CaseError, run_case

    try:
        result = run_case(text)
    except CaseError as exc:
        print(f"{prefix}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


# --------------------------------------------------------------------- targets


def _one_of(names: Sequence[str]) -> str:
    """``a, b or c``: a vocabulary in a help text."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


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
                        help="the API whose signature the callable follows, TF id or short "
                        "name such as nn_sparse (with a target name: show only that API)")
    parser.add_argument("--profile", metavar="P",
                        help=f"the device profile the callable follows: {_one_of(PROFILES)}")
    parser.add_argument("--keras", metavar="V",
                        help="the Keras semantics the target follows: "
                        f"{_one_of(KERAS_VARIANTS)}")
    parser.add_argument("--unsupported", metavar="FEATURES",
                        help="comma-separated features and dtypes the callable lacks "
                             "(skipped, not failed), e.g. weights,bfloat16")
    parser.add_argument("--deviations", metavar="FILE",
                        help="the callable's known-deviations file (TOML, [[deviation]] "
                             "tables with id and reason)")


def _check_deviations_file(path: str) -> str | None:
    """A one-line problem with a known-deviations file, or None if it is usable."""
    from xentconf.conformance.deviations import DeviationsError, load

    try:
        load(path)
    except DeviationsError as exc:
        return str(exc)
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
        modes = [m.label + ("" if m.available else f" unavailable ({m.reason})")
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
    from xentconf.protocol import API_IDS, API_SHORT, TargetError, api_id, is_callable_target

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
    if (args.unsupported or args.deviations) and not is_callable_target(args.target):
        return fail("--unsupported and --deviations describe a generic callable "
                    "(package.module:attr); a built-in target declares its own")
    if args.unsupported:
        options["unsupported"] = [f.strip() for f in args.unsupported.split(",") if f.strip()]
    if args.deviations:
        problem = _check_deviations_file(args.deviations)
        if problem:
            return fail(problem)
        options["deviations"] = args.deviations
    api = None
    if args.api is not None:
        api = api_id(args.api)
        if api is None:
            return fail(f"--api {args.api!r}: unknown API; use a TF id (e.g. "
                        f"{API_IDS[2]}) or a short name ({', '.join(API_SHORT.values())})")
    if is_callable_target(args.target):
        if api is None:
            return fail(f"{args.target} is a generic callable: give the id of the API whose "
                        "signature it follows with --api ID")
        options["api"] = api
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` would: find the user's module
    else:
        only_api = api
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
        _print_info(info, args.verbose or is_callable_target(args.target), only_api)
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
    parser.add_argument("--markdown", metavar="FILE",
                        help="also (or only) write the standing table, one row per target "
                             "run, as Markdown to FILE ('-': standard output)")
    parser.add_argument("--issues", metavar="DIR",
                        help="also (or only) write each distinct finding as a ready-to-file "
                             "upstream bug report (Markdown) into DIR, with an index "
                             "DIR/README.md")


def _run_report(args: argparse.Namespace) -> int:
    prefix = f"{PROG} report"

    def fail(message: str) -> int:
        print(f"{prefix}: {_one_line(message)}", file=sys.stderr)
        return 2

    if not args.results:
        hint = " (files after --baseline are baselines: put RESULTS first)" \
            if args.baseline else ""
        return fail(f"no RESULTS given: name the results.json files to report on{hint}")
    if args.out is None and args.markdown is None and args.issues is None:
        return fail("give the folder to write the report into with --out DIR (or a file for "
                    "the standing table with --markdown FILE, or a folder for bug reports "
                    "with --issues DIR)")
    # Imported here so that the CLI starts without jinja2 for the other subcommands.
    from xentconf.reports import (
        ReportError,
        write_issue_reports,
        write_markdown,
        write_report,
    )

    try:
        if args.markdown is not None:
            text = write_markdown(args.results, args.markdown, args.baseline)
            if args.markdown == "-":
                print(text, end="")
        if args.issues is not None:
            written = write_issue_reports(args.results, args.issues)
            print(f"{len(written)} finding{'s' * (len(written) != 1)}: "
                  f"{Path(args.issues) / 'README.md'}")
        if args.out is not None:
            print(write_report(args.results, args.out, baseline_paths=args.baseline))
    except ReportError as exc:
        return fail(str(exc))
    return 0


# --------------------------------------------------------------------- run


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Judge a target against the oracle on generated cases: one test per API x dtype x "
        "feature, graded per element. Writes OUT/results.json, OUT/junit.xml and the HTML "
        "report OUT/index.html. Exit status: 0 the target conforms (declared deviations "
        "aside), 1 it does not, 2 usage error, 3 harness failure, 130 interrupted (results "
        "so far are kept).")
    from xentconf.conformance.options import add_run_arguments

    add_run_arguments(parser)
    parser.add_argument("-n", "--workers", metavar="N", default=None,
                        help="parallel worker processes (a number or 'auto'; default: one)")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="folder for results.json, junit.xml and index.html "
                             "(default: reports)")
    parser.add_argument("--in-process", action="store_true",
                        help="run the target in this process (the same as --isolate none)")
    parser.add_argument("--no-report", action="store_true", help="skip OUT/index.html")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def _run_run(args: argparse.Namespace) -> int:
    prefix = f"{PROG} run"

    def fail(message: str) -> int:
        print(f"{prefix}: {_one_line(message)}", file=sys.stderr)
        return 2

    from xentconf.conformance.options import OPTIONS, UsageError, validate
    from xentconf.results import writable_folder

    if args.workers is not None and args.workers != "auto" and not args.workers.isdigit():
        return fail(f"-n {args.workers}: give a number of workers or 'auto'")
    values = {o.name: getattr(args, o.name) for o in OPTIONS}
    if args.in_process:
        values["isolate"] = "none"
    out = Path(args.out).resolve()
    try:
        run = validate(values, flag_prefix="--", results=str(out / "results.json"))
    except UsageError as exc:
        return fail(str(exc))
    problem = writable_folder(out)
    if problem:
        return fail(f"--out {args.out}: {problem}")
    from xentconf.conformance.run import execute

    code = execute(run, out, workers=args.workers, verbose=args.verbose)
    results_file = out / "results.json"
    if not args.no_report and code != 2 and results_file.is_file():
        from xentconf.reports import ReportError, write_report

        try:
            print(f"report: {write_report([results_file], out)}")
        except ReportError as exc:
            print(f"{prefix}: no report: {_one_line(str(exc))}", file=sys.stderr)
    return code


# --------------------------------------------------------------------- sweep

#: The run options that apply to a sweep (defined once in conformance.options).
SWEEP_OPTIONS = ("target", "api", "device", "profile", "accuracy", "deviations", "dtype",
                 "keras", "unsupported", "timeout", "isolate", "pairs")


def _configure_sweep(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Judge a target on every row of an exhaustive sweep of the C = 2 sparse losses "
        "(tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits and tf.nn.sparse_softmax_cross_"
        "entropy_with_logits): every float16 x float16 and bfloat16 x bfloat16 pair of bit "
        "patterns, or every float32 value of one logit against a grid of the other, both "
        "labels (--dtype: float16 and bfloat16 by default, or float32). Chunks run as tasks "
        "on Dask distributed (a local cluster unless "
        "--scheduler is given); each finished chunk is kept under OUT/chunks, so running "
        "the same command again resumes. Writes OUT/results.json (read by xentconf report). "
        "Exit status: 0 every row conforms (declared deviations aside), 1 some row does "
        "not, 2 usage error, 130 interrupted (chunks done are kept).")
    from xentconf.conformance.options import add_run_arguments
    from xentconf.vocabulary import API_SHORT, PAIR_DTYPES, SWEEP_APIS

    short = " or ".join(API_SHORT[a] for a in SWEEP_APIS)
    add_run_arguments(parser, only=SWEEP_OPTIONS, narrowed={
        "api": {"help": f"an API to sweep, TF id or short name ({short}); default: both "
                        "that the target implements"},
        "dtype": {"help": "a dtype to sweep (default: float16 and bfloat16)",
                  "choices": PAIR_DTYPES},
        "pairs": {"help": "all (the default), or a slice START:STOP of pair indices, "
                          "decimal or 0x hex: a << 16 | b for two 16-bit logits' bit "
                          "patterns, value_bits * 8 + grid index for float32"}})
    parser.add_argument("--chunk", metavar="PAIRS", type=int, default=None,
                        help="pairs per task and per chunk file (default: 524288, or "
                             "those of the sweep already in --out)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="a Dask scheduler, tcp://HOST:8786 (its workers must be "
                             "non-daemonic: distributed.worker.daemon false); default: a "
                             "local cluster")
    parser.add_argument("-n", "--workers", metavar="N", type=int, default=None,
                        help="worker processes of the local cluster (default: one per core)")
    parser.add_argument("--out", default="sweep", metavar="DIR",
                        help="folder for chunks/ and results.json (default: sweep)")


def _run_sweep(args: argparse.Namespace) -> int:
    prefix = f"{PROG} sweep"

    def fail(message: str) -> int:
        print(f"{prefix}: {_one_line(message)}", file=sys.stderr)
        return 2

    from xentconf.conformance.options import UsageError, resolve_target, validate
    from xentconf.conformance.sweep import PAIR_DTYPES, SWEEP_APIS, parse_pairs
    from xentconf.protocol import API_SHORT
    from xentconf.results import writable_folder

    dtypes = list(dict.fromkeys(args.dtype)) or ["float16", "bfloat16"]
    for d in dtypes:
        if d not in PAIR_DTYPES:
            return fail(f"--dtype {d}: sweeps cover {', '.join(PAIR_DTYPES)} (every pair of "
                        "16-bit values; every float32 value against a grid)")
    if args.chunk is not None and args.chunk < 1:
        return fail(f"--chunk {args.chunk}: give a positive number of pairs")
    if args.workers is not None and args.workers < 1:
        return fail(f"-n {args.workers}: give a positive number of workers")
    from xentconf.conformance import sweeper

    ranges = {}
    for d in dtypes:
        try:
            ranges[d] = parse_pairs(args.pairs, d)  # float32's space is 8 x 2^32 pairs
        except ValueError as exc:
            return fail(f"--pairs {exc}")
    # --pairs is checked above against each dtype's space, not only the 16-bit one
    values = {name: getattr(args, name) for name in SWEEP_OPTIONS if name != "pairs"}
    out = Path(args.out).resolve()
    try:
        run = validate(values, flag_prefix="--")
    except UsageError as exc:
        return fail(str(exc))
    bad_api = [a for a in run.apis if a not in SWEEP_APIS]
    if bad_api:
        return fail(f"--api {API_SHORT[bad_api[0]]}: sweeps cover the C = 2 sparse APIs, "
                    f"{', '.join(API_SHORT[a] for a in SWEEP_APIS)}")
    if run.callable_target and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    problem = writable_folder(out)
    if problem:
        return fail(f"--out {args.out}: {problem}")
    if args.scheduler is not None:
        try:
            sweeper.check_scheduler(args.scheduler)
        except sweeper.SweepError as exc:
            return fail(str(exc))
    from xentconf.conformance.sandbox import Sandbox

    probe = Sandbox(run.spec, timeout=run.timeout, isolate=run.isolate)
    try:
        resolve_target(run, probe)
    except UsageError as exc:
        return fail(str(exc))
    finally:
        probe.close()
    apis = [a for a in run.apis if a in SWEEP_APIS]
    jobs = [(a, d, *ranges[d]) for a in apis for d in dtypes
            if d in run.info.apis[a].dtypes]
    if not jobs:
        return fail("nothing to sweep: the target implements none of the chosen APIs "
                    f"({', '.join(API_SHORT[a] for a in SWEEP_APIS)}) in the chosen dtypes")
    plan = sweeper.SweepPlan.of(run, path=(os.getcwd(),))
    try:
        client, cluster = sweeper.connect(args.scheduler, args.workers or os.cpu_count() or 1)
    except sweeper.SweepError as exc:
        return fail(str(exc))
    try:
        outcome = sweeper.execute(plan, jobs, out, client=client,
                                  chunk=args.chunk)
    except sweeper.SweepError as exc:
        return fail(str(exc))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(sweeper.summary(outcome))
    print(f"results: {out / 'results.json'}")
    return outcome.code


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
        name="sweep",
        help="judge a target on every 16-bit pair (or float32 value) of the C = 2 sparse "
             "losses, as tasks on Dask",
        configure=_configure_sweep,
        run=_run_sweep,
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, and where to read more)."""

    commands: dict[str, argparse.ArgumentParser]  # the top-level parser's subcommands

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _unrecognized(parser: _Parser, args: argparse.Namespace, extra: list[str]):
    """A usage error for arguments the command does not take, said by that command (whose
    ``--help`` lists what it does take); a lone word where the command takes
    ``--target`` (its parsed ``args`` have a ``target``, given or not) is most likely a
    target named without it."""
    sub = parser.commands[args.command]
    hint = ""
    if len(extra) == 1 and not extra[0].startswith("-") and hasattr(args, "target"):
        hint = f"; a target is named with --target: {sub.prog} --target {extra[0]}"
    sub.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser from ``SUBCOMMANDS``."""
    parser = _Parser(
        prog=PROG,
        description="Conformance suite and reference oracle for TensorFlow's "
        "softmax cross-entropy losses.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)
    parser.commands = {}
    for command in SUBCOMMANDS:
        sub_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub_parser)
        sub_parser.set_defaults(_run=command.run)
        parser.commands[command.name] = sub_parser
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            _unrecognized(parser, args, extra)
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

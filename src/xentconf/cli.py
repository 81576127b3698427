"""Command-line interface: ``xentconf <subcommand> ...``, a thin layer over the parts."""

from __future__ import annotations

import argparse
import json
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


# --------------------------------------------------------------------- table

#: Add a subcommand by appending a ``Subcommand`` here.
SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        name="oracle",
        help="print TensorFlow's expected answer for one case, as JSON",
        configure=_configure_oracle,
        run=_run_oracle,
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
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())

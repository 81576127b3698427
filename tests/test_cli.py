"""Tests of the CLI skeleton that do not need the oracle itself."""

import json
import os
import subprocess
import sys
import types

import pytest

import xentconf
from xentconf.cli import main


def run_module(*args: str, stdin: str | None = None,
               cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """``python -m xentconf ARGS`` in a fresh process (also used by tests/oracle)."""
    return subprocess.run(
        [sys.executable, "-m", "xentconf", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


# --------------------------------------------------------------------- --version


def test_version_subprocess():
    proc = run_module("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"xentconf {xentconf.__version__}"


def test_version_main(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"xentconf {xentconf.__version__}"


# --------------------------------------------------------------------- usage errors


def test_no_subcommand_subprocess():
    proc = run_module()
    assert proc.returncode == 2
    assert proc.stderr.startswith("xentconf: ") and "COMMAND" in proc.stderr
    assert proc.stderr.count("\n") == 1  # one line


def test_sweep_help_states_the_sweepers_default_chunk(capsys):
    """The CLI does not import the sweeper (Dask) to print its help, so the help says the
    default chunk itself: it must be the sweeper's."""
    from xentconf.conformance.sweeper import CHUNK_PAIRS

    assert main(["sweep", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"pairs per task and per chunk file (default: {CHUNK_PAIRS}," in text


def test_no_subcommand_main(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xentconf: ") and "xentconf --help" in err


def test_unknown_subcommand_main(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'no-such-command'" in err and err.count("\n") == 1


def test_an_argument_a_command_does_not_take_is_named_by_that_command(capsys):
    """The command, not the top-level parser, says what it does not take and points to its
    own --help; a lone word where the command takes --target reads as a target named
    without it (`xentconf targets torch`), and the line says how to write it."""
    for command in ("targets", "run", "sweep"):  # every command that takes --target
        assert main([command, "torch"]) == 2
        err = capsys.readouterr().err
        assert err == (f"xentconf {command}: unrecognized arguments: torch; a target is named "
                       f"with --target: xentconf {command} --target torch (see xentconf "
                       f"{command} --help)\n")
    assert main(["report", "--nope"]) == 2  # report takes no --target: no such hint
    err = capsys.readouterr().err
    assert err == ("xentconf report: unrecognized arguments: --nope "
                   "(see xentconf report --help)\n")


def test_oracle_without_case_main(capsys):
    assert main(["oracle"]) == 2
    assert "CASE" in capsys.readouterr().err


# --------------------------------------------------------------------- unreadable CASE


def assert_one_line_oracle_error(stderr: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("xentconf oracle: cannot read CASE: ")


def test_oracle_missing_file_subprocess(tmp_path):
    proc = run_module("oracle", str(tmp_path / "nonexistent.json"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert_one_line_oracle_error(proc.stderr)


def test_oracle_missing_file_main(tmp_path, capsys):
    assert main(["oracle", str(tmp_path / "nonexistent.json")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_oracle_error(err)
    assert "nonexistent.json" in err


def test_oracle_directory_main(tmp_path, capsys):
    assert main(["oracle", str(tmp_path)]) == 2
    assert_one_line_oracle_error(capsys.readouterr().err)


# --------------------------------------------------------------------- delegation to the oracle
# A stand-in for xentconf.oracle.case pins down the handler's side of the contract
# (JSON on stdout and 0; CaseError -> one line on stderr and 2) without the real oracle.


class FakeCaseError(Exception):
    pass


@pytest.fixture
def fake_case(monkeypatch):
    seen = []

    def run_case(text: str) -> dict:
        seen.append(text)
        if text.strip() == "bad":
            raise FakeCaseError("labels: expected an integer dtype,\ngot float32")
        return {"echo": json.loads(text)}

    package = types.ModuleType("xentconf.oracle")
    package.__path__ = []
    module = types.ModuleType("xentconf.oracle.case")
    module.run_case = run_case
    module.CaseError = FakeCaseError
    package.case = module
    monkeypatch.setitem(sys.modules, "xentconf.oracle", package)
    monkeypatch.setitem(sys.modules, "xentconf.oracle.case", module)
    return seen


def test_oracle_prints_result_as_json(tmp_path, capsys, fake_case):
    case = tmp_path / "case.json"
    case.write_text('{"a": [1, 2]}', encoding="utf-8")
    assert main(["oracle", str(case)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"echo": {"a": [1, 2]}}
    assert err == ""
    assert fake_case == ['{"a": [1, 2]}']


def test_oracle_reads_stdin(monkeypatch, capsys, fake_case):
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(read=lambda: '{"b": 3}'))
    assert main(["oracle", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == {"echo": {"b": 3}}


def test_oracle_case_error_is_one_line_exit_2(tmp_path, capsys, fake_case):
    case = tmp_path / "bad.json"
    case.write_text("bad", encoding="utf-8")
    assert main(["oracle", str(case)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "xentconf oracle: labels: expected an integer dtype, got float32\n"

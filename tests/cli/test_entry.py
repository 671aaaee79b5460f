"""The command line's entry: version, doctor verdicts, what runs with no command, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runtime.cli.main import main, run
from runtime.config import LoadedConfig
from runtime.core.procs import free_port
from tests.support.cli import run_script


def test_version() -> None:
    run = run_script("--version")
    assert run.code == 0 and run.err == ""
    assert run.out.startswith("holdfast 0.")


def test_python_dash_m_app_is_the_same_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "app", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("holdfast 0.")


def test_doctor_names_the_failing_check(capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    assert main(["--base-url", dead, "doctor"]) == 1
    out = capsys.readouterr().out
    assert "embedded redis-server" in out  # redis was started, checked and stopped
    llm_line = next(line for line in out.splitlines() if " llm " in line)
    assert "FAIL" in llm_line
    assert "not healthy: llm failed" in out


def test_doctor_passes_with_embedded_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "all checks passed" in out


def test_unknown_subcommand_is_usage_error() -> None:
    run = run_script("frobnicate")
    assert run.code == 2
    assert run.err == "holdfast: No such command 'frobnicate'. See 'holdfast --help'.\n"


def test_no_command_opens_the_ui_with_the_global_options_applied() -> None:
    opened: list[LoadedConfig] = []

    def open_ui(loaded: LoadedConfig) -> int:
        opened.append(loaded)
        return 7

    assert run(["--model", "m1", "--user", "alice", "--log-level", "debug"], open_ui=open_ui) == 7
    (loaded,) = opened
    assert loaded.config.llm.model == "m1" and loaded.config.agent.user == "alice"
    assert loaded.config.logging.level == "DEBUG"
    # a command never opens the UI
    assert run(["config"], open_ui=open_ui) == 0 and len(opened) == 1


def test_no_command_without_a_ui_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err == "holdfast: Missing command. See 'holdfast --help'.\n"

"""The command line: version, doctor verdicts and exit codes."""

from __future__ import annotations

import pytest

from runtime.cli.main import main
from runtime.core.procs import free_port


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("holdfast 0.")


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


def test_unknown_subcommand_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2

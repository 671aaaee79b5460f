"""Logs: JSON lines in a file, with ids where known, and never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from runtime.cli.main import main
from runtime.core.logs import log_context, register_secret, setup_logging

SECRET = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = setup_logging(tmp_path / "logs" / "holdfast.log", "DEBUG")
    yield path
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "_holdfast", False):
            logging.getLogger().removeHandler(handler)
            handler.close()


def records(path: Path) -> list[dict]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_lines_carry_turn_and_conversation_ids(log_file: Path) -> None:
    log = logging.getLogger("holdfast.test")
    with log_context(turn_id="t-1", conversation_id="c-9"):
        log.info("turn %s started", 1)
    log.warning("outside")
    first, second = records(log_file)
    assert first["message"] == "turn 1 started" and first["turn_id"] == "t-1" and first["conversation_id"] == "c-9"
    assert first["level"] == "INFO" and first["logger"] == "holdfast.test" and first["ts"].endswith("Z")
    assert "turn_id" not in second


def test_no_secret_reaches_the_log(log_file: Path) -> None:
    register_secret("my-unusual-password-42")
    log = logging.getLogger("holdfast.test")
    log.info("headers: %s", {"Authorization": f"Bearer {SECRET}", "Accept": "json"})
    log.info("calling with api_key=%s", SECRET)
    log.debug("raw: Authorization: Bearer abcdefghijklmnop")
    log.info("x-api-key: %s", "zzzzzzzzzzzzzzzz")
    log.info("registered %s", "my-unusual-password-42")
    try:
        raise RuntimeError(f"upstream rejected key {SECRET}")
    except RuntimeError:
        log.exception("call failed")
    text = log_file.read_text()
    for secret in (SECRET, "abcdefghijklmnop", "zzzzzzzzzzzzzzzz", "my-unusual-password-42"):
        assert secret not in text
    assert text.count("[REDACTED]") >= 6
    assert "Accept" in text  # the rest of the message is kept


def test_cli_logs_to_the_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("HOLDFAST_LOG_DIR", str(tmp_path / "logs"))
    assert main(["--log-level", "debug", "config"]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out and out.err == ""
    logging.getLogger("holdfast.after").info("key is %s", SECRET)
    log_path = tmp_path / "logs" / "holdfast.log"
    assert str(log_path) in out.out
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert "[REDACTED]" in log_path.read_text() and SECRET not in log_path.read_text()

"""``holdfast chat "explain @README.md"`` through the real console script: the file goes into the
prompt as its own budget section (the demo model receives one more user message), stderr names it
with its tokens, the stored message records it; a binary file or a path outside the working
directory is refused before anything is sent (exit 2, one line naming the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_script

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "README.md").write_text("# Demo\nHoldfast [bold]keeps[/bold] this as text.\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "secret.txt").write_text("not for the model")
    monkeypatch.chdir(root)  # the console script's working directory
    return root


def test_chat_attaches_a_mentioned_file(project: Path, script_env: dict[str, str]) -> None:
    run = run_script("chat", "explain @README.md", env=script_env)
    assert run.code == 0, run.err
    assert "I received 3 messages (1 system, 2 user)" in run.out  # the file came as its own message
    attached = [line for line in run.err.splitlines() if line.startswith("[attached ")]
    assert len(attached) == 1 and attached[0].startswith("[attached README.md: ")

    events = run_script("chat", "--json", "explain @README.md", env=script_env)
    built = next(e for e in events.json_lines() if e["type"] == "PromptBuilt")
    (figure,) = built["report"]["attachments"]
    assert figure["path"] == "README.md" and figure["truncated"] is False
    assert attached[0] == f"[attached README.md: {figure['tokens']:,} tokens]"
    assert built["report"]["attachments_tokens"] > figure["tokens"]


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("what is @logo.png", "not sent: @logo.png is a binary file (it contains NUL bytes)"),
        ("read @../secret.txt", "not sent: @../secret.txt is outside the working directory"),
    ],
)
def test_chat_refuses_binary_files_and_paths_outside(
    project: Path, script_env: dict[str, str], message: str, says: str
) -> None:
    run = run_script("chat", message, env=script_env)
    assert run.code == 2
    assert run.out == ""
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"holdfast chat: {says}"), run.err


def test_a_mention_naming_no_file_is_sent_as_text_with_a_note(project: Path, script_env: dict[str, str]) -> None:
    run = run_script("chat", "decorate it with @dataclass", env=script_env)
    assert run.code == 0, run.err
    assert f"[@dataclass: no such file under {project.resolve()}; sent as text]" in run.err
    assert 'You said: "decorate it with @dataclass"' in run.out

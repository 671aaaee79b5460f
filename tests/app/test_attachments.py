"""@file attachments in the TUI (issue 17, item 6), at 80x24: typing ``@`` opens the fuzzy file
finder over the working directory (a .gitignore'd file is not offered), picking a file puts
``@path`` in the message, Esc closes the finder; the sent message carries the file as its own
prompt section, which the Context panel shows with its token count, and the demo model receives
it as one more user message. A binary file is refused: not sent, the text back in the composer.

Real Redis, the embedded demo LLM server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from app.chat_app import HoldfastApp
from app.widgets.notice import Notice
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (80, 24)
NOTES = "Release notes: [bold]not markup[/bold] \x1b[31mnot red\x1b[0m.\n" * 10


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "notes.md").write_text(NOTES)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "secret.log").write_text("token=abc\n")
    (root / ".gitignore").write_text("*.log\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    monkeypatch.chdir(root)  # the app's working directory
    return root


def _offered(app: HoldfastApp) -> list[str]:
    finder = app.composer.finder
    assert finder is not None
    return [str(finder.get_option_at_index(i).prompt) for i in range(finder.option_count)]


def _panel_text(app: HoldfastApp) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(app.context_panel.content)
    return console.export_text()


async def test_pick_a_file_with_at_and_send_it_as_an_attachment(project: Path, data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        app.composer.focus()
        await pilot.press("s", "e", "e", "space", "@", "s", "e", "c")
        await wait_for(lambda: app.composer.finder is not None, what="the file finder", pause=pilot.pause)
        # secret.log is .gitignore'd: "sec" finds nothing to offer
        await wait_for(lambda: _offered(app) == ["no file matches 'sec'"], what="the filtered list", pause=pilot.pause)
        await pilot.press("escape")
        assert app.composer.finder is None and app.composer.text == "see @sec"
        assert not app.query("#file-finder")

        await pilot.press("backspace", "backspace", "backspace", "backspace", "@")
        await wait_for(lambda: "notes.md" in _offered(app), what="every listed file", pause=pilot.pause)
        assert "secret.log" not in _offered(app)
        await pilot.press("n", "t", "s")
        await wait_for(
            lambda: app.composer.finder is not None and app.composer.finder.chosen == "notes.md",
            what="notes.md highlighted",
            pause=pilot.pause,
        )
        await pilot.press("enter")  # picks the file, does not send
        assert app.composer.text == "see @notes.md "
        assert app.composer.finder is None

        await pilot.press("enter")
        await wait_for(
            lambda: not app.turn_running and (r := app.chat_log.last_reply()) is not None and "received" in r.text,
            what="the reply",
            pause=pilot.pause,
        )
        reply = app.chat_log.last_reply()
        assert reply is not None
        assert "I received 3 messages (1 system, 2 user)" in reply.text  # the file came as its own message
        report = app.context_panel.report
        assert report is not None
        (figure,) = report.attachments
        assert (figure.path, figure.truncated) == ("notes.md", False)
        text = _panel_text(app)
        assert f"@ notes.md {figure.tokens:,} tok" in text
        assert f"files {report.attachments_tokens:,}" in text
        assert "[bold]" not in text  # the file's text is never shown, let alone as markup

        assert app.conversation_id is not None
        stored = await app.runtime.read_messages(app.conversation_id, 10)
        user = next(m for m in stored if m.role == "user")
        assert user.content == "see @notes.md "
        (recorded,) = user.metadata["attachments"]  # which file and how it fit, not its text
        assert recorded["path"] == "notes.md" and recorded["bytes"] == len(NOTES.encode())
        assert (recorded["tokens_sent"], recorded["truncated"]) == (figure.tokens, False)
        assert NOTES not in str(user.metadata)


async def test_a_binary_file_is_refused_and_the_message_comes_back(
    project: Path, data_dir: Path, redis_url: str
) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "what is in @logo.png")
        await wait_for(lambda: app.composer.text == "what is in @logo.png", what="the text back", pause=pilot.pause)
        notices = [n.text for n in app.chat_log.query(Notice)]
        assert any(t.startswith("Not sent: @logo.png is a binary file") for t in notices), notices
        assert app.chat_log.last_reply() is None

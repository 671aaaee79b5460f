"""The assistant's reply: streamed Markdown plus a badge for interrupted / cached / fallback.

Every delta goes straight to a :class:`MarkdownFeed` (Textual's ``MarkdownStream`` pattern):
``Markdown.append`` re-parses only the last block, and whatever arrives while an append is
still being drawn is coalesced into the next one: the batch size follows how busy the UI is
(one delta per append when idle, hundreds when a long reply makes each layout slow). A fixed
flush timer on top of that only added latency: its callback queued behind the very layouts it
was meant to avoid, so a long reply fell 100-300 ms behind for most of its deltas. A reply
longer than ``PLAIN_LIMIT`` characters switches to plain literal text: re-parsing a huge
Markdown document on every batch would freeze the UI.

Three things keep the last token of a long reply on screen within 100 ms (issue 16; measured by
``tests/bench/bench_app.py``):

- :class:`ReplyMarkdown` lays a finished chunk out once: Textual keys a block's cached size on
  the height offered to the document, which grows with every delta, so each frame re-measured
  every block of a 2,000-token reply (lists and code blocks re-arranged, ~60% of a frame).
- :data:`GC_PAUSE` holds Python's full garbage collections off while a reply streams: one took
  200-900 ms on a loaded 2-core machine and came about every second of a 500 tokens/s stream,
  so one often landed between the last token and its frame.
- Only what is near the screen is laid out. A long reply is a column of Markdown *chunks*: while
  it streams, every :data:`SEAL_BLOCKS` finished blocks are sealed into a chunk and the deltas go
  on into a new one (a stored reply is composed in chunks the same way); a sealed chunk more than
  a screen away from the visible part of the chat is *folded*, swapped for an empty
  :class:`ChunkFold` of its exact height, and unfolded when the user scrolls near it. Each frame
  used to walk and place every widget of every reply (about 500 for the demo's long story).
  Chunks split only before a block Textual draws with no top margin (paragraphs and lists), so
  the gap between two blocks is the same whether they share a chunk or not: the reply looks the
  same as one Markdown document.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownBlock

from app.safe_text import StreamCleaner, clean, literal
from app.widgets.reply_figures import ReplyFiguresLine

if TYPE_CHECKING:
    from textual._arrange import DockArrangeResult

    from runtime.core.figures import ReplyFigures

#: Characters after which a reply is shown as plain text instead of Markdown.
PLAIN_LIMIT = 60_000
#: Finished blocks a chunk of a reply holds before it is sealed (and can be folded).
SEAL_BLOCKS = 12
#: Stored replies shorter than this (characters) are composed as one chunk.
CHUNK_CHARS = 3000
#: Top-level Markdown tokens whose block Textual draws with no top margin: a chunk may start there.
FLUSH_STARTS = frozenset({"paragraph_open", "bullet_list_open", "ordered_list_open"})
#: Seconds a removed reply waits for its feed's task to end.
STOP_WAIT = 1.0
#: Seconds between two small full passes while a reply streams (see StreamGcPause.step).
GC_STEP = 0.2
#: Objects frozen since start-up after which dropping widgets gives them back to the collector.
THAW_AFTER = 500_000
#: The oldest generation's threshold while a reply streams: no full collection starts.
HELD_THRESHOLD = 1 << 30


class StreamGcPause:
    """Python's full garbage collections, held off while at least one reply streams, and kept
    short after it by freezing what outlived the last one.

    A collection of the oldest generation walks every object in it and stops the event loop for
    its duration: 200-900 ms measured with a long reply on screen on a loaded 2-core machine,
    about once a second of a 500 tokens/s stream, so one often landed between the last token and
    the frame showing it. (Textual pauses the collector during smooth scrolls for the same
    reason: ``App.PAUSE_GC_ON_SCROLL``.) While held, the young generations are still collected as
    usual (passes of 1-30 ms in the same measurement); only the full pass waits, by raising the
    oldest generation's threshold (``gc.set_threshold``), until the last holder releases it,
    after the finished reply's frame is painted.

    That deferred pass used to walk the whole heap: everything loaded at start-up and every reply
    on screen, 0.5-1.4 s right after each long reply (the demo's long story leaves ~110,000 live
    objects and ~120,000 garbage ones, the Markdown blocks each append replaced). Now the objects
    that outlived a full pass are moved out of the collector's sight (``gc.freeze()``): at the
    first hold, the start-up heap; after each release, the survivors of the one collection run
    then (:meth:`release`). A full pass then walks only what the last reply (and anything since)
    created. Frozen objects are never collected: when the chat log drops widgets (a conversation
    switch) and many objects were frozen since start-up, :meth:`thaw` gives them back to the
    collector in one full pass (see :data:`THAW_AFTER`: the widgets of about four long replies).
    """

    def __init__(self) -> None:
        self._holders: set[int] = set()
        self._saved: tuple[int, int, int] | None = None
        #: Full passes run at release, with their duration in seconds (for the bench and tests).
        self.passes: list[float] = []
        #: Steps run while held, each's duration in seconds.
        self.steps: list[float] = []
        self._stepped = 0.0
        #: Objects frozen at start-up (or at the last thaw).
        self._base = 0
        self._thaw_at_release = False

    @property
    def held(self) -> bool:
        """True while a stream holds full collections off."""
        return self._saved is not None

    def hold(self, owner: object) -> None:
        """``owner`` starts streaming (holding twice is one hold)."""
        if self._saved is None:
            if not self.passes and gc.get_freeze_count() == 0:
                gc.freeze()  # the start-up heap (modules, config, the app's frame): long-lived
                self._base = gc.get_freeze_count()
            young, middle, old = gc.get_threshold()
            self._saved = (young, middle, old)
            gc.set_threshold(young, middle, HELD_THRESHOLD)
        self._holders.add(id(owner))

    def release(self, owner: object) -> None:
        """``owner`` is done (finished and painted, or removed); unknown owners are ignored. The
        last release runs the held full pass over the unfrozen objects, then freezes the
        survivors."""
        self._holders.discard(id(owner))
        if not self._holders and self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None
            started = time.perf_counter()
            if self._thaw_at_release:
                self._thaw_at_release = False
                gc.unfreeze()
            gc.collect()
            gc.freeze()
            self.passes.append(time.perf_counter() - started)

    def step(self) -> None:
        """While held: at most every :data:`GC_STEP` s, a full pass over what is not frozen (what
        the stream created since the last step: a few thousand objects, a few ms), then freeze the
        survivors. The garbage a long reply makes (the blocks each append replaces) is collected
        in these small steps instead of all at once after the reply."""
        now = time.perf_counter()
        if self._saved is None or now - self._stepped < GC_STEP:
            return
        gc.collect()
        gc.freeze()
        self._stepped = time.perf_counter()
        self.steps.append(self._stepped - now)

    def thaw(self) -> None:
        """Widgets were dropped (a conversation switch): some frozen objects are garbage now. Once
        more than :data:`THAW_AFTER` objects were frozen since start-up, give them all back to the
        collector and collect at once (one full pass over the heap, here, rather than in the
        middle of a stream), then freeze again. While a reply streams, at its release instead."""
        if gc.get_freeze_count() - self._base <= THAW_AFTER:
            return
        if self._saved is not None:
            self._thaw_at_release = True
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._base = gc.get_freeze_count()


#: The process's one pause (the collector is process-wide).
GC_PAUSE = StreamGcPause()


class ReplyMarkdown(Markdown):
    """Textual's Markdown, for one chunk of a reply; once ``frozen`` (no more text will come),
    laid out at the height its blocks need whatever height it is offered.

    Every block of a Markdown document is ``height: auto``, so the document's arrangement does
    not depend on the height of the space around it. Textual still keys each block's cached box
    model on that height (and re-arranges every list and code block when it changes), and in a
    streaming reply it changes with every delta: each frame re-measured every block of the
    reply. A frozen chunk asks for its arrangement at height 0 (as Textual itself does to measure
    an auto-height container whose children are not all dynamic): the same placements, and its
    blocks' sizes stay cached. A chunk still receiving text is left to Textual's own keys: the
    changing height is also what makes Textual re-measure a block updated twice between two of
    its own refreshes (its layout counter is bumped only once), so freezing a growing chunk
    shows stale heights.
    """

    #: No more text comes into this chunk (a sealed chunk, or any chunk of a finished reply).
    frozen = False
    #: The part of ``source`` this chunk shows once sealed (its last block moved to the next chunk).
    sealed: str | None = None

    @property
    def shown_source(self) -> str:
        """The Markdown source of the blocks this chunk shows."""
        return self.sealed if self.sealed is not None else self.source

    def arrange(self, size: Size, optimal: bool = False) -> DockArrangeResult:
        """Textual's arrangement of the blocks for ``size`` (only its width once frozen)."""
        return super().arrange(Size(size.width, 0) if self.frozen else size, optimal)


class MarkdownFeed:
    """Streamed deltas into one Markdown widget, one ``append`` at a time.

    Like Textual's ``MarkdownStream``: whatever arrives while an append is being drawn goes into
    the next one. Unlike it, :meth:`flush` waits for the appends to finish instead of cancelling
    the loop: ``MarkdownStream.stop()`` during an append in flight starts a second append
    concurrently, whose start line is read before the first one moved it, and the blocks it
    mounts carry wrong source lines (found when sealing chunks mid-stream).
    """

    def __init__(self, markdown: Markdown) -> None:
        self.markdown = markdown
        self._pending: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def write(self, text: str) -> None:
        """Queue ``text``; the feed's task appends it (with whatever else is queued by then)."""
        if not text:
            return
        self._pending.append(text)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        await asyncio.sleep(0)  # let the task start the append now if the loop is free

    async def _drain(self) -> None:
        while self._pending:
            batch = "".join(self._pending)
            self._pending.clear()
            try:
                await self.markdown.append(batch)
            except Exception:
                if self.markdown.is_attached:
                    raise
                self._pending.clear()  # the reply left the screen (a conversation switch)
                return

    async def flush(self) -> None:
        """Wait until everything written is appended and drawn."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Drop what is queued and end the feed's task, waiting (at most :data:`STOP_WAIT` s) until
        it has ended: the widget is going away (a conversation switch mid-stream). A task only
        cancelled, never awaited, could be left waiting on the removed widget's mounts and be
        destroyed pending ("Task was destroyed but it is pending!")."""
        self._pending.clear()
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait([task], timeout=STOP_WAIT)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: an append failing on a removed widget is expected here


class ChunkFold(Widget):
    """The empty space a folded chunk of a reply leaves: ``lines`` blank lines, its exact height.

    ``height: auto`` on purpose: with a fixed-height child, Textual measures the reply at
    height 0, the path on which a block updated twice between two of its own refreshes keeps
    its old height (see :class:`ReplyMarkdown`), and the growing chunk would show stale lines.
    """

    DEFAULT_CSS = """
    ChunkFold { height: auto; width: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.lines = 1

    def stand_in(self, lines: int) -> None:
        """Take up ``lines`` lines."""
        if lines != self.lines:
            self.lines = lines
            self.refresh(layout=True)

    def render(self) -> str:
        return "\n" * (self.lines - 1)


def chunk_sources(text: str, *, blocks: int = SEAL_BLOCKS, parser: MarkdownIt | None = None) -> list[str]:
    """``text`` cut into Markdown chunks of about ``blocks`` top-level blocks, each cut before a
    paragraph or list (see :data:`FLUSH_STARTS`); joined they give ``text`` back. One chunk when
    ``text`` is shorter than :data:`CHUNK_CHARS`. Parsed like Textual's Markdown ("gfm-like")."""
    if len(text) < CHUNK_CHARS:
        return [text]
    tokens = (parser or MarkdownIt("gfm-like")).parse(text)
    starts = [token for token in tokens if token.level == 0 and token.nesting >= 0 and token.map is not None]
    cuts: list[int] = []
    since = 0
    for token in starts:
        since += 1
        if since > blocks and token.type in FLUSH_STARTS and token.map is not None and token.map[0] > 0:
            cuts.append(token.map[0])
            since = 1
    if not cuts:
        return [text]
    lines = text.splitlines(keepends=True)
    bounds = [0, *cuts, len(lines)]
    return ["".join(lines[start:end]) for start, end in itertools.pairwise(bounds)]


class AssistantMessage(Vertical):
    """One assistant reply. ``text`` is what has been received so far (cleaned)."""

    DEFAULT_CSS = """
    AssistantMessage { height: auto; margin: 1 1 0 0; padding: 0 1; border-left: thick $success; }
    AssistantMessage > Markdown { margin: 0; padding: 0; background: transparent; }
    AssistantMessage > .plain { height: auto; }
    AssistantMessage > .badge { color: $text-muted; height: auto; }
    AssistantMessage.-interrupted { border-left: thick $warning; }
    AssistantMessage.-fallback { border-left: thick $warning; background: $warning 8%; }
    AssistantMessage > .badge.-streaming { color: $accent; }
    AssistantMessage.-variant { border-left: thick $panel-lighten-2; text-opacity: 70%; }
    """

    @dataclass
    class Refold(Message):
        """The reply sealed a chunk or finished: the chat log should fold what is now far off screen."""

        reply: AssistantMessage

    def __init__(
        self,
        text: str = "",
        *,
        streaming: bool = False,
        message_id: str | None = None,
        source: str = "llm",
        interrupted: bool = False,
        figures: ReplyFigures | None = None,
    ) -> None:
        super().__init__()
        #: Tokens, times and cost of a stored reply, shown under it (issue 17).
        self.figures = figures
        self.text = clean(text)
        self.message_id = message_id
        self.source = source
        self.interrupted = interrupted
        #: An earlier variant a /retry replaced (kept on screen, never sent to the model again).
        self.variant = False
        self.streaming = streaming
        self._stream: MarkdownFeed | None = None
        self._plain: Static | None = None
        #: The chunk the stream writes into (the last one).
        self._live: ReplyMarkdown | None = None
        #: Sealed chunk -> the fold standing in for it while it is far off screen.
        self._folds: dict[ReplyMarkdown, ChunkFold] = {}
        #: The width the folds' heights were taken at.
        self._folded_width: int | None = None
        #: Cleans each delta alone, holding back an escape sequence split across two deltas.
        self._cleaner = StreamCleaner()

    def compose(self) -> ComposeResult:
        if len(self.text) > PLAIN_LIMIT:
            self._plain = Static(literal(self.text), markup=False, classes="plain")
            yield self._plain
        elif not self.streaming:
            yield from self._chunk_widgets(chunk_sources(self.text))
        # A streaming reply's chunk is mounted empty and fed in on_mount: Textual's Markdown
        # given text up front resumes appending from its last line, not from its last block, and
        # a list or paragraph spanning lines loses its first lines on the next append.
        badge_text = self._badge()
        # The streaming marker lives on the badge, not on the message: toggling a class on the
        # message restyles every Markdown block under it (hundreds of widgets in a long reply).
        badge = Static(badge_text, markup=False, classes="badge -streaming" if self.streaming else "badge")
        badge.display = bool(badge_text.plain)
        yield badge
        if self.figures is not None:
            yield ReplyFiguresLine(self.figures)

    async def show_figures(self, figures: ReplyFigures) -> None:
        """Show the reply's figures under it (a finished live reply: its ``AssistantSaved``)."""
        self.figures = figures
        await self.query(ReplyFiguresLine).remove()
        await self.mount(ReplyFiguresLine(figures))

    async def on_mount(self) -> None:
        if not self.streaming:
            return
        GC_PAUSE.hold(self)
        if self._plain is None:
            self._live = ReplyMarkdown(open_links=False)
            await self.mount(self._live, before=self.query_one(".badge"))
            if self.text:
                await self._write(self.text)

    async def on_unmount(self) -> None:
        GC_PAUSE.release(self)
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.stop()

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
        """The first Markdown chunk (None once the reply is plain text)."""
        found = self.query_children(ReplyMarkdown)
        return found.first() if found else None

    @property
    def chunks(self) -> list[ReplyMarkdown]:
        """The reply's Markdown chunks, top to bottom (folded ones included)."""
        return list(self.query_children(ReplyMarkdown))

    @property
    def rendered_text(self) -> str:
        """What the widget currently shows (for tests and the stream benchmark)."""
        if self._plain is not None:
            return self.text
        return "".join(chunk.shown_source for chunk in self.chunks)

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
        live = self._live
        if live is None:
            return
        if self._stream is None:
            self._stream = MarkdownFeed(live)
        await self._stream.write(fragment)
        GC_PAUSE.step()
        if self.streaming and len(live.children) > SEAL_BLOCKS and live.children[-1].styles.margin.top == 0:
            await self._seal(live)

    async def _close_stream(self) -> None:
        """Draw what the stream still holds, and wait until it is drawn."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.flush()

    async def _seal(self, live: ReplyMarkdown) -> None:
        """Seal the live chunk's finished blocks; its last (growing) block starts a new live chunk.

        Only when that last block has no top margin (a paragraph or a list), so the gap above it
        is the finished block's bottom margin either way. Everything before the last block is
        final to Textual's own stream (it only ever re-parses from the last block on)."""
        await self._close_stream()
        blocks = list(live.query_children(MarkdownBlock))
        if len(blocks) < 2 or blocks[-1].styles.margin.top != 0:
            return
        last = blocks[-1]
        start = last.source_range[0] if last.source_range else 0
        lines = live.source.splitlines(keepends=True)
        head, tail = "".join(lines[:start]), "".join(lines[start:])
        if not head or not tail:
            return
        # Mounted empty, then fed the growing block (see compose for why not given up front).
        following = ReplyMarkdown(open_links=False)
        fold = ChunkFold()
        fold.display = False
        with self.app.batch_update():
            await last.remove()
            live.sealed = head
            live.frozen = True
            self._folds[live] = fold
            self._live = following
            await self.mount_all([fold, following], after=live)
        self._stream = MarkdownFeed(following)
        await self._stream.write(tail)
        self.post_message(self.Refold(self))

    def refold(self, top: int, bottom: int, *, fold: bool = True) -> bool:
        """Fold the sealed (or finished) chunks lying wholly outside lines ``top`` to ``bottom`` of the chat
        log's content (scroll-independent coordinates); unfold the folded ones inside them.
        ``fold=False`` only unfolds (safe in the middle of a layout: folding takes a chunk's
        height, which is only settled once its frame is placed).

        Positions come from the last layout's placements relative to the reply, which scrolling
        does not change, so a jump (Home, a search hit) unfolds what it lands on before drawing.
        Returns True if a chunk or fold is not laid out yet (ask again after the next frame)."""
        origin = self.virtual_region.y + self.styles.gutter.top
        unplaced = False
        for chunk, stand_in in self._folds.items():
            shown = chunk if chunk.display else stand_in
            placed = shown.virtual_region
            if not placed:
                unplaced = True  # just shown, not laid out yet
                continue
            near = origin + placed.bottom > top and origin + placed.y < bottom
            if chunk.display and not near and fold and placed.height > 0:
                stand_in.stand_in(placed.height)
                stand_in.display = True
                chunk.display = False
            elif not chunk.display and near:
                chunk.display = True
                stand_in.display = False
        return unplaced

    def unfold(self) -> None:
        """Show every chunk again (a fold's height is only right at the width it was taken at)."""
        for chunk, fold in self._folds.items():
            if not chunk.display:
                chunk.display = True
                fold.display = False

    def on_resize(self, event: events.Resize) -> None:
        if self._folds:
            if self._folded_width not in (None, event.size.width):
                self.unfold()  # the folds' heights were taken at the old width
            # The reply grew or moved the others: the chat log re-checks what is near the view.
            self.post_message(self.Refold(self))
        self._folded_width = event.size.width

    async def _switch_to_plain(self) -> None:
        await self._close_stream()
        self._plain = Static(literal(self.text), markup=False, classes="plain")
        await self._remove_chunks()
        await self.mount(self._plain, before=self.query_one(".badge"))

    async def _remove_chunks(self) -> None:
        """Remove every Markdown chunk and fold (the reply is redrawn whole)."""
        doomed: list[Widget] = [*self.chunks, *self._folds.values()]
        self._folds = {}
        self._live = None
        if doomed:
            await self.remove_children(doomed)

    async def _redraw(self) -> None:
        """Draw ``text`` again from scratch, in chunks like a stored reply."""
        await self._remove_chunks()
        await self.mount_all(self._chunk_widgets(chunk_sources(self.text)), before=self.query_one(".badge"))

    def _chunk_widgets(self, sources: list[str]) -> list[Widget]:
        """A frozen Markdown chunk per source of a finished reply, each followed by its (hidden)
        fold when there are several."""
        widgets: list[Widget] = []
        for source in sources:
            # Links a model wrote are not followed blindly: see on_markdown_link_clicked.
            chunk = self._live = ReplyMarkdown(source, open_links=False)
            chunk.frozen = True
            widgets.append(chunk)
            if len(sources) > 1:
                fold = self._folds[chunk] = ChunkFold()
                fold.display = False
                widgets.append(fold)
        return widgets

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
        for chunk in self.chunks:
            chunk.frozen = True
        if self._folds and self._live is not None and self._live not in self._folds:
            # The last chunk is final too: it may fold once the chat moves on past it.
            fold = self._folds[self._live] = ChunkFold()
            fold.display = False
            await self.mount(fold, after=self._live)
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
            else:
                await self._redraw()
        self.set_class(interrupted, "-interrupted")
        self.set_class(source not in ("llm", ""), "-fallback")
        badge = self.query_one(".badge", Static)
        badge.remove_class("-streaming")
        text = self._badge()
        badge.update(text)
        badge.display = bool(text.plain)
        # The collector comes back once the finished reply is on screen, not before its frame.
        self.call_after_refresh(self._release_gc)
        if self._folds:
            self.post_message(self.Refold(self))

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
            parts.append("↺ other variant, not sent to the model (Alt+↑, then < > switches)")
        if self.interrupted:
            parts.append("⚠ interrupted")
        if self.source not in ("llm", ""):
            parts.append(f"⚠ {'cached answer' if self.source == 'cache' else 'fallback: ' + clean(self.source)}")
        return Text(" · ".join(parts), style="italic")

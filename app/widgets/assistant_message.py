"""The assistant's reply: streamed Markdown plus a badge for interrupted / cached / fallback.

Every delta goes straight to Textual's ``MarkdownStream``, which re-parses only the last block
and, while an append is still being drawn, coalesces whatever arrives meanwhile into the next
one: the batch size follows how busy the UI is (one delta per append when idle, hundreds when a
long reply makes each layout slow). A fixed flush timer on top of that only added latency: its
callback queued behind the very layouts it was meant to avoid, so a long reply fell 100-300 ms
behind for most of its deltas. A reply longer than ``PLAIN_LIMIT`` characters switches to plain
literal text: re-parsing a huge Markdown document on every batch would freeze the UI.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from app.safe_text import clean, literal

#: Characters after which a reply is shown as plain text instead of Markdown.
PLAIN_LIMIT = 60_000


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

    def compose(self) -> ComposeResult:
        if len(self.text) > PLAIN_LIMIT:
            self._plain = Static(literal(self.text), markup=False, classes="plain")
            yield self._plain
        else:
            # Links a model wrote are not followed blindly: see on_markdown_link_clicked.
            yield Markdown(self.text, open_links=False)
        badge_text = self._badge()
        # The streaming marker lives on the badge, not on the message: toggling a class on the
        # message restyles every Markdown block under it (hundreds of widgets in a long reply).
        badge = Static(badge_text, markup=False, classes="badge -streaming" if self.streaming else "badge")
        badge.display = bool(badge_text.plain)
        yield badge

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
        return md._markdown if md is not None else ""

    async def append(self, fragment: str) -> None:
        fragment = clean(fragment)
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
        await self._close_stream()
        self.streaming = False
        self.interrupted = interrupted
        self.source = source
        self.message_id = message_id or self.message_id
        if content is not None and clean(content) != self.text:
            self.text = clean(content)
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

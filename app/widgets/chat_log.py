"""The scrolling chat log: messages, tool blocks and notices, with a cap on what is mounted.

Only the newest ``max_rendered`` entries are kept as widgets; older ones are unmounted (their
text lives in the store). Scrolling to the top posts :class:`ChatLog.LoadOlder` so the app can
fetch the previous page. Keeping the widget count bounded is what keeps long histories smooth.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget

from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice, NoticeKind
from app.widgets.welcome import Welcome


class ChatLog(VerticalScroll):
    DEFAULT_CSS = """
    ChatLog { height: 1fr; padding: 0 1 1 1; }
    """

    @dataclass
    class LoadOlder(Message):
        """The user scrolled to the top and older messages exist."""

        log: ChatLog

    def __init__(self, *, max_rendered: int = 200, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_rendered = max_rendered
        #: True when the conversation has messages older than the oldest mounted one.
        self.has_older = False
        self._asked_older = False

    def on_mount(self) -> None:
        # Anchored: the log follows new content (a streaming reply) until the user scrolls up,
        # without a scroll request per delta.
        self.anchor()

    async def add(self, *widgets: Widget) -> None:
        """Append at the bottom (followed while the log is anchored to its end); the welcome card
        of an empty conversation goes away with the first real entry."""
        if not all(isinstance(widget, Welcome) for widget in widgets):
            welcome = self.query(Welcome)
            if welcome:
                await welcome.remove()
        await self.mount_all(widgets)
        await self._prune()

    async def prepend(self, widgets: list[Widget]) -> None:
        """Insert older entries above the current ones (after a LoadOlder)."""
        if not widgets:
            self._asked_older = False
            return
        first = self.children[0] if self.children else None
        if first is None:
            await self.mount_all(widgets)
        else:
            await self.mount_all(widgets, before=first)
        self._asked_older = False

    async def notice(self, text: str, kind: NoticeKind = "info") -> Notice:
        widget = Notice(text, kind)
        await self.add(widget)
        return widget

    async def _prune(self) -> None:
        excess = len(self.children) - self.max_rendered
        if excess > 0:
            self.has_older = True
            await self.remove_children(list(self.children)[:excess])

    async def clear(self) -> None:
        self.has_older = False
        self._asked_older = False
        await self.remove_children()

    def last_reply(self) -> AssistantMessage | None:
        for child in reversed(self.children):
            if isinstance(child, AssistantMessage) and child.text:
                return child
        return None

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new <= 0 and old > 0 and self.has_older and not self._asked_older:
            self._asked_older = True
            self.post_message(self.LoadOlder(self))

"""The scrolling chat log: messages, tool blocks and notices, with a cap on what is mounted.

Only the newest ``max_rendered`` entries are kept as widgets; older ones are unmounted (their
text lives in the store). Scrolling to the top posts :class:`ChatLog.LoadOlder` so the app can
fetch the previous page. Keeping the widget count bounded is what keeps long histories smooth.
Within that bound, the chunks of long replies that are more than a screen away from the view
are folded (see :meth:`AssistantMessage.refold`): re-checked on every scroll and whenever a
streaming reply seals a chunk, so a frame lays out what is near the screen, not the whole log.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from app.widgets.assistant_message import GC_PAUSE, AssistantMessage
from app.widgets.notice import Notice, NoticeKind
from app.widgets.user_message import UserMessage
from app.widgets.welcome import Welcome

#: Frames a refold waits at most for a just-shown chunk to be laid out.
REFOLD_RETRIES = 5


class ChatLog(VerticalScroll):
    """The chat's entries, oldest at the top, following the bottom while it grows."""

    DEFAULT_CSS = """
    ChatLog { height: 1fr; padding: 0 1 1 1; }
    """

    #: Fold the chunks of long replies that are far from the view (off: every chunk laid out,
    #: as before folding existed; the tests that compare whole layouts turn it off).
    fold_far = reactive(True)

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
        self._refold_retries = 0

    def on_mount(self) -> None:
        # Anchored: the log follows new content (a streaming reply) until the user scrolls up,
        # without a scroll request per delta.
        self.anchor()

    async def add(self, *widgets: Widget, at_end: bool = False) -> None:
        """Append at the bottom (followed while the log is anchored to its end), but above the
        user messages still queued here: they are sent after whatever is being shown now (a
        reply, a notice, another terminal's messages), so it goes before them. Queued messages
        themselves, and anything with ``at_end`` (a line about a queued message), go last. The
        welcome card of an empty conversation goes away with the first real entry."""
        if not all(isinstance(widget, Welcome) for widget in widgets):
            welcome = self.query(Welcome)
            if welcome:
                await welcome.remove()
        queued = None if at_end or all(_queued(widget) for widget in widgets) else self.first_queued()
        if queued is None:
            await self.mount_all(widgets)
        else:
            await self.mount_all(widgets, before=queued)
        await self._prune()

    def first_queued(self) -> UserMessage | None:
        """The oldest user message shown as queued (not sent yet), or None."""
        return next((child for child in self.children if _queued(child)), None)

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
        GC_PAUSE.thaw()  # the dropped widgets may be frozen: the collector may take them now

    def refold(self, *, fold: bool = True) -> None:
        """Fold the long replies' chunks more than a screen above or below the view, unfold
        those within it (in content lines, from the current scroll position); with
        :attr:`fold_far` off, unfold them all. ``fold=False`` only unfolds."""
        if not self.fold_far:
            for child in self.children:
                if isinstance(child, AssistantMessage):
                    child.unfold()
            return
        view = self.scrollable_content_region.height or self.size.height
        top = round(self.scroll_y) - view
        bottom = round(self.scroll_y) + 2 * view
        unplaced = False
        for child in self.children:
            if isinstance(child, AssistantMessage):
                unplaced = child.refold(top, bottom, fold=fold) or unplaced
        # A chunk shown since the last frame has no place yet: look again after the next one
        # (a few times at most, so a reply that is never laid out cannot keep it busy).
        if unplaced and fold and self._refold_retries < REFOLD_RETRIES:
            self._refold_retries += 1
            self.call_after_refresh(self.refold)
        else:
            self._refold_retries = 0

    def watch_fold_far(self) -> None:
        self.refold()

    def watch_virtual_size(self) -> None:
        # The log grew (a streaming reply) or shrank: re-check once the frame is placed.
        self.call_after_refresh(self.refold)

    def on_assistant_message_refold(self, message: AssistantMessage.Refold) -> None:
        message.stop()
        # After the frame that places the new chunk, so the regions compared are current.
        self.call_after_refresh(self.refold)

    def last_reply(self) -> AssistantMessage | None:
        for child in reversed(self.children):
            if isinstance(child, AssistantMessage) and child.text:
                return child
        return None

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # Unfold what the new position shows at once (before it is drawn); fold what it left
        # once the frame is placed (this may run in the middle of a layout).
        self.refold(fold=False)
        self.call_after_refresh(self.refold)
        if new <= 0 and old > 0 and self.has_older and not self._asked_older:
            self._asked_older = True
            self.post_message(self.LoadOlder(self))


def _queued(widget: Widget) -> bool:
    return isinstance(widget, UserMessage) and widget.has_class("-queued")

"""The conversations sidebar: most recent first, search, select to open.

Typing in the search box filters by title at once and asks the app (:class:`SearchChanged`) for a
search of titles *and* message text; :meth:`show_hits` then lists the matching conversations best
first, each with a snippet of its best message. Enter in the box (:class:`SearchSubmitted`) opens
the best match at that message.

It shows the runtime facade's :class:`Conversation` snapshots (``id``, ``title``, ``updated_at``,
``message_count``, and a branch's ``parent_id`` / ``fork_seq``); the app lists them in a worker and
calls :meth:`show`, then :meth:`show_totals` with each one's replies summed (its cost, when
priced; issue 17). A branch (issue 17) is listed right under its parent, indented, its second line
marking the branch point (``↳ branch at #12``); the parent's second line marks where its branches
leave it (``⑂ at #12``). Live updates from other
processes (:mod:`app.live_view`) change one row with :meth:`update` or drop it with :meth:`remove`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from app.safe_text import one_line
from runtime.core.figures import totals_line

if TYPE_CHECKING:
    from runtime.host.facade import Conversation, ConversationTotals, SearchHit


def _fork_label(fork_seq: int | None) -> str:
    """A branch point as the sidebar writes it: ``#N`` (the last shared message), ``start`` for
    a branch that shares none (the parent's first message was edited)."""
    return "start" if fork_seq is not None and fork_seq < 0 else f"#{fork_seq}"


class ConversationList(Vertical):
    """The sidebar: a title filter above the conversations, newest first; posts :class:`Selected`."""

    DEFAULT_CSS = """
    ConversationList { width: 30; border-right: vkey $primary 40%; }
    ConversationList > Input { margin: 0; border: tall $primary 30%; }
    /* No border when focused either: a focus border would shift every row down by one line
       between the mouse-down that focuses the list and the click, opening the row above. */
    ConversationList > OptionList, ConversationList > OptionList:focus {
        height: 1fr; border: none; background: transparent;
    }
    /* A title (and a snippet) is one line, cut with an ellipsis to the width the row has: a
       fixed 40-character cut wrapped onto two lines in a 30-column sidebar. */
    ConversationList > OptionList { text-wrap: nowrap; text-overflow: ellipsis; }
    """

    @dataclass
    class Selected(Message):
        """The user picked a conversation to open."""

        #: The id of the picked conversation.
        conversation_id: str

    @dataclass
    class SearchChanged(Message):
        """The search text changed: the app searches titles and messages for it."""

        query: str

    @dataclass
    class SearchSubmitted(Message):
        """Enter in the search box: open the best match for ``query`` at its message."""

        query: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.conversations: list[Conversation] = []
        self.current_id: str | None = None
        #: The last search's hits, best first, and the query they answer.
        self.hits: list[SearchHit] = []
        self.hits_query = ""
        #: Each conversation's reply totals, by id (shown after its message count).
        self.totals: dict[str, ConversationTotals] = {}

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search all text…", id="conv-search")
        yield OptionList(id="conv-options")

    @property
    def options(self) -> OptionList:
        return self.query_one("#conv-options", OptionList)

    def show(self, conversations: Iterable[Conversation], current_id: str | None = None) -> None:
        """List ``conversations`` newest first, marking ``current_id`` (None: keep the current mark)."""
        self.conversations = sorted(conversations, key=lambda c: c.updated_at, reverse=True)
        if current_id is not None:
            self.current_id = current_id
        self._render_options()

    def show_totals(self, totals: dict[str, ConversationTotals]) -> None:
        """Show these conversations' total cost in their rows (when priced); others keep theirs."""
        self.totals.update(totals)
        self._render_options()

    def update(
        self,
        conversation_id: str,
        *,
        message_count: int | None = None,
        title: str | None = None,
        updated_at: float | None = None,
    ) -> bool:
        """Change one listed conversation in place (a live update from any process) and redraw;
        a conversation whose ``updated_at`` moves goes to the top. ``message_count`` never goes
        down (updates may arrive out of order). False when it is not listed (the caller re-lists)."""
        for index, conv in enumerate(self.conversations):
            if conv.id != conversation_id:
                continue
            changed = conv
            if message_count is not None and message_count > changed.message_count:
                changed = replace(changed, message_count=message_count)
            if title is not None and title != changed.title:
                changed = replace(changed, title=title)
            if updated_at is not None and updated_at > changed.updated_at:
                changed = replace(changed, updated_at=updated_at)
            if changed != conv:
                self.conversations[index] = changed
                self.show(self.conversations)
            return True
        return False

    def remove(self, conversation_id: str) -> None:
        """Drop a conversation from the list (deleted in another process); no-op if not listed."""
        kept = [c for c in self.conversations if c.id != conversation_id]
        if len(kept) != len(self.conversations):
            self.show(kept)

    def titles(self) -> list[str]:
        """Ids of the conversations the filter shows, in order."""
        return [opt.id or "" for opt in self._visible()]

    @property
    def search_text(self) -> str:
        """What is typed in the search box, stripped ("" before it is composed)."""
        search = self.query("#conv-search")
        return search.first(Input).value.strip() if search else ""

    def show_hits(self, query: str, hits: list[SearchHit]) -> None:
        """Show the search hits for ``query`` (ignored if the box says something else by now)."""
        if query != self.search_text:
            return
        self.hits, self.hits_query = hits, query
        self._render_options()

    def _hit(self, conversation_id: str) -> SearchHit | None:
        return next((h for h in self.hits if h.conversation_id == conversation_id), None)

    def _visible(self) -> list[Conversation]:
        query = self.search_text
        if query and query == self.hits_query:
            by_id = {c.id: c for c in self.conversations}
            return [by_id[h.conversation_id] for h in self.hits if h.conversation_id in by_id]
        low = query.lower()
        if not low:
            return [conv for conv, _ in self._tree()]
        return [c for c in self.conversations if low in str(c.title).lower()]

    def _tree(self) -> list[tuple[Conversation, int]]:
        """Every conversation with its depth: most recent first, each branch right under its
        parent (branches of one parent in fork order); a branch whose parent is not listed
        (deleted) stands on its own at depth 0."""
        listed = {c.id for c in self.conversations}
        children: dict[str, list[Conversation]] = {}
        for conv in self.conversations:
            if conv.parent_id in listed:
                children.setdefault(conv.parent_id, []).append(conv)
        out: list[tuple[Conversation, int]] = []

        def add(conv: Conversation, depth: int) -> None:
            out.append((conv, depth))
            for child in sorted(children.get(conv.id, []), key=lambda c: (c.fork_seq or 0, c.created_at)):
                add(child, depth + 1)

        for conv in self.conversations:
            if conv.parent_id not in listed:
                add(conv, 0)
        return out

    def _render_options(self) -> None:
        found = self.query("#conv-options")
        if not found:
            return  # not composed yet, or being torn down: the next show() draws it
        options = found.first(OptionList)
        options.clear_options()
        highlight: int | None = None
        tree = not self.search_text
        depths = {conv.id: depth for conv, depth in self._tree()} if tree else {}
        forks: dict[str, set[int]] = {}  # parent id -> the seqs its listed branches leave it after
        for conv in self.conversations:
            if conv.parent_id and conv.fork_seq is not None:
                forks.setdefault(conv.parent_id, set()).add(conv.fork_seq)
        for index, conv in enumerate(self._visible()):
            indent = "  " * depths.get(conv.id, 0)
            label = Text(indent, style="")
            label.append(one_line(conv.title or "Untitled", 200), style="bold" if conv.id == self.current_id else "")
            count = conv.message_count
            hit = self._hit(conv.id) if self.search_text and self.search_text == self.hits_query else None
            if hit is not None and hit.snippet:
                label.append("\n" + one_line(hit.snippet, 200), style="italic dim")
            else:
                line = f"{count} message" if count == 1 else f"{count} messages"
                if conv.parent_id:
                    line = f"↳ branch at {_fork_label(conv.fork_seq)} · {line}"
                if forks.get(conv.id):  # first: a narrow sidebar cuts the end of the line
                    line = "⑂ at " + ", ".join(_fork_label(seq) for seq in sorted(forks[conv.id])) + " · " + line
                total = totals_line(self.totals[conv.id]) if conv.id in self.totals else ""
                if total:
                    line = f"{line} · {total}"
                label.append(f"\n{indent}{line}", style="dim")
            options.add_option(Option(label, id=conv.id))
            if conv.id == self.current_id:
                highlight = index
        if highlight is not None:
            options.highlighted = highlight

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._render_options()
        self.post_message(self.SearchChanged(event.value.strip()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.post_message(self.SearchSubmitted(event.value.strip()))

    def clear_search(self) -> None:
        """Empty the search box and list every conversation again."""
        self.hits, self.hits_query = [], ""
        found = self.query("#conv-search")
        if found:
            found.first(Input).value = ""
        self._render_options()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Selected(event.option.id))

    def title_of(self, conversation_id: str) -> str:
        """The title of a listed conversation ("" if not listed)."""
        for conv in self.conversations:
            if conv.id == conversation_id:
                return str(conv.title)
        return ""

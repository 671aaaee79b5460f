"""A bounded in-process cache of recent conversations, read while Redis is unreachable.

It holds what this process last saw of each recently used conversation (metadata, summary,
the newest messages with their seq) plus the messages written to the journal and not yet
replayed (``pending``, no seq yet). It is a degraded-mode view, not a source of truth:
messages other processes wrote while we could not see Redis are missing from it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

from runtime.core.messages import ChatMessage, ConversationSummary
from runtime.state.history import ConversationInfo


@dataclass
class _Entry:
    info: ConversationInfo | None = None
    summary: ConversationSummary | None = None
    confirmed: dict[int, ChatMessage] = field(default_factory=dict)
    pending: list[ChatMessage] = field(default_factory=list)


class RecentCache:
    """LRU of ``max_conversations``, each keeping its newest ``max_messages`` confirmed messages."""

    def __init__(self, max_conversations: int = 32, max_messages: int = 500) -> None:
        self.max_conversations = max_conversations
        self.max_messages = max_messages
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _entry(self, conv_id: str) -> _Entry:
        entry = self._entries.get(conv_id)
        if entry is None:
            entry = self._entries[conv_id] = _Entry()
            while len(self._entries) > self.max_conversations:
                oldest = next(iter(self._entries))
                if self._entries[oldest].pending:  # never evict unreplayed writes from view
                    self._entries.move_to_end(oldest)
                    if all(e.pending for e in self._entries.values()):
                        break
                    continue
                del self._entries[oldest]
        else:
            self._entries.move_to_end(conv_id)
        return entry

    def put_info(self, info: ConversationInfo) -> None:
        """Remember ``info`` as the latest metadata seen for its conversation (marks it recently used)."""
        self._entry(info.id).info = info

    def info(self, conv_id: str) -> ConversationInfo | None:
        """The cached metadata of ``conv_id``, or ``None`` if this process has not seen it."""
        entry = self._entries.get(conv_id)
        return entry.info if entry else None

    def infos_for_user(self, user_id: str) -> list[ConversationInfo]:
        """Cached conversations of ``user_id``, most recently updated first, each with the
        messages this process saw after its metadata was read counted in (see :func:`_current`)."""
        found = [_current(e, e.info) for e in self._entries.values() if e.info and e.info.user_id == user_id]
        return sorted(found, key=lambda c: c.updated_at, reverse=True)

    def put_summary(self, conv_id: str, summary: ConversationSummary | None) -> None:
        """Remember the current summary of ``conv_id`` (``None``: it has none)."""
        self._entry(conv_id).summary = summary

    def summary(self, conv_id: str) -> ConversationSummary | None:
        """The cached summary of ``conv_id``, or ``None`` if none is cached."""
        entry = self._entries.get(conv_id)
        return entry.summary if entry else None

    def put_messages(self, conv_id: str, messages: list[ChatMessage]) -> None:
        """Cache messages read from Redis, keeping the newest ``max_messages``; ones without a seq are ignored."""
        entry = self._entry(conv_id)
        for message in messages:
            if message.seq is not None:
                entry.confirmed[message.seq] = message
        if len(entry.confirmed) > self.max_messages:
            for seq in sorted(entry.confirmed)[: len(entry.confirmed) - self.max_messages]:
                del entry.confirmed[seq]

    def add_pending(self, conv_id: str, message: ChatMessage) -> None:
        """Show ``message``, written to the journal and not yet replayed, as the newest of ``conv_id``.

        A conversation with pending messages is never evicted.
        """
        self._entry(conv_id).pending.append(message)

    def confirm(self, conv_id: str, message_id: str, seq: int) -> None:
        """A journaled message reached Redis at ``seq``."""
        entry = self._entries.get(conv_id)
        if entry is None:
            return
        for i, message in enumerate(entry.pending):
            if message.id == message_id:
                del entry.pending[i]
                self.put_messages(conv_id, [message.with_updates(seq=seq)])
                return

    def archive_through(self, conv_id: str, message_id: str) -> None:
        """Messages up to ``message_id`` were summarised: they are no longer live history."""
        entry = self._entries.get(conv_id)
        if entry is None:
            return
        cut = next((s for s, m in entry.confirmed.items() if m.id == message_id), None)
        if cut is not None:
            for seq in [s for s in entry.confirmed if s <= cut]:
                del entry.confirmed[seq]

    def forget(self, conv_id: str) -> None:
        """Drop everything cached for ``conv_id`` (it was deleted); unknown ids are ignored."""
        self._entries.pop(conv_id, None)

    def tail(self, conv_id: str, limit: int, before_seq: int | None = None) -> list[ChatMessage]:
        """Newest ``limit`` messages before ``before_seq`` (pending ones count as newest)."""
        entry = self._entries.get(conv_id)
        if entry is None or limit <= 0:
            return []
        seqs = sorted(s for s in entry.confirmed if before_seq is None or s < before_seq)
        messages = [entry.confirmed[s] for s in seqs]
        if before_seq is None:
            messages += entry.pending
        return messages[-limit:]


@dataclass
class LiveTail:
    """The newest live messages of one conversation, decoded, as of the last sync with Redis.

    ``messages`` is contiguous by seq and ends at ``next_seq - 1``; ``created_at`` tells a
    conversation from a deleted-and-recreated one with the same id; ``summary_seq`` is the
    meta hash's marker of the current summary ("" for none) and ``summary`` its decoded record.
    """

    created_at: str
    next_seq: int
    archived: int
    summary_seq: str
    summary: ConversationSummary | None
    messages: list[ChatMessage] = field(default_factory=list)

    @property
    def start(self) -> int:
        """The seq of the oldest cached message (``next_seq`` when none is cached)."""
        return self.next_seq - len(self.messages)

    def covers(self, before_seq: int, limit: int) -> bool:
        """True when every live message of the page ``[before_seq - limit, before_seq)`` is cached."""
        low = max(before_seq - limit, self.archived)
        return self.start <= low and before_seq <= self.next_seq

    def page(self, before_seq: int, limit: int) -> list[ChatMessage]:
        """The cached live messages with seq in ``[before_seq - limit, before_seq)``, oldest first.

        Check :meth:`covers` first: this returns only what is cached, not what may be missing.
        """
        low = max(before_seq - limit, self.archived, self.start)
        return self.messages[low - self.start : max(low, before_seq) - self.start]


class LiveTailCache:
    """Decoded recent messages per conversation (LRU), so a turn decodes only what is new.

    It is only a copy: every read of the newest messages first syncs with Redis in one round
    trip (what was appended since, by any process; a summary swap; a recreated conversation),
    so it never serves what Redis no longer says.
    """

    def __init__(self, max_conversations: int = 64, max_messages: int = 2048) -> None:
        self.max_conversations = max_conversations
        self.max_messages = max_messages
        self._tails: OrderedDict[str, LiveTail] = OrderedDict()

    def get(self, conv_id: str) -> LiveTail | None:
        """The cached tail of ``conv_id`` (marked recently used), or ``None``."""
        tail = self._tails.get(conv_id)
        if tail is not None:
            self._tails.move_to_end(conv_id)
        return tail

    def put(self, conv_id: str, tail: LiveTail) -> None:
        """Store ``tail`` for ``conv_id``, trimmed to its newest ``max_messages``.

        The least recently used conversation beyond ``max_conversations`` is evicted.
        """
        if len(tail.messages) > self.max_messages:
            del tail.messages[: len(tail.messages) - self.max_messages]
        self._tails[conv_id] = tail
        self._tails.move_to_end(conv_id)
        while len(self._tails) > self.max_conversations:
            self._tails.popitem(last=False)

    def prepend(self, conv_id: str, older: list[ChatMessage]) -> None:
        """Older messages read by seq that end exactly where the cached run starts."""
        tail = self._tails.get(conv_id)
        if tail is None or not older:
            return
        first, last = older[0].seq, older[-1].seq
        if last != tail.start - 1 or first is None or last is None or any(m.seq is None for m in older):
            return
        if last - first + 1 != len(older):
            return
        room = self.max_messages - len(tail.messages)
        if room > 0:
            tail.messages[:0] = older[-room:]

    def appended(self, conv_id: str, message: ChatMessage) -> None:
        """This process appended ``message`` (with its seq): extend the run if it is the next one."""
        tail = self._tails.get(conv_id)
        if tail is None or message.seq is None:
            return
        if message.seq == tail.next_seq:
            tail.messages.append(message)
            tail.next_seq += 1
            if len(tail.messages) > self.max_messages:
                del tail.messages[0]
        # A later seq means another process appended in between: the next sync fetches the gap.

    def forget(self, conv_id: str) -> None:
        """Drop the cached tail of ``conv_id``; unknown ids are ignored."""
        self._tails.pop(conv_id, None)


def _current(entry: _Entry, info: ConversationInfo) -> ConversationInfo:
    """``info`` (read when the conversation was opened) brought up to date with the messages
    cached since: ``message_count`` is the next seq (the newest confirmed seq + 1, never less
    than it was) plus the journaled messages not replayed yet, ``updated_at`` the newest
    message's time. A list read while Redis is out showed the count the conversation had when
    it was opened (19 messages became 9 in the sidebar until Redis returned)."""
    count = max(info.message_count, max(entry.confirmed, default=-1) + 1) + len(entry.pending)
    newest = max((m.created_at for m in (*entry.confirmed.values(), *entry.pending)), default=info.updated_at)
    if count == info.message_count and newest <= info.updated_at:
        return info
    return replace(info, message_count=count, updated_at=max(info.updated_at, newest))

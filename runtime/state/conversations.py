"""ConversationStore: the conversation history every Holdfast process shares, and its degraded mode.

Normal mode: each operation is one guarded Redis call (see :mod:`runtime.state.history`).

Degraded mode starts when a Redis call fails with an outage error after the guard's retries:
unreachable, timed out, breaker open, or refusing writes (OOM, READONLY, MISCONF, LOADING), as
decided by the one rule every backend shares, :func:`runtime.resilience.classify.is_outage`.
Any other error (a bad id, a deleted conversation, a bug) is raised: journaling it would only
replay the same failure later. From then on writes skip Redis and go straight
to the local :class:`Journal` (fsync per write), in call order, and reads are served from
the :class:`RecentCache`. ``degraded`` and ``pending_writes`` say so; :class:`StoreDegraded`
is published once on entry.

Recovery: :meth:`replay` applies the journal to Redis in order (each record idempotent),
removes what was applied, and leaves degraded mode when the journal is empty
(:class:`JournalReplayed`, then :class:`StoreRecovered`). It runs when called, when the
health check sees Redis answer (:meth:`notify_healthy`), from the background loop started
by :meth:`start` (injected sleep and interval), and on :meth:`open` for a journal left by a
previous run. Writes wait while a replay holds the journal lock, so nothing written after
the outage can overtake what was journaled during it.

A Redis that answers but refuses writes (:class:`WritesRefusedError`: OOM, READONLY, MISCONF,
NOREPLICAS) degrades writes only: they are journaled as above, while reads still go to Redis,
with the journaled messages added as the newest (a fresh process builds its prompt from the
conversation's whole history, not from an empty cache). The breaker does not count a refusal, so
the recovery loop's replay (every ``replay_interval`` seconds) and the health check's write
probe (:meth:`notify_healthy`) reach Redis as soon as it takes writes again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from runtime.config import Config, RedisConfig
from runtime.core import safe_text
from runtime.core.errors import (
    AppError,
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationError,
    WritesRefusedError,
)
from runtime.core.events import Event, EventBus, JournalDamaged, JournalReplayed, StoreDegraded, StoreRecovered
from runtime.core.ids import validate_user_id
from runtime.core.messages import ChatMessage, ConversationSummary, Role, ToolCall
from runtime.resilience.classify import is_outage
from runtime.state import codec, export
from runtime.state.cache import LiveTail, LiveTailCache, RecentCache
from runtime.state.client import RedisRunner
from runtime.state.history import SETTING_PREFIX, ConversationDump, ConversationInfo, RedisHistory, encode_message
from runtime.state.journal import Journal
from runtime.state.keys import BRANCH_MARK, Keys
from runtime.state.live import channel_prefix

log = logging.getLogger(__name__)

T = TypeVar("T")

STORE_NAME = "conversations"
#: Messages with this metadata flag stay in history but are never sent to the model (fallback
#: notices, partial answers of failed attempts); set by the agent, honoured by every prompt.
HIDDEN = "hidden"
_ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})
_MAX_TITLE = 200
#: A conversation setting's name (``model``, ``variant:<user message id>``).
_SETTING_NAME = re.compile(r"[A-Za-z0-9_:.\-]{1,200}")
#: Longest setting value (a model name, a pair of turn ids).
MAX_SETTING_CHARS = 1000
#: How many of its own appended message ids a store remembers (:meth:`ConversationStore.wrote`).
MINE_REMEMBERED = 10_000

TokenCounter = Callable[[ChatMessage], int]


def new_conversation_id() -> str:
    """A fresh conversation id: ``conv_`` and 24 random hex digits (safe inside a Redis key)."""
    return "conv_" + secrets.token_hex(12)


@dataclass(frozen=True)
class ReplayReport:
    """What one :meth:`ConversationStore.replay` did: journal records applied (``replayed``),
    already in Redis (``duplicates``), dropped because they can never apply (``dropped``), still
    journaled (``remaining``), and the outage that stopped it (``error``, empty if none)."""

    replayed: int = 0
    duplicates: int = 0
    dropped: int = 0
    remaining: int = 0
    error: str = ""


class ConversationStore:
    """Append-only conversation history on Redis with a local journal for outages.

    Implements :class:`runtime.core.messages.HistoryReader` (``read_tail``, ``get_summary``).
    """

    def __init__(
        self,
        runner: RedisRunner,
        config: RedisConfig,
        *,
        journal_dir: Path,
        bus: EventBus | None = None,
        count_tokens: TokenCounter | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        replay_interval: float = 2.0,
        cache: RecentCache | None = None,
        live: LiveTailCache | None = None,
        live_updates: bool = True,
    ) -> None:
        # Appends (and their replays) WAIT for [redis].min_replicas_ack replicas; a shortfall is
        # an outage here: the record is journaled as well and replayed until they have it.
        runner = runner.with_replica_ack(config.min_replicas_ack, config.replica_ack_timeout)
        self._runner = runner
        # Appends, titles and deletes are announced to every process of the owner from inside
        # their scripts (runtime.state.live): no extra round trip. False: announced to nobody.
        self._history = RedisHistory(
            runner,
            Keys(config.key_prefix),
            retention=config.conversation_retention,
            archive_ttl=config.archive_ttl,
            live_channel=channel_prefix(config.key_prefix) if live_updates else "",
        )
        self.journal = Journal(journal_dir)
        self._bus = bus
        self._count_tokens = count_tokens
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._replay_interval = replay_interval
        self._cache = cache or RecentCache()
        # Decoded newest messages per conversation, synced with Redis on every read of the tail.
        self._live = live or LiveTailCache()
        self._degraded = False
        self._degraded_reason = ""
        self._degraded_since = 0.0
        # True while only writes are degraded (Redis refuses writes but serves reads).
        self._writes_only = False
        #: Why Redis cannot be reached at all when that is known better than "unreachable" (the
        #: embedded server could not start: set by the host); the degraded reason then.
        self.unavailable_reason = ""
        self._pending = 0
        # Held while journaling or replaying, so journal order is write order.
        self._journal_lock = asyncio.Lock()
        self._loop_task: asyncio.Task[None] | None = None
        self._replay_task: asyncio.Task[ReplayReport] | None = None
        self._notices: list[str] = []
        # Ids of the messages this store appended (newest last): live updates tell them apart.
        self._mine: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_config(cls, runner: RedisRunner, config: Config, **kwargs: Any) -> ConversationStore:
        """A store with the ``[redis]`` settings and its journal in ``<data dir>/journal``;
        ``kwargs`` go to the constructor (bus, clocks, token counter)."""
        kwargs.setdefault("journal_dir", config.data_path / "journal")
        return cls(runner, config.redis, **kwargs)

    # ------------------------------------------------------------ state

    @property
    def degraded(self) -> bool:
        """True while writes go to the local journal and reads come from the local cache."""
        return self._degraded

    @property
    def degraded_reason(self) -> str:
        """Why writes go to the journal (Redis's own words for a refusal: "Redis is out of memory
        ... (OOM)", "Redis is a read-only replica ..."); "" when not degraded."""
        return self._degraded_reason if self._degraded else ""

    def wrote(self, message_id: str) -> bool:
        """True when this store (this process) appended the message ``message_id``: one of its
        last :data:`MINE_REMEMBERED` appends. Live updates use it to tell another process's
        message from this process's own (which its turn already showed)."""
        return message_id in self._mine

    @property
    def reads_from_cache(self) -> bool:
        """True while reads are answered from the local cache (Redis unreachable); False while
        only writes are refused (OOM, READONLY...) and reads still go to Redis."""
        return self._degraded and not self._writes_only

    @property
    def pending_writes(self) -> int:
        """Writes waiting in the local journal for Redis."""
        return self._pending

    def take_notices(self) -> list[str]:
        """One-line notices for the user that were not shown yet (damaged journal records moved
        to quarantine); each is returned once. The CLI prints them on stderr."""
        taken, self._notices = self._notices, []
        return taken

    async def _journal_records(self) -> list[dict[str, Any]]:
        """The journal's intact records; damaged ones it quarantined are reported here, once."""
        records = await asyncio.to_thread(self.journal.records)
        self._report_damage()
        return records

    def _report_damage(self) -> None:
        damaged = self.journal.take_quarantined()
        if not damaged:
            return
        lines = tuple(q.line for q in damaged)
        where = ", ".join(str(n) for n in lines)
        message = (
            f"{len(damaged)} damaged record(s) of the local journal {self.journal.path} (line {where}) "
            f"moved to {self.journal.quarantine_path}; every other record is kept"
        )
        log.warning("%s", message)
        self._notices.append(message)
        self._publish(
            JournalDamaged(store=STORE_NAME, lines=lines, quarantine=str(self.journal.quarantine_path), message=message)
        )

    async def open(self) -> ReplayReport:
        """Pick up a journal left by a previous run and replay it if Redis answers.

        Damaged records are quarantined by the journal and reported (a :class:`JournalDamaged`
        event and :meth:`take_notices`); every intact record before and after them is replayed.
        """
        records = await self._journal_records()
        self._pending = len(records)
        if not records:
            return ReplayReport()
        for record in records:  # make journaled messages readable before they reach Redis
            if record["op"] == "append":
                self._cache.add_pending(record["conv"], ChatMessage.from_dict(record["message"]))
            elif record["op"] == "create":
                self._cache.put_info(ConversationInfo.from_dict(record["info"]))
        # Writes only until the replay finds Redis unreachable too (the journal says nothing about reads).
        self._enter_degraded(
            f"{len(records)} writes from a previous run are waiting in the local journal", writes_only=True
        )
        return await self.replay()

    def start(self) -> None:
        """Start the background loop that replays the journal once Redis answers again."""
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._recovery_loop(), name="conversation-store-recovery")

    async def close(self) -> None:
        """Stop the recovery loop and any replay in flight (the journal stays on disk)."""
        for task in (self._loop_task, self._replay_task):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, AppError):
                    pass
        self._loop_task = self._replay_task = None

    def notify_healthy(self) -> None:
        """Redis answered a health check: replay now rather than at the next poll."""
        if self._degraded and (self._replay_task is None or self._replay_task.done()):
            self._replay_task = asyncio.create_task(self.replay(), name="conversation-store-replay")

    # ------------------------------------------------------------ conversations

    async def create(
        self,
        user_id: str,
        title: str = "New conversation",
        system_prompt: str = "",
        metadata: dict[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
    ) -> str:
        """Start a conversation of ``user_id``; returns its id (chosen here unless given).

        Raises :class:`ValidationError` for an invalid user id
        (:func:`runtime.core.ids.validate_user_id`), conversation id, title or prompt. While
        Redis is out the conversation is journaled and still created locally.
        """
        validate_user_id(user_id)
        conv_id = codec.check_id(conversation_id, "conversation_id") if conversation_id else new_conversation_id()
        if BRANCH_MARK in conv_id:
            raise ValidationError(
                f"conversation_id must not contain {BRANCH_MARK!r} (it marks branches); choose another id"
            )
        now = self._clock()
        info = ConversationInfo(
            id=conv_id,
            user_id=user_id,
            title=_title(title),
            created_at=now,
            updated_at=now,
            system_prompt=codec.check_text(system_prompt, "system_prompt"),
            metadata=dict(metadata or {}),
        )
        codec.dumps(info.to_dict(), "conversation")  # refuse what cannot be stored before any I/O
        await self._write({"op": "create", "info": info.to_dict()}, lambda: self._history.create(info))
        self._cache.put_info(info)
        return conv_id

    async def branch(self, conversation_id: str, at_seq: int, *, user_id: str, title: str | None = None) -> str:
        """Branch ``conversation_id`` after its message ``at_seq``; returns the new branch's id.

        The branch is a new conversation of ``user_id`` that shares the parent's messages with
        seq <= ``at_seq`` (-1: none) without copying them: its meta holds a parent pointer and
        the fork seq, so branching costs the same for 10 or 10,000 messages (see
        :mod:`runtime.state.history` for how the prefix is read, and what deleting or
        summarising the parent does). Its own messages continue at seq ``at_seq + 1``. Its id
        is ``<parent id>~<6 hex digits>``; its title defaults to the parent's (also for a blank
        ``title``, or one of control characters only); it inherits the
        parent's system prompt, metadata and settings (its model, its picked reply variants).

        Raises:
            ValidationError: a bad id, ``at_seq`` not between -1 and the parent's last seq, or a
                branch nested too deep for its id (over 128 characters: branch an ancestor).
            NotFoundError: no such conversation for ``user_id`` (another user's is answered the same).
            ServiceUnavailableError: Redis is unreachable or refusing writes (a branch is not
                journaled: try again when Redis is back).
        """
        validate_user_id(user_id)
        codec.check_id(conversation_id, "conversation_id")
        if isinstance(at_seq, bool) or not isinstance(at_seq, int):
            raise ValidationError(f"at_seq must be an integer seq, got {at_seq!r}")
        if len(conversation_id) + 7 > 128:
            raise ValidationError(
                f"conversation {conversation_id} is nested too deep to branch again; branch one of its ancestors"
            )
        if self._degraded:
            raise ServiceUnavailableError(
                "branching needs Redis, which is unavailable right now; try again when it is back", service="redis"
            )
        clean = "" if title is None else _title(title)
        if not clean:  # none, blank, or only control characters: the parent's title
            parent = await self.get(conversation_id)
            if parent.user_id != user_id:
                raise NotFoundError(f"conversation {conversation_id} does not exist")
            clean = _title(parent.title)
        for _ in range(8):  # 6 hex digits: a sibling with the same suffix is rare; try another
            branch_id = f"{conversation_id}{BRANCH_MARK}{secrets.token_hex(3)}"
            try:
                created = await self._history.branch(conversation_id, branch_id, at_seq, user_id, clean, self._clock())
            except (ValidationError, NotFoundError) as exc:  # the script's answer: about the request, not Redis
                raise type(exc)(exc.message, details=exc.details) from None
            if created:
                return branch_id
        raise ConflictError(f"could not find a free branch id under {conversation_id}; try again")

    async def get(self, conversation_id: str) -> ConversationInfo:
        """Metadata of a conversation; :class:`NotFoundError` if there is none."""
        codec.check_id(conversation_id, "conversation_id")
        info = await self._read(lambda: self._history.info(conversation_id), lambda: self._cached_info(conversation_id))
        if info is None and self._degraded:  # created while Redis refused writes: still journaled
            info = self._cache.info(conversation_id)
        if info is None:
            raise NotFoundError(f"conversation {conversation_id} does not exist")
        self._cache.put_info(info)
        return info

    async def list_conversations(self, user_id: str, limit: int | None = None) -> list[ConversationInfo]:
        """The user's conversations with title, last activity and message count, most recent first.

        Raises :class:`ValidationError` for an invalid user id; answers from the local cache
        while Redis is out.
        """
        validate_user_id(user_id)
        found = await self._read(
            lambda: self._history.list_for_user(user_id, limit),
            lambda: self._cache.infos_for_user(user_id)[:limit] if limit else self._cache.infos_for_user(user_id),
        )
        return found

    async def rename(self, conversation_id: str, title: str) -> None:
        """Set the conversation's title (at most 200 characters, whitespace collapsed).
        Raises ValidationError for a bad id or title, NotFoundError if there is no such
        conversation; journaled while Redis is out."""
        codec.check_id(conversation_id, "conversation_id")
        clean = _title(title)
        now = self._clock()

        def local() -> None:
            info = self._cache.info(conversation_id)
            if info is not None:
                info.title, info.updated_at = clean, now

        await self._write(
            {"op": "rename", "conv": conversation_id, "title": clean, "at": now},
            lambda: self._history.set_meta(conversation_id, "title", clean, now),
        )
        local()

    async def set_system_prompt(self, conversation_id: str, system_prompt: str) -> None:
        """Replace the conversation's system prompt; the next turn's prompt uses it."""
        codec.check_id(conversation_id, "conversation_id")
        prompt = codec.check_text(system_prompt, "system_prompt")
        now = self._clock()
        await self._write(
            {"op": "system_prompt", "conv": conversation_id, "text": prompt, "at": now},
            lambda: self._history.set_meta(conversation_id, "system_prompt", prompt, now),
        )
        info = self._cache.info(conversation_id)
        if info is not None:
            info.system_prompt, info.updated_at = prompt, now

    async def set_setting(self, conversation_id: str, name: str, value: str) -> None:
        """Store one setting of the conversation (``model``, ``variant:<user message id>``): one
        field of its meta hash, read back in :attr:`ConversationInfo.settings`. Journaled while
        Redis is out.

        Raises:
            ValidationError: ``name`` is not 1-200 characters of letters, digits and ``_:.-``, or
                ``value`` is not storable text of at most 1,000 characters.
            NotFoundError: the conversation does not exist.
        """
        codec.check_id(conversation_id, "conversation_id")
        if not _SETTING_NAME.fullmatch(name):
            raise ValidationError(f"setting name {name!r} is not 1-200 letters, digits or _:.-")
        text = codec.check_text(value, f"setting {name}")
        if len(text) > MAX_SETTING_CHARS:
            raise ValidationError(f"setting {name} is longer than {MAX_SETTING_CHARS} characters")
        now = self._clock()
        await self._write(
            {"op": "setting", "conv": conversation_id, "name": name, "value": text, "at": now},
            lambda: self._history.set_meta(conversation_id, SETTING_PREFIX + name, text, now),
        )
        info = self._cache.info(conversation_id)
        if info is not None:
            info.settings[name], info.updated_at = text, now

    async def delete(self, conversation_id: str) -> None:
        """Delete a conversation and everything stored with it (idempotent)."""
        codec.check_id(conversation_id, "conversation_id")

        async def apply() -> None:
            await self._history.delete(conversation_id)

        await self._write({"op": "delete", "conv": conversation_id}, apply)
        self._cache.forget(conversation_id)
        self._live.forget(conversation_id)

    # ------------------------------------------------------------ messages

    async def add_message(
        self,
        conversation_id: str,
        role: Role,
        content: str,
        tool_calls: list[ToolCall | dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        message_id: str | None = None,
    ) -> ChatMessage:
        """Append one message atomically (idempotent by ``message_id``); returns it with its seq
        (``seq`` is None while degraded: it is assigned when the journal replays)."""
        if role not in _ROLES:
            raise ValidationError(f"role must be one of {', '.join(sorted(_ROLES))}, got {role!r}")
        calls = tuple(tc if isinstance(tc, ToolCall) else ToolCall.from_dict(tc) for tc in tool_calls or ())
        fields: dict[str, Any] = {
            "role": role,
            "content": content,
            "tool_calls": calls,
            "tool_call_id": tool_call_id,
            "name": name,
            "metadata": dict(metadata or {}),
            "created_at": self._clock(),
        }
        if message_id is not None:
            fields["id"] = message_id
        return await self.append(conversation_id, ChatMessage(**fields))

    async def append(self, conversation_id: str, message: ChatMessage) -> ChatMessage:
        """Append a prepared message; a retried append of the same id returns the stored seq."""
        codec.check_id(conversation_id, "conversation_id")
        codec.check_id(message.id, "message id")
        if message.token_count is None and self._count_tokens is not None:
            message = message.with_updates(token_count=self._count_tokens(message))
        message = message.with_updates(seq=None)
        at = self._clock()
        record = {"op": "append", "conv": conversation_id, "message": message.to_dict(), "at": at}
        encode_message(message)  # validates (JSON-safe, valid Unicode, size) before any I/O
        self._mine[message.id] = None
        while len(self._mine) > MINE_REMEMBERED:
            self._mine.popitem(last=False)
        stored: list[ChatMessage] = []

        async def apply() -> None:
            seq, _ = await self._history.append(conversation_id, message, at)
            stored.append(message.with_updates(seq=seq))

        await self._write(record, apply, lambda: self._cache.add_pending(conversation_id, message))
        if stored:
            self._cache.put_messages(conversation_id, stored)
            self._live.appended(conversation_id, stored[0])
            return stored[0]
        return message

    async def read_tail(self, conversation_id: str, limit: int, *, before_seq: int | None = None) -> list[ChatMessage]:
        """Up to ``limit`` messages, oldest first, ending just before ``before_seq`` (or the newest)."""
        codec.check_id(conversation_id, "conversation_id")
        if before_seq is None and not self._degraded:
            return (await self.read_recent(conversation_id, limit))[1]
        if self._degraded and self._writes_only:
            return await self._read_through(conversation_id, limit, before_seq)
        if before_seq is not None and not self._degraded:
            tail = self._live.get(conversation_id)
            if tail is not None and limit > 0 and tail.covers(before_seq, limit):
                return tail.page(before_seq, limit)
        messages = await self._read(
            lambda: self._history.tail(conversation_id, limit, before_seq),
            lambda: self._cache.tail(conversation_id, limit, before_seq),
        )
        if not self._degraded:
            self._cache.put_messages(conversation_id, messages)
            self._live.prepend(conversation_id, messages)
        return messages

    async def read_recent(
        self, conversation_id: str, limit: int
    ) -> tuple[ConversationSummary | None, list[ChatMessage]]:
        """The summary and the newest ``limit`` live messages, in one round trip.

        Decoded messages are kept per conversation: the round trip carries only what any
        process appended since this one last looked, the summary only when it was swapped,
        and a summary's archiving or a recreated conversation resets what is kept.
        """
        codec.check_id(conversation_id, "conversation_id")
        if self._degraded and self._writes_only:
            summary = await self.get_summary(conversation_id)
            return summary, await self._read_through(conversation_id, limit)
        if self._degraded:
            return self._cache.summary(conversation_id), self._cache.tail(conversation_id, limit)
        if limit > self._live.max_messages:  # more than is ever kept: a plain read (exports, tests)
            summary = await self.get_summary(conversation_id)
            messages = await self._read(
                lambda: self._history.tail(conversation_id, limit), lambda: self._cache.tail(conversation_id, limit)
            )
            return summary, messages
        tail = self._live.get(conversation_id)
        try:
            synced = await self._history.sync(
                conversation_id,
                known_next=tail.next_seq if tail else -1,
                limit=max(limit, 0),
                summary_seq=tail.summary_seq if tail else "",
                created_at=tail.created_at if tail else "",
            )
        except AppError as exc:
            if not is_outage(exc):
                raise
            self._degrade_for(exc)
            if self._writes_only:
                summary = await self.get_summary(conversation_id)
                return summary, await self._read_through(conversation_id, limit)
            return self._cache.summary(conversation_id), self._cache.tail(conversation_id, limit)
        if synced is None:
            self._live.forget(conversation_id)
            return None, []
        if tail is None or synced.created_at != tail.created_at or synced.first_seq != tail.next_seq:
            # Nothing usable was cached, or more is new than was asked for: start a fresh run.
            messages = synced.messages
        else:
            messages = tail.messages + synced.messages
        summary = synced.summary if synced.summary_changed or tail is None else tail.summary
        fresh = LiveTail(
            created_at=synced.created_at,
            next_seq=synced.next_seq,
            archived=synced.archived,
            summary_seq=synced.summary_seq,
            summary=summary,
            messages=messages,
        )
        # A summary swap archived the start: those messages are no longer live.
        if fresh.start < fresh.archived:
            del fresh.messages[: fresh.archived - fresh.start]
        self._live.put(conversation_id, fresh)
        live = max(0, fresh.next_seq - fresh.archived)
        if len(fresh.messages) < min(limit, live):
            older = await self.read_tail(
                conversation_id, min(limit, live) - len(fresh.messages), before_seq=fresh.start
            )
            self._live.prepend(conversation_id, older)
        result = fresh.page(fresh.next_seq, limit) if limit > 0 else []
        self._cache.put_messages(conversation_id, result)
        self._cache.put_summary(conversation_id, summary)
        return summary, result

    async def get_summary(self, conversation_id: str) -> ConversationSummary | None:
        """The conversation's current summary, or None (from the local cache while Redis is out)."""
        codec.check_id(conversation_id, "conversation_id")
        summary = await self._read(
            lambda: self._history.summary(conversation_id), lambda: self._cache.summary(conversation_id)
        )
        self._cache.put_summary(conversation_id, summary)
        return summary

    async def summarize(
        self,
        conversation_id: str,
        summary: str,
        covers_up_to: str,
        *,
        method: str = "llm",
        token_count: int | None = None,
    ) -> None:
        """Store ``summary`` as the conversation's summary and move every message up to and
        including ``covers_up_to`` to the archive (``archive_ttl``), in one atomic script."""
        codec.check_id(conversation_id, "conversation_id")
        codec.check_id(covers_up_to, "covers_up_to")
        if method not in ("llm", "extractive"):
            raise ValidationError(f"method must be llm or extractive, got {method!r}")
        now = self._clock()
        record = ConversationSummary(
            text=codec.check_text(summary, "summary"),
            covers_up_to=covers_up_to,
            covered_count=0,
            created_at=now,
            method=method,  # type: ignore[arg-type]
            token_count=token_count,
        )

        async def apply() -> None:
            await self._history.summarize(conversation_id, record, now)
            self._cache.archive_through(conversation_id, covers_up_to)
            self._live.forget(conversation_id)
            self._cache.put_summary(conversation_id, None)  # re-read (with its count) on next get

        await self._write(
            {
                "op": "summarize",
                "conv": conversation_id,
                "text": record.text,
                "covers_up_to": covers_up_to,
                "method": method,
                "token_count": token_count,
                "at": now,
            },
            apply,
        )

    # ------------------------------------------------------------ export

    async def export_json(self, conversation_id: str) -> str:
        """The whole conversation (archive included) as JSON. Needs Redis: raises
        ServiceUnavailableError while it is out, NotFoundError for an unknown id."""
        return export.to_json(await self.dump(conversation_id), self._clock())

    async def export_markdown(self, conversation_id: str) -> str:
        """The whole conversation as Markdown; raises as :meth:`export_json`."""
        return export.to_markdown(await self.dump(conversation_id))

    async def dump(self, conversation_id: str) -> ConversationDump:
        """Everything stored about the conversation, read from Redis in one transaction: its
        info, summary, the archived (summarised) messages and the live ones, each oldest first.
        Raises ServiceUnavailableError while Redis does not answer (the journal is replayed
        first when it does), NotFoundError for an unknown id."""
        codec.check_id(conversation_id, "conversation_id")
        if self.reads_from_cache:
            # Redis may have come back since the last failed call (a timeout under load, a
            # restart) before the recovery loop noticed: try it now, journal first, so the export
            # is whole; refuse only if it still does not answer.
            try:
                await self.replay()
            except AppError as exc:
                if not is_outage(exc):
                    raise
            if self.reads_from_cache:
                raise ServiceUnavailableError("export needs Redis, which is unreachable right now", service="redis")
        dump = await self._history.dump(conversation_id)
        if dump is None:
            raise NotFoundError(f"conversation {conversation_id} does not exist")
        return dump

    # ------------------------------------------------------------ spec names

    async def initialize_context(
        self,
        conversation_id: str,
        system_prompt: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        user_id: str = "local",
    ) -> str:
        """The spec's name: create ``conversation_id`` for ``user_id`` (default ``"local"``)
        with ``system_prompt``; returns the id. Raises as :meth:`create`."""
        return await self.create(
            user_id, system_prompt=system_prompt or "", metadata=metadata, conversation_id=conversation_id
        )

    async def summarize_context(self, conversation_id: str, summary: str, covers_up_to: str) -> None:
        """The spec's name for :meth:`summarize` (an LLM summary)."""
        await self.summarize(conversation_id, summary, covers_up_to)

    async def get_context(
        self, conversation_id: str, include_system: bool = True, *, limit: int = 50
    ) -> ConversationContextView | None:
        """The spec's name: the conversation's info, summary and newest ``limit`` messages
        (oldest first), or None if it does not exist. ``include_system=False`` leaves the
        system prompt out of the info. Raises as :meth:`get` for anything but a missing one."""
        try:
            info = await self.get(conversation_id)
        except NotFoundError:
            return None
        if not include_system:
            info = dataclasses.replace(info, system_prompt="")
        summary, messages = await self.read_recent(conversation_id, limit)
        return ConversationContextView(info, summary, messages)

    async def get_messages_for_prompt(self, conversation_id: str, max_tokens: int = 4000) -> list[dict[str, Any]]:
        """The spec's name: the conversation as OpenAI chat messages within ``max_tokens`` tokens:
        the system prompt, the summary (in the spec's words), then the newest messages that fit,
        hidden ones skipped and a tool call kept or dropped together with its results.

        Tokens are the exact per-message counts saved with each message (or the store's counter).
        The agent's prompts come from ``ContextWindowManager.build_prompt``, which also budgets
        tools, memories and the reply. Raises NotFoundError for an unknown conversation."""
        view = await self.get_context(conversation_id, limit=self._live.max_messages)
        if view is None:
            raise NotFoundError(f"conversation {conversation_id} does not exist")
        head = [ChatMessage("system", view.info.system_prompt)] if view.info.system_prompt else []
        if view.summary is not None:
            head.append(ChatMessage("system", f"Previous conversation summary: {view.summary.text}"))
        budget = max_tokens - sum(self._tokens(m) for m in head)
        units: list[list[ChatMessage]] = []
        for message in view.messages:
            if message.metadata.get(HIDDEN):
                continue
            if message.role == "tool" and units:
                units[-1].append(message)
            else:
                units.append([message])
        kept: list[ChatMessage] = []
        for unit in reversed(units):
            cost = sum(self._tokens(m) for m in unit)
            if cost > budget:
                break
            budget -= cost
            kept[:0] = unit
        return [m.to_openai() for m in (*head, *kept)]

    def _tokens(self, message: ChatMessage) -> int:
        if message.token_count is not None:
            return message.token_count
        if self._count_tokens is None:
            raise ValidationError("counting prompt tokens needs a token counter (count_tokens)")
        return self._count_tokens(message)

    # ------------------------------------------------------------ plumbing

    async def _write(
        self, record: dict[str, Any], apply: Callable[[], Awaitable[Any]], local: Callable[[], None] | None = None
    ) -> None:
        """Apply to Redis, or journal when Redis is out (or already known to be out)."""
        if not self._degraded:
            try:
                await apply()
                return
            except AppError as exc:
                if not is_outage(exc):
                    raise
                self._degrade_for(exc)
        async with self._journal_lock:
            await asyncio.to_thread(self.journal.append, record)
            self._pending += 1
            # A replay may have finished while we waited: a non-empty journal means degraded.
            # (It says nothing about reads: the mode entered before journaling stays.)
            if not self._degraded:
                self._enter_degraded("writes are waiting in the local journal", writes_only=True)
            if local is not None:
                local()

    async def _read(self, fetch: Callable[[], Awaitable[T]], cached: Callable[[], T]) -> T:
        if self.reads_from_cache:
            return cached()
        try:
            return await fetch()
        except AppError as exc:
            if not is_outage(exc):
                raise
            self._degrade_for(exc)
            return cached()

    async def _read_through(self, conversation_id: str, limit: int, before_seq: int | None = None) -> list[ChatMessage]:
        """While only writes are refused: the tail read from Redis with the journaled messages
        of the conversation added as the newest (``before_seq`` None), oldest first."""
        messages = await self._read(
            lambda: self._history.tail(conversation_id, limit, before_seq),
            lambda: self._cache.tail(conversation_id, limit, before_seq),
        )
        if not self.reads_from_cache:
            self._cache.put_messages(conversation_id, messages)
            if before_seq is None:
                journaled = [m for m in self._cache.tail(conversation_id, limit) if m.seq is None]
                return [*messages, *journaled][-limit:] if limit > 0 else []
        return messages

    def _degrade_for(self, exc: AppError) -> None:
        """Enter degraded mode for the outage ``exc``: writes only for a write refusal."""
        self._enter_degraded(exc.user_message(), writes_only=isinstance(exc, WritesRefusedError))

    def _cached_info(self, conversation_id: str) -> ConversationInfo:
        info = self._cache.info(conversation_id)
        if info is None:
            raise ServiceUnavailableError(
                f"conversation {conversation_id} is not available while Redis is unreachable", service="redis"
            )
        return info

    def _enter_degraded(self, reason: str, *, writes_only: bool = False) -> None:
        if not writes_only and self.unavailable_reason:
            reason = self.unavailable_reason
        if self._degraded:
            # Reads failing too: serve them locally; Redis answering (with a refusal): read it again.
            if self._writes_only != writes_only:
                self._writes_only = writes_only
                self._degraded_reason = reason
                log.warning(
                    "conversation store degraded (%s): %s", "writes" if writes_only else "reads and writes", reason
                )
            return
        self._degraded = True
        self._writes_only = writes_only
        self._degraded_reason = reason
        self._degraded_since = self._monotonic()
        log.warning("conversation store degraded: %s", reason)
        self._publish(StoreDegraded(store=STORE_NAME, reason=reason, pending_writes=self._pending))

    def _leave_degraded(self) -> None:
        if not self._degraded:
            return
        self._degraded = False
        self._writes_only = False
        seconds = self._monotonic() - self._degraded_since
        log.info("conversation store recovered after %.1fs", seconds)
        self._publish(StoreRecovered(store=STORE_NAME, degraded_seconds=seconds))

    def _publish(self, event: Event) -> None:
        if self._bus is not None:
            self._bus.publish(event)

    async def replay(self) -> ReplayReport:
        """Apply the journal to Redis in order, drop what was applied, leave degraded mode if empty."""
        async with self._journal_lock:
            records = await self._journal_records()
            if not records:
                self._pending = 0
                if self._degraded:
                    await self._runner.ping()  # raises if Redis is still out
                    self._leave_degraded()
                return ReplayReport()
            applied: set[str] = set()
            replayed = duplicates = dropped = 0
            error = ""
            for record in records:
                try:
                    inserted = await self._apply(record)
                except AppError as exc:
                    if is_outage(exc):
                        error = exc.user_message()
                        self._degrade_for(exc)  # unreachable now: reads from the cache too
                        break
                    # It can never apply (e.g. its conversation was deleted meanwhile): drop it.
                    log.warning("dropping journal record %s (%s): %s", record["jid"], record["op"], exc.user_message())
                    dropped += 1
                else:
                    replayed += 1
                    duplicates += 0 if inserted else 1
                applied.add(record["jid"])
            remaining = await asyncio.to_thread(self.journal.remove, applied)
            self._report_damage()
            self._pending = remaining
            report = ReplayReport(
                replayed=replayed, duplicates=duplicates, dropped=dropped, remaining=remaining, error=error
            )
            self._publish(
                JournalReplayed(
                    store=STORE_NAME,
                    replayed=replayed,
                    duplicates=duplicates,
                    dropped=dropped,
                    remaining=remaining,
                    error=error,
                )
            )
            if remaining == 0 and not error:
                self._leave_degraded()
            return report

    async def _apply(self, record: dict[str, Any]) -> bool:
        """Apply one journal record to Redis; False if Redis already had it."""
        op = record["op"]
        if op == "append":
            message = ChatMessage.from_dict(record["message"])
            seq, inserted = await self._history.append(record["conv"], message, float(record["at"]))
            self._cache.confirm(record["conv"], message.id, seq)
            return inserted
        if op == "create":
            return await self._history.create(ConversationInfo.from_dict(record["info"]))
        if op == "rename":
            await self._history.set_meta(record["conv"], "title", record["title"], float(record["at"]))
            return True
        if op == "system_prompt":
            await self._history.set_meta(record["conv"], "system_prompt", record["text"], float(record["at"]))
            return True
        if op == "setting":
            name, value = record["name"], record["value"]
            await self._history.set_meta(record["conv"], SETTING_PREFIX + name, value, float(record["at"]))
            return True
        if op == "delete":
            return await self._history.delete(record["conv"])
        if op == "summarize":
            summary = ConversationSummary(
                text=record["text"],
                covers_up_to=record["covers_up_to"],
                covered_count=0,
                created_at=float(record["at"]),
                method=record["method"],
                token_count=record.get("token_count"),
            )
            return await self._history.summarize(record["conv"], summary, float(record["at"])) > 0
        raise ValidationError(f"unknown journal operation {op!r}")

    async def _recovery_loop(self) -> None:
        while True:
            await self._sleep(self._replay_interval)
            if not self._degraded:
                continue
            try:
                await self.replay()
            except AppError as exc:
                log.debug("Redis still unavailable: %s", exc.user_message())


def _title(title: str) -> str:
    # Titles reach terminals (the sidebar, `holdfast conversations`) from any face, the HTTP API
    # included: escape sequences and control characters are dropped, as from message text.
    text = " ".join(safe_text.clean(codec.check_text(title, "title")).split())
    if len(text) > _MAX_TITLE:
        raise ValidationError(f"title must be at most {_MAX_TITLE} characters, got {len(text)}")
    return text


@dataclass(frozen=True)
class ConversationContextView:
    """What the spec's ``get_context`` returns: the conversation's info, its summary (None when
    nothing was summarised) and its newest messages, oldest first."""

    info: ConversationInfo
    summary: ConversationSummary | None
    messages: list[ChatMessage]


#: The spec's name for the conversation store.
ConversationContext = ConversationStore

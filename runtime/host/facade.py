"""The typed surface a front end talks to: :class:`RuntimeFacade` and the snapshots it returns.

The TUI (``app/``) holds a ``RuntimeFacade`` and nothing else of the runtime: it sends turns and
renders the typed events they yield (:mod:`runtime.core.events`), lists and edits conversations,
and draws its panels from the frozen snapshots below. It never reaches into a store, a guard or
a breaker, so a rename inside the runtime is a type error in the UI, not a crash at run time.
:class:`runtime.host.runtime.Runtime` implements the protocol (checked by mypy there).

Snapshots are frozen dataclasses built from in-memory state (no backend call) unless the method
is async. Errors are :class:`runtime.core.errors.AppError` subclasses: ``NotFoundError`` for an
unknown conversation, breaker or backend, ``ValidationError`` for bad input (an empty title, a
disabled memory), ``ServiceUnavailableError`` when a backend is down and nothing can stand in.

Types from lower layers (breaker and health snapshots, the prompt report, a summary result) are
re-exported here for annotations only, so importing this module costs nothing at start-up.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from runtime.context.attachments import Attachment as Attachment
from runtime.context.attachments import AttachmentRefused as AttachmentRefused
from runtime.context.attachments import Resolution as Resolution
from runtime.context.attachments import resolve_attachments as resolve_attachments
from runtime.core.events import Event, TurnEvent
from runtime.core.messages import ChatMessage

if TYPE_CHECKING:
    from runtime.context.report import PromptReport as PromptReport
    from runtime.context.summarize import SummarizeResult as SummarizeResult
    from runtime.core.figures import ConversationTotals as ConversationTotals
    from runtime.resilience.breaker import BreakerSnapshot as BreakerSnapshot
    from runtime.resilience.health import CheckResult as CheckResult
    from runtime.resilience.health import HealthReport as HealthReport
    from runtime.state.live import ConversationChanged as ConversationChanged
    from runtime.state.search import SearchHit as SearchHit
    from runtime.tools import AskPermission as AskPermission

#: ``md`` (Markdown for people) or ``json`` (every field, for machines).
ExportFormat = Literal["md", "json"]

#: A demo LLM server fault value: seconds (latency), a rate 0..1, an HTTP status, a count, a flag.
FaultValue = float | int | bool | str


@dataclass(frozen=True)
class Conversation:
    """One conversation as a list shows it. Times are epoch seconds."""

    id: str
    title: str
    created_at: float
    updated_at: float
    #: Messages currently in history (archived ones not counted).
    message_count: int = 0
    system_prompt: str = ""
    #: A branch's parent conversation ("" when it is not a branch).
    parent_id: str = ""
    #: The seq of the last message a branch shares with its parent (None when it is not a branch).
    fork_seq: int | None = None
    #: The model chosen for this conversation (``/model``); empty: the endpoint's default.
    model: str = ""
    #: The reply variants the user picked: user message id -> (chosen turn, newest turn then),
    #: see :func:`runtime.core.variants.choices_from`.
    variant_choices: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversationPage:
    """One page of a user's conversations, most recently updated first (ties: newest id first).

    ``total`` counts all of them; ``next_offset`` is the ``offset`` of the next page, None on
    the last one.
    """

    conversations: list[Conversation]
    total: int
    next_offset: int | None = None


@dataclass(frozen=True)
class BackendInfo:
    """An embedded backend process (``redis`` or ``llm``) this runtime started."""

    name: str
    #: The process id while it runs, else None.
    pid: int | None
    running: bool
    #: Where clients reach it (``redis://...`` or the OpenAI base URL ``http://.../v1``).
    url: str = ""


@dataclass(frozen=True)
class StoreStatus:
    """The conversation store's degraded mode: writes go to the local journal while Redis is out."""

    degraded: bool
    #: Writes in the local journal waiting for Redis.
    pending_writes: int


@dataclass(frozen=True)
class ToolInfo:
    """A registered tool: its name, effective permission (``allow``/``ask``/``deny``), first line of help."""

    name: str
    permission: str
    description: str = ""


@dataclass(frozen=True)
class MemoryHit:
    """One long-term memory. ``score`` is cosine similarity in -1..1 (None when listed, not searched)."""

    id: str
    content: str
    score: float | None = None
    type: str = "fact"


@dataclass(frozen=True)
class MemorySearch:
    """A memory search: the hits, best first, and why it was degraded (memory or embeddings down)."""

    hits: tuple[MemoryHit, ...] = ()
    degraded: bool = False
    reason: str = ""


@dataclass(frozen=True)
class SessionInfo:
    """A live session of a Holdfast process (the spec's session, with what the process told it).

    Times are epoch seconds; ``face`` is ``tui`` or ``cli``; ``current`` marks the asking
    process's own session.
    """

    id: str
    user_id: str
    face: str
    pid: int | None
    host: str
    active_conversation_id: str | None
    created_at: float
    last_seen: float
    expires_at: float
    current: bool = False
    data: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``holdfast sessions --json``)."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "face": self.face,
            "pid": self.pid,
            "host": self.host,
            "active_conversation_id": self.active_conversation_id,
            "created_at": self.created_at,
            "last_seen": self.last_seen,
            "expires_at": self.expires_at,
            "current": self.current,
        }


class ChaosActions(Protocol):
    """Break and heal real backends for a demo (``/chaos``); see :mod:`runtime.host.chaos`."""

    def kill(self, name: str) -> int | None:
        """SIGKILL the embedded ``redis`` or ``llm`` process; returns the pid killed.
        Raises NotFoundError for a backend this runtime did not start."""
        ...

    def kill_mcp(self, name: str) -> int | None:
        """SIGKILL the stdio MCP server ``name``; returns the pid killed (None: it was not running).
        It restarts by itself, with backoff. NotFoundError for a server not configured."""
        ...

    async def start(self, name: str) -> int | None:
        """Restart a killed backend on its old port; returns its new pid."""
        ...

    async def faults(self, **faults: FaultValue) -> dict[str, FaultValue]:
        """Set demo LLM server faults (``latency`` seconds, ``error_rate`` 0..1, ``error_status``,
        ``fail_next``, ``down``...); returns every fault now set. ValidationError without the
        embedded demo server."""
        ...

    async def quirk(self, profile: str) -> str:
        """Make the embedded demo LLM server speak like a real server: a quirk profile of
        :mod:`runtime.demo.profiles` (``ollama``, ``llamacpp``, ``vllm-reasoning``, ...; ``openai``
        is exact); returns the profile now in force. ValidationError for an unknown profile or
        without the embedded demo server."""
        ...

    def memory(self, on: bool) -> None:
        """Take long-term memory offline (``False``: its breakers forced open) or back (``True``)."""
        ...

    async def reset(self) -> None:
        """Everything back to normal: backends running, no faults, breakers reset."""
        ...


class RuntimeFacade(Protocol):
    """Everything a front end may ask of the runtime. Implemented by ``Runtime``."""

    # ------------------------------------------------------------ lifecycle

    @property
    def user_id(self) -> str:
        """Whose conversations, memories and sessions these are."""
        ...

    @property
    def started(self) -> bool:
        """True once :meth:`start` finished and until the runtime stops."""
        ...

    @property
    def llm_url(self) -> str:
        """The OpenAI-compatible endpoint in use ("" before start)."""
        ...

    @property
    def memory_enabled(self) -> bool:
        """False when ``[memory].enabled = false``: memory actions raise ValidationError."""
        ...

    @property
    def plugin_errors(self) -> dict[str, str]:
        """Plugins (or tools) that failed to load: name -> one-line reason."""
        ...

    @property
    def chaos(self) -> ChaosActions:
        """The degradation demo's actions (kill/start backends, faults, quirks, reset)."""
        ...

    async def start(self) -> None:
        """Start backends and background work; never raises for a dead backend (runs degraded)."""
        ...

    async def stop(self) -> None:
        """Stop everything started (idempotent)."""
        ...

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener`` with every runtime event (any thread); returns the unsubscribe function."""
        ...

    def set_health_interval(self, seconds: float) -> None:
        """How often the health monitor probes every backend, in seconds."""
        ...

    # ------------------------------------------------------------ conversations and sessions

    def new_conversation_id(self) -> str:
        """A fresh id; the conversation is created by its first turn (titled from its first message)."""
        ...

    async def list_conversations(self) -> list[Conversation]:
        """The user's conversations, most recently updated first."""
        ...

    async def conversation_totals(self, conversations: Sequence[Conversation]) -> dict[str, ConversationTotals]:
        """Each conversation's replies summed (tokens, cost), by id; unreadable ones left out."""
        ...

    async def get_conversation(self, conversation_id: str) -> Conversation:
        """One conversation; NotFoundError if it does not exist."""
        ...

    async def read_messages(
        self, conversation_id: str, limit: int, *, before_seq: int | None = None
    ) -> list[ChatMessage]:
        """Up to ``limit`` stored messages, oldest first, ending before ``before_seq`` (None: the newest)."""
        ...

    async def branch_conversation(self, conversation_id: str, at_seq: int) -> str:
        """Branch one of this user's conversations after its message ``at_seq`` (-1: none); the
        new conversation's id (``ValidationError`` for a seq out of range, ``NotFoundError``)."""
        ...

    async def rename_conversation(self, conversation_id: str, title: str) -> None:
        """Set the title. Raises NotFoundError for an unknown or another user's conversation."""
        ...

    async def delete_conversation(self, conversation_id: str) -> None:
        """Delete it and its messages. Raises NotFoundError for an unknown or another user's id."""
        ...

    async def search_conversations(self, query: str, limit: int = 20) -> list[SearchHit]:
        """The user's conversations whose title or message text holds every word of ``query``,
        best first, each pointing at its best message (see :mod:`runtime.state.search`)."""
        ...

    async def export_conversation(self, conversation_id: str, fmt: ExportFormat) -> str:
        """The whole conversation as Markdown or JSON text."""
        ...

    def set_active_conversation(self, conversation_id: str) -> None:
        """Record (in this process's session, in the background) the conversation on screen."""
        ...

    async def last_conversation(self) -> str | None:
        """The conversation the user was last in, in any process (None if unknown or Redis is out)."""
        ...

    def watch_conversations(self, listener: Callable[[ConversationChanged], None]) -> Callable[[], None]:
        """Call ``listener`` (in the event loop's thread) with each change to this user's
        conversations made by any process: a message appended (its seq and id), a new title, a
        deletion, a turn starting or ending in another process, and ``resync`` when changes may
        have been missed (after each (re)subscription, and when the conversation store leaves
        degraded mode): re-read what is shown. Returns the function that stops it."""
        ...

    def wrote_message(self, message_id: str) -> bool:
        """True when this process appended the message ``message_id`` (its own turn showed it):
        a face showing another process's messages skips these. In memory, no backend call."""
        ...

    async def turn_running_elsewhere(self, conversation_id: str) -> bool:
        """True when another process runs a turn of ``conversation_id`` (holds its turn lock);
        False when none does, or when Redis is out and nobody can tell."""
        ...

    async def list_sessions(self, user_id: str | None = None) -> list[SessionInfo]:
        """Live sessions of ``user_id`` (default: this runtime's user), most recently seen first."""
        ...

    # ------------------------------------------------------------ turns

    def run_turn(
        self,
        conversation_id: str,
        text: str,
        *,
        ask_permission: AskPermission | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> AsyncGenerator[TurnEvent, None]:
        """Run one turn; iterate its events (close the iterator to cancel). See runtime.agent.
        ``attachments``: files resolved from ``@path`` mentions (runtime.context.attachments)."""
        ...

    def retry_turn(
        self, conversation_id: str, *, ask_permission: AskPermission | None = None
    ) -> AsyncGenerator[TurnEvent, None]:
        """Resend the conversation's last user message (already saved, not saved again)."""
        ...

    async def set_system_prompt(self, conversation_id: str, prompt: str) -> None:
        """Use ``prompt`` as this conversation's system prompt from its next turn on."""
        ...

    async def set_conversation_model(self, conversation_id: str, model: str) -> None:
        """Use ``model`` for this conversation's turns from now on (stored with it; empty: back to
        the endpoint's default). The name is not checked here: check it against
        :meth:`list_models` first."""
        ...

    async def choose_variant(self, conversation_id: str, user_message_id: str, turn_id: str, latest_turn: str) -> None:
        """Make the reply saved by ``turn_id`` the answer to ``user_message_id``: later prompts see
        it and no other variant (``latest_turn``: the newest turn answering it now; a later retry
        wins again). Stored with the conversation."""
        ...

    async def summarize(self, conversation_id: str, *, force: bool = False) -> SummarizeResult | None:
        """Summarise the older part now if it passes the threshold (``force``: below it too, the
        older half of the history); None when nothing was due."""
        ...

    # ------------------------------------------------------------ models and tools

    async def list_models(self) -> list[str]:
        """Model ids the endpoint lists (``GET /models``); empty when it lists none."""
        ...

    async def current_model(self) -> str:
        """The model the next turn will use."""
        ...

    def set_model(self, name: str) -> None:
        """Use model ``name`` for the next turns of this process."""
        ...

    def list_tools(self) -> list[ToolInfo]:
        """Registered tools, by name."""
        ...

    # ------------------------------------------------------------ memory

    async def search_memories(self, query: str) -> MemorySearch:
        """The user's memories closest to ``query`` (degraded flag set when memory is offline)."""
        ...

    async def remember(self, text: str, conversation_id: str = "") -> str:
        """Store a memory; returns its id (queued, never lost, if memory is down)."""
        ...

    async def forget_memory(self, memory_id: str) -> bool:
        """Delete one memory; False if it did not exist."""
        ...

    async def find_memory(self, prefix: str) -> str:
        """The full id of this user's one memory whose id starts with ``prefix`` (at least
        4 characters). NotFoundError when none does, ValidationError when several do (the
        message says how many) or the prefix is too short."""
        ...

    # ------------------------------------------------------------ resilience and health

    def breaker_snapshots(self) -> list[BreakerSnapshot]:
        """Every circuit breaker as it is now (no backend call)."""
        ...

    def breaker_snapshot(self, name: str) -> BreakerSnapshot | None:
        """One breaker (``llm``, ``redis``, ``memory``, ``embeddings``, ``tool:<name>``), None if unknown."""
        ...

    def reset_breakers(self, names: Sequence[str] | None = None) -> list[str]:
        """Close the named breakers (None: all); returns the names reset. NotFoundError if unknown."""
        ...

    async def check_health(self) -> HealthReport:
        """Run every health check now (each bounded by its timeout)."""
        ...

    def health_snapshot(self) -> HealthReport | None:
        """The background health monitor's last round, with every check's latency (milliseconds),
        read from memory (no backend call); None before the first round."""
        ...

    def backends(self) -> dict[str, BackendInfo]:
        """Embedded backend processes by name (a process-table read, no backend call)."""
        ...

    def store_status(self) -> StoreStatus:
        """The conversation store's state: degraded or not, and the journal's pending writes."""
        ...

    async def probe_llm(self) -> None:
        """One call to the LLM through its guard (a half-open probe); failures are only logged."""
        ...

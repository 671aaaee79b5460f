"""VectorMemoryStore: user-scoped long-term memory on LanceDB, recalled by meaning.

Owns the memory table (one per embedding model and dimension), writes (batched, deduplicated,
queued while a backend is down), recall (prefiltered by user, cosine similarity, threshold),
and upkeep (indexes once the table is large, periodic ``optimize()``).

Every LanceDB call runs inside Guard("memory") and every embedding inside
Guard("embeddings"); LanceDB's async API does its I/O off the event loop, and the local
model runs in a worker thread, so the TUI never stalls on memory. Failures degrade instead
of breaking the turn: recall answers :class:`MemoryRecall` with ``degraded=True`` (ranked by
the lexical stand-in when only the embedding provider is down), writes go to the on-disk
:class:`WriteQueue` and drain when the backends are healthy again.

Which write failures are queued is the one rule every backend shares,
:func:`runtime.resilience.classify.is_outage`: an outage (unreachable, timed out, overloaded,
breaker open) is queued and retried later; any other error (a request the embedding endpoint
rejects, a bad model file) is raised to the writer, and a queued write that fails that way
when the queue drains is dropped and logged, so one bad write can never block the queue.
Every user id is checked by :func:`runtime.core.ids.validate_user_id` before anything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import lancedb
import numpy as np
import pyarrow as pa

from runtime.config import Config, MemoryConfig, StorageError
from runtime.core.errors import AppError, CircuitOpenError, ServiceUnavailableError, ValidationError, describe
from runtime.core.events import EventBus, HealthChanged
from runtime.core.ids import validate_user_id
from runtime.memory import escaping, indexing
from runtime.memory.embeddings import Embedder, LexicalEmbedder, make_embedder
from runtime.memory.lexical import lexical_vector, lexical_vectors
from runtime.memory.records import (
    CONVERSATION_SUMMARY,
    FACT,
    Memory,
    MemoryRecall,
    PendingWrite,
    content_hash,
    has_primary_key,
    memory_id,
    schema,
    summary_id,
    table_name,
)
from runtime.memory.write_queue import WriteQueue
from runtime.resilience.classify import is_outage

if TYPE_CHECKING:
    from lancedb import AsyncConnection
    from lancedb.index import IndexConfig
    from lancedb.table import AsyncTable

    from runtime.core.events import Event
    from runtime.resilience import Guard, Resilience

log = logging.getLogger(__name__)

#: Columns returned to callers (the vector stays in the table).
_COLUMNS = ["id", "user_id", "conversation_id", "type", "content", "content_hash", "created_at", "metadata"]
#: Lexical scores are on another scale than MiniLM's; this floor keeps only clear word overlap.
LEXICAL_MIN_SIMILARITY = 0.25
#: Rows the lexical fallback may scan for one user (it ranks in Python).
LEXICAL_SCAN_LIMIT = 5000
MAX_CONTENT_CHARS = 4000
#: Seconds an index build or ``optimize()`` may take (100k rows build in well under this).
UPKEEP_TIMEOUT = 600.0


def _translate_lancedb(exc: Exception, action: str) -> AppError:
    """LanceDB raises OSError/RuntimeError/ValueError/Arrow errors; the guard needs AppErrors."""
    text = " ".join(str(exc).split())[:200]
    return ServiceUnavailableError(f"memory store {action} failed: {text}", service="memory")


@dataclass
class _EachOutcome:
    """What :meth:`VectorMemoryStore._apply_each` did: ids per write (``id(item)`` keys),
    writes that can never apply and why, and the outage that stopped the run with the writes
    it left unapplied."""

    results: dict[int, str] = field(default_factory=dict)
    failures: dict[int, AppError] = field(default_factory=dict)
    outage: AppError | None = None
    rest: list[PendingWrite] = field(default_factory=list)


class VectorMemoryStore:
    """The spec's VectorMemoryStore, user-scoped, with degraded mode and upkeep.

    ``store_memory``, ``search_memories``, ``get_context_memories`` and
    ``summarize_conversation`` are the spec's names (state-and-errors-spec.md). LanceDB calls
    go through ``Guard("memory")``, embeddings through ``Guard("embeddings")``; writes that
    meet an outage are queued (:class:`WriteQueue`) and drained when the backend is back.
    """

    def __init__(
        self,
        config: MemoryConfig,
        *,
        uri: str,
        resilience: Resilience,
        embedder: Embedder,
        bus: EventBus | None = None,
        queue_path: Path | None = None,
        default_user: str = "local",
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.uri = uri
        self.embedder = embedder
        self.default_user = default_user
        self._now = now
        self._memory_guard = resilience.guard("memory")
        self._embed_guard = resilience.guard("embeddings")
        self._upkeep_guard = _upkeep_guard(resilience)
        self._lexical = LexicalEmbedder()
        self.queue = WriteQueue(queue_path)
        self._db: AsyncConnection | None = None
        self._table: AsyncTable | None = None
        self._open_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._pending: list[tuple[PendingWrite, asyncio.Future[str]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._commits_since_optimize = 0
        self._indexed: bool | None = None
        #: How to query the table's vector index; None while it has none (flat search).
        self._plan: indexing.SearchPlan | None = None
        self._maintenance: asyncio.Task[Any] | None = None
        self._drain_task: asyncio.Task[Any] | None = None
        self.last_error: str = ""
        self._unsubscribe = bus.add_listener(self._on_event) if bus is not None else None

    @classmethod
    def from_config(
        cls,
        config: Config,
        resilience: Resilience,
        *,
        bus: EventBus | None = None,
        embedder: Embedder | None = None,
        now: Callable[[], float] = time.time,
    ) -> VectorMemoryStore:
        """The store ``config`` describes: ``memory_uri``, its ``[memory]`` section, the configured
        embedder (unless one is given) and the write queue beside the database directory."""
        uri = config.memory_uri
        return cls(
            config.memory,
            uri=uri,
            resilience=resilience,
            embedder=embedder or make_embedder(config),
            bus=bus,
            queue_path=Path(uri).parent / "memory-write-queue.jsonl",
            default_user=config.agent.user or "local",
            now=now,
        )

    # ------------------------------------------------------------ plumbing

    @property
    def table_name(self) -> str:
        """The memory table of the current embedder (``memories__<model>__<ndims>``)."""
        return table_name(self.embedder.table_suffix)

    async def _db_call(self, action: str, fn: Callable[[], Awaitable[Any]], *, guard: Guard | None = None) -> Any:
        async def attempt() -> Any:
            try:
                return await fn()
            except AppError:
                raise
            except Exception as exc:  # any LanceDB/Arrow/OS failure is a store failure
                raise _translate_lancedb(exc, action) from exc

        try:
            return await (guard or self._memory_guard).call(attempt)
        except AppError as exc:
            if not isinstance(exc, CircuitOpenError):
                # The handles may point at files that moved or broke; reopen next time.
                self._table = self._db = None
                self._indexed = None
                self._plan = None
            raise

    async def _embed(self, texts: list[str]) -> np.ndarray:
        probe = getattr(self.embedder, "probe", None)  # only an embedder that learns its dimensions has one
        if probe is not None:
            await self._embed_guard.call(probe)
        return await self._embed_guard.call(lambda: self.embedder.embed(texts))

    async def _connect(self) -> AsyncConnection:
        if self._db is None:

            async def connect() -> AsyncConnection:
                if "://" not in self.uri:
                    await asyncio.to_thread(Path(self.uri).mkdir, parents=True, exist_ok=True)
                return await lancedb.connect_async(self.uri)

            self._db = await self._db_call("connect", connect)
        return self._db

    @overload
    async def _open(self, *, create: Literal[True]) -> AsyncTable: ...

    @overload
    async def _open(self, *, create: Literal[False]) -> AsyncTable | None: ...

    async def _open(self, *, create: bool) -> AsyncTable | None:
        """The memory table (created on first write); None if it does not exist yet."""
        if self._table is not None:
            return self._table
        async with self._open_lock:
            if self._table is not None:
                return self._table
            probe = getattr(self.embedder, "probe", None)
            if probe is not None:
                # The table's name holds the model's dimensions, which an endpoint's model not
                # known in advance only tells by answering: learn them first, for a read as well
                # (`holdfast memory list` in a new process failed with "unknown until the first call").
                await self._embed_guard.call(probe)
            db = await self._connect()
            name = self.table_name

            async def open_or_create() -> AsyncTable | None:
                names = (await db.list_tables()).tables
                if name in names:
                    table = await db.open_table(name)
                    if not has_primary_key(await table.schema()):
                        # Tables written before the marker: add it, so concurrent writers
                        # of the same fact stop committing duplicate rows from now on.
                        await table.set_unenforced_primary_key("id")
                    self._plan = _plan_from(await table.list_indices())
                    return table
                if not create:
                    return None
                return await db.create_table(name, schema=schema(self.embedder.ndims), exist_ok=True)

            self._table = await self._db_call("open", open_or_create)
            return self._table

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_idle(self) -> None:
        """Wait for background upkeep and drains (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop listening for health events, wait for background work, close the LanceDB handles."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.wait_idle()
        if self._table is not None:
            self._table.close()
        if self._db is not None:
            self._db.close()
        self._table = self._db = None

    # ------------------------------------------------------------ writes

    async def store_memory(
        self,
        user_id: str,
        conversation_id: str,
        content: str,
        metadata: dict[str, Any] | None = None,
        *,
        type: str = FACT,
    ) -> str:
        """Store (or refresh) a memory of ``user_id``; returns its id.

        Never raises for a backend outage: the write is queued and the id is still returned.
        Raises :class:`ValidationError` for an invalid user id or empty/too long content
        (:data:`MAX_CONTENT_CHARS`), and the AppError of a failure that is not an outage.
        """
        validate_user_id(user_id)
        text = " ".join(str(content).split())
        if not text:
            raise ValidationError("a memory needs some content")
        if len(text) > MAX_CONTENT_CHARS:
            raise ValidationError(f"a memory is at most {MAX_CONTENT_CHARS} characters, got {len(text)}")
        mid = summary_id(user_id, conversation_id) if type == CONVERSATION_SUMMARY else memory_id(user_id, text)
        item = PendingWrite(
            op="store",
            user_id=user_id,
            id=mid,
            conversation_id=conversation_id or "",
            content=text,
            type=type,
            metadata=dict(metadata or {}),
            created_at=self._now(),
        )
        return await self._submit(item)

    async def summarize_conversation(
        self, conversation_id: str, summary: str, *, user_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> str:
        """Store a conversation's summary (type ``conversation_summary``); one per conversation."""
        return await self.store_memory(
            user_id or self.default_user, conversation_id, summary, metadata, type=CONVERSATION_SUMMARY
        )

    async def forget(self, user_id: str, memory_id_: str) -> bool:
        """Delete one of this user's memories. True if it existed (or the delete was queued).
        Raises :class:`ValidationError` for an invalid user id."""
        validate_user_id(user_id)
        item = PendingWrite(op="forget", user_id=user_id, id=str(memory_id_), created_at=self._now())
        return (await self._submit(item)) != ""

    async def _submit(self, item: PendingWrite) -> str:
        # Writers that arrive while a batch is being written are coalesced into the next
        # batch: one embedding call and one LanceDB commit for all of them.
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        async with self._write_lock:
            if not future.done():
                batch, self._pending = self._pending, []
                await self._flush(batch)
        return await future

    async def _flush(self, batch: list[tuple[PendingWrite, asyncio.Future[str]]]) -> None:
        items = [item for item, _ in batch]
        failures: dict[int, AppError] = {}
        try:
            if len(self.queue):
                # Keep order behind older queued writes: queue these, then try to drain all.
                for item in items:
                    self.queue.push(item)
                results: dict[int, str] = {}
                try:
                    _, failures = await self._drain_locked(waiting={id(i) for i in items})
                except AppError as exc:
                    if not is_outage(exc):
                        raise
                    self.last_error = describe(exc)  # still queued: the writers get their ids
            else:
                results = await self._apply(items)
        except AppError as exc:
            if isinstance(exc, StorageError):
                failures = {id(item): exc for item in items}
                results = {}
            elif is_outage(exc):
                results = {}
                try:
                    self._queue_after(exc, items)
                except StorageError as lost:
                    # Not even the disk queue can keep them: every writer of the batch is told.
                    failures = {id(item): lost for item in items}
            else:
                # Not an outage: some write of the batch can never apply. Apply them one by one
                # so only that writer gets the error and the others are not held back by it.
                each = await self._apply_each(items)
                results, failures = each.results, each.failures
                if each.outage is not None:
                    try:
                        self._queue_after(each.outage, each.rest)
                    except StorageError as lost:
                        failures.update({id(item): lost for item in each.rest})
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            raise
        for item, fut in batch:
            if fut.done():
                continue
            if id(item) in failures:
                fut.set_exception(failures[id(item)])
            else:
                fut.set_result(results.get(id(item), item.id))

    def _queue_after(self, error: AppError, items: list[PendingWrite]) -> None:
        """Queue ``items`` because of the outage ``error`` (they drain when it is over).

        Raises:
            StorageError: the queue file cannot be written; the items that could not be queued
                are not kept (the ones queued before the failure stay queued).
        """
        self.last_error = describe(error)
        log.warning("memory write queued (%d pending): %s", len(self.queue) + len(items), self.last_error)
        for item in items:
            self.queue.push(item)

    async def _apply_each(self, items: list[PendingWrite]) -> _EachOutcome:
        """Apply ``items`` one at a time, in order, until an outage stops the run.

        A write that fails with an error that is not an outage is recorded in ``failures`` and
        the run goes on; the first outage ends it, leaving that write and the rest in ``rest``.
        """
        outcome = _EachOutcome()
        for n, item in enumerate(items):
            try:
                outcome.results.update(await self._apply([item]))
            except AppError as exc:
                if is_outage(exc):
                    outcome.outage = exc
                    outcome.rest = items[n:]
                    return outcome
                outcome.failures[id(item)] = exc
        return outcome

    async def _apply(self, items: list[PendingWrite]) -> dict[int, str]:
        """Apply writes in order; returns the id each store ended up under (or '' for a
        forget that found nothing). Raises AppError without partial effects per run."""
        results: dict[int, str] = {}
        run: list[PendingWrite] = []
        for item in items:
            if item.op == "store":
                run.append(item)
                continue
            if run:
                results.update(await self._apply_stores(run))
                run = []
            results[id(item)] = await self._apply_forget(item)
        if run:
            results.update(await self._apply_stores(run))
        return results

    async def _apply_forget(self, item: PendingWrite) -> str:
        table = await self._open(create=False)
        if table is None:
            return ""
        where = escaping.all_of(escaping.eq("id", item.id), escaping.eq("user_id", item.user_id))

        async def delete() -> int:
            found = await table.count_rows(where)
            if found:
                await table.delete(where)
            return found

        found = await self._db_call("delete", delete)
        if found:
            self._after_commit()
        return item.id if found else ""

    async def _apply_stores(self, items: list[PendingWrite], *, dedup: bool = True) -> dict[int, str]:
        vectors = await self._embed([i.content for i in items])
        table = await self._open(create=True)
        nearest = await self._nearest_stored(table, items, vectors) if dedup else {}
        threshold = self.config.dedup_similarity
        rows: dict[str, dict[str, Any]] = {}
        results: dict[int, str] = {}
        for n, (item, vec) in enumerate(zip(items, vectors, strict=True)):
            target = item.id
            if dedup and item.type != CONVERSATION_SUMMARY:
                # Earlier writes of this batch first (they are newer than anything stored).
                found = _near_in_batch(item, vec, rows, threshold)
                if found is None and n in nearest and nearest[n][1] >= threshold:
                    found = nearest[n][0]
                target = found or item.id
            results[id(item)] = target
            # A later write of the same id in this batch wins (dict keeps one row per id).
            rows[target] = {
                "id": target,
                "user_id": item.user_id,
                "conversation_id": item.conversation_id,
                "type": item.type,
                "content": item.content,
                "content_hash": content_hash(item.content),
                "created_at": datetime.fromtimestamp(item.created_at, tz=UTC),
                "metadata": json.dumps(item.metadata, ensure_ascii=False, default=str),
                "vector": vec.astype(np.float32).tolist(),
            }
        data = pa.Table.from_pylist(list(rows.values()), schema=schema(self.embedder.ndims))

        async def merge() -> Any:
            return await table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)

        await self._db_call("write", merge)
        self._after_commit()
        return results

    async def _nearest_stored(
        self, table: Any, items: list[PendingWrite], vectors: np.ndarray
    ) -> dict[int, tuple[str, float]]:
        """For each fact in the batch, the most similar stored memory of its user (id and
        cosine similarity), with one multi-vector query per user rather than one per fact."""
        by_user: dict[str, list[int]] = {}
        for n, item in enumerate(items):
            if item.type != CONVERSATION_SUMMARY:
                by_user.setdefault(item.user_id, []).append(n)
        best: dict[int, tuple[str, float]] = {}
        for user, positions in by_user.items():
            where = escaping.all_of(
                escaping.eq("user_id", user), f"type != {escaping.sql_string(CONVERSATION_SUMMARY)}"
            )

            async def nearest(positions: list[int] = positions, where: str = where) -> list[dict[str, Any]]:
                q = (
                    table.vector_search([vectors[n].tolist() for n in positions])
                    .distance_type("cosine")
                    .where(where)
                    .select(["id", "_distance"])
                    .limit(1)
                )
                if self._plan is not None:
                    q = self._plan.apply(q)
                return await q.to_list()

            for hit in await self._db_call("dedup search", nearest):
                n = positions[int(hit.get("query_index", 0))]
                score = 1.0 - float(hit["_distance"])
                if n not in best or score > best[n][1]:
                    best[n] = (str(hit["id"]), score)
        return best

    # ------------------------------------------------------------ queue drain

    def _on_event(self, event: Event) -> None:
        if (
            isinstance(event, HealthChanged)
            and event.name in ("memory", "embeddings")
            and event.new_status == "healthy"
        ):
            self.schedule_drain()

    def schedule_drain(self) -> None:
        """Start draining the write queue in the background (no-op if empty or running)."""
        if not len(self.queue) or (self._drain_task is not None and not self._drain_task.done()):
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._drain_task = self._spawn(self.drain())

    async def drain(self) -> int:
        """Apply queued writes in order; returns how many were applied.

        Stops at the first outage (:func:`is_outage`), leaving it and the writes after it
        queued, and raises that AppError. A queued write that fails for any other reason can
        never apply: it is moved to the dead-letter file (:meth:`WriteQueue.dead_letter`) with
        the reason and reported, so it cannot block the queue.
        """
        async with self._write_lock:
            applied, _ = await self._drain_locked()
            return applied

    async def _drain_locked(
        self, *, waiting: frozenset[int] | set[int] = frozenset()
    ) -> tuple[int, dict[int, AppError]]:
        """Drain the queue; (writes applied, the errors of writes that can never apply by ``id()``).

        A write that can never apply goes to the dead-letter file, unless its ``id()`` is in
        ``waiting`` (a writer is waiting for it and gets the error instead); either way it
        leaves the queue. Raises the first outage, as :meth:`drain`.
        """
        items = []
        for item in self.queue.items():
            try:
                validate_user_id(item.user_id)  # queued by an older version that let it through
            except ValidationError as exc:
                self.queue.dead_letter(item, exc.user_message())
            else:
                items.append(item)
        if not items:
            return 0, {}
        try:
            await self._apply(items)
        except AppError as exc:
            if is_outage(exc):
                raise
            each = await self._apply_each(items)
            for item in items:
                error = each.failures.get(id(item))
                if error is None:
                    continue
                if id(item) not in waiting:
                    self.queue.dead_letter(item, describe(error))
            settled = items[: len(items) - len(each.rest)]
            self.queue.remove(settled)
            applied = len(settled) - len(each.failures)
            if each.outage is not None:
                self.last_error = describe(each.outage)
                raise each.outage from None
            self.last_error = ""
            log.info("memory write queue drained: %d writes applied, %d failed", applied, len(each.failures))
            return applied, each.failures
        self.queue.remove(items)
        self.last_error = ""
        log.info("memory write queue drained: %d writes applied", len(items))
        return len(items), {}

    # ------------------------------------------------------------ reads

    async def search_memories(
        self,
        query: str,
        user_id: str,
        conversation_id: str | None = None,
        limit: int | None = None,
        min_similarity: float | None = None,
        *,
        types: list[str] | None = None,
    ) -> MemoryRecall:
        """Memories of ``user_id`` similar to ``query``, best first, at or above the threshold.

        Never raises for a backend failure: answers ``degraded=True`` with the reason instead
        (recall only enriches a turn, it never stops one). Raises :class:`ValidationError` for
        an invalid user id.
        """
        validate_user_id(user_id)
        limit = limit or self.config.top_k
        threshold = self.config.min_similarity if min_similarity is None else min_similarity
        where = escaping.all_of(
            escaping.eq("user_id", user_id),
            escaping.eq("conversation_id", conversation_id) if conversation_id else None,
            escaping.one_of("type", types) if types is not None else None,
        )
        if not query.strip():
            return MemoryRecall()
        try:
            table = await self._open(create=False)
        except AppError as exc:
            return self._degraded(exc)
        if table is None:
            return MemoryRecall(degraded=self.embedder.degraded, source="none")
        try:
            vec = (await self._embed([query]))[0]
        except AppError as exc:
            return await self._lexical_recall(table, query, where, limit, exc)

        async def search() -> list[dict[str, Any]]:
            q = (
                table.vector_search(vec.tolist())
                .distance_type("cosine")
                .where(where)
                .select([*_COLUMNS, "_distance"])
                .limit(limit)
            )
            if self._plan is not None:
                q = self._plan.apply(q)
            return await q.to_list()

        try:
            rows = await self._db_call("search", search)
        except AppError as exc:
            return self._degraded(exc)
        memories = [Memory.from_row(r, 1.0 - float(r["_distance"])) for r in rows]
        kept = tuple(m for m in memories if m.score is not None and m.score >= threshold)
        return MemoryRecall(
            kept, degraded=self.embedder.degraded, source="lexical" if self.embedder.degraded else "vector"
        )

    async def recall(self, user_id: str, message: str, limit: int | None = None) -> MemoryRecall:
        """What the turn pipeline calls: this user's memories relevant to ``message``."""
        return await self.search_memories(message, user_id, limit=limit)

    async def get_context_memories(self, user_id: str, message: str, limit: int = 5) -> list[str]:
        """The spec's prompt lines, ``[Memory from {timestamp}]: {content}``."""
        return (await self.search_memories(message, user_id, limit=limit)).formatted()

    def _degraded(self, exc: AppError) -> MemoryRecall:
        self.last_error = describe(exc)
        log.warning("memory recall degraded: %s", self.last_error)
        return MemoryRecall(degraded=True, reason=self.last_error, source="none")

    async def _lexical_recall(
        self, table: AsyncTable, query: str, where: str, limit: int, cause: AppError
    ) -> MemoryRecall:
        """Embedding provider down: rank this user's stored texts by word overlap instead.
        No lexical vector is ever written, so tables stay single-model."""
        reason = describe(cause)
        self.last_error = reason

        async def scan() -> list[dict[str, Any]]:
            return await table.query().where(where).select(_COLUMNS).limit(LEXICAL_SCAN_LIMIT).to_list()

        try:
            rows = await self._db_call("scan", scan)
        except AppError as exc:
            return self._degraded(exc)
        if not rows:
            return MemoryRecall(degraded=True, reason=reason, source="lexical")
        qvec = lexical_vector(query)
        scores = lexical_vectors([r["content"] for r in rows]) @ qvec
        order = np.argsort(-scores)[:limit]
        kept = tuple(Memory.from_row(rows[i], float(scores[i])) for i in order if scores[i] >= LEXICAL_MIN_SIMILARITY)
        return MemoryRecall(kept, degraded=True, reason=reason, source="lexical")

    async def list(self, user_id: str, *, limit: int = 1000, types: list[str] | None = None) -> list[Memory]:
        """This user's memories, newest first (for the UI's memory list). Raises
        :class:`ValidationError` for an invalid user id, the store's AppError when it is down."""
        validate_user_id(user_id)
        table = await self._open(create=False)
        if table is None:
            return []
        where = escaping.all_of(
            escaping.eq("user_id", user_id), escaping.one_of("type", types) if types is not None else None
        )

        async def scan() -> list[dict[str, Any]]:
            return await table.query().where(where).select(_COLUMNS).to_list()

        rows = await self._db_call("list", scan)
        rows.sort(key=lambda r: r["created_at"], reverse=True)
        return [Memory.from_row(r) for r in rows[:limit]]

    async def count(self, user_id: str | None = None) -> int:
        """Rows of ``user_id`` (every user's with None). Raises :class:`ValidationError` for an
        invalid user id, the store's AppError when it is down."""
        if user_id is not None:
            validate_user_id(user_id)
        table = await self._open(create=False)
        if table is None:
            return 0
        where = escaping.eq("user_id", user_id) if user_id is not None else None
        return int(await self._db_call("count", lambda: table.count_rows(where)))

    # ------------------------------------------------------------ upkeep

    def _after_commit(self) -> None:
        self._commits_since_optimize += 1
        if self._maintenance is None or self._maintenance.done():
            self._maintenance = self._spawn(self._upkeep())

    async def _upkeep(self) -> None:
        try:
            if self._indexed is not True and await self.count() >= self.config.index_threshold:
                await self.ensure_indexes()
            if self._commits_since_optimize >= self.config.optimize_every:
                await self.optimize()
        except AppError as exc:
            log.warning("memory upkeep skipped: %s", describe(exc))

    async def ensure_indexes(self, *, force: bool = False) -> bool:
        """Create the vector index (see :mod:`runtime.memory.indexing`) and a scalar index on
        ``user_id`` once the table holds ``index_threshold`` rows (or now, with ``force``).
        True if the table has a vector index."""
        table = await self._open(create=False)
        if table is None:
            return False
        rows = await self.count()
        if not force and rows < self.config.index_threshold:
            return False
        indices = await self._db_call("list indices", table.list_indices)
        existing = {i.columns[0] for i in indices}
        if {"vector", "user_id"} <= existing:
            self._plan = _plan_from(indices)
            self._indexed = True
            return True
        from lancedb.index import BTree

        if "user_id" not in existing:
            await self._db_call(
                "index user_id", lambda: table.create_index("user_id", config=BTree()), guard=self._upkeep_guard
            )
        # k-means needs some rows per partition; below this a flat search is fast anyway.
        if "vector" not in existing and rows >= 256:
            await self._db_call(
                "index vector",
                lambda: table.create_index("vector", config=indexing.vector_index(rows)),
                guard=self._upkeep_guard,
            )
            existing.add("vector")
        if "vector" in existing:
            self._plan = _plan_from(await self._db_call("list indices", table.list_indices))
            self._indexed = True
        return bool(self._indexed)

    async def optimize(self) -> None:
        """Compact fragments and fold new rows into the indexes."""
        table = await self._open(create=False)
        if table is None:
            return
        self._commits_since_optimize = 0
        await self._db_call("optimize", table.optimize, guard=self._upkeep_guard)

    async def fragment_count(self) -> int:
        """Data fragments of the table (0 without one); :meth:`optimize` compacts them.

        Raises:
            AppError: the store is down.
        """
        table = await self._open(create=False)
        if table is None:
            return 0
        stats = await self._db_call("stats", table.stats)
        frags = stats["fragment_stats"] if isinstance(stats, dict) else stats.fragment_stats
        return int(frags["num_fragments"] if isinstance(frags, dict) else frags.num_fragments)


def _upkeep_guard(resilience: Resilience) -> Guard:
    """A guard for index builds and compaction: same memory backend, but its own breaker
    (a slow rebuild must not open the recall breaker) and a timeout sized for minutes of
    work on a large table, not the 5 s a recall gets. One attempt: upkeep reruns later."""
    from runtime.resilience.guard import Guard

    settings = resilience.config.for_service("memory").model_copy(
        update={"timeout": UPKEEP_TIMEOUT, "deadline": UPKEEP_TIMEOUT, "max_attempts": 1}
    )
    return Guard(
        "memory:upkeep",
        settings,
        breaker=resilience.breakers.get("memory:upkeep"),
        fallbacks=resilience.fallbacks,
        bus=resilience.bus,
        clock=resilience.clock,
        sleep=resilience.sleep,
    )


def _near_in_batch(
    item: PendingWrite, vec: np.ndarray, batch_rows: dict[str, dict[str, Any]], threshold: float
) -> str | None:
    for rid, row in batch_rows.items():
        if (
            row["user_id"] == item.user_id
            and row["type"] != CONVERSATION_SUMMARY
            and float(np.dot(np.asarray(row["vector"], dtype=np.float32), vec)) >= threshold
        ):
            return rid
    return None


def _plan_from(indices: Iterable[IndexConfig]) -> indexing.SearchPlan | None:
    """The search plan for the table's vector index, if it has one."""
    for index in indices:
        if list(index.columns) == ["vector"]:
            rows = (index.num_indexed_rows or 0) + (index.num_unindexed_rows or 0)
            return indexing.plan_for(str(index.index_type), rows)
    return None

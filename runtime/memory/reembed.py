"""``holdfast memory reembed``: copy memories into the table of the configured model.

Switching embedding provider or model starts a new, empty table (vectors of different
models never share one). This finds the other memory tables, re-embeds their text with the
current provider through Guard("embeddings") in batches, and upserts them by their stable
ids, so running it twice is harmless. The old tables are kept unless ``drop_old`` is set.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runtime.memory.records import TABLE_PREFIX, PendingWrite
from runtime.memory.store import VectorMemoryStore

if TYPE_CHECKING:
    from lancedb.table import AsyncTable

#: Rows re-embedded and upserted per batch.
BATCH = 256


@dataclass
class ReembedReport:
    """What :func:`reembed` did: the ``target`` table, rows copied per source table, tables dropped."""

    target: str
    copied: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Rows copied from all source tables."""
        return sum(self.copied.values())


async def other_tables(store: VectorMemoryStore) -> list[str]:
    """Memory tables of other models (what ``reembed`` would copy from), sorted by name.

    Raises:
        ServiceUnavailableError: LanceDB failed (the call goes through ``Guard("memory")``).
        CircuitOpenError: the memory breaker is open.
    """
    db = await store._connect()
    names = (await store._db_call("list tables", db.list_tables)).tables
    return sorted(n for n in names if n.startswith(TABLE_PREFIX) and n != store.table_name)


async def reembed(
    store: VectorMemoryStore,
    *,
    sources: list[str] | None = None,
    drop_old: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> ReembedReport:
    """Re-embed every memory of ``sources`` (default: all other memory tables) into the store's table.

    Rows are upserted by their stable ids in batches of :data:`BATCH`, so a second run is
    harmless; then the table is compacted and its indexes built.

    Args:
        drop_old: drop each source table once it is copied.
        progress: called with ``(table name, rows copied so far from it)`` after each batch.

    Returns:
        How many rows came from each table, and which tables were dropped.

    Raises:
        AppError: LanceDB or the embedding provider failed (the copy stops; rows already
            upserted stay, and a rerun continues safely).
    """
    report = ReembedReport(target=store.table_name)
    db = await store._connect()
    for name in sources if sources is not None else await other_tables(store):
        table = await store._db_call("open", functools.partial(db.open_table, name))
        rows: list[dict[str, Any]] = await store._db_call("read", functools.partial(_read_rows, table))
        for start in range(0, len(rows), BATCH):
            chunk = [_pending(r) for r in rows[start : start + BATCH]]
            await store._apply_stores(chunk, dedup=False)
            report.copied[name] = report.copied.get(name, 0) + len(chunk)
            if progress is not None:
                progress(name, report.copied[name])
        report.copied.setdefault(name, 0)
        table.close()
        if drop_old:
            await store._db_call("drop", functools.partial(db.drop_table, name))
            report.dropped.append(name)
    await store.optimize()
    await store.ensure_indexes()
    return report


def _read_rows(table: AsyncTable) -> Awaitable[list[dict[str, Any]]]:
    return (
        table.query()
        .select(["id", "user_id", "conversation_id", "type", "content", "created_at", "metadata"])
        .to_list()
    )


def _pending(row: dict[str, Any]) -> PendingWrite:
    created = row["created_at"]
    if isinstance(created, datetime):
        stamp = (created if created.tzinfo else created.replace(tzinfo=UTC)).timestamp()
    else:
        stamp = float(created or 0)
    try:
        meta = json.loads(row.get("metadata") or "{}")
    except json.JSONDecodeError:
        meta = {}
    return PendingWrite(
        op="store",
        user_id=row["user_id"],
        id=row["id"],
        conversation_id=row["conversation_id"],
        content=row["content"],
        type=row["type"],
        metadata=meta if isinstance(meta, dict) else {},
        created_at=stamp,
    )

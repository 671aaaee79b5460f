"""Memory writes that could not be applied yet, kept in order and on disk.

When LanceDB or the embedding provider is down, the store queues the write here instead of
losing it. Each write is appended to a small JSONL file (flushed and fsynced) so a restart
keeps it; after a successful drain the file is rewritten atomically with what is left.
A later write for the same memory id supersedes an earlier queued one, so a flapping
backend cannot grow the queue with repeats. The queue is bounded; past ``max_items`` the
oldest write is dropped and counted (memory is best-effort, the chat history is not).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from runtime.memory.records import PendingWrite

log = logging.getLogger(__name__)


class WriteQueue:
    """The ordered, bounded, deduplicated queue of :class:`PendingWrite`; thread-safe.

    ``path`` is the JSONL file it persists to (None: memory only); ``max_items`` bounds it and
    ``dropped`` counts the oldest writes dropped past the bound. Disk errors are logged, never
    raised: the writes stay queued in memory.
    """

    def __init__(self, path: Path | None, *, max_items: int = 10_000) -> None:
        self.path = path
        self.max_items = max_items
        self.dropped = 0
        self._items: list[PendingWrite] = []
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            log.warning("memory write queue %s unreadable: %s", self.path, exc.strerror)
            return
        for line in lines:
            if not line.strip():
                continue
            try:
                self._put(PendingWrite.from_json(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                # A torn last line from a crash mid-append; everything before it is intact.
                log.warning("memory write queue: skipped an unreadable entry")

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[PendingWrite]:
        """A snapshot of the queued writes, oldest first."""
        with self._lock:
            return list(self._items)

    def _put(self, item: PendingWrite) -> None:
        self._items = [i for i in self._items if not (i.id == item.id and i.user_id == item.user_id)]
        self._items.append(item)
        if len(self._items) > self.max_items:
            del self._items[0]
            self.dropped += 1

    def push(self, item: PendingWrite) -> None:
        """Queue ``item`` last, replacing any queued write for the same (user, memory id), and persist it.

        Past ``max_items`` the oldest write is dropped and counted in ``dropped``.
        """
        with self._lock:
            superseded = any(i.id == item.id and i.user_id == item.user_id for i in self._items)
            self._put(item)
            if superseded or len(self._items) >= self.max_items:
                self._rewrite()
            else:
                self._append(item)

    def remove(self, done: list[PendingWrite]) -> None:
        """Drop the given (applied) writes, keeping any that were queued meanwhile."""
        with self._lock:
            gone = {id(d) for d in done}
            self._items = [i for i in self._items if id(i) not in gone]
            self._rewrite()

    def _append(self, item: PendingWrite) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(item.to_json() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            log.warning("memory write queue %s not persisted: %s", self.path, exc.strerror)

    def _rewrite(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self._items:
                self.path.unlink(missing_ok=True)
                return
            tmp = self.path.with_suffix(".tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                fh.writelines(i.to_json() + "\n" for i in self._items)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("memory write queue %s not persisted: %s", self.path, exc.strerror)

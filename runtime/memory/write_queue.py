"""Memory writes that could not be applied yet, kept in order and on disk, and the ones that never can.

When LanceDB or the embedding provider is down, the store queues the write here instead of
losing it. Each write is appended to a small JSONL file (flushed and fsynced) so a restart
keeps it; after a successful drain the file is rewritten atomically with what is left.
A later write for the same memory id supersedes an earlier queued one, so a flapping
backend cannot grow the queue with repeats. The queue is bounded; past ``max_items`` the
oldest write is dropped and counted (memory is best-effort, the chat history is not).

No silent success: a write that cannot be persisted, not even to this file (read-only or full
disk), raises :class:`~runtime.config.StorageError` from :meth:`WriteQueue.push` and is not
kept, so the writer reports the failure instead of an id that was never stored.

Every Holdfast process on a data dir (the TUI, ``holdfast memory add``, ``holdfast serve``) shares
the one queue file, so the file is the queue: each operation takes an ``flock`` on a sibling lock
file, reads the file, changes it and writes it back, and each entry carries its own id
(:attr:`PendingWrite.qid`). A process removes exactly the entries it applied, so a write another
process queued meanwhile (a CLI that queued and exited) is never lost by a rewrite, and any
process that drains applies every queued write, its own and the others'.

A queued write that can never apply (its request is refused for a reason waiting will not fix)
goes to the dead-letter file (``memory-dead-letter.jsonl`` beside the queue) with the reason,
is counted in :attr:`WriteQueue.dead_letters` (health reports it) and leaves the queue, so it
never blocks the writes behind it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from runtime.config.paths import storage_error
from runtime.core.files import append_line_durably
from runtime.memory.records import PendingWrite

log = logging.getLogger(__name__)

#: The dead-letter file's name, beside the queue file.
DEAD_LETTER_FILE = "memory-dead-letter.jsonl"


class WriteQueue:
    """The ordered, bounded, deduplicated queue of :class:`PendingWrite`; thread-safe, and shared
    safely by every process whose queue is the same file (see the module docstring).

    ``path`` is the JSONL file it persists to (None: memory only, nothing can fail); ``max_items``
    bounds it and ``dropped`` counts the oldest writes dropped past the bound. ``clock`` gives
    the Unix time written with each dead letter.
    """

    def __init__(self, path: Path | None, *, max_items: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.max_items = max_items
        self.dropped = 0
        #: The dead-letter file (None when the queue has no file).
        self.dead_letter_path = path.parent / DEAD_LETTER_FILE if path is not None else None
        #: Writes in the dead-letter file (counted at start-up and whenever the file changed).
        self.dead_letters = 0
        self._dead_seen: tuple[int, int] | None = None
        self._lock_path = path.with_name(path.name + ".lock") if path is not None else None
        self._clock = clock
        self._items: list[PendingWrite] = []
        self._lock = threading.Lock()
        with self._lock, self._shared_file(write=False):
            self._sync()

    def __len__(self) -> int:
        """How many writes are queued now, by every process sharing the file."""
        with self._lock, self._shared_file(write=False):
            self._sync()
            return len(self._items)

    def items(self) -> list[PendingWrite]:
        """A snapshot of the queued writes (every process's), oldest first. A write this process
        queued is the same object it pushed."""
        with self._lock, self._shared_file(write=False):
            self._sync()
            return list(self._items)

    def push(self, item: PendingWrite) -> None:
        """Queue ``item`` last, replacing any queued write for the same (user, memory id), and persist it.

        Past ``max_items`` the oldest write is dropped and counted in ``dropped``.

        Raises:
            StorageError: the queue file cannot be written (read-only or full disk); ``item`` is
                then not queued, so nothing claims it was kept.
        """
        with self._lock:
            try:
                with self._shared_file(write=True):
                    self._sync()
                    before = list(self._items)
                    superseded = any(i.id == item.id and i.user_id == item.user_id for i in self._items)
                    self._put(item)
                    try:
                        if superseded or len(self._items) >= self.max_items:
                            self._rewrite()
                        else:
                            self._append(item)
                    except OSError:
                        self._items = before
                        raise
            except OSError as exc:
                raise storage_error(exc, "queue the memory write in", self.path, service="memory") from exc

    def remove(self, done: Iterable[PendingWrite]) -> None:
        """Drop the given (applied) writes, keeping any that were queued meanwhile, by this
        process or another.

        A failure to rewrite the file is logged: the writes are applied, and a restart would
        only apply them again (idempotent by memory id).
        """
        gone = {d.qid for d in done}
        with self._lock:
            try:
                with self._shared_file(write=True):
                    self._sync()
                    self._items = [i for i in self._items if i.qid not in gone]
                    self._rewrite()
            except OSError as exc:
                self._items = [i for i in self._items if i.qid not in gone]
                log.warning("memory write queue %s not rewritten: %s", self.path, exc.strerror)

    def dead_letter(self, item: PendingWrite, reason: str) -> None:
        """Move ``item`` (a write that can never apply) out of the queue and into the dead-letter
        file with ``reason``; counted in :attr:`dead_letters`. Never raises: if even the
        dead-letter file cannot be written, the write and the reason are logged instead."""
        entry = {"dead_at": self._clock(), "reason": reason, "write": json.loads(item.to_json())}
        log.warning(
            "memory write %s %s of user %r can never apply (%s); moved to %s",
            item.op,
            item.id,
            item.user_id,
            reason,
            self.dead_letter_path or "the log",
        )
        with self._lock:
            self._items = [i for i in self._items if i.qid != item.qid]
            if self.dead_letter_path is None:
                self.dead_letters += 1
                return
            try:
                with self._shared_file(write=True):
                    self._sync()
                    self._items = [i for i in self._items if i.qid != item.qid]
                    try:
                        with self.dead_letter_path.open("a", encoding="utf-8") as fh:
                            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
                            fh.flush()
                            os.fsync(fh.fileno())
                    except OSError as exc:
                        self.dead_letters += 1  # counted here, since the file does not have it
                        log.error(
                            "memory dead-letter file %s not written (%s): %s",
                            self.dead_letter_path,
                            exc.strerror,
                            entry,
                        )
                    else:
                        self._count_dead_letters()  # the file's count: ours and any other process's
                    self._rewrite()
            except OSError as exc:
                log.warning("memory write queue %s not rewritten: %s", self.path, exc.strerror)

    # ------------------------------------------------------------ the shared file

    @contextlib.contextmanager
    def _shared_file(self, *, write: bool) -> Iterator[None]:
        """Hold the queue file's lock (exclusive) for one read-change-write. Raises OSError when
        ``write`` and the lock file cannot be made; a reader on a read-only disk reads unlocked
        (nobody can be writing there)."""
        if self._lock_path is None:
            yield
            return
        try:
            if write:
                self._lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            if write:
                raise
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _sync(self) -> None:
        """Under the file lock: the queue as the file holds it now (entries this process knows
        keep their objects), and the dead letters counted again if their file changed."""
        self._count_dead_letters()
        if self.path is None:
            return
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        except (OSError, UnicodeError) as exc:
            log.warning("memory write queue %s unreadable: %s", self.path, exc)
            return
        known = {i.qid: i for i in self._items}
        self._items = []
        for line in lines:
            if not line.strip():
                continue
            try:
                parsed = PendingWrite.from_json(line)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                # A torn last line from a crash mid-append; everything before it is intact.
                log.warning("memory write queue: skipped an unreadable entry")
                continue
            self._put(known.get(parsed.qid, parsed))

    def _count_dead_letters(self) -> None:
        if self.dead_letter_path is None:
            return
        stamp = _stamp(self.dead_letter_path)
        if stamp == self._dead_seen:
            return
        self._dead_seen = stamp
        try:
            with self.dead_letter_path.open("rb") as fh:
                self.dead_letters = sum(1 for line in fh if line.strip())
        except FileNotFoundError:
            self.dead_letters = 0
        except OSError as exc:
            log.warning("memory dead-letter file %s unreadable: %s", self.dead_letter_path, exc.strerror)

    def _put(self, item: PendingWrite) -> None:
        self._items = [i for i in self._items if not (i.id == item.id and i.user_id == item.user_id)]
        self._items.append(item)
        if len(self._items) > self.max_items:
            del self._items[0]
            self.dropped += 1

    def _append(self, item: PendingWrite) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (item.to_json() + "\n").encode("utf-8")
        append_line_durably(self.path, data)

    def _rewrite(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._items:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.writelines(i.to_json() + "\n" for i in self._items)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise


def _stamp(path: Path) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of ``path``; None when it does not exist or cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns

"""The local write-ahead journal used while Redis is unreachable.

One record per line: compact JSON, a tab, and the CRC-32 of the JSON. Each append is
written and ``fsync``-ed before it returns, so an acknowledged write survives a crash of
the app or the machine. A line torn by a crash (no newline, bad CRC, bad JSON) can only be
the last one; it is dropped on load and cut off so later appends start on a clean line.

Records are replayed in file order by the conversation store. Every operation a record
describes is idempotent (appends carry their message id), so replaying a prefix twice
after a crash in the middle of a replay neither loses nor duplicates anything. After a
full replay the journal is truncated; after a partial one the remainder is written to a
temporary file and atomically renamed over the journal.

Two processes sharing a data dir serialise on an ``flock`` of a sibling lock file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime.core.errors import InternalError

log = logging.getLogger(__name__)

JOURNAL_FILE = "redis-journal.jsonl"


class Journal:
    """An fsync-per-append, CRC-framed, replay-in-order log of pending Redis writes."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / JOURNAL_FILE
        self._lock_path = self.directory / (JOURNAL_FILE + ".lock")

    # ------------------------------------------------------------ reading

    def records(self) -> list[dict[str, Any]]:
        """Every intact record in order; a torn last line is removed from the file.

        Raises:
            InternalError: the journal exists but cannot be read or its lock file cannot be opened.
        """
        with self._locked():
            return self._read_and_repair()

    def pending(self) -> int:
        """How many records wait to be replayed to Redis (reads the file; same errors as :meth:`records`)."""
        return len(self.records())

    def _read_and_repair(self) -> list[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise InternalError(f"cannot read the local journal {self.path}: {exc.strerror}") from exc
        records: list[dict[str, Any]] = []
        good_end = 0
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                break  # no newline: the write of this line never finished
            record = _decode_line(data[pos:end])
            if record is None:
                break
            records.append(record)
            pos = good_end = end + 1
        if good_end < len(data):
            log.warning("journal %s: dropping %d bytes of a torn final record", self.path, len(data) - good_end)
            with self.path.open("r+b") as fh:
                fh.truncate(good_end)
                os.fsync(fh.fileno())
        return records

    # ------------------------------------------------------------ writing

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Durably append ``record`` (a JSON-safe dict); returns it with its unique record id ``jid``.

        The line is fsynced before this returns.

        Raises:
            InternalError: the journal cannot be written (read-only or full disk), naming the path.
        """
        stored = {"jid": secrets.token_hex(8), **record}
        line = _encode_line(stored)
        with self._locked():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise InternalError(f"cannot write the local journal {self.path}: {exc.strerror}") from exc
            return stored

    def remove(self, jids: set[str]) -> int:
        """Remove the records with these ids (they reached Redis); the number left.

        By id rather than position, so records another process appended meanwhile stay.

        Raises:
            InternalError: the journal cannot be read or its lock file cannot be opened.
        """
        with self._locked():
            remaining = [r for r in self._read_and_repair() if r["jid"] not in jids]
            if not remaining:
                self._truncate()
            else:
                self._replace(remaining)
            return len(remaining)

    def _truncate(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("r+b") as fh:
            fh.truncate(0)
            os.fsync(fh.fileno())

    def _replace(self, records: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            for record in records:
                fh.write(_encode_line(record))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.directory)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise InternalError(f"cannot open the local journal in {self.directory}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _encode_line(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return body + b"\t" + f"{zlib.crc32(body):08x}".encode("ascii") + b"\n"


def _decode_line(line: bytes) -> dict[str, Any] | None:
    body, sep, crc = line.rpartition(b"\t")
    if not sep or crc != f"{zlib.crc32(body):08x}".encode("ascii"):
        return None
    try:
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "jid" in record else None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

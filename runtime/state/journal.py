"""The local write-ahead journal used while Redis is unreachable.

One record per line: compact JSON, a tab, and the CRC-32 of the JSON; each line stands alone.
Each append is written and ``fsync``-ed before it returns, so an acknowledged write survives a
crash of the app or the machine.

Damage is told apart from a crash mid-write:

* a **torn tail** (the last bytes of the file with no newline after them: an append the crash
  cut short) is the only thing dropped silently; it was never acknowledged. If those bytes are
  a whole record that only lost its newline (or had it replaced), the record is kept. An append
  never glues itself to a torn tail: it repairs the file first, and a short write (a disk that
  filled up mid-line) is cut off again before the error is raised.
* a **damaged record** (a complete line whose CRC or JSON does not check out: a flipped bit, a
  bad sector, an editor) is moved to the quarantine file ``redis-journal.quarantine.jsonl``
  with its line number, byte offset, the reason and its raw bytes, and reported once
  (:meth:`Journal.take_quarantined`); every good record before and after it stays and is
  replayed. One bad line never takes the records after it down with it, nor a good record
  that shares its line: every record starts with ``{"jid":"``, which JSON text inside a record
  cannot contain unescaped, so whole records glued to the damage (a flipped newline joins two
  lines, a torn fragment left by an older version joins the next append) are found by their
  own CRC and kept.

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
import re
import secrets
import time
import zlib
from base64 import b64encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config.paths import storage_error
from runtime.core.files import append_line_durably

log = logging.getLogger(__name__)

JOURNAL_FILE = "redis-journal.jsonl"
#: Where damaged records go, beside the journal (JSON lines, appended, never truncated).
QUARANTINE_FILE = "redis-journal.quarantine.jsonl"


@dataclass(frozen=True)
class QuarantinedRecord:
    """A damaged journal line moved to the quarantine file: its 1-based ``line`` number and byte
    ``offset`` in the journal as read, its length in bytes, and why it was refused (``reason``)."""

    line: int
    offset: int
    size: int
    reason: str


class Journal:
    """An fsync-per-append, CRC-framed, replay-in-order log of pending Redis writes."""

    def __init__(self, directory: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.path = self.directory / JOURNAL_FILE
        #: Where damaged records are moved (see the module docstring).
        self.quarantine_path = self.directory / QUARANTINE_FILE
        self._lock_path = self.directory / (JOURNAL_FILE + ".lock")
        self._clock = clock
        self._quarantined: list[QuarantinedRecord] = []

    # ------------------------------------------------------------ reading

    def records(self) -> list[dict[str, Any]]:
        """Every intact record in order.

        A torn last line is cut off the file; damaged lines are moved to :attr:`quarantine_path`
        and remembered for :meth:`take_quarantined`.

        Raises:
            StorageError: the journal exists but cannot be read, repaired or quarantined, or
                its lock file cannot be opened (the message names the path).
        """
        with self._locked():
            return self._read_and_repair()

    def pending(self) -> int:
        """How many records wait to be replayed to Redis (reads the file; same errors as :meth:`records`)."""
        return len(self.records())

    def take_quarantined(self) -> list[QuarantinedRecord]:
        """The damaged records this instance moved to quarantine since the last call (then forgotten),
        so each is reported once."""
        taken, self._quarantined = self._quarantined, []
        return taken

    def _read_and_repair(self) -> list[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise storage_error(exc, "read the local journal", self.path) from exc
        records: list[dict[str, Any]] = []
        damaged: list[tuple[QuarantinedRecord, bytes]] = []
        pos = line_no = 0
        torn = b""
        blank = False
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                torn = data[pos:]  # no newline: the write of this line never finished
                break
            line_no += 1
            line = data[pos:end]
            record, reason = _decode(line)
            if record is not None:
                records.append(record)
            elif line:
                kept = _salvage(line)
                records.extend(kept)
                if kept:
                    reason += f"; {len(kept)} intact record(s) on the line kept"
                damaged.append((QuarantinedRecord(line_no, pos, len(line), reason), line))
            else:
                blank = True  # nothing to lose; dropped with the next rewrite
            pos = end + 1
        if torn:
            # A complete record whose newline alone was lost, or replaced by another byte.
            whole = _decode(torn)[0] or _decode(torn[:-1])[0]
            if whole is not None:
                records.append(whole)
                torn, blank = b"", True  # rewritten with its newline
        if damaged:
            self._quarantine(damaged)
            self._replace(records)
        elif blank:
            self._replace(records)
        elif torn:
            log.info("journal %s: dropping %d bytes of a torn final record", self.path, len(torn))
            self._cut(len(data) - len(torn))
        return records

    def _quarantine(self, damaged: list[tuple[QuarantinedRecord, bytes]]) -> None:
        """Append the damaged lines to the quarantine file (fsynced) before they leave the journal."""
        now = self._clock()
        lines = [
            json.dumps(
                {
                    "quarantined_at": now,
                    "journal": str(self.path),
                    "line": q.line,
                    "offset": q.offset,
                    "size": q.size,
                    "reason": q.reason,
                    "raw": raw.decode("utf-8", "backslashreplace"),
                    "raw_base64": b64encode(raw).decode("ascii"),
                },
                ensure_ascii=False,
            ).encode("utf-8")
            + b"\n"
            for q, raw in damaged
        ]
        try:
            fd = os.open(self.quarantine_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, b"".join(lines))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise storage_error(
                exc, f"move {len(damaged)} damaged record(s) of {self.path} to", self.quarantine_path
            ) from exc
        for q, _ in damaged:
            log.warning(
                "journal %s: damaged record at line %d (byte %d, %s) moved to %s",
                self.path,
                q.line,
                q.offset,
                q.reason,
                self.quarantine_path,
            )
        self._quarantined.extend(q for q, _ in damaged)

    # ------------------------------------------------------------ writing

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Durably append ``record`` (a JSON-safe dict); returns it with its unique record id ``jid``.

        The line is fsynced before this returns.

        Raises:
            StorageError: the journal cannot be written (read-only or full disk), naming the path.
        """
        stored = {"jid": secrets.token_hex(8), **record}
        line = _encode_line(stored)
        with self._locked():
            if not self._ends_with_newline():
                self._read_and_repair()  # a torn tail: cut it (or keep its record) before adding ours
            try:
                append_line_durably(self.path, line)
            except OSError as exc:
                raise storage_error(exc, "write the local journal", self.path) from exc
            return stored

    def _ends_with_newline(self) -> bool:
        """Whether the journal is missing, empty or ends with a newline (no torn tail to repair)."""
        try:
            with self.path.open("rb") as fh:
                if fh.seek(0, os.SEEK_END) == 0:
                    return True
                fh.seek(-1, os.SEEK_END)
                return fh.read(1) == b"\n"
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise storage_error(exc, "read the local journal", self.path) from exc

    def remove(self, jids: set[str]) -> int:
        """Remove the records with these ids (they reached Redis); the number left.

        By id rather than position, so records another process appended meanwhile stay.

        Raises:
            StorageError: the journal cannot be read or its lock file cannot be opened.
        """
        with self._locked():
            remaining = [r for r in self._read_and_repair() if r["jid"] not in jids]
            if not remaining:
                self._truncate()
            else:
                self._replace(remaining)
            return len(remaining)

    def _cut(self, size: int) -> None:
        try:
            with self.path.open("r+b") as fh:
                fh.truncate(size)
                os.fsync(fh.fileno())
        except OSError as exc:
            raise storage_error(exc, "repair the local journal", self.path) from exc

    def _truncate(self) -> None:
        if not self.path.exists():
            return
        try:
            with self.path.open("r+b") as fh:
                fh.truncate(0)
                os.fsync(fh.fileno())
        except OSError as exc:
            raise storage_error(exc, "empty the local journal", self.path) from exc

    def _replace(self, records: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            with tmp.open("wb") as fh:
                for record in records:
                    fh.write(_encode_line(record))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise storage_error(exc, "rewrite the local journal", self.path) from exc
        _fsync_dir(self.directory)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise storage_error(exc, "open the local journal in", self.directory) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _encode_line(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return body + b"\t" + f"{zlib.crc32(body):08x}".encode("ascii") + b"\n"


def _decode(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The record on ``line`` (no newline), or None and why it is not one."""
    body, sep, crc = line.rpartition(b"\t")
    if not sep:
        return None, "no checksum"
    if crc != f"{zlib.crc32(body):08x}".encode("ascii"):
        return None, "checksum mismatch"
    try:
        record = json.loads(body)
    except ValueError:
        return None, "not JSON"
    if not isinstance(record, dict) or "jid" not in record:
        return None, "not a journal record"
    return record, ""


#: How every record's line starts (``{"jid": ...`` comes first); JSON escapes the quotes of the
#: same text inside a string, so it marks the start of a record and nothing else.
_RECORD_START = re.compile(rb'\{"jid":"')
#: A record's end: the tab and the 8 hex digits of its CRC-32.
_CRC_END = re.compile(rb"\t[0-9a-f]{8}")


def _salvage(line: bytes) -> list[dict[str, Any]]:
    """The intact records inside a damaged ``line``, in order: each piece from one record start
    to the next that checks out by its own CRC, on its own or cut after its CRC (the damage being
    the byte after it, e.g. a newline that was flipped)."""
    starts = [m.start() for m in _RECORD_START.finditer(line)]
    found: list[dict[str, Any]] = []
    for start, end in zip(starts, [*starts[1:], len(line)], strict=True):
        piece = line[start:end]
        record = _decode(piece)[0]
        if record is None:
            ends = [m.end() for m in _CRC_END.finditer(piece)]
            record = _decode(piece[: ends[-1]])[0] if ends else None
        if record is not None:
            found.append(record)
    return found


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

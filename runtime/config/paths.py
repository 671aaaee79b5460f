"""File-system failures as one line a person can act on: what, which path, why, and what to do.

Every place that writes a file Holdfast needs (the log, the journal, the memory write queue,
the embedded Redis's pid and AOF directory) turns an ``OSError`` into a :class:`StorageError`
through :func:`storage_error`, so the CLI prints ``holdfast: cannot write the log file
/var/log/x/holdfast.log: the file system is read-only; ...`` and exits non-zero instead of a
traceback. The reasons come from the ``errno`` (``EROFS``, ``ENOSPC``, ``EACCES``, ...), not
from the message text, which differs between platforms.
"""

from __future__ import annotations

import errno
from pathlib import Path

from runtime.core.errors import InternalError

#: The usual ways to point Holdfast elsewhere, named in the "what to do" part of a message.
DATA_DIR_HINT = "free some space or make it writable, or choose another data dir with HOLDFAST_DATA_DIR"
LOG_HINT = "make it writable, or choose another log dir with HOLDFAST_LOG_DIR (or [logging].file)"

_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "it does not exist",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EISDIR: "it is a directory",
}


class StorageError(InternalError):
    """A file or directory Holdfast needs cannot be created, read or written (read-only, full
    disk, no permission). ``path`` is the file or directory; ``errno`` the OS error number (0
    when unknown). Not an outage: waiting does not make a read-only disk writable."""

    def __init__(self, message: str, *, path: Path | str, errno_: int = 0, service: str | None = None) -> None:
        super().__init__(message, details={"path": str(path), "errno": errno_}, service=service)
        self.path = Path(path)
        self.errno = errno_


def reason(exc: OSError) -> str:
    """Why ``exc`` happened, in words (``"the disk is full"``), from its errno; its strerror otherwise."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or type(exc).__name__).lower()


def storage_error(
    exc: OSError, action: str, path: Path | str | None = None, hint: str = DATA_DIR_HINT, *, service: str | None = None
) -> StorageError:
    """The :class:`StorageError` for ``exc``: ``cannot <action> <path>: <reason>; <hint>``.

    ``action`` says what was being done (``"write the log file"``); ``path`` defaults to the
    file the OS names in ``exc`` (``exc.filename``); ``hint`` says what to do. The caller raises
    it ``from exc``.
    """
    where = path if path is not None else (exc.filename or "")
    target = f" {where}" if where else ""
    return StorageError(
        f"cannot {action}{target}: {reason(exc)}; {hint}", path=where or "", errno_=exc.errno or 0, service=service
    )

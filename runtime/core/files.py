"""Durable appends to line-oriented files (the local journal, the memory write queue).

One job: add one whole line to a file and make it durable, or leave the file as it was.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def append_line_durably(path: Path, line: bytes) -> None:
    """Append ``line`` (bytes ending in a newline) to ``path`` (created 0600 if missing) and
    fsync it before returning.

    ``os.write`` may take only part of the line (a disk filling up): the rest is written in a
    loop, and if any write or the fsync fails the file is cut back to its size before the append,
    so the next append is never glued to a torn fragment.

    Raises:
        OSError: the line could not be written or made durable (the file is as it was, unless
            even cutting it back failed, which is logged).
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, size)
            except OSError:
                log.warning("%s: a partial line could not be cut off", path)
            raise
    finally:
        os.close(fd)

"""Incremental Server-Sent Events decoding over raw bytes, for the LLM client's streams.

Owns only the framing: bytes in (split anywhere, by the network), the ``data`` payload of
each complete event out. Lines may end in LF, CRLF or CR; ``event:``, ``id:``, ``retry:``
and comment lines carry nothing the client uses and are dropped. Payloads stay bytes:
``json.loads`` takes them as they are, which saves a decode per chunk on the hot path.
"""

from __future__ import annotations


class SSEDecoder:
    """Feed network chunks with :meth:`feed`; call :meth:`flush` once the body has ended."""

    __slots__ = ("_buffer", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        # A CR at the end of a chunk may be the first half of a CRLF split by the network.
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data payloads of the events this chunk completes, in order."""
        if self._pending_cr or b"\r" in chunk:
            chunk = self._normalise(chunk)
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\n\n" not in buffer:
            self._buffer = buffer
            return []
        blocks = buffer.split(b"\n\n")
        self._buffer = blocks.pop()
        out: list[bytes] = []
        for block in blocks:
            # The one-line ``data: {...}`` event is nearly every event an LLM sends.
            if block.startswith(b"data: ") and b"\n" not in block:
                out.append(block[6:])
                continue
            data = _data_of(block)
            if data is not None:
                out.append(data)
        return out

    def flush(self) -> list[bytes]:
        """The payload of a last event the server ended without its blank line, if any."""
        block = self._buffer
        self._buffer = b""
        self._pending_cr = False
        data = _data_of(block) if block else None
        return [data] if data is not None else []

    def _normalise(self, chunk: bytes) -> bytes:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._pending_cr = True
            if not chunk:
                return chunk
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _data_of(block: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event block; None when it has none (a comment, a ping)."""
    lines = [line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(lines)

"""uvicorn's HTTP/1.1 protocol with ``TCP_NODELAY`` on every accepted connection.

Neither asyncio nor uvicorn sets it, and uvicorn's h11 protocol writes a response's head and
body in separate sends: with Nagle's algorithm on, the body waits for the client's delayed ACK,
about 40 ms per response on Linux (measured here: ``/livez`` took 44 ms on a kept-alive
connection, 0.4 ms with this protocol). Use as ``uvicorn.Config(http=NoDelayH11Protocol)``.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    """:class:`H11Protocol` that switches Nagle's algorithm off on its TCP connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Set ``TCP_NODELAY`` (TCP sockets only), then let uvicorn set the connection up."""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)  # type: ignore[arg-type]

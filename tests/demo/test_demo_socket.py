"""The demo server's listening socket: accepted connections must have Nagle off.

With Nagle on, each small SSE chunk after the response headers waited for the client's
delayed ACK (40 ms on Linux), a fixed stall in every time-to-first-token.
"""

from __future__ import annotations

import socket

from runtime.demo.server import bind_socket


def test_accepted_connections_send_small_chunks_without_nagle() -> None:
    listener = bind_socket("127.0.0.1", 0)
    try:
        listener.listen(1)
        # asyncio only disables Nagle itself on sockets whose proto is TCP; accepted ones inherit it.
        assert listener.proto == socket.IPPROTO_TCP
        with socket.create_connection(listener.getsockname(), timeout=5):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()

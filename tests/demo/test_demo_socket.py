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


def test_the_socket_queues_connections_before_the_server_runs() -> None:
    # ``holdfast demo-llm`` prints its URL right after binding, before the event loop serves:
    # a client that connects on reading that line must wait in the backlog, not be refused.
    listener = bind_socket("127.0.0.1", 0)
    try:
        with socket.create_connection(listener.getsockname(), timeout=5) as client:
            accepted, _ = listener.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
    finally:
        listener.close()


def test_an_address_in_use_is_an_oserror_and_leaves_no_socket_open() -> None:
    taken = bind_socket("127.0.0.1", 0)
    try:
        try:
            bind_socket("127.0.0.1", taken.getsockname()[1])
        except OSError as exc:
            assert exc.errno is not None
        else:
            raise AssertionError("a second bind of a listening port succeeded")
    finally:
        taken.close()

"""``holdfast serve [--host 127.0.0.1] [--port 8080] [--workers N]``: the agent as an HTTP service.

FastAPI on uvicorn (:mod:`runtime.serve`), over the same Runtime as the TUI, with embedded
defaults when nothing is configured. Defaults of the flags come from ``[server]``. SIGTERM or
Ctrl-C stops accepting, lets running turns finish up to ``[server].grace_period`` seconds, then
cancels them with their partial answers kept. Exit 0 after a clean stop, 2 for bad usage
(a port out of range, the address in use).
"""

from __future__ import annotations

import errno
import signal
import socket
from typing import Annotated

import typer

from runtime.cli.base import EXIT_OK, load, usage_error

Host = Annotated[str | None, typer.Option("--host", help="Address to bind (default: [server].host, 127.0.0.1).")]
Port = Annotated[
    int | None, typer.Option("--port", min=0, max=65535, help="Port to bind; 0 picks a free one (default 8080).")
]
Workers = Annotated[
    int | None, typer.Option("--workers", min=1, max=64, help="Worker processes (default: [server].workers, 1).")
]


def serve(ctx: typer.Context, host: Host = None, port: Port = None, workers: Workers = None) -> int:
    """Serve the agent over HTTP: conversations, turns (SSE), sessions, an OpenAI-compatible API."""
    config = load(ctx).config
    bind = host or config.server.host
    chosen_port = config.server.port if port is None else port
    count = workers or config.server.workers
    import uvicorn

    from runtime.serve.app import create_app

    sock = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, chosen_port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            hint = "choose another --port (0: any free port) or stop what listens there"
        elif exc.errno == errno.EACCES:
            hint = "choose a --port above 1023 or run with the right to bind it"
        else:
            hint = "give --host an address of this machine (127.0.0.1, 0.0.0.0, ::1)"
        usage_error(ctx, f"cannot bind {bind}:{chosen_port}: {exc.strerror or exc}; {hint}")
    sock.listen(2048)
    sock.set_inheritable(True)
    print(f"holdfast serve: listening on http://{bind}:{sock.getsockname()[1]} ({count} worker(s))", flush=True)
    from runtime.serve.transport import NoDelayH11Protocol

    common = {
        "http": NoDelayH11Protocol,
        "log_level": "warning",
        "timeout_graceful_shutdown": config.server.grace_period,
        "proxy_headers": False,
        "server_header": False,
    }
    # uvicorn handles SIGTERM (graceful stop), restores this handler, then re-raises the signal:
    # a no-op here makes a clean stop exit 0 instead of dying by the re-raised SIGTERM.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        # The bound socket object itself goes to uvicorn (not its fd: uvicorn would rebuild it as
        # AF_UNIX, and asyncio sets TCP_NODELAY only on TCP sockets: a 40 ms Nagle stall per answer).
        if count == 1:
            app = create_app(config, host=bind)
            uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock])  # type: ignore[arg-type]
        else:
            from runtime.serve.workers import run_workers

            run_workers(config, bind, sock, count, **common)
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    return EXIT_OK


def register(root: typer.Typer) -> None:
    """Add ``serve`` to the root command."""
    root.command("serve")(serve)

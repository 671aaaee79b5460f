"""``holdfast serve`` for tests: the real app on real uvicorn on a loopback port, in a thread
(:class:`ServerThread`), or the real console script as a child process (:class:`ServeProcess`).

Both bind the port before uvicorn starts (port 0: the kernel picks a free one), so there is no
race for the port, and both wait for ``/livez`` with a deadline instead of sleeping.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from runtime.config import Config
from runtime.serve.transport import NoDelayH11Protocol
from tests.support.polling import wait_until


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/livez", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


class ServerThread:
    """``create_app(config)`` served by ``uvicorn.Server`` in a thread with its own event loop.

    ``start()`` returns once ``/livez`` answers (the lifespan started the Runtime); ``stop()``
    asks uvicorn to exit (its graceful shutdown, then the app's lifespan shutdown) and joins.
    ``grace`` is uvicorn's ``timeout_graceful_shutdown`` in seconds.
    """

    def __init__(
        self, config: Config, *, host: str = "127.0.0.1", grace: float | None = None, bound_as: str | None = None
    ) -> None:
        from runtime.serve.app import create_app

        # ``bound_as``: the address the app believes it serves (e.g. 0.0.0.0: keys required),
        # while the socket stays on loopback (tests reach only loopback).
        self.app = create_app(config, host=bound_as or host)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                http=NoDelayH11Protocol,
                log_level="warning",
                timeout_graceful_shutdown=config.server.grace_period if grace is None else grace,
                lifespan="on",
            )
        )
        self.thread = threading.Thread(target=self._run, name=f"serve-{self.port}", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # reported by start()/stop()
            self.error = exc

    def start(self, timeout: float = 60.0) -> ServerThread:
        self.thread.start()
        wait_until(lambda: _ready(self.base_url) or not self.thread.is_alive(), timeout, "the server to answer /livez")
        if not self.thread.is_alive():
            raise RuntimeError(f"the server thread died: {self.error!r}")
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
        assert not self.thread.is_alive(), "the server thread did not stop"

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServeProcess:
    """The real ``holdfast serve`` console script as a child process on a free loopback port."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], *, log: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        script = Path(sys.executable).with_name("holdfast")
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [str(script), "serve", "--port", str(self.port), *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self, timeout: float = 90.0) -> ServeProcess:
        wait_until(lambda: _ready(self.base_url) or self.proc.poll() is not None, timeout, "holdfast serve to answer")
        if self.proc.poll() is not None:
            raise RuntimeError(f"holdfast serve exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
        return self

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops a replica."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL the whole process group if it does not exit in time."""
        self.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


def serve_config(data_dir: Path, redis_url: str, llm_url: str, **sections: dict[str, Any]) -> Config:
    """A configuration for a test server: the given Redis and LLM, fast failure settings."""
    fast = {"max_attempts": 1, "initial_delay": 0.0, "recovery_timeout": 60.0}
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "llm": {"preset": "openai", "base_url": llm_url, "model": "holdfast-demo"},
        "redis": {"url": redis_url},
        "memory": {"embedding_provider": "lexical", "min_similarity": 0.05},
        "resilience": {
            "llm": dict(fast),
            "redis": {**fast, "timeout": 1.0},
            "tools": dict(fast),
            "memory": dict(fast),
            "embeddings": dict(fast),
        },
        "agent": {"turn_lock_timeout": 5.0, "user": "local"},
        "server": {"grace_period": 5.0},
        "alerts": {"check_interval": 0.1},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return Config(**raw)


def serve_env(data_dir: Path, redis_url: str, llm_url: str, user: str, **settings: str) -> dict[str, str]:
    """Environment for a ``holdfast serve`` child process: its data dir, the given Redis and demo
    LLM, long-term memory off (these runs are about conversation state), no rate limit, WARNING
    logs, and ``user`` as the local user. ``settings`` add ``HOLDFAST_<SECTION>__<KEY>=value``
    overrides, named as the variables are (e.g. ``HOLDFAST_SERVER__GRACE_PERIOD="5"``)."""
    return {
        "HOLDFAST_DATA_DIR": str(data_dir),
        "HOLDFAST_REDIS__URL": redis_url,
        "HOLDFAST_LLM__PRESET": "openai",
        "HOLDFAST_LLM__BASE_URL": llm_url,
        "HOLDFAST_LLM__MODEL": "holdfast-demo",
        "HOLDFAST_MEMORY__ENABLED": "false",
        "HOLDFAST_SERVER__REQUESTS_PER_MINUTE": "0",
        "HOLDFAST_AGENT__USER": user,
        "HOLDFAST_LOGGING__LEVEL": "WARNING",
        **settings,
    }


def long_message(words: int = 120) -> str:
    """A message whose demo answer (it quotes the message) streams for ``words`` / 40 seconds or more."""
    return " ".join(f"word{i}" for i in range(words))


async def make_key(redis_url: str, user: str) -> str:
    """A new API key of ``user`` in the Redis at ``redis_url`` (what ``holdfast keys create`` stores)."""
    from runtime.resilience import Resilience
    from runtime.serve.auth import ApiKeys
    from runtime.state.client import RedisRunner, make_redis_client

    client = make_redis_client(redis_url)
    try:
        keys = ApiKeys(RedisRunner(client, Resilience().guard("redis")))
        return (await keys.create(user))[1]
    finally:
        await client.aclose()

"""Fixtures for the MCP tests: Runtimes on the real redis-server and demo LLM server with MCP
servers configured (each stopped after its test), and the notes server over streamable HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.host.runtime import Runtime
from tests.support.mcp import MakeRuntime, mcp_config, start_http_notes, stop


@pytest.fixture
async def mcp_runtime(data_dir: Path, redis_url: str, demo_url: str) -> AsyncIterator[MakeRuntime]:
    """``mcp_runtime(servers, user=..., **sections)``: an unstarted Runtime with those MCP servers;
    every one made is stopped after the test."""
    made: list[Runtime] = []

    def make(servers: dict[str, Any], user: str = "alice", **sections: Any) -> Runtime:
        rt = Runtime.from_config(
            mcp_config(data_dir, redis_url, demo_url, servers, **sections), user=user, start_monitor=False
        )
        made.append(rt)
        return rt

    yield make
    for rt in made:
        await rt.stop()


@pytest.fixture
def http_notes() -> Iterator[str]:
    """The notes server's streamable HTTP URL (a child process, stopped after the test)."""
    proc, url = start_http_notes()
    yield url
    stop(proc)

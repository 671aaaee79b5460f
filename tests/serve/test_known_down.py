"""Issue 16's rule over HTTP: once the health monitor has found the LLM down, a request refused by
it fails to the degraded answer at once, without spending its retries (the shipped five attempts
from 2 s, 12-24 s of waiting, were what the first request after a crash cost before ``serve``'s
monitor probed every ``[server].health_interval`` seconds instead of every 15).

The demo LLM server is killed by pid (SIGKILL, a crash); the test waits on ``/metrics`` (which
runs no check, unlike ``/health``) until the server's own monitor has seen it, and counts the
attempts in ``holdfast_retries_total``, not in seconds."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from runtime.config.settings import ServerConfig
from runtime.core.procs import pid_alive
from runtime.demo.launcher import DemoLLMServer
from tests.support.polling import wait_for, wait_until
from tests.support.serve import ServerThread

pytestmark = [pytest.mark.redis, pytest.mark.e2e, pytest.mark.slow]

#: The shipped retry settings of the LLM (``[resilience.llm]``), which the test server's fast
#: defaults replace: five attempts from 2 s, and a breaker that needs five failures to open.
SHIPPED_LLM = {"max_attempts": 5, "initial_delay": 2.0, "failure_threshold": 5}


def metric(page: str, name: str, **labels: str) -> float | None:
    """The value of ``name{labels}`` in a Prometheus text page, None if it is not there."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$", page, re.MULTILINE)
    return float(found.group(1)) if found else None


def sse_events(raw: str) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in raw.splitlines() if line.startswith("data: ")]


def kill_by_pid(llm: DemoLLMServer) -> None:
    pid = llm.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10, "the demo LLM server to die")


async def test_a_request_to_an_llm_the_monitor_knows_is_down_does_not_retry(
    serve: Callable[..., ServerThread], killable_llm: DemoLLMServer
) -> None:
    server = serve(llm_url=killable_llm.url, resilience={"llm": SHIPPED_LLM})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        conv = (await client.post("/v1/conversations", json={})).json()["id"]
        fine = await client.post(f"/v1/conversations/{conv}/messages", json={"content": "hello", "stream": False})
        assert fine.json()["failed"] is False

        kill_by_pid(killable_llm)

        async def monitor_saw_it() -> bool:
            page = (await client.get("/metrics")).text
            return (metric(page, "holdfast_health_status", check="llm") or 0.0) >= 1.0

        # The server's monitor finds out by itself within a few of its probes (it probed every
        # 15 s before, so this wait ran out and the request below spent its retries).
        interval = ServerConfig().health_interval
        await wait_for(monitor_saw_it, 5 * interval, "the server's health monitor to see the LLM down")

        streamed = await client.post(f"/v1/conversations/{conv}/messages", json={"content": "still there?"})
        finished = sse_events(streamed.text)[-1]
        assert finished["type"] == "TurnFinished"
        assert (finished["degraded"], finished["stop_reason"]) == (True, "llm_unavailable")

        # The OpenAI-compatible face runs the same turn: an immediate 503, no retries either.
        body = {"model": "holdfast", "messages": [{"role": "user", "content": "hi"}]}
        refused = await client.post("/v1/chat/completions", json=body)
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "external_service_error"

        page = (await client.get("/metrics")).text
        assert metric(page, "holdfast_retries_total", service="llm") in (None, 0.0)
        assert metric(page, "holdfast_turns_total", outcome="failed") == 2.0
        # The answer is the degraded notice, stored after the user's message (kept for a retry).
        stored = (await client.get(f"/v1/conversations/{conv}/messages")).json()["messages"]
        user, answer = stored[-2:]
        assert (user["role"], user["content"]) == ("user", "still there?")
        assert answer["role"] == "assistant"
        assert "unavailable" in answer["content"] and "saved" in answer["content"]

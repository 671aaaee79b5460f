"""Alerts: a webhook receiver started by the test counts what arrives while the LLM backend is
killed (deduplicated per key), and the recovery when it comes back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from runtime.demo.admin import DemoAdmin
from runtime.demo.launcher import DemoLLMServer
from tests.support.polling import wait_for
from tests.support.serve import ServerThread
from tests.support.webhooks import Receiver

pytestmark = [pytest.mark.redis, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def test_a_killed_backend_alerts_once_per_key_and_recovery_is_announced(
    serve: Callable[..., ServerThread], receiver: Receiver, killable_llm: DemoLLMServer
) -> None:
    server = serve(
        llm_url=killable_llm.url,
        alerts={"webhooks": [receiver.url], "slack_webhooks": [receiver.url], "dedup_window": 300.0},
        resilience={
            "llm": {
                "max_attempts": 1,
                "failure_threshold": 1,
                "minimum_calls": 1,
                "recovery_timeout": 0.2,
                "success_threshold": 1,
            }
        },
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        killable_llm.stop()
        for _ in range(3):
            answer = await client.post(
                "/v1/chat/completions", json={"model": "holdfast", "messages": [{"role": "user", "content": "hi"}]}
            )
            assert answer.status_code == 503
            assert answer.json()["error"]["type"] == "external_service_error"

        await wait_for(lambda: {"breaker_open", "server_error"} <= {b["kind"] for b in receiver.plain()}, 30, "alerts")
        # Three failing requests, one alert per key (and the same one in Slack's format).
        assert sorted(str(b["key"]) for b in receiver.plain()) == [
            "breaker_open:llm",
            "server_error:external_service_error:llm",
        ]
        assert sum("text" in b for b in receiver.bodies) == 2
        killable_llm.start()

        async def recovered() -> bool:
            await client.post(
                "/v1/chat/completions", json={"model": "holdfast", "messages": [{"role": "user", "content": "hi"}]}
            )
            return any(b.get("kind") == "recovered" for b in receiver.plain())

        await wait_for(recovered, 30, "the recovery alert")
        assert [b["key"] for b in receiver.plain() if b["kind"] == "recovered"] == ["recovered:breaker_open:llm"]


async def test_a_dead_webhook_never_slows_or_fails_a_request(
    serve: Callable[..., ServerThread], demo_admin: DemoAdmin
) -> None:
    # Nothing listens on the discard port: every delivery fails (and is retried by its guard).
    server = serve(alerts={"webhooks": ["http://127.0.0.1:9/nothing-listens"], "dedup_window": 0.0, "timeout": 30.0})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        await demo_admin.set_faults(down=True)
        body = {"model": "holdfast", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(3):
            started = time.monotonic()
            failed = await client.post("/v1/chat/completions", json=body)
            assert failed.status_code == 503
            assert time.monotonic() - started < 5.0
        await demo_admin.reset()
        conv = (await client.post("/v1/conversations", json={})).json()["id"]
        result = await client.post(
            f"/v1/conversations/{conv}/messages", json={"content": "still fine", "stream": False}
        )
        assert result.status_code == 200 and result.json()["failed"] is False


async def test_two_servers_on_one_redis_send_each_alert_once_and_both_show_it(
    serve: Callable[..., ServerThread], receiver: Receiver, killable_llm: DemoLLMServer
) -> None:
    sections = {
        "llm_url": killable_llm.url,
        "alerts": {"webhooks": [receiver.url], "dedup_window": 300.0},
        "resilience": {"llm": {"max_attempts": 1, "failure_threshold": 1, "minimum_calls": 1}},
    }
    one, two = serve(**sections), serve(**sections)
    body = {"model": "holdfast", "messages": [{"role": "user", "content": "hi"}]}
    killable_llm.stop()
    async with httpx.AsyncClient(timeout=30) as client:
        for server in (one, two):
            assert (await client.post(f"{server.base_url}/v1/chat/completions", json=body)).status_code == 503

        async def raised_on_both() -> bool:
            pages = [(await client.get(f"{s.base_url}/metrics")).text for s in (one, two)]
            return all('holdfast_alerts_total{kind="breaker_open"} 1.0' in page for page in pages) and all(
                'holdfast_alerts_total{kind="server_error"} 1.0' in page for page in pages
            )

        # Each process raised both alerts (each shows them to its own users and metrics)...
        await wait_for(raised_on_both, 30, "both servers to raise both alerts")
        alerts = [s.app.state.serve.runtime.alerts for s in (one, two)]
        await wait_for(
            lambda: len(receiver.plain()) >= 2 and not any(a.delivering for a in alerts), 30, "the deliveries to end"
        )
    # ... and the webhook heard each once, from whichever process claimed it first.
    assert sorted(receiver.keys()) == ["breaker_open:llm", "server_error:external_service_error:llm"]

"""Sessions routes, health probes and Prometheus metrics over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from runtime.demo.admin import DemoAdmin
from tests.support.serve import ServerThread, make_key

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


async def test_sessions_create_get_update_extend_list_delete(
    serve: Callable[..., ServerThread], redis_url: str
) -> None:
    server = serve(redis={"session_ttl": 60, "session_max_ttl": 120})
    alice, bob = await make_key(redis_url, "alice"), await make_key(redis_url, "bob")
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {alice}"}) as a,
        httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {bob}"}) as b,
    ):
        conv = (await a.post("/v1/conversations", json={})).json()["id"]
        created = await a.post("/v1/sessions", json={"data": {"tab": 1}, "active_conversation_id": conv})
        assert created.status_code == 201
        session = created.json()
        assert session["active_conversation_id"] == conv and session["data"] == {"tab": 1}
        sid = session["id"]
        updated = (await a.patch(f"/v1/sessions/{sid}", json={"data": {"theme": "dark"}})).json()
        assert updated["data"] == {"tab": 1, "theme": "dark"}
        extended = (await a.post(f"/v1/sessions/{sid}/extend", json={"seconds": 10_000})).json()
        # Capped at created_at + session_max_ttl, never beyond.
        assert extended["expires_at"] == pytest.approx(session["created_at"] + 120, abs=0.01)
        assert [s["id"] for s in (await a.get("/v1/sessions")).json()["sessions"]] == [sid]
        # Bob can neither see nor touch it; nor can he point a session at Alice's conversation.
        assert (await b.get("/v1/sessions")).json()["sessions"] == []
        assert (await b.get(f"/v1/sessions/{sid}")).status_code == 404
        assert (await b.delete(f"/v1/sessions/{sid}")).status_code == 404
        assert (await b.post("/v1/sessions", json={"active_conversation_id": conv})).status_code == 404
        assert (await a.delete(f"/v1/sessions/{sid}")).status_code == 204
        assert (await a.get(f"/v1/sessions/{sid}")).status_code == 404


async def test_health_livez_readyz(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    body = health.json()
    assert body["status"] in ("healthy", "degraded")
    assert body["checks"]["redis"]["status"] == "healthy"
    assert body["checks"]["redis"]["latency_ms"] is not None
    assert (await client.get("/livez")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True


async def test_metrics_count_routes_turns_tokens_and_breakers(client: httpx.AsyncClient, demo_admin: DemoAdmin) -> None:
    conv = (await client.post("/v1/conversations", json={})).json()["id"]
    await client.post(f"/v1/conversations/{conv}/messages", json={"content": "count me", "stream": False})
    await client.get("/v1/conversations/conv_nope")
    text = (await client.get("/metrics")).text
    route = "/v1/conversations/{conversation_id}/messages"
    assert f'holdfast_http_requests_total{{method="POST",route="{route}",status="200"}} 1.0' in text
    assert 'route="/v1/conversations/{conversation_id}",status="404"' in text
    assert 'holdfast_turns_total{outcome="ok"} 1.0' in text
    assert 'holdfast_tokens_total{kind="completion"}' in text
    assert 'holdfast_turn_phase_seconds_count{phase="total"} 1.0' in text
    assert 'holdfast_breaker_state{service="llm"} 0.0' in text
    assert "holdfast_journal_pending_writes 0.0" in text

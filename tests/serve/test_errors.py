"""The global error handler and request ids over real HTTP: every error is the spec's typed JSON
body with the taxonomy's status and the request id; bad input is never a 5xx."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support.serve import ServerThread

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


def assert_error(response: httpx.Response, status: int, error_type: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert set(body) >= {"type", "message", "request_id", "path", "timestamp", "details"}
    assert body["type"] == error_type
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["path"] == response.request.url.path
    assert "debug" not in body
    return body


async def test_every_response_carries_a_request_id_the_client_may_choose(client: httpx.AsyncClient) -> None:
    given = await client.get("/livez", headers={"X-Request-ID": "trace-123.abc"})
    assert given.headers["x-request-id"] == "trace-123.abc"
    generated = await client.get("/livez")
    assert len(generated.headers["x-request-id"]) == 32
    # A hostile id (spaces, a CRLF attempt, 300 characters) is replaced, never echoed.
    for hostile in ("a b", "x" * 300, "évil".encode()):
        response = await client.get("/livez", headers={"X-Request-ID": hostile})
        assert response.headers["x-request-id"] not in ("a b", "x" * 300)
        assert len(response.headers["x-request-id"]) == 32


async def test_unknown_routes_methods_and_ids_are_typed_404s_and_405s(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(await client.get("/v1/conversations/conv_doesnotexist"), 404, "not_found")
    for hostile in ("..%2F..%2Fetc", "{conv:x}", "a" * 500, "%00", "conv_%F0%9F%92%A5"):
        assert_error(await client.get(f"/v1/conversations/{hostile}"), 404, "not_found")
    response = await client.put("/v1/conversations")
    assert_error(response, 405, "validation_error")
    assert "allow" in response.headers


async def test_bad_bodies_are_4xx_with_the_field_named(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.post("/v1/conversations", content=b"{not json"), 422, "validation_error")
    assert body["details"]["errors"]  # type: ignore[index]
    wrong = assert_error(await client.post("/v1/conversations", json={"title": 42}), 422, "validation_error")
    assert "title" in str(wrong["message"])
    conv = (await client.post("/v1/conversations", json={})).json()["id"]
    blank = await client.post(f"/v1/conversations/{conv}/messages", json={"content": "   ", "stream": False})
    assert_error(blank, 400, "validation_error")
    paged = await client.get(f"/v1/conversations/{conv}/messages", params={"limit": "-3"})
    assert_error(paged, 422, "validation_error")


async def test_debug_details_only_in_development(serve: Callable[..., ServerThread]) -> None:
    server = serve(server={"environment": "development"})
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.get("/v1/conversations/conv_missing")
    body = response.json()["error"]
    assert response.status_code == 404
    assert body["debug"]["exception"] == "runtime.core.errors.NotFoundError"
    assert "Traceback" in body["debug"]["traceback"]

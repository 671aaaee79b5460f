"""``GET /v1/conversations`` pages with ``limit`` and ``offset`` over real HTTP: each page holds
the right conversations, newest first, with ``total`` and ``next_offset``; a bad value is a 422
naming the parameter (OpenAI's ``param``), never a 5xx or a silently ignored parameter."""

from __future__ import annotations

import httpx
import pytest

from runtime.serve.conversations import MAX_LIST
from tests.serve.test_errors import assert_error
from tests.support.serve import make_key

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


async def _create(client: httpx.AsyncClient, count: int) -> list[str]:
    """``count`` new conversations, in creation order (so newest last)."""
    ids = []
    for i in range(count):
        response = await client.post("/v1/conversations", json={"title": f"c{i}"})
        assert response.status_code == 201
        ids.append(str(response.json()["id"]))
    return ids


async def _page(client: httpx.AsyncClient, **params: object) -> dict[str, object]:
    response = await client.get("/v1/conversations", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _ids(page: dict[str, object]) -> list[str]:
    return [str(c["id"]) for c in page["conversations"]]  # type: ignore[attr-defined]


async def test_pages_hold_the_right_conversations_newest_first(client: httpx.AsyncClient) -> None:
    created = await _create(client, 5)
    newest_first = created[::-1]

    first = await _page(client, limit=2)
    assert (_ids(first), first["total"], first["next_offset"]) == (newest_first[:2], 5, 2)
    second = await _page(client, limit=2, offset=first["next_offset"])
    assert (_ids(second), second["total"], second["next_offset"]) == (newest_first[2:4], 5, 4)
    last = await _page(client, limit=2, offset=second["next_offset"])
    assert (_ids(last), last["total"], last["next_offset"]) == (newest_first[4:], 5, None)

    # No parameters: the first page of 50, here all of them; the limit exactly filling the list
    # is the last page too.
    everything = await _page(client)
    assert (_ids(everything), everything["next_offset"]) == (newest_first, None)
    exact = await _page(client, limit=5)
    assert (_ids(exact), exact["next_offset"]) == (newest_first, None)

    # A conversation written to moves to the front of the first page.
    await client.patch(f"/v1/conversations/{created[0]}", json={"title": "renamed"})
    assert _ids(await _page(client, limit=1)) == [created[0]]


async def test_an_offset_past_the_end_is_an_empty_last_page(client: httpx.AsyncClient) -> None:
    await _create(client, 3)
    for offset in (3, 4, 10_000):
        page = await _page(client, offset=offset)
        assert (_ids(page), page["total"], page["next_offset"]) == ([], 3, None)


async def test_the_largest_page_is_accepted(client: httpx.AsyncClient) -> None:
    created = await _create(client, 2)
    page = await _page(client, limit=MAX_LIST)
    assert (_ids(page), page["next_offset"]) == (created[::-1], None)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": MAX_LIST + 1}, "limit"),
        ({"limit": 10**30}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"offset": 2**60}, "offset"),
    ],
)
async def test_a_bad_limit_or_offset_is_a_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, object], param: str
) -> None:
    body = assert_error(await client.get("/v1/conversations", params=params), 422, "validation_error")
    assert body["param"] == param
    assert str(body["message"]).startswith(f"query.{param}: ")


async def test_pages_count_only_the_callers_conversations(client: httpx.AsyncClient, redis_url: str) -> None:
    alice, bob = await make_key(redis_url, "alice"), await make_key(redis_url, "bob")
    as_alice = {"Authorization": f"Bearer {alice}"}
    as_bob = {"Authorization": f"Bearer {bob}"}
    mine = [
        (await client.post("/v1/conversations", json={"title": f"a{i}"}, headers=as_alice)).json()["id"]
        for i in range(3)
    ]
    await client.post("/v1/conversations", json={"title": "b"}, headers=as_bob)
    page = (await client.get("/v1/conversations", params={"limit": 2, "offset": 1}, headers=as_alice)).json()
    assert (_ids(page), page["total"], page["next_offset"]) == (mine[::-1][1:3], 3, None)

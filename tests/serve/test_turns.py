"""Conversations and turns over real HTTP: SSE with the same events as ``holdfast chat --json``,
Idempotency-Key under concurrent retries, a disconnect that cancels the turn, CRUD, export,
branch, paging."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from runtime.demo.launcher import DemoLLMServer
from tests.support.polling import wait_for
from tests.support.serve import ServerThread, long_message

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


def parse_sse(raw: str) -> list[dict[str, Any]]:
    events = []
    for block in raw.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        data = json.loads(fields["data"])
        assert fields["event"] == data["type"]
        events.append(data)
    return events


async def new_conversation(client: httpx.AsyncClient, title: str = "t") -> str:
    response = await client.post("/v1/conversations", json={"title": title})
    assert response.status_code == 201
    return str(response.json()["id"])


async def test_a_turn_streams_the_chat_json_events_as_sse(client: httpx.AsyncClient) -> None:
    conv = await new_conversation(client)
    response = await client.post(
        f"/v1/conversations/{conv}/messages", json={"content": "hello over http"}, headers={"X-Request-ID": "req-1"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "UserSaved" and kinds[-1] == "TurnFinished"
    assert "TextDelta" in kinds and "AssistantSaved" in kinds
    assert {e["request_id"] for e in events} == {"req-1"}
    assert {e["conversation_id"] for e in events} == {conv}
    answer = next(e for e in events if e["type"] == "AssistantSaved")["content"]
    assert "hello over http" in answer
    assert "".join(e["text"] for e in events if e["type"] == "TextDelta") == answer


async def test_stream_false_answers_one_json_result_and_history_pages(client: httpx.AsyncClient) -> None:
    conv = await new_conversation(client)
    for i in range(3):
        result = (
            await client.post(f"/v1/conversations/{conv}/messages", json={"content": f"number {i}", "stream": False})
        ).json()
        assert result["failed"] is False and f"number {i}" in result["content"]
        assert result["usage"]["total_tokens"] > 0
        # The reply's figures (issue 17) are the usage the demo server reported.
        figures = result["figures"]
        assert (figures["prompt_tokens"], figures["completion_tokens"], figures["estimated"]) == (
            result["usage"]["prompt_tokens"],
            result["usage"]["completion_tokens"],
            False,
        )
    newest = (await client.get(f"/v1/conversations/{conv}/messages", params={"limit": 4})).json()
    assert [m["role"] for m in newest["messages"]] == ["user", "assistant", "user", "assistant"]
    assert newest["messages"][-1]["metadata"]["figures"] == figures  # stored with the reply
    assert newest["messages"][0]["content"] == "number 1"
    older = (
        await client.get(f"/v1/conversations/{conv}/messages", params={"limit": 4, "before": newest["next_before"]})
    ).json()
    assert older["messages"][0]["content"] == "number 0"
    assert older["next_before"] is None


async def test_rename_export_branch_delete(client: httpx.AsyncClient) -> None:
    conv = await new_conversation(client, "first")
    first = (await client.post(f"/v1/conversations/{conv}/messages", json={"content": "one", "stream": False})).json()
    await client.post(f"/v1/conversations/{conv}/messages", json={"content": "two", "stream": False})
    assert (await client.patch(f"/v1/conversations/{conv}", json={"title": "renamed"})).json()["title"] == "renamed"
    markdown = await client.get(f"/v1/conversations/{conv}/export")
    assert markdown.headers["content-type"].startswith("text/markdown") and "two" in markdown.text
    exported = json.loads((await client.get(f"/v1/conversations/{conv}/export", params={"format": "json"})).text)
    assert exported
    branch = await client.post(f"/v1/conversations/{conv}/branch", json={"from_message_id": first["message_id"]})
    assert branch.status_code == 201
    # The store's branch (issue 17): a parent pointer and fork seq, the shared messages not
    # copied (the same ids), the branch id with its "~" usable in every route.
    made = branch.json()
    assert made["id"].startswith(f"{conv}~") and (made["parent_id"], made["fork_seq"]) == (conv, 1)
    shared = (await client.get(f"/v1/conversations/{made['id']}/messages")).json()["messages"]
    assert [m["id"] for m in shared] == [first["user_message_id"], first["message_id"]]
    again = (
        await client.post(f"/v1/conversations/{made['id']}/messages", json={"content": "three", "stream": False})
    ).json()
    assert "I received 4 messages" in again["content"]  # system, one, its reply, three
    nested = (await client.post(f"/v1/conversations/{made['id']}/branch", json={})).json()
    assert (nested["parent_id"], nested["fork_seq"], nested["message_count"]) == (made["id"], 3, 4)
    missing = await client.post(f"/v1/conversations/{made['id']}/branch", json={"from_message_id": "msg_nope"})
    assert missing.status_code == 404 and "msg_nope" in missing.text
    assert (await client.delete(f"/v1/conversations/{nested['id']}")).status_code == 204
    assert (await client.delete(f"/v1/conversations/{conv}")).status_code == 204
    assert (await client.get(f"/v1/conversations/{conv}")).status_code == 404
    titles = [c["title"] for c in (await client.get("/v1/conversations")).json()["conversations"]]
    assert titles == ["renamed (branch)"]


async def test_concurrent_retries_with_one_idempotency_key_run_one_turn(client: httpx.AsyncClient) -> None:
    conv = await new_conversation(client)
    headers = {"Idempotency-Key": "retry-me-7"}

    async def post(stream: bool) -> httpx.Response:
        return await client.post(
            f"/v1/conversations/{conv}/messages", json={"content": "only once", "stream": stream}, headers=headers
        )

    responses = await asyncio.gather(*(post(stream=i % 2 == 0) for i in range(6)))
    answers = set()
    for response in responses:
        assert response.status_code == 200, response.text
        if response.headers["content-type"].startswith("text/event-stream"):
            answers.add(next(e["message_id"] for e in parse_sse(response.text) if e["type"] == "AssistantSaved"))
        else:
            answers.add(response.json()["message_id"])
    assert len(answers) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 5
    stored = (await client.get(f"/v1/conversations/{conv}/messages")).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    # The same key with another body names another request: refused, nothing stored.
    other = await client.post(
        f"/v1/conversations/{conv}/messages", json={"content": "something else", "stream": False}, headers=headers
    )
    assert other.status_code == 409
    error = other.json()["error"]
    # Retrying it can only meet the same first request: not retryable, and the fix is a new key.
    assert error["type"] == "conflict_error"
    assert error["details"]["retryable"] is False
    assert "send a new key" in error["message"]
    # The same key on another conversation is another request too.
    elsewhere = await client.post(
        f"/v1/conversations/{await new_conversation(client)}/messages",
        json={"content": "only once", "stream": False},
        headers=headers,
    )
    assert elsewhere.status_code == 409
    assert elsewhere.json()["error"]["details"]["retryable"] is False
    assert len((await client.get(f"/v1/conversations/{conv}/messages")).json()["messages"]) == 2


async def test_a_client_that_disconnects_cancels_the_turn_and_the_partial_answer_is_kept(
    serve: Callable[..., ServerThread], slow_llm: DemoLLMServer
) -> None:
    server = serve(llm_url=slow_llm.url)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        conv = await new_conversation(client)
        async with client.stream(
            "POST", f"/v1/conversations/{conv}/messages", json={"content": long_message()}
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: TextDelta"):
                    break
        # The connection is closed mid-stream: the server cancels the turn and keeps what streamed.

        async def interrupted() -> bool:
            messages = (await client.get(f"/v1/conversations/{conv}/messages")).json()["messages"]
            return any(m["role"] == "assistant" and m["metadata"].get("interrupted") for m in messages)

        await wait_for(interrupted, 30, "the partial answer saved as interrupted")
        messages = (await client.get(f"/v1/conversations/{conv}/messages")).json()["messages"]
        partial = messages[-1]["content"]
        assert 0 < len(partial) < len(long_message())
        metrics = (await client.get("/metrics")).text
        assert 'holdfast_turns_total{outcome="interrupted"} 1.0' in metrics


async def test_titles_from_the_api_carry_no_terminal_control(client: httpx.AsyncClient) -> None:
    # Issue 18 break test: PATCH {"title": "a\x1b[31mred\x07"} was stored as is, and the TUI's
    # sidebar and `holdfast conversations` show titles in a terminal. Create, rename and branch
    # all store the visible text only.
    created = await client.post("/v1/conversations", json={"title": "\x1b]0;pwned\x07plain\u202e"})
    assert created.status_code == 201
    conv = created.json()["id"]
    assert created.json()["title"] == "plain"
    renamed = await client.patch(f"/v1/conversations/{conv}", json={"title": "a\x1b[31mred\x07 \x1b[0m end"})
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "ared end"
    branch = await client.post(f"/v1/conversations/{conv}/branch", json={"title": "b\x1b[2Jranch\u200b"})
    assert branch.json()["title"] == "branch"
    titles = {c["title"] for c in (await client.get("/v1/conversations")).json()["conversations"]}
    assert titles == {"ared end", "branch"}

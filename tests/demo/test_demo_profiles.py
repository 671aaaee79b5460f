"""Quirk profiles over real HTTP: each profile's wire format, read line by line from the raw
SSE stream with httpx, as a client-compatibility test would meet it; and how a profile is
chosen (``--profile`` at start, ``POST /admin/faults`` at run time) and reported."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from runtime.core.errors import ValidationError
from runtime.demo import model as demo_model
from runtime.demo.admin import DemoAdmin
from runtime.demo.launcher import DemoLLMServer
from runtime.demo.profiles import PROFILES

pytestmark = pytest.mark.e2e

MODEL = "holdfast-demo"
CALC = {"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}}
CLOCK = {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}
TWO_TOOLS = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "what is 2+3 and what time is it?"}],
    "tools": [CALC, CLOCK],
    "stream": True,
}
HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], "stream": True}
EXPECTED_CALLS = [("calculator", {"expression": "2+3"}), ("clock", {"timezone": "UTC"})]
HELLO_TEXT = demo_model.respond(HELLO["messages"]).text


@pytest.fixture
def http(demo_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_url.removesuffix("/v1"), timeout=10) as client:
        yield client


def use(http: httpx.Client, profile: str) -> None:
    response = http.post("/admin/faults", json={"profile": profile})
    assert response.status_code == 200 and response.json()["profile"] == profile


def raw_stream(http: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """The response and every line of its body, exactly as sent (blank separators dropped)."""
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line]
    return response, lines


def data(lines: list[str]) -> list[Any]:
    """The ``data:`` payloads: parsed JSON, and the string ``[DONE]``."""
    out: list[Any] = []
    for line in lines:
        if line.startswith("data: "):
            out.append("[DONE]" if line == "data: [DONE]" else json.loads(line[6:]))
    return out


def chunks(lines: list[str]) -> list[dict[str, Any]]:
    return [d for d in data(lines) if d != "[DONE]"]


def deltas(lines: list[str]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks(lines) if c.get("choices")]


def text_of(lines: list[str]) -> str:
    """The streamed answer, whether ``content`` is a string or a list of text blocks."""
    out = []
    for delta in deltas(lines):
        content = delta.get("content")
        if isinstance(content, list):
            out.extend(block["text"] for block in content)
        elif content:
            out.append(content)
    return "".join(out)


def finish_reasons(lines: list[str]) -> list[str]:
    return [
        c["choices"][0]["finish_reason"] for c in chunks(lines) if c.get("choices") and c["choices"][0]["finish_reason"]
    ]


# ------------------------------------------------------------ one test per profile


def test_openai_streams_tool_arguments_in_fragments_under_a_stable_index(http: httpx.Client) -> None:
    response, lines = raw_stream(http, TWO_TOOLS)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert all(line.startswith("data: ") for line in lines) and data(lines)[-1] == "[DONE]"
    first, *rest = deltas(lines)
    assert first == {"role": "assistant", "content": ""}
    assert all("usage" not in c and c["system_fingerprint"] is None for c in chunks(lines))
    calls: dict[int, dict[str, str]] = {}
    for delta in rest[:-1]:
        (piece,) = delta["tool_calls"]
        if "id" in piece:  # the head: id, type and name, arguments empty
            assert piece["function"]["arguments"] == "" and piece["type"] == "function"
            calls[piece["index"]] = {"name": piece["function"]["name"], "arguments": ""}
        else:
            assert set(piece) == {"index", "function"}
            calls[piece["index"]]["arguments"] += piece["function"]["arguments"]
    assert list(calls) == [0, 1]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == EXPECTED_CALLS
    assert len(rest) > 6  # arguments really came in several fragments
    assert rest[-1] == {} and finish_reasons(lines) == ["tool_calls"]


def test_long_tool_arguments_stream_in_a_bounded_number_of_fragments(http: httpx.Client) -> None:
    # Arguments echoed from a 1 MB message went out 8 bytes at a time: 125,000 events built in
    # memory and, at the default pace, ten minutes of streaming.
    expression = "1+" * 500_000 + "1"
    ask = {
        **TWO_TOOLS,
        "messages": [{"role": "user", "content": f'call calculator with {{"expression": "{expression}"}}'}],
    }
    _, lines = raw_stream(http, ask)
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas(lines) if "tool_calls" in d]
    assert 1 + 512 >= len(pieces) > 256  # the head, then at most 512 fragments
    assert json.loads("".join(pieces)) == {"expression": expression}


def test_a_huge_stream_does_not_hold_up_other_requests(http: httpx.Client) -> None:
    # n=128 long replies are 256,000 events; built and sent on the event loop they held every
    # other request (the admin API, other chats) up for over 2 s.
    ask = {**HELLO, "messages": [{"role": "user", "content": "write a long story"}], "n": 128}
    received: list[int] = []

    def read() -> None:
        with httpx.stream("POST", str(http.base_url.join("/v1/chat/completions")), json=ask, timeout=120) as r:
            received.extend(len(part) for part in r.iter_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    waits = []
    try:
        # Probe from the moment the request is sent: while its events are built, then sent.
        while reader.is_alive() and len(waits) < 400:
            started = time.monotonic()
            assert http.get("/v1/models").status_code == 200
            waits.append(time.monotonic() - started)
    finally:
        reader.join(120)
    assert sum(received) > 50_000_000  # the whole stream arrived
    assert len(waits) > 1 and max(waits) < 0.5, sorted(waits)[-3:]


def test_ollama_sends_whole_tool_calls_in_one_chunk_without_index(http: httpx.Client) -> None:
    use(http, "ollama")
    _, lines = raw_stream(http, TWO_TOOLS)
    all_deltas = deltas(lines)
    assert all(d["role"] == "assistant" for d in all_deltas)  # role in every delta, no role-only chunk
    with_calls = [d for d in all_deltas if "tool_calls" in d]
    assert len(with_calls) == 1
    (calls,) = [d["tool_calls"] for d in with_calls]
    assert all("index" not in call for call in calls)
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == EXPECTED_CALLS
    assert {c["system_fingerprint"] for c in chunks(lines)} == {"fp_ollama"}
    assert finish_reasons(lines) == ["tool_calls"]

    _, hello = raw_stream(http, {**HELLO, "model": "holdfast-demo:latest"})  # Ollama's tagged name
    assert text_of(hello) == HELLO_TEXT and not any("usage" in c for c in chunks(hello))
    three = http.post("/v1/chat/completions", json={**HELLO, "stream": False, "n": 3}).json()
    assert len(three["choices"]) == 1  # n is ignored


def test_llamacpp_sends_object_arguments_all_at_index_zero(http: httpx.Client) -> None:
    use(http, "llamacpp")
    _, lines = raw_stream(http, TWO_TOOLS)
    calls = [d["tool_calls"] for d in deltas(lines) if "tool_calls" in d]
    assert len(calls) == 2 and all(len(c) == 1 for c in calls)
    assert [c[0]["index"] for c in calls] == [0, 0]  # duplicate indexes on parallel calls
    assert [(c[0]["function"]["name"], c[0]["function"]["arguments"]) for c in calls] == EXPECTED_CALLS
    last = chunks(lines)[-1]
    assert last["choices"][0]["finish_reason"] == "tool_calls" and last["timings"]["predicted_n"] > 0

    plain = http.post("/v1/chat/completions", json={**TWO_TOOLS, "stream": False}).json()
    assert plain["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == {"expression": "2+3"}
    refused = http.post("/v1/chat/completions", json={**HELLO, "n": 2})
    assert refused.status_code == 400 and refused.json()["error"]["message"] == "Only one completion choice is allowed"


def test_vllm_reasoning_thinks_visibly_before_answering(http: httpx.Client) -> None:
    use(http, "vllm-reasoning")
    _, lines = raw_stream(http, HELLO)
    kinds = ["reasoning" if "reasoning_content" in d else "content" for d in deltas(lines)[1:] if len(d)]
    assert kinds[0] == "reasoning" and "reasoning" not in kinds[kinds.index("content") :]
    thought = "".join(d.get("reasoning_content", "") for d in deltas(lines))
    assert thought.startswith('Okay, the user wrote: "hello there".') and "No tool is needed" in thought
    assert text_of(lines) == HELLO_TEXT

    plain = http.post("/v1/chat/completions", json={**HELLO, "stream": False}).json()
    message = plain["choices"][0]["message"]
    assert message["reasoning_content"] == thought and message["content"] == HELLO_TEXT
    spent = len(demo_model.split_words(thought)) + len(demo_model.split_words(HELLO_TEXT))
    assert plain["usage"]["completion_tokens"] == spent  # reasoning counts as completion, as on vLLM


@pytest.mark.slow
def test_vllm_reasoning_lasts_seconds_when_paced(http: httpx.Client) -> None:
    use(http, "vllm-reasoning")
    http.post("/admin/faults", json={"tokens_per_second": 1000})
    seen: dict[str, float] = {}
    with http.stream("POST", "/v1/chat/completions", json=HELLO) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                kind = "reasoning" if "reasoning_content" in delta else "content" if delta.get("content") else ""
                if kind:
                    seen.setdefault(kind, time.monotonic())
    thinking = seen["content"] - seen["reasoning"]
    assert PROFILES["vllm-reasoning"].think_seconds * 0.8 <= thinking < PROFILES["vllm-reasoning"].think_seconds + 2


def test_mistral_sends_content_as_typed_blocks(http: httpx.Client) -> None:
    use(http, "mistral")
    _, lines = raw_stream(http, HELLO)
    pieces = [d["content"] for d in deltas(lines)[1:] if d.get("content")]
    assert pieces and all(isinstance(p, list) and [b["type"] for b in p] == ["text"] for p in pieces)
    assert text_of(lines) == HELLO_TEXT
    plain = http.post("/v1/chat/completions", json={**HELLO, "stream": False}).json()
    assert plain["choices"][0]["message"]["content"] == [{"type": "text", "text": HELLO_TEXT}]


def test_openrouter_sends_keepalive_comments_and_always_a_usage_chunk(http: httpx.Client, demo_url: str) -> None:
    use(http, "openrouter")
    _, lines = raw_stream(http, HELLO)
    assert lines[0] == ": OPENROUTER PROCESSING"
    comments = [line for line in lines if line.startswith(":")]
    payloads = [line for line in lines if line.startswith("data: ")]
    assert len(comments) >= len(payloads) - 1 and ": keep-alive" in comments
    *_, usage_chunk, done = data(lines)
    assert done == "[DONE]" and usage_chunk["choices"] == []  # not asked for, sent anyway
    assert usage_chunk["usage"]["completion_tokens"] == len(demo_model.split_words(HELLO_TEXT))
    # SSE comments are legal: the official SDK reads the same answer through them.
    with openai.OpenAI(base_url=demo_url, api_key="unused", max_retries=0) as sdk:
        stream = sdk.chat.completions.create(model=MODEL, messages=HELLO["messages"], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == HELLO_TEXT


def test_no_stream_answers_a_stream_request_with_plain_json(http: httpx.Client) -> None:
    use(http, "no-stream")
    response = http.post("/v1/chat/completions", json=HELLO)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == HELLO_TEXT


def test_no_tools_refuses_any_request_with_tools(http: httpx.Client) -> None:
    use(http, "no-tools")
    refused = http.post("/v1/chat/completions", json=TWO_TOOLS)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "holdfast-demo does not support tools"
    assert refused.json()["error"]["param"] == "tools"
    _, lines = raw_stream(http, HELLO)
    assert text_of(lines) == HELLO_TEXT


def test_truncating_fills_a_small_context_and_stops_for_length(http: httpx.Client) -> None:
    use(http, "truncating")
    window = PROFILES["truncating"].context_window
    story = {"model": MODEL, "messages": [{"role": "user", "content": "tell me a long story"}]}
    long = http.post("/v1/chat/completions", json=story).json()
    assert long["choices"][0]["finish_reason"] == "length"
    assert long["usage"]["total_tokens"] == window
    assert demo_model.long_answer("tell me a long story").startswith(long["choices"][0]["message"]["content"])
    short = http.post("/v1/chat/completions", json={**HELLO, "stream": False}).json()
    assert short["choices"][0]["finish_reason"] == "stop" and short["usage"]["total_tokens"] < window
    _, lines = raw_stream(http, {**story, "stream": True})
    assert finish_reasons(lines) == ["length"]


def test_flaky_stream_puts_an_error_inside_a_200_stream(http: httpx.Client) -> None:
    use(http, "flaky-stream")
    response, lines = raw_stream(http, HELLO)
    assert response.status_code == 200
    *_body, failure, done = data(lines)
    assert done == "[DONE]"
    assert failure["error"]["message"] and failure["error"]["code"] == 502
    assert failure["choices"][0]["finish_reason"] == "error"
    after = PROFILES["flaky-stream"].error_after_tokens
    assert text_of(lines) == "".join(demo_model.split_words(HELLO_TEXT)[:after])
    assert "stop" not in finish_reasons(lines)


@pytest.mark.parametrize("profile", ["openai", "ollama", "llamacpp", "vllm-reasoning", "mistral", "openrouter"])
def test_every_streaming_profile_carries_the_same_answer(http: httpx.Client, profile: str) -> None:
    use(http, profile)
    _, lines = raw_stream(http, HELLO)
    assert text_of(lines) == HELLO_TEXT and finish_reasons(lines) == ["stop"]


# ------------------------------------------------------------ choosing a profile


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_listed_model_can_be_retrieved_and_used(http: httpx.Client, profile: str) -> None:
    use(http, profile)
    listed = [card["id"] for card in http.get("/v1/models").json()["data"]]
    assert listed[0] == demo_model.MODEL_NAME and listed[-1] == demo_model.EMBED_MODEL_NAME
    assert listed[1:-1] == list(PROFILES[profile].model_aliases)  # Ollama's tagged name
    for name in listed:
        assert http.get(f"/v1/models/{name}").json()["id"] == name
        path, body = (
            ("/v1/embeddings", {"model": name, "input": "hi"})
            if name == demo_model.EMBED_MODEL_NAME
            else ("/v1/chat/completions", {**HELLO, "model": name, "stream": False})
        )
        answer = http.post(path, json=body)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["model"] in (name, demo_model.EMBED_MODEL_NAME)


def test_admin_reports_and_switches_the_profile(http: httpx.Client) -> None:
    status = http.get("/admin/faults").json()
    assert status["profile"] == "openai" and status["profiles"] == list(PROFILES)
    assert set(PROFILES) >= {"openai", "ollama", "llamacpp", "vllm-reasoning", "mistral", "openrouter"}
    assert set(PROFILES) >= {"no-stream", "no-tools", "truncating", "flaky-stream"}
    assert all(p.imitates and p.changes for p in PROFILES.values())

    switched = http.post("/admin/faults", json={"profile": "ollama", "latency": 0.0}).json()
    assert switched["profile"] == "ollama" and "Ollama" in switched["profile_imitates"]
    bad = http.post("/admin/faults", json={"profile": "gpt-5-simulator", "down": True})
    assert bad.status_code == 400 and "known: openai, ollama" in bad.json()["error"]["message"]
    after = http.get("/admin/faults").json()
    assert after["profile"] == "ollama" and after["faults"]["down"] is False  # nothing half-applied
    assert http.post("/admin/faults", json={"reset": True}).json()["profile"] == "openai"


async def test_demo_admin_switches_profiles(demo_url: str) -> None:
    async with DemoAdmin(demo_url) as admin:
        assert await admin.set_profile("mistral") == "mistral"
        assert await admin.profile() == "mistral"
        with pytest.raises(ValidationError, match="unknown profile"):
            await admin.set_profile("nope")


def test_profile_chosen_at_start_is_served_and_kept_across_resets(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown profile"):
        DemoLLMServer(profile="nope")
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path / "demo.log", profile="ollama")
    server.start()
    try:
        with httpx.Client(base_url=server.root_url, timeout=10) as client:
            assert client.post("/admin/faults", json={"reset": True}).json()["profile"] == "ollama"
            _, lines = raw_stream(client, TWO_TOOLS)
        (calls,) = [d["tool_calls"] for d in deltas(lines) if "tool_calls" in d]
        assert len(calls) == 2 and all("index" not in c for c in calls)
    finally:
        server.stop()


def test_an_unknown_profile_flag_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runtime.demo.server", "--port", "0", "--profile", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "invalid choice: 'nope'" in done.stderr


def test_the_readme_lists_every_profile_and_only_those() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The demo LLM server", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(PROFILES)
    local = [name for name, p in PROFILES.items() if not p.paired_tool_messages]
    assert f"({', '.join(f'`{name}`' for name in local)})" in " ".join(section.split())

"""Malformed requests get what the OpenAI API answers: a 4xx JSON error object naming the
parameter, never a 500, a 200, a hang or a text/plain page. Raw httpx against the running
server child process, plus a property test posting random JSON bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.demo.launcher import DemoLLMServer
from runtime.demo.profiles import PROFILES
from runtime.demo.server import DemoServerState, bind_socket, serve

pytestmark = pytest.mark.e2e

MODEL = "holdfast-demo"
HI = [{"role": "user", "content": "hi"}]
CALC = {"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}}
#: An assistant message calling the calculator (id ``c1``): its result must follow.
ASKED = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}],
}


@pytest.fixture
def http(demo_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_url.removesuffix("/v1"), timeout=10) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The response's OpenAI error object, after checking its shape."""
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


# (request body, status, param, code) for every malformed chat request of the issue.
MALFORMED: dict[str, tuple[object, int, str | None, str | None]] = {
    "stream_options not an object": (
        {"model": MODEL, "messages": HI, "stream": True, "stream_options": "x"},
        400,
        "stream_options",
        "invalid_type",
    ),
    "tools of integers": ({"model": MODEL, "messages": HI, "tools": [1, 2]}, 400, "tools[0]", "invalid_type"),
    "tool function a string": (
        {"model": MODEL, "messages": HI, "tools": [{"type": "function", "function": "calculator"}]},
        400,
        "tools[0].function",
        "invalid_type",
    ),
    "unknown model": ({"model": "gpt-nonexistent-9", "messages": HI}, 404, None, "model_not_found"),
    "unknown model, streaming": (
        {"model": "gpt-nonexistent-9", "messages": HI, "stream": True},
        404,
        None,
        "model_not_found",
    ),
    "missing model": ({"messages": HI}, 400, "model", "missing_required_parameter"),
    "model a number": ({"model": 123, "messages": HI}, 400, "model", "invalid_type"),
    "no messages": ({"model": MODEL, "messages": []}, 400, "messages", "empty_array"),
    "message without role": (
        {"model": MODEL, "messages": [{"content": "hi"}]},
        400,
        "messages[0].role",
        "missing_required_parameter",
    ),
    "role wizard": (
        {"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]},
        400,
        "messages[0].role",
        "invalid_value",
    ),
    "role an object": (
        {"model": MODEL, "messages": [{"role": {"name": "user"}, "content": "hi"}]},
        400,
        "messages[0].role",
        "invalid_type",
    ),
    "content block type a number": (
        {"model": MODEL, "messages": [{"role": "user", "content": [{"type": 1, "text": "hi"}]}]},
        400,
        "messages[0].content[0].type",
        "invalid_type",
    ),
    "content a number": (
        {"model": MODEL, "messages": [{"role": "user", "content": 42}]},
        400,
        "messages[0].content",
        "invalid_type",
    ),
    "stream yes": ({"model": MODEL, "messages": HI, "stream": "yes"}, 400, "stream", "invalid_type"),
    "temperature hot": ({"model": MODEL, "messages": HI, "temperature": "hot"}, 400, "temperature", "invalid_type"),
    "temperature too high": (
        {"model": MODEL, "messages": HI, "temperature": 2.5},
        400,
        "temperature",
        "decimal_above_max_value",
    ),
    "max_tokens negative": (
        {"model": MODEL, "messages": HI, "max_tokens": -1},
        400,
        "max_tokens",
        "integer_below_min_value",
    ),
    "tool message without tool_call_id": (
        {"model": MODEL, "messages": [*HI, {"role": "tool", "content": "4"}]},
        400,
        "messages[1].tool_call_id",
        "missing_required_parameter",
    ),
    "bad content block": (
        {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
        400,
        "messages[0].content[0].type",
        "invalid_value",
    ),
    "tool_choice names an unoffered tool": (
        {
            "model": MODEL,
            "messages": HI,
            "tools": [CALC],
            "tool_choice": {"type": "function", "function": {"name": "x"}},
        },
        400,
        "tool_choice",
        "invalid_value",
    ),
    "n above 128": ({"model": MODEL, "messages": HI, "n": 129}, 400, "n", "integer_above_max_value"),
    "empty content array": (
        {"model": MODEL, "messages": [{"role": "user", "content": []}]},
        400,
        "messages[0].content",
        "empty_array",
    ),
    "image block without image_url": (
        {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        400,
        "messages[0].content[0].image_url",
        "missing_required_parameter",
    ),
    "image_url without url": (
        {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        400,
        "messages[0].content[0].image_url.url",
        "missing_required_parameter",
    ),
    "refusal block without refusal": (
        {"model": MODEL, "messages": [{"role": "assistant", "content": [{"type": "refusal"}]}]},
        400,
        "messages[0].content[0].refusal",
        "missing_required_parameter",
    ),
    "temperature a huge integer": (
        {"model": MODEL, "messages": HI, "temperature": 10**40},
        400,
        "temperature",
        "decimal_above_max_value",
    ),
    "top_p a huge negative integer": (
        {"model": MODEL, "messages": HI, "top_p": -(10**400)},
        400,
        "top_p",
        "decimal_below_min_value",
    ),
    "max_tokens past 64 bits": (
        {"model": MODEL, "messages": HI, "max_tokens": 2**63},
        400,
        "max_tokens",
        "integer_above_max_value",
    ),
    "seed past 64 bits": ({"model": MODEL, "messages": HI, "seed": -(2**64)}, 400, "seed", "integer_below_min_value"),
    "function message without name": (
        {"model": MODEL, "messages": [*HI, {"role": "function", "content": "4"}]},
        400,
        "messages[1].name",
        "missing_required_parameter",
    ),
    "logit_bias not an object": (
        {"model": MODEL, "messages": HI, "logit_bias": "x"},
        400,
        "logit_bias",
        "invalid_type",
    ),
    "logit_bias out of range": (
        {"model": MODEL, "messages": HI, "logit_bias": {"50256": -101}},
        400,
        "logit_bias.50256",
        "decimal_below_min_value",
    ),
    "metadata values not strings": (
        {"model": MODEL, "messages": HI, "metadata": {"run": 5}},
        400,
        "metadata.run",
        "invalid_type",
    ),
    "store not a boolean": ({"model": MODEL, "messages": HI, "store": "yes"}, 400, "store", "invalid_type"),
    "tool result answering no call": (
        {"model": MODEL, "messages": [*HI, {"role": "tool", "tool_call_id": "c1", "content": "4"}]},
        400,
        "messages[1].role",
        None,
    ),
    "tool result for another call": (
        {"model": MODEL, "messages": [*HI, ASKED, {"role": "tool", "tool_call_id": "c9", "content": "4"}]},
        400,
        "messages[2].tool_call_id",
        None,
    ),
    "tool call left unanswered": ({"model": MODEL, "messages": [*HI, ASKED, *HI]}, 400, "messages[1].role", None),
    "tool call unanswered at the end": ({"model": MODEL, "messages": [*HI, ASKED]}, 400, "messages[1].role", None),
    "not an object": ([1, 2, 3], 400, None, None),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_chat_requests_get_openai_errors(http: httpx.Client, case: str) -> None:
    body, status, param, code = MALFORMED[case]
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert (error["param"], error["code"]) == (param, code)
    assert error["type"] == "invalid_request_error"


def test_the_error_messages_read_like_openais(http: httpx.Client) -> None:
    wizard = http.post("/v1/chat/completions", json=MALFORMED["role wizard"][0])
    assert error_of(wizard)["message"].startswith("Invalid value: 'wizard'. Supported values are: 'system'")
    role = http.post("/v1/chat/completions", json=MALFORMED["role an object"][0])
    assert (
        error_of(role)["message"]
        == "Invalid type for 'messages[0].role': expected a string, but got an object instead."
    )
    missing = http.post("/v1/chat/completions", json=MALFORMED["missing model"][0])
    assert error_of(missing)["message"] == "Missing required parameter: 'model'."
    unknown = http.post("/v1/chat/completions", json=MALFORMED["unknown model"][0])
    assert (
        error_of(unknown)["message"] == "The model `gpt-nonexistent-9` does not exist or you do not have access to it."
    )


def test_unpaired_tool_messages_read_like_openais(http: httpx.Client) -> None:
    orphan = http.post("/v1/chat/completions", json=MALFORMED["tool result answering no call"][0])
    assert error_of(orphan)["message"] == (
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
    )
    two_calls = {**ASKED, "tool_calls": [*ASKED["tool_calls"], {**ASKED["tool_calls"][0], "id": "c2"}]}
    answered_one = [*HI, two_calls, {"role": "tool", "tool_call_id": "c2", "content": "4"}, *HI]
    unanswered = http.post("/v1/chat/completions", json={"model": MODEL, "messages": answered_one})
    assert error_of(unanswered)["message"] == (
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        "'tool_call_id'. The following tool_call_ids did not have response messages: c1"
    )
    # Answered in any order, both results after the call: accepted.
    both = [*HI, two_calls, *({"role": "tool", "tool_call_id": i, "content": "4"} for i in ("c2", "c1"))]
    assert http.post("/v1/chat/completions", json={"model": MODEL, "messages": both}).status_code == 200


@pytest.mark.parametrize("profile", list(PROFILES))
def test_local_server_profiles_accept_unpaired_tool_messages(http: httpx.Client, profile: str) -> None:
    http.post("/admin/faults", json={"profile": profile})
    orphan = MALFORMED["tool result answering no call"][0]
    response = http.post("/v1/chat/completions", json=orphan)
    if PROFILES[profile].paired_tool_messages:  # OpenAI and the hosted APIs refuse it
        assert response.status_code == 400 and error_of(response)["param"] == "messages[1].role"
    else:  # Ollama, llama.cpp, vLLM render it into the template and answer
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == '[holdfast-demo] The tool returned "4".'


def test_deeply_nested_json_is_a_400_not_a_crash(http: httpx.Client) -> None:
    depth = 100_000
    for path in ("/v1/chat/completions", "/v1/embeddings", "/admin/faults"):
        response = http.post(path, content=b"[" * depth + b"]" * depth)
        assert response.status_code == 400
        assert "could not parse the JSON body" in error_of(response)["message"]
    nested: object = "hi"
    for _ in range(150):  # deep but within the parser's limit: validated, not crashed
        nested = [nested]
    response = http.post("/v1/chat/completions", json={"model": MODEL, "messages": HI, "vendor_extra": nested})
    assert response.status_code == 200


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("depth", [100_000, 1_000])
def test_deeply_nested_json_inside_a_message_is_text_not_a_crash(http: httpx.Client, depth: int, stream: bool) -> None:
    # "call NAME with {JSON}" names a tool and its arguments; JSON nested past the parser's
    # limit raised RecursionError (a 500) and broke the keep-alive connection for the next request.
    text = "call calculator with " + '{"a": ' + "[" * depth + "]" * depth + "}"
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "tools": [CALC], "stream": stream}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text[:300]
    if stream:
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
        names = [
            call["function"]["name"]
            for chunk in chunks
            for call in chunk["choices"][0]["delta"].get("tool_calls") or ()
            if "name" in call["function"]
        ]
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]
    else:
        choice = response.json()["choices"][0]
        names = [call["function"]["name"] for call in choice["message"]["tool_calls"]]
        finish = [choice["finish_reason"]]
    # The tool the text names is still called (its arguments guessed: the JSON is not used).
    assert names == ["calculator"] and finish == ["tool_calls"]
    assert http.post("/v1/chat/completions", json={"model": MODEL, "messages": HI}).status_code == 200


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on an open keep-alive connection: (status, body); (0, b"") if it closed."""
    head = "POST /v1/chat/completions HTTP/1.1\r\nhost: demo\r\ncontent-type: application/json\r\n"
    writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 10)
        if not status_line:
            return 0, b""
        headers = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode().lower()
    except (ConnectionError, asyncio.IncompleteReadError):
        return 0, b""
    length = int(headers.split("content-length: ", 1)[1].split("\r\n", 1)[0])
    return int(status_line.split()[1]), await reader.readexactly(length)


# Texts a client may send that made the demo model's patterns rescan the text from every
# position: "1" * 8,000 took 2 s, so each of these (half a megabyte) blocked the single-threaded
# server for hours. Each must now be answered within seconds, streamed or not.
HOSTILE_TEXTS = {
    "a run of digits": "1" * 500_000,
    "a run of spaces and brackets": "( " * 250_000,
    "blank lines": "\n" * 500_000,
    "a named call with braces": "call calculator with {" * 25_000,
    "a fact with a long gap": "remember x" + " " * 500_000 + "y",
    "tool results without a bracket": "[tool result " + "a\n" * 250_000,
    "a hundred thousand sums": " ".join(f"{i}+{i}" for i in range(100_000)),
}


@pytest.mark.parametrize("case", list(HOSTILE_TEXTS))
def test_a_hostile_message_is_answered_in_seconds(http: httpx.Client, case: str) -> None:
    text = HOSTILE_TEXTS[case]
    system = {"role": "system", "content": text.replace("[tool result ", "[Memory from ")}
    body = {"model": MODEL, "messages": [system, {"role": "user", "content": text}], "tools": [CALC], "stream": True}
    response = http.post("/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200
    chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    calls = {c["index"] for ch in chunks for c in ch["choices"][0]["delta"].get("tool_calls") or ()}
    assert len(calls) <= 32  # a reply makes at most MAX_TOOL_CALLS calls, however many sums it is asked
    assert http.post("/v1/chat/completions", json={"model": MODEL, "messages": HI}).status_code == 200


async def test_an_internal_error_is_a_json_500_and_the_connection_stays_usable() -> None:
    class FailsOnce(DemoServerState):
        """A server state whose first completion id fails, standing in for a bug in a handler."""

        failed = False

        def next_id(self) -> str:
            if not self.failed:
                self.failed = True
                raise RuntimeError("a bug")
            return super().next_id()

    sock = bind_socket("127.0.0.1", 0)
    server = asyncio.create_task(serve(FailsOnce(tokens_per_second=0), sock))
    body = json.dumps({"model": MODEL, "messages": HI}).encode()
    try:
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        try:
            status, broken = await _exchange(reader, writer, body)
            assert status == 500
            error = json.loads(broken)["error"]
            assert (error["type"], error["message"]) == ("server_error", "demo: internal error (RuntimeError)")
            # The same connection answers the next request (uvicorn closed it after a handler
            # raised: a client that reused it was reset).
            status, answer = await _exchange(reader, writer, body)
            assert status == 200 and json.loads(answer)["id"] == "chatcmpl-demo-1"
        finally:
            writer.close()
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
        sock.close()


@pytest.mark.parametrize(
    "head",
    [
        b"content-length: 100\r\n\r\n" + b'{"model": "holdfast-demo"',  # fewer bytes than declared
        b"transfer-encoding: chunked\r\n\r\n5\r\n" + b'{"mod\r\n',  # a chunked upload that stalls
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/admin/faults"])
async def test_a_body_that_never_arrives_whole_is_a_408_not_a_hang(head: bytes, path: str) -> None:
    sock = bind_socket("127.0.0.1", 0)
    server = asyncio.create_task(serve(DemoServerState(tokens_per_second=0, body_timeout=0.5), sock))
    try:
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        try:
            writer.write(f"POST {path} HTTP/1.1\r\nhost: demo\r\ncontent-type: application/json\r\n".encode() + head)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)  # answered, then closed: read() ends
        finally:
            writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert status_line.split()[1] == b"408", answer
        assert b"connection: close" in headers.lower()
        error = json.loads(body)["error"]
        assert error["code"] == "request_timeout" and error["type"] == "invalid_request_error"
        assert error["message"].startswith("Timed out reading the request body:")
        assert error["message"].endswith("arrived in 0.5 s.")
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
        sock.close()


async def test_a_client_leaving_mid_upload_is_not_a_server_error(caplog: pytest.LogCaptureFixture) -> None:
    # Starlette raises ClientDisconnect; it reached the last-resort handler and was logged as
    # "demo server error" with a traceback.
    sock = bind_socket("127.0.0.1", 0)
    state = DemoServerState(tokens_per_second=0)
    server = asyncio.create_task(serve(state, sock))
    try:
        for path in ("/v1/chat/completions", "/v1/embeddings", "/admin/faults"):
            _, writer = await asyncio.open_connection(*sock.getsockname())
            head = f"POST {path} HTTP/1.1\r\nhost: demo\r\ncontent-length: 100\r\n\r\n"
            writer.write(head.encode() + b'{"model": ')
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        # The server is still answering, and nothing was logged as a server error.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=10) as client:
            assert (await client.get("/v1/models")).status_code == 200
        assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
        sock.close()


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"\xff\xfe", b'{"model": NaN}', b"null", b'"text"'])
def test_bodies_that_are_not_a_json_object(http: httpx.Client, raw: bytes) -> None:
    response = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["param"] is None


def test_unknown_routes_and_methods_are_json(http: httpx.Client) -> None:
    missing = http.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert error_of(missing)["message"] == "Invalid URL (GET /v1/nothing-here)"
    wrong = http.get("/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert error_of(wrong)["code"] == "method_not_allowed"
    assert http.delete("/v1/models").status_code == 405
    for method, path in (
        ("POST", "/v1/chat/completions/"),
        ("GET", "/v1/chat/completions/"),
        ("POST", "/v1/embeddings/"),
    ):
        slashed = http.request(method, path, json={"model": MODEL, "messages": HI})
        assert slashed.status_code == 404, (path, slashed.status_code)
        assert error_of(slashed)["message"] == f"Invalid URL ({method} {path})"


def test_a_body_over_the_limit_is_413(http: httpx.Client) -> None:
    big = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]})
    response = http.post("/v1/chat/completions", content=big)
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"
    # The connection is still usable and the next request is served.
    assert http.post("/v1/chat/completions", json={"model": MODEL, "messages": HI}).status_code == 200


def test_the_body_limit_is_configurable(tmp_path: Any) -> None:
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path / "demo.log", max_body_bytes=200)
    server.start()
    try:
        url = server.url + "/chat/completions"
        assert httpx.post(url, json={"model": MODEL, "messages": HI}).status_code == 200
        response = httpx.post(url, json={"model": MODEL, "messages": [{"role": "user", "content": "y" * 300}]})
        assert response.status_code == 413 and "at most 200 bytes" in error_of(response)["message"]
    finally:
        server.stop()


def test_malformed_embedding_requests(http: httpx.Client) -> None:
    cases: list[tuple[object, int, str | None]] = [
        ({"model": "holdfast-demo-embed"}, 400, "input"),
        ({"model": "holdfast-demo-embed", "input": []}, 400, "input"),
        ({"model": "holdfast-demo-embed", "input": [1, "a"]}, 400, "input"),
        ({"model": "holdfast-demo-embed", "input": "a", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"model": "holdfast-demo-embed", "input": "a", "dimensions": 0}, 400, "dimensions"),
        ({"model": "holdfast-demo-embed", "input": "a", "dimensions": 65}, 400, "dimensions"),
        ({"model": "nope", "input": "a"}, 404, None),
    ]
    for body, status, param in cases:
        response = http.post("/v1/embeddings", json=body)
        assert response.status_code == status, (body, response.text)
        assert error_of(response)["param"] == param, body


@pytest.mark.parametrize(
    ("given", "code", "message"),
    [
        ([], "empty_array", "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty"),
        ("", "invalid_value", "Invalid 'input': empty string. Expected a string with minimum length 1."),
        (["a", ""], "invalid_value", "Invalid 'input[1]': empty string. Expected a string with minimum length 1."),
        ([[1], []], "empty_array", "Invalid 'input[1]': empty array. Expected an array with minimum length 1"),
        (
            [-1],
            "invalid_value",
            "Invalid 'input': token id -1 is out of range. Expected token ids from 0 to 2147483647.",
        ),
        ([[2**40]], "invalid_value", f"Invalid 'input[0]': token id {2**40} is out of range."),
        (["a"] * 2049, "array_above_max_length", "Invalid 'input': array too long. Expected an array with maximum "),
    ],
)
def test_embedding_inputs_are_checked_like_openais(http: httpx.Client, given: object, code: str, message: str) -> None:
    response = http.post("/v1/embeddings", json={"model": "holdfast-demo-embed", "input": given})
    assert response.status_code == 400
    error = error_of(response)
    assert (error["param"], error["code"]) == ("input", code)
    assert error["message"].startswith(message), error["message"]
    # The largest request OpenAI takes is served.
    full = http.post("/v1/embeddings", json={"model": "holdfast-demo-embed", "input": ["a"] * 2048})
    assert full.status_code == 200 and len(full.json()["data"]) == 2048


def test_valid_variants_are_accepted(http: httpx.Client) -> None:
    history = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is 1+1?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "2"}]},
    ]
    body = {"model": MODEL, "messages": history, "tools": [CALC], "top_k": 5, "keep_alive": "5m", "seed": 1}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == '[holdfast-demo] The calculator returned "2".'
    tokens = http.post("/v1/embeddings", json={"model": MODEL, "input": [[1, 2, 3], [4]]})
    assert tokens.status_code == 200 and len(tokens.json()["data"]) == 2


# ------------------------------------------------------------ random bodies

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
CLOCK = {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}
_TEXTS = st.sampled_from(["what is 2+2 and what time is it?", "tell me a long story", "remember that I like tea", "hi"])


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` three times in four, anything at all otherwise: deep enough to pass the first check."""
    return st.sampled_from([True, True, True, False]).flatmap(lambda good: valid if good else _JSON)


_VALID_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "developer"]), "content": _TEXTS | st.text(max_size=30)}
)
_MESSAGE_KEYS = st.sampled_from(["role", "content", "tool_calls", "tool_call_id", "name", "type", "text"])
_ROLE_LIKE = st.sampled_from(["user", "assistant", "tool", "system", "developer", "text", "function"])
_MESSAGES = _mostly(
    st.lists(
        st.sampled_from([True] * 5 + [False]).flatmap(
            lambda good: _VALID_MESSAGE if good else st.dictionaries(_MESSAGE_KEYS, _ROLE_LIKE | _JSON, max_size=4)
        ),
        min_size=1,
        max_size=3,
    )
)
# Each field: values a client would send (some out of range) most of the time, anything at all otherwise.
_FIELDS = {
    "stream": _mostly(st.booleans()),
    "stream_options": _mostly(st.fixed_dictionaries({}, optional={"include_usage": st.booleans()})),
    "tools": _mostly(st.lists(st.sampled_from([CALC, CLOCK]), min_size=1, max_size=2, unique_by=str)),
    "tool_choice": _mostly(
        st.sampled_from(["auto", "none", "required", {"type": "function", "function": {"name": "clock"}}])
    ),
    "n": _mostly(st.integers(-1, 4)),
    "max_tokens": _mostly(st.integers(-1, 40)),
    "max_completion_tokens": _mostly(st.integers(-1, 40)),
    "stop": _mostly(st.text(max_size=4) | st.lists(st.text(max_size=4), max_size=5)),
    "temperature": _mostly(st.floats(-1, 3)),
    "input": _mostly(st.text(max_size=20) | st.lists(st.text(max_size=10), max_size=3)),
    "encoding_format": _mostly(st.sampled_from(["float", "base64"])),
    "dimensions": _mostly(st.integers(-1, 70)),
}
_NEAR_VALID = st.fixed_dictionaries(
    {
        "model": _mostly(st.sampled_from([MODEL, MODEL, "holdfast-demo-embed", "holdfast-demo:latest"])),
        "messages": _MESSAGES,
    },
    optional=_FIELDS,
)
_BODIES = st.sampled_from([True, True, False]).flatmap(lambda near: _NEAR_VALID if near else _JSON)


@pytest.fixture(scope="module")
def shared_http(demo_server: DemoLLMServer) -> Iterator[httpx.Client]:
    """One client for every generated example (a new client per example costs ~70 ms)."""
    with httpx.Client(base_url=demo_server.root_url, timeout=10) as client:
        yield client


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=_BODIES,
    path=st.sampled_from(["/v1/chat/completions", "/v1/embeddings"]),
    profile=st.sampled_from(list(PROFILES)),
)
def test_random_json_bodies_never_get_a_server_error(
    shared_http: httpx.Client, body: object, path: str, profile: str
) -> None:
    shared_http.post("/admin/faults", json={"reset": True, "tokens_per_second": 0, "profile": profile})
    # json.dumps, not httpx's json=: it writes NaN and Infinity, which the server must refuse too.
    response = shared_http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500, (body, response.text[:300])
    if response.status_code >= 400:
        error_of(response)

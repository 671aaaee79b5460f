"""Siblings of issue 14's cases found by trying it as a new user: the same kind of fault in a shape
the first tests did not send (respx; the shapes come from real servers and gateways).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.config import LLMConfig
from runtime.core.errors import AppError
from runtime.llm.client import LLMClient
from runtime.llm.stream_events import Finish, Notice, ReasoningDelta, TextDelta, ToolCallReady, Usage
from runtime.resilience import Resilience
from tests.support.sse import CALC, chunk, sse_response

BASE = "http://siblings.test/v1"
ASK = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "what is 2+3?"}]


async def collect(
    client: LLMClient, messages: list[dict[str, Any]] = ASK, tools: Any = CALC, use_fallback: bool = True
) -> list[Any]:
    async with aclosing(client.stream_chat(messages, tools, use_fallback=use_fallback)) as events:
        return [event async for event in events]


@pytest.fixture
def client(make_resilience: Callable[..., Resilience], make_client: Callable[..., LLMClient]) -> LLMClient:
    return make_client(make_resilience(max_attempts=1), BASE, http_client=httpx.AsyncClient())


# ---------------------------------------------------------------- case 10: GET /models absent or unusable


@pytest.mark.parametrize(
    ("models", "why"),
    [
        (httpx.Response(404, text="404 page not found"), "HTTP 404"),
        (httpx.Response(405, text="Method Not Allowed"), "HTTP 405"),
        (httpx.Response(501, json={"error": {"message": "Not implemented"}}), "HTTP 501"),
        (httpx.Response(200, html="<!doctype html><html><body>chat web UI</body></html>"), "not a model list"),
        (httpx.Response(200, json={"models": [{"name": "llama3"}]}), "not a model list"),
    ],
    ids=["404", "405", "501", "html-page", "other-json"],
)
async def test_health_probe_falls_back_to_a_completion_when_models_is_absent(
    client: LLMClient, models: httpx.Response, why: str
) -> None:
    """Doctor and health probe an endpoint whose ``GET /models`` is missing (any of the statuses
    proxies answer) or answers something that is not a model list: a one-token completion decides."""
    reply = {"model": "m", "choices": [{"index": 0, "finish_reason": "length", "message": {"content": "p"}}]}
    with respx.mock(base_url=BASE) as mock:
        mock.get("/models").mock(return_value=models)
        chat = mock.post("/chat/completions").respond(200, json=reply)
        answered = await client.probe()
    assert answered == {"method": "completion", "models_error": why}
    assert json.loads(chat.calls[0].request.content)["max_tokens"] == 1


async def test_health_probe_still_fails_a_refused_key_and_a_dead_completion(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/models").respond(401, json={"error": {"message": "Incorrect API key provided"}})
        with pytest.raises(AppError) as refused:
            await client.probe()
        assert refused.value.status_code == 401
    with respx.mock(base_url=BASE) as mock:
        mock.get("/models").respond(404)
        mock.post("/chat/completions").respond(404, json={"error": {"message": "no such path"}})
        with pytest.raises(AppError) as missing:
            await client.probe()
        assert missing.value.status_code == 404


async def test_a_model_list_is_still_counted(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/models").respond(200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]})
        assert await client.probe() == {"method": "models", "models": 2}
        assert await client.list_models() == ["a", "b"]


# ---------------------------------------------------------------- case 7: prompt tools wrapped in words

TWO_PLUS_THREE = '{"tool": "calculator", "arguments": {"expression": "2+3"}}'


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (f"```json\n{TWO_PLUS_THREE}\n```", ""),
        (f"I will use the calculator.\n```json\n{TWO_PLUS_THREE}\n```", "I will use the calculator.\n"),
        (f"Let me compute: {TWO_PLUS_THREE}", "Let me compute: "),
        (f"{TWO_PLUS_THREE}\nThis will compute it.", "This will compute it."),
        ('<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call>', ""),
        ('{"name": "calculator", "parameters": {"expression": "2+3"}}', ""),
        (f"```\n{TWO_PLUS_THREE}\n```\n", ""),
    ],
    ids=[
        "fenced",
        "words-then-fence",
        "words-then-json",
        "json-then-words",
        "qwen-tags",
        "name-parameters",
        "bare-fence",
    ],
)
@pytest.mark.parametrize("piece", [1, 5, 1000], ids=["1-char", "5-char", "whole"])
async def test_a_prompt_tool_request_wrapped_in_words_runs_and_is_never_shown(
    client: LLMClient, reply: str, words: str, piece: int
) -> None:
    """Local models asked for prompt tools put words around the JSON (or Hermes/Qwen tags): the
    request is a call, only the words are shown, however the reply is split into chunks."""
    client.tools_supported = False
    pieces = [chunk({"content": reply[i : i + piece]}) for i in range(0, len(reply), piece)]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse_response(*pieces, chunk({}, "stop")))
        events = await collect(client)
    assert [(e.name, e.arguments) for e in events if isinstance(e, ToolCallReady)] == [
        ("calculator", {"expression": "2+3"})
    ]
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert shown == words and "{" not in shown and "tool_call" not in shown
    assert events[-1] == Finish("tool_calls", "m")


@pytest.mark.parametrize(
    "reply",
    [
        'Here is code:\n```python\nprint({"a": 1})\n```\nDone.',
        'Config: {"name": "Ada", "arguments": "none"} is fine.',
        'Never run {"tool": "rm_rf", "arguments": {}} on a server.',  # words around an unlisted tool
        "Arrays like [1, 2] and <b>tags</b> and `ticks` stay text.",
        '```json\n{"unclosed": "fence"',
    ],
    ids=["code-block", "json-with-a-name", "unlisted-inside-words", "brackets", "unclosed"],
)
async def test_an_answer_with_json_or_code_is_shown_whole(client: LLMClient, reply: str) -> None:
    client.tools_supported = False
    pieces = [chunk({"content": reply[i : i + 3]}) for i in range(0, len(reply), 3)]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse_response(*pieces, chunk({}, "stop")))
        events = await collect(client)
    assert not [e for e in events if isinstance(e, ToolCallReady)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == reply
    assert events[-1] == Finish("stop", "m")


async def test_a_code_block_is_shown_when_its_fence_closes_not_at_the_end(client: LLMClient) -> None:
    """Holding back a possible request must not hold a whole answer: the block is released as
    soon as it is complete and is not a request."""
    client.tools_supported = False
    body = sse_response(
        chunk({"content": 'Try:\n```py\nx = {"a": 1}\n'}),
        chunk({"content": "```\nThen "}),
        chunk({"content": "run it."}),
        chunk({}, "stop"),
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=body)
        events = await collect(client)
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert texts == ["Try:\n", '```py\nx = {"a": 1}\n```\nThen', " run it."]


async def test_a_whole_json_reply_in_prompt_tool_mode_is_split_the_same_way(client: LLMClient) -> None:
    client.tools_supported = False
    reply = f"I will use the calculator.\n```json\n{TWO_PLUS_THREE}\n```"
    whole = {"model": "m", "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": reply}}]}
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").respond(200, json=whole)
        completion = await client.complete(ASK, CALC)
    assert completion.text == "I will use the calculator.\n"  # as a stream shows it
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [("calculator", {"expression": "2+3"})]
    assert completion.finish_reason == "tool_calls"


# ---------------------------------------------------------------- case 3: content forms (OpenAI's refusal)


async def test_a_refusal_is_the_reply_not_an_empty_answer(client: LLMClient) -> None:
    """OpenAI sends a declined request as ``delta.refusal`` (``message.refusal``) with null content."""
    whole = {
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": None, "refusal": "I can't."}}],
    }
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [
            sse_response(
                chunk({"role": "assistant", "content": None, "refusal": "I can't "}), chunk({"refusal": "help."})
            ),
            httpx.Response(200, json=whole),
        ]
        events = await collect(client, tools=None)
        completion = await client.complete(ASK)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "I can't help."
    assert completion.text == "I can't."


# ---------------------------------------------------------------- case 12: honest figures


async def test_a_thinking_share_the_endpoint_did_not_report_is_marked_counted(client: LLMClient) -> None:
    """vLLM reports prompt and completion totals but not how many were thinking: the share is
    counted here, marked ``reasoning_estimated``, and never more than the reported total."""
    long_thought = "Let me think about this very carefully, step by step, twice over. " * 20
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [
            sse_response(
                chunk({"reasoning_content": long_thought}),
                chunk({"content": "Five."}, "stop"),
                chunk(usage={"prompt_tokens": 12, "completion_tokens": 30}),
            ),
            sse_response(
                chunk({"reasoning_content": "Hm."}),
                chunk({"content": "Five."}, "stop"),
                chunk(
                    usage={
                        "prompt_tokens": 12,
                        "completion_tokens": 30,
                        "completion_tokens_details": {"reasoning_tokens": 20},
                    }
                ),
            ),
        ]
        counted = next(e for e in await collect(client, tools=None) if isinstance(e, Usage))
        reported = next(e for e in await collect(client, tools=None) if isinstance(e, Usage))
    assert counted == Usage(12, 30, estimated=False, reasoning_tokens=30, reasoning_estimated=True)
    assert reported == Usage(12, 30, estimated=False, reasoning_tokens=20, reasoning_estimated=False)


# ---------------------------------------------------------------- case 6: the body decides, not its label

WHOLE = {
    "id": "x",
    "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "All at once."}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3},
}
STREAMED = (
    b'data: {"choices": [{"index": 0, "delta": {"content": "Streamed"}, "finish_reason": null}]}\n\n'
    b'data: {"choices": [{"index": 0, "delta": {"content": " anyway."}, "finish_reason": "stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", None, "application/octet-stream"])
async def test_a_json_reply_under_another_label_is_the_whole_answer(
    client: LLMClient, content_type: str | None
) -> None:
    """Gateways answer a stream request with a whole JSON reply labelled text/plain, or with no
    type at all: one POST, the answer, the no-stream notice (it was retried, then an outage)."""
    headers = {"content-type": content_type} if content_type else {}
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(
            return_value=httpx.Response(200, headers=headers, content=json.dumps(WHOLE).encode())
        )
        events = await collect(client, tools=None)
    assert route.call_count == 1
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["All at once."]
    assert [e.kind for e in events if isinstance(e, Notice)] == ["no_stream"]
    assert events[-2:] == [Usage(5, 3), Finish("stop", "m")]


async def test_sse_labelled_json_is_read_as_a_stream(client: LLMClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(
            return_value=httpx.Response(200, headers={"content-type": "application/json"}, content=STREAMED)
        )
        events = await collect(client, tools=None)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Streamed", " anyway."]
    assert not [e for e in events if isinstance(e, Notice)] and client.streams
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"


async def test_a_stream_sent_to_a_plain_request_is_read_as_the_reply(
    make_resilience: Callable[..., Resilience], make_client: Callable[..., LLMClient]
) -> None:
    """With [llm].stream = false, an endpoint that streams anyway still answers."""
    config = LLMConfig(preset="demo", base_url=BASE, stream=False)
    client = make_client(make_resilience(max_attempts=1), BASE, http_client=httpx.AsyncClient(), config=config)
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(
            return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=STREAMED)
        )
        events = await collect(client, tools=None)
        completion = await client.complete(ASK)
    assert "stream" not in json.loads(route.calls[0].request.content)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Streamed anyway."
    assert completion.text == "Streamed anyway." and completion.finish_reason == "stop"


# ---------------------------------------------------------------- case 5: thinking inside content


@pytest.mark.parametrize("piece", [1, 4, 1000], ids=["1-char", "4-char", "whole"])
async def test_a_think_block_in_content_is_reasoning_not_the_answer(client: LLMClient, piece: int) -> None:
    """DeepSeek-R1 on Ollama, llama.cpp or LM Studio without a reasoning parser: the thinking
    comes inside ``content`` as a leading ``<think>`` block; it is reasoning (counted, never shown
    or saved as the answer), however the chunks split the tags."""
    reply = "<think>\nThe user asks 2+3. That is 5.\n</think>\n\nIt is 5."
    pieces = [chunk({"content": reply[i : i + piece]}) for i in range(0, len(reply), piece)]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse_response(*pieces, chunk({}, "stop")))
        events = await collect(client, tools=None)
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "\nThe user asks 2+3. That is 5.\n"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "It is 5."
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.estimated and usage.reasoning_tokens > 0


async def test_a_think_block_in_a_whole_reply_and_an_unclosed_one(client: LLMClient) -> None:
    whole = {
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "<think>hm</think>Five."}}],
    }
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [
            httpx.Response(200, json=whole),
            sse_response(chunk({"content": "<think>still thinking when the limit came"}), chunk({}, "length")),
        ]
        completion = await client.complete(ASK)
        cut = await collect(client, tools=None)
    assert completion.text == "Five." and completion.reasoning == "hm"
    assert not [e for e in cut if isinstance(e, TextDelta)]  # an empty answer, not the thinking
    assert "".join(e.text for e in cut if isinstance(e, ReasoningDelta)) == "still thinking when the limit came"


@pytest.mark.parametrize(
    "reply", ["No <think> here, just words.", "  <thinking is fine>", "<thi", "Use <think> tags like this."]
)
async def test_text_that_is_not_a_leading_think_block_is_the_answer(client: LLMClient, reply: str) -> None:
    pieces = [chunk({"content": reply[i : i + 2]}) for i in range(0, len(reply), 2)]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse_response(*pieces, chunk({}, "stop")))
        events = await collect(client, tools=None)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == reply
    assert not [e for e in events if isinstance(e, ReasoningDelta)]


# ---------------------------------------------------------------- case 4: finish reasons in other words


@pytest.mark.parametrize(
    ("sent", "meant"),
    [
        ("model_length", "length"),  # Mistral: the context window is full
        ("max_tokens", "length"),  # Anthropic-style gateways
        ("LENGTH", "length"),
        ("safety", "content_filter"),  # Gemini
        ("eos_token", "stop"),  # TGI
        ("end_turn", "stop"),
    ],
)
async def test_finish_reasons_in_other_servers_words(client: LLMClient, sent: str, meant: str) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(
            return_value=sse_response(chunk({"content": "Some words"}), chunk({}, sent))
        )
        events = await collect(client, tools=None)
    assert isinstance(events[-1], Finish) and events[-1].reason == meant


# ---------------------------------------------------------------- case 2: arguments encoded twice


async def test_arguments_encoded_twice_are_the_object(client: LLMClient) -> None:
    twice = json.dumps(json.dumps({"expression": "2+3"}))
    body = sse_response(
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "calculator", "arguments": twice}}]}),
        chunk({}, "tool_calls"),
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=body)
        events = await collect(client)
    (ready,) = [e for e in events if isinstance(e, ToolCallReady)]
    assert ready.arguments == {"expression": "2+3"} and json.loads(ready.call.arguments) == {"expression": "2+3"}


# ---------------------------------------------------------------- parameters a real endpoint refuses


def refusal(message: str, param: str, status: int = 400) -> httpx.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": "unsupported_parameter"}
    return httpx.Response(status, json={"error": error})


async def test_openai_reasoning_models_get_max_completion_tokens_and_no_temperature(client: LLMClient) -> None:
    """OpenAI's o-series and gpt-5 refuse ``max_tokens`` and any ``temperature`` but the default:
    each refusal is learnt once, the same turn goes on, and later requests are sent right at once."""
    ok = sse_response(chunk({"content": "Five."}), chunk({}, "stop"))
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [
            refusal(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
            ),
            refusal(
                "Unsupported value: 'temperature' does not support 0.7 with this model. "
                "Only the default (1) value is supported.",
                "temperature",
            ),
            ok,
            ok,
        ]
        first = await collect(client, tools=None)
        second = await collect(client, tools=None)
    assert (
        [e.text for e in first if isinstance(e, TextDelta)]
        == ["Five."]
        == [e.text for e in second if isinstance(e, TextDelta)]
    )
    sent = [json.loads(c.request.content) for c in route.calls]
    assert "max_tokens" in sent[0] and "temperature" in sent[0]
    assert "max_tokens" not in sent[1] and sent[1]["max_completion_tokens"] == 1024 and "temperature" in sent[1]
    for later in sent[2:]:
        assert "max_tokens" not in later and "temperature" not in later and later["max_completion_tokens"] == 1024
    assert route.call_count == 4  # the second turn needed no refusal
    assert client.refused == {"max_tokens", "temperature"}


async def test_an_endpoint_that_refuses_stream_options_streams_without_them(client: LLMClient) -> None:
    """Azure API versions before 2024-09 and older vLLM refuse ``stream_options``."""
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [
            httpx.Response(400, json={"error": {"message": "Unrecognized request argument supplied: stream_options"}}),
            sse_response(chunk({"content": "Hi."}), chunk({}, "stop")),
        ]
        events = await collect(client, tools=None)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hi."]
    sent = [json.loads(c.request.content) for c in route.calls]
    assert "stream_options" in sent[0] and "stream_options" not in sent[1] and sent[1]["stream"] is True


async def test_a_refused_parameter_in_a_whole_reply_and_a_real_rejection(client: LLMClient) -> None:
    whole = {"model": "m", "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "Ok."}}]}
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions")
        route.side_effect = [
            refusal("Unsupported parameter: 'max_tokens' is not supported with this model.", "max_tokens"),
            httpx.Response(200, json=whole),
            httpx.Response(400, json={"error": {"message": "'max_completion_tokens' is too large: 99999."}}),
        ]
        completion = await client.complete(ASK)
        with pytest.raises(AppError) as rejected:
            await client.complete(ASK, use_fallback=False)
    assert completion.text == "Ok." and json.loads(route.calls[1].request.content)["max_completion_tokens"] == 1024
    assert rejected.value.status_code == 400 and route.call_count == 3  # not a refusal to learn: raised


# ---------------------------------------------------------------- a prompt longer than the endpoint's context


@pytest.mark.parametrize(
    ("message", "size"),
    [
        (
            "This model's maximum context length is 4096 tokens. However, you requested 5210 tokens "
            "(4186 in the messages, 1024 in the completion). Please reduce the length of the messages or completion.",
            " (4096 tokens)",
        ),
        ("the request exceeds the available context size, try increasing it", ""),
    ],
    ids=["vllm-openai", "llama.cpp"],
)
async def test_a_prompt_longer_than_the_endpoints_context_says_what_to_set(
    client: LLMClient, message: str, size: str
) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").respond(400, json={"error": {"message": message, "code": 400}})
        with pytest.raises(AppError) as rejected:
            await collect(client, tools=None, use_fallback=False)
    said = rejected.value.user_message()
    assert said.endswith(f"; set [llm].context_window to the endpoint's context size{size}")
    assert said.count("HTTP 400") == 1 and "\n" not in said


# ---------------------------------------------------------------- the gate under any split

PARTS = st.sampled_from(
    [
        "Sure. ",
        "I will use the calculator.\n",
        TWO_PLUS_THREE,
        f"```json\n{TWO_PLUS_THREE}\n```",
        '<tool_call>{"name": "calculator", "arguments": {"expression": "7*6"}}</tool_call>',
        "```py\nx = {'a': 1}\n```\n",
        '{"name": "Ada"} ',
        "[1, 2] ",
        "`tick` <b> ",
        "\n\n",
        "漢字 👍🏽 ",
    ]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(PARTS, min_size=1, max_size=6), cuts=st.lists(st.integers(min_value=1, max_value=9), max_size=60))
def test_the_prompt_tool_gate_decides_the_same_however_the_reply_is_split(parts: list[str], cuts: list[int]) -> None:
    """Nothing is lost or shown twice, and the calls found do not depend on the chunking."""
    from runtime.llm.prompt_tools import ToolRequestGate, split_tool_requests

    reply = "".join(parts)
    pieces: list[str] = []
    pos = 0
    for size in cuts:
        pieces.append(reply[pos : pos + size])
        pos += size
    pieces.append(reply[pos:])
    outcomes = set()
    for chunking in (pieces, [reply]):
        gate = ToolRequestGate(["calculator"])
        shown = "".join(gate.feed(piece) for piece in chunking)
        held = gate.held()
        assert shown + held == reply
        calls, words = split_tool_requests(held, ["calculator"]) if held else ([], "")
        outcomes.add((shown, held, tuple((c.name, c.arguments) for c in calls), words))
    assert len(outcomes) == 1

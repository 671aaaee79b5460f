"""Conformance: the whole agent (save, prompt, stream, tools, save) against every quirk profile of
the demo server, over real HTTP, with real Redis.

Each profile imitates a real OpenAI-compatible server (see runtime/demo/profiles.py); the demo
model decides the same words and tool calls under every profile, so one scenario tells whether
the client understood each wire format: "what is 2+3 and 7*6?" must run the calculator twice,
each call with its own arguments and id, store both results, and answer quoting both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from runtime.agent import collect, final_text
from runtime.agent.turn import CONTENT_FILTER_ERROR, cut_off_note
from runtime.core.events import (
    AssistantSaved,
    ReasoningDelta,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnEvent,
    TurnFailed,
    TurnFinished,
    TurnNotice,
)
from runtime.core.messages import ChatMessage
from runtime.demo.admin import DemoAdmin
from runtime.demo.profiles import PROFILES
from runtime.host.runtime import Runtime

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

QUESTION = "what is 2+3 and 7*6?"
FAKE = "http://quirky-llm.test/v1"
#: Profiles under which the two-calculator scenario must run exactly as under OpenAI's own format.
TOOL_PROFILES = ["openai", "ollama", "llamacpp", "vllm-reasoning", "mistral", "openrouter", "no-stream", "no-tools"]


async def run_scenario(rt: Runtime, text: str = QUESTION) -> tuple[str, list[TurnEvent], list[ChatMessage]]:
    conv = await rt.agent.new_conversation()
    events = await collect(rt.agent.run_turn(conv, text))
    stored = await rt.store.read_tail(conv, 50)
    return conv, events, stored


def of(events: list[TurnEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def assert_two_calculations(events: list[TurnEvent], stored: list[ChatMessage]) -> None:
    """Both calls ran once each with their own arguments, results stored in call order, and the
    answer quotes both results."""
    started = of(events, ToolCallStarted)
    assert [(e.name, e.arguments) for e in started] == [
        ("calculator", {"expression": "2+3"}),
        ("calculator", {"expression": "7*6"}),
    ]
    finished = of(events, ToolCallFinished)
    assert sorted((e.status, e.output) for e in finished) == [("ok", "2+3 = 5"), ("ok", "7*6 = 42")]
    assert [m.role for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]
    calls = stored[1].tool_calls
    assert len({c.id for c in calls}) == 2  # distinct ids, however the server numbered them
    assert [json.loads(c.arguments) for c in calls] == [{"expression": "2+3"}, {"expression": "7*6"}]
    assert [m.tool_call_id for m in stored[2:4]] == [c.id for c in calls]
    assert [m.content for m in stored[2:4]] == ["2+3 = 5", "7*6 = 42"]
    answer = stored[-1].content
    assert '"2+3 = 5"' in answer and '"7*6 = 42"' in answer
    assert final_text(events) == answer
    finished_turn = of(events, TurnFinished)[-1]
    assert not finished_turn.failed and finished_turn.stop_reason == "answer" and finished_turn.steps == 2


@pytest.mark.parametrize("profile", TOOL_PROFILES)
async def test_two_parallel_tool_calls_end_to_end_under_every_profile(
    profile: str, rt: Runtime, demo_admin: DemoAdmin
) -> None:
    await demo_admin.set_profile(profile)
    await demo_admin.set_faults(tokens_per_second=0)  # reasoning profiles think for seconds when paced
    _, events, stored = await run_scenario(rt)
    assert_two_calculations(events, stored)
    notices = [(n.topic, n.message) for n in of(events, TurnNotice)]
    if profile == "no-tools":  # case 9: one notice, then the tools are described in the prompt (case 7)
        assert [k for k, _ in notices] == ["prompt_tools"] and "does not accept tools" in notices[0][1]
        assert rt.llm.tools_supported is False
    elif profile == "no-stream":  # case 6: the JSON reply is the answer, remembered for the endpoint
        assert [k for k, _ in notices] == ["no_stream"]
        assert rt.llm.streams is False
    else:
        assert notices == []
    usage = of(events, TurnFinished)[-1]
    assert usage.usage["completion_tokens"] > 0
    # vLLM reports the totals but not the thinking share: that share is counted, and said so.
    assert usage.usage_source == ("mixed" if profile == "vllm-reasoning" else "reported")


async def test_every_profile_has_a_conformance_case() -> None:
    covered = {*TOOL_PROFILES, "truncating", "flaky-stream"}
    assert covered == set(PROFILES)


async def test_prompt_tools_switch_once_and_keep_working_for_the_session(rt: Runtime, demo_admin: DemoAdmin) -> None:
    """Case 9: Ollama's "does not support tools" 400 switches the session to prompt tools with
    one notice; the next turn goes straight to prompt tools (one request per model call)."""
    await demo_admin.set_profile("no-tools")
    _, first, _ = await run_scenario(rt)
    assert [n.topic for n in of(first, TurnNotice)] == ["prompt_tools"]
    before = await demo_admin.requests()
    _, second, stored = await run_scenario(rt)
    assert_two_calculations(second, stored)
    assert of(second, TurnNotice) == []  # said once per session
    assert await demo_admin.requests() - before == 2  # two model steps, no rejected request first


async def test_prompt_tools_by_configuration_run_the_tools(
    runtime_factory: Callable[..., Runtime], demo_admin: DemoAdmin
) -> None:
    """Case 7: with [llm].supports_tools = false the model's {"tool": ...} reply is run, not
    printed: the context window and the client agree on one description of the tools."""
    rt = runtime_factory(llm={"supports_tools": False})
    async with rt:
        _, events, stored = await run_scenario(rt)
        assert_two_calculations(events, stored)
        assert of(events, TextDelta)[0].text.startswith("[holdfast-demo]")  # the JSON request was never shown
        assert not any("{" in e.text for e in of(events, TextDelta))
        assert of(events, TurnNotice) == []


async def test_a_json_reply_to_a_stream_request_is_one_post(rt: Runtime, demo_admin: DemoAdmin) -> None:
    """Case 6: a server that ignores stream: true answers with one POST per model call: no
    retries, no breaker, no outage."""
    await demo_admin.set_profile("no-stream")
    before = await demo_admin.requests()
    _, events, stored = await run_scenario(rt, "hello there")
    assert await demo_admin.requests() - before == 1
    assert stored[-1].content.startswith("[holdfast-demo]") and not of(events, TurnFailed)
    assert rt.resilience.guard("llm").breaker.state.value == "closed"


async def test_stream_false_never_asks_for_a_stream(
    runtime_factory: Callable[..., Runtime], demo_admin: DemoAdmin
) -> None:
    rt = runtime_factory(llm={"stream": False})
    async with rt:
        _, events, stored = await run_scenario(rt)
        assert_two_calculations(events, stored)
        assert of(events, TurnNotice) == []


async def test_reasoning_is_shown_kept_in_metadata_counted_and_never_resent(rt: Runtime, demo_admin: DemoAdmin) -> None:
    await demo_admin.set_profile("vllm-reasoning")
    await demo_admin.set_faults(tokens_per_second=0)
    conv, events, stored = await run_scenario(rt, "hello, how are you?")
    thinking = "".join(e.text for e in of(events, ReasoningDelta))
    assert thinking.startswith("Okay, the user wrote")
    kinds = [type(e) for e in events if isinstance(e, (ReasoningDelta, TextDelta))]
    assert kinds.index(TextDelta) > 0 and ReasoningDelta not in kinds[kinds.index(TextDelta) :]  # thinking first
    answer = stored[-1]
    assert answer.metadata["reasoning"] == thinking and thinking not in answer.content
    finished = of(events, TurnFinished)[-1]
    assert finished.usage["reasoning_tokens"] > 0
    # The next prompt carries the answer, not the thinking.
    built = await rt.agent.window.build_prompt(rt.config.agent.system_prompt, conv, reader=rt.agent.history)
    assert not any(thinking[:40] in str(m.get("content")) for m in built.messages)
    assert not any("reasoning" in m for m in built.messages)


async def test_a_reply_cut_by_a_full_context_window_is_saved_marked_with_a_notice(
    rt: Runtime, demo_admin: DemoAdmin
) -> None:
    """Case 4: finish_reason "length" is not a complete answer. The truncating profile (a 512-token
    context, like Ollama's num_ctx) stops the reply long before [llm].max_output_tokens (1024): the
    marker and the notice name the tokens the reply got and the context window, not an output
    limit it never reached."""
    await demo_admin.set_profile("truncating")
    conv, events, stored = await run_scenario(rt, "tell me a long story about the sea")
    finished = of(events, TurnFinished)[-1]
    got = finished.usage["completion_tokens"]
    assert 0 < got < 512 and finished.usage_source == "reported"
    note = cut_off_note(rt.config.llm.max_output_tokens, got)
    assert note == f"[cut off after {got} tokens: the endpoint's context window is full]"
    answer = stored[-1]
    assert answer.role == "assistant" and answer.content.endswith("\n\n" + note)
    assert answer.metadata["finish_reason"] == "length" and answer.metadata["cut_off"] is True
    assert "".join(e.text for e in of(events, TextDelta)).endswith(note)  # shown as it was saved
    (notice,) = of(events, TurnNotice)
    assert notice.topic == "cut_off" and notice.message.startswith(f"the reply was cut off after {got} tokens")
    assert "context window" in notice.message and "1024 tokens" not in notice.message
    saved = of(events, AssistantSaved)[-1]
    assert saved.finish_reason == "length"
    assert finished.stop_reason == "cut_off" and not finished.failed
    # The model reads its own words back, not our marker: /continue goes on from the last real token.
    built = await rt.agent.window.build_prompt(rt.config.agent.system_prompt, conv, reader=rt.agent.history)
    sent = built.messages[-1]
    assert sent["role"] == "assistant" and sent["content"] == answer.content.removesuffix("\n\n" + note)
    assert not any("[cut off" in str(m.get("content")) for m in built.messages)


async def test_a_reply_cut_at_the_output_limit_names_that_limit(
    runtime_factory: Callable[..., Runtime], demo_admin: DemoAdmin
) -> None:
    """Case 4, the other length limit: a reply that used all of [llm].max_output_tokens."""
    rt = runtime_factory(llm={"max_output_tokens": 40})
    async with rt:
        _, events, stored = await run_scenario(rt, "tell me a long story about the sea")
    finished = of(events, TurnFinished)[-1]
    assert finished.usage["completion_tokens"] == 40 and finished.stop_reason == "cut_off"
    assert stored[-1].content.endswith("\n\n[cut off: the reply reached the output limit of 40 tokens]")
    (notice,) = of(events, TurnNotice)
    assert notice.message.startswith("the reply was cut off at the output limit (40 tokens, [llm].max_output_tokens)")


async def test_an_error_inside_a_200_stream_keeps_the_partial_marked(rt: Runtime, demo_admin: DemoAdmin) -> None:
    await demo_admin.set_profile("flaky-stream")
    _, events, stored = await run_scenario(rt, "hello, how are you?")
    shown = "".join(e.text for e in of(events, TextDelta))
    assert shown  # eight pieces arrived before the error
    partial = stored[-1]
    assert partial.content == shown
    assert partial.metadata["interrupted"] is True and partial.metadata["hidden"] is True
    assert partial.metadata["finish_reason"] == "error"
    (failed,) = of(events, TurnFailed)
    assert "failed mid-stream" in failed.error and failed.retryable
    assert of(events, TurnFinished)[-1].failed


def _sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def test_content_filter_is_a_failure_with_the_partial_kept(runtime_factory: Callable[..., Runtime]) -> None:
    """A provider's content filter ends the stream with finish_reason content_filter (the demo
    server has no such profile, so respx plays the endpoint): the partial text is kept, marked
    and hidden from later prompts, and the turn fails without offering a retry."""
    rt = runtime_factory(llm={"base_url": FAKE})
    body = _sse(_chunk({"content": "The first half"}), _chunk({"content": " of"}), _chunk({}, "content_filter"))
    with respx.mock(base_url=FAKE, assert_all_called=False) as mock:
        mock.post("/chat/completions").mock(
            return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        )
        async with rt:
            conv, events, stored = await run_scenario(rt, "tell me something")
            built = await rt.agent.window.build_prompt("", conv, reader=rt.agent.history)
    assert stored[-1].content == "The first half of"
    assert stored[-1].metadata["finish_reason"] == "content_filter" and stored[-1].metadata["hidden"] is True
    assert of(events, AssistantSaved)[-1].interrupted
    (failed,) = of(events, TurnFailed)
    assert failed.error == CONTENT_FILTER_ERROR and not failed.retryable
    assert of(events, TurnFinished)[-1].stop_reason == "content_filter"
    assert [m["role"] for m in built.messages] == ["system", "user"]  # the filtered text is not re-sent


@pytest.mark.slow  # paced reasoning: seconds of thinking before the (empty) answer
async def test_an_empty_answer_after_reasoning_is_not_saved(runtime_factory: Callable[..., Runtime]) -> None:
    """A reasoning model that thinks and then says nothing: the user is told, nothing is saved
    as the model's answer (an empty answer would read as one in every later prompt)."""
    rt = runtime_factory(llm={"base_url": FAKE})
    body = _sse(
        _chunk({"role": "assistant", "content": None, "reasoning_content": "Let me think"}),
        _chunk({"reasoning_content": " about that."}),
        _chunk({"content": ""}, "stop"),
    )
    with respx.mock(base_url=FAKE, assert_all_called=False) as mock:
        mock.post("/chat/completions").mock(
            return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        )
        async with rt:
            _, events, stored = await run_scenario(rt, "think hard")
    assert [m.role for m in stored] == ["user"]
    assert "".join(e.text for e in of(events, ReasoningDelta)) == "Let me think about that."
    (failed,) = of(events, TurnFailed)
    assert "empty answer after thinking" in failed.error and failed.retryable
    assert of(events, TurnFinished)[-1].stop_reason == "empty" and of(events, AssistantSaved) == []

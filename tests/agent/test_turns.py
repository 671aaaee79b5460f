"""Whole turns against the real demo LLM server, real Redis and real LanceDB."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from runtime.agent import collect, final_text
from runtime.core.events import (
    MemoriesRecalled,
    PromptBuilt,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFailed,
    TurnFinished,
    UserSaved,
)
from runtime.host.runtime import Runtime
from runtime.tools import tool

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def kinds(events: list) -> list[str]:
    return [e.kind for e in events]


async def history(rt: Runtime, conv: str) -> list:
    return await rt.store.read_tail(conv, 100)


async def test_plain_answer_is_streamed_and_saved_after_the_user_message(rt: Runtime) -> None:
    conv = await rt.agent.new_conversation()
    events = await collect(rt.agent.run_turn(conv, "hello there"))
    assert kinds(events)[:3] == ["UserSaved", "MemoriesRecalled", "PromptBuilt"]
    assert kinds(events)[-2:] == ["AssistantSaved", "TurnFinished"]
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert streamed == final_text(events) and 'You said: "hello there"' in streamed
    assert all(e.conversation_id == conv for e in events)
    assert len({e.turn_id for e in events}) == 1
    stored = await history(rt, conv)
    assert [(m.role, m.content) for m in stored] == [("user", "hello there"), ("assistant", streamed)]
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.usage["total_tokens"] > 0
    assert {"save_user_ms", "prompt_ms", "llm_ms", "save_assistant_ms", "total_ms"} <= set(finished.timings)


async def test_single_tool_call_runs_and_its_result_is_fed_back(rt: Runtime) -> None:
    conv = await rt.agent.new_conversation()
    events = await collect(rt.agent.run_turn(conv, "what is 12*(3+4)?"))
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    done = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(s.name, s.arguments) for s in started] == [("calculator", {"expression": "12*(3+4)"})]
    assert done[0].status == "ok" and done[0].output == "12*(3+4) = 84"
    assert "84" in final_text(events)
    assert len([e for e in events if isinstance(e, PromptBuilt)]) == 2
    roles = [m.role for m in await history(rt, conv)]
    assert roles == ["user", "assistant", "tool", "assistant"]


async def test_tool_error_is_reported_to_the_model_and_the_turn_finishes(
    runtime_factory: Callable[..., Runtime],
) -> None:
    rt = runtime_factory(plugins={"disabled": ["calculator"]})

    @tool(name="calculator")
    def broken(expression: str) -> str:
        """Always fails."""
        raise RuntimeError("the abacus is on fire")

    rt.tools.register(broken, plugin="test")
    async with rt:
        conv = await rt.agent.new_conversation()
        events = await collect(rt.agent.run_turn(conv, "what is 1+1?"))
    done = next(e for e in events if isinstance(e, ToolCallFinished))
    assert done.status == "error" and "the abacus is on fire" in done.output
    assert "the abacus is on fire" in final_text(events)
    assert isinstance(events[-1], TurnFinished) and not events[-1].failed


async def test_tool_timeout_gives_the_model_a_timeout_result(runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory(plugins={"disabled": ["calculator"]})
    never = asyncio.Event()

    @tool(name="calculator", timeout=0.2)
    async def hangs(expression: str) -> str:
        """Never answers."""
        await never.wait()
        return "unreachable"

    rt.tools.register(hangs, plugin="test")
    async with rt:
        conv = await rt.agent.new_conversation()
        events = await collect(rt.agent.run_turn(conv, "what is 1+1?"))
    done = next(e for e in events if isinstance(e, ToolCallFinished))
    assert done.status == "timeout" and "0.2s" in done.output
    assert rt.resilience.breakers.get("tool:calculator").snapshot().failure_count == 1


async def test_malformed_tool_arguments_become_an_invalid_result(rt: Runtime, demo_admin) -> None:
    await demo_admin.set_faults(malformed_tool_args=True)
    conv = await rt.agent.new_conversation()
    events = await collect(rt.agent.run_turn(conv, "what is 2+2?"))
    done = next(e for e in events if isinstance(e, ToolCallFinished))
    assert done.status == "invalid" and "JSON" in done.output
    assert isinstance(events[-1], TurnFinished) and not events[-1].failed


async def test_max_steps_ends_the_turn_with_a_clear_note(runtime_factory: Callable[..., Runtime]) -> None:
    async with runtime_factory(agent={"max_steps": 1}) as rt:
        conv = await rt.agent.new_conversation()
        events = await collect(rt.agent.run_turn(conv, "what is 2+2?"))
    assert not any(isinstance(e, ToolCallStarted) for e in events)
    assert "Stopped after 1 steps" in final_text(events)
    assert events[-1].stop_reason == "max_steps"


async def test_cancel_mid_stream_keeps_the_partial_answer_marked_interrupted(rt: Runtime) -> None:
    conv = await rt.agent.new_conversation()
    finished: list[TurnFinished] = []
    rt.bus.add_listener(lambda e: finished.append(e) if isinstance(e, TurnFinished) else None)
    turn = rt.agent.run_turn(conv, "tell me something long")
    seen = ""
    async for event in turn:
        if isinstance(event, TextDelta):
            seen += event.text
            break
    await turn.aclose()
    stored = await history(rt, conv)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].content == seen and stored[1].metadata.get("interrupted") is True
    assert finished and finished[-1].stop_reason == "cancelled"
    # the conversation is usable right away (the turn lock was released)
    events = await collect(rt.agent.run_turn(conv, "hello again"))
    assert events[-1].stop_reason == "answer"


async def test_memory_is_recalled_into_the_prompt(rt: Runtime) -> None:
    await rt.memory.store_memory("alice", "older", "My cat is called Tom")
    await rt.memory.store_memory("bob", "other", "My cat is called Felix")
    conv = await rt.agent.new_conversation()
    events = await collect(rt.agent.run_turn(conv, "what is my cat called?"))
    recalled = next(e for e in events if isinstance(e, MemoriesRecalled))
    assert any("Tom" in t for t in recalled.texts) and not any("Felix" in t for t in recalled.texts)
    report = next(e for e in events if isinstance(e, PromptBuilt)).report
    assert report.memories_included >= 1 and report.memories_tokens > 0


async def test_salient_statements_are_remembered_after_the_turn(rt: Runtime) -> None:
    conv = await rt.agent.new_conversation()
    await collect(rt.agent.run_turn(conv, "I live in Lisbon. How are you?"))
    await rt.agent.wait_background()
    assert any("Lisbon" in m.content for m in await rt.memory.list("alice"))


async def test_conversation_of_another_user_is_refused(runtime_factory: Callable[..., Runtime]) -> None:
    async with runtime_factory(user="alice") as alice:
        conv = await alice.agent.new_conversation()
    async with runtime_factory(user="mallory") as mallory:
        events = await collect(mallory.agent.run_turn(conv, "let me in"))
        assert isinstance(events[0], TurnFailed) and "another user" in events[0].error
        assert await mallory.store.read_tail(conv, 10) == []


async def test_two_turns_on_one_conversation_are_queued_not_interleaved(rt: Runtime) -> None:
    conv = await rt.agent.new_conversation()
    await asyncio.gather(
        collect(rt.agent.run_turn(conv, "what is 1+2?")), collect(rt.agent.run_turn(conv, "what is 3+4?"))
    )
    roles = [m.role for m in await history(rt, conv)]
    assert roles == ["user", "assistant", "tool", "assistant"] * 2


async def test_log_records_written_during_a_turn_carry_its_ids(rt: Runtime, tmp_path) -> None:
    import json
    import logging

    from runtime.core.logs import setup_logging

    path = setup_logging(tmp_path / "turn.log", "DEBUG")
    try:
        conv = await rt.agent.new_conversation()
        events = await collect(rt.agent.run_turn(conv, "what is 6*7?"))
        turn_id = events[0].turn_id
        logging.getLogger("holdfast.after").info("after the turn")
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_holdfast", False)]:
            handler.flush()
            root.removeHandler(handler)
            handler.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    during = [r for r in records if r.get("turn_id") == turn_id]
    assert during, "no log record carried the turn id"
    assert all(r["conversation_id"] == conv for r in during)
    assert "turn_id" not in records[-1]  # the ids do not leak past the turn


async def test_a_turn_that_cannot_get_the_conversation_is_not_offered_for_retry(
    runtime_factory: Callable[..., Runtime],
) -> None:
    rt = runtime_factory(agent={"turn_lock_timeout": 0.2})
    async with rt:
        conv = await rt.agent.new_conversation()
        held = await rt.agent.locks.acquire(conv)  # another turn on this conversation is running
        try:
            events = await collect(rt.agent.run_turn(conv, "second message"))
        finally:
            await held.release()
        failed = [e for e in events if isinstance(e, TurnFailed)]
        assert len(failed) == 1 and not failed[0].retryable
        assert "not sent" in failed[0].error
        assert not any(isinstance(e, UserSaved) for e in events)
        assert await history(rt, conv) == []

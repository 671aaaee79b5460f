"""Parallel tool calls and a call to a tool that does not exist, end to end through the real demo
LLM server, real Redis and real LanceDB."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from runtime.agent import collect, final_text
from runtime.core.events import PromptBuilt, ToolCallFinished, ToolCallStarted, TurnFinished
from runtime.demo import model as demo_model
from runtime.host.runtime import Runtime
from runtime.tools import tool

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def test_demo_model_asks_for_two_tools_in_one_reply() -> None:
    messages = [{"role": "user", "content": "what is 2+2 and what time is it in Europe/Paris?"}]
    offered = [{"type": "function", "function": {"name": n, "parameters": {}}} for n in ("calculator", "clock")]
    reply = demo_model.respond(messages, offered)
    assert [(c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("calculator", {"expression": "2+2"}),
        ("clock", {"timezone": "Europe/Paris"}),
    ]
    assert len({c.id for c in reply.tool_calls}) == 2
    # two expressions are two calculator calls; only the offered tools are called
    two = demo_model.respond([{"role": "user", "content": "compute 2+2 and 3*5"}], offered[:1])
    assert [json.loads(c.arguments)["expression"] for c in two.tool_calls] == ["2+2", "3*5"]


async def test_two_requests_in_one_message_run_two_tools_in_one_step(rt: Runtime) -> None:
    conv = await rt.agent.new_conversation()
    events = await collect(rt.agent.run_turn(conv, "what is 2+2 and what time is it?"))
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    done = {e.name: e for e in events if isinstance(e, ToolCallFinished)}
    assert [(e.name, e.step) for e in started] == [("calculator", 1), ("clock", 1)]
    assert done["calculator"].status == "ok" and done["calculator"].output == "2+2 = 4"
    assert done["clock"].status == "ok" and "UTC" in done["clock"].output
    answer = final_text(events)
    assert '"2+2 = 4"' in answer and "clock returned" in answer
    assert len([e for e in events if isinstance(e, PromptBuilt)]) == 2  # one model step for both tools
    stored = await rt.store.read_tail(conv, 20)
    assert [m.role for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]
    calls = stored[1].tool_calls
    # each result answers its own call, in the order the model asked
    assert [m.tool_call_id for m in stored[2:4]] == [c.id for c in calls]
    assert [m.name for m in stored[2:4]] == ["calculator", "clock"]


async def test_parallel_calls_really_run_at_the_same_time(runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory(plugins={"disabled": ["calculator", "clock"]})
    # Each tool waits for the other to start: run one after the other, the first would time out.
    both_running = asyncio.Barrier(2)

    @tool(name="calculator", timeout=5.0)
    async def calculator(expression: str) -> str:
        """Arithmetic that needs the clock to be running too."""
        await both_running.wait()
        return f"{expression} = 4"

    @tool(name="clock", timeout=5.0)
    async def clock(timezone: str = "UTC") -> str:
        """A clock that needs the calculator to be running too."""
        await both_running.wait()
        return f"noon in {timezone}"

    rt.tools.register(calculator, plugin="test")
    rt.tools.register(clock, plugin="test")
    async with rt:
        conv = await rt.agent.new_conversation()
        events = await collect(rt.agent.run_turn(conv, "what is 2+2 and what time is it?"))
    statuses = {e.name: e.status for e in events if isinstance(e, ToolCallFinished)}
    assert statuses == {"calculator": "ok", "clock": "ok"}
    assert "noon in UTC" in final_text(events)


async def test_a_call_to_an_unknown_tool_is_answered_with_an_error_the_model_reads(rt: Runtime, demo_admin) -> None:
    await demo_admin.set_faults(unknown_tool=True)
    conv = await rt.agent.new_conversation()
    events = await collect(rt.agent.run_turn(conv, "please summon something"))
    done = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(e.name, e.status) for e in done] == [(demo_model.UNKNOWN_TOOL, "unknown")]
    assert f"unknown tool '{demo_model.UNKNOWN_TOOL}'" in done[0].output and "calculator" in done[0].output
    assert "unknown tool" in final_text(events)
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and not finished.failed and finished.stop_reason == "answer"
    stored = await rt.store.read_tail(conv, 20)
    assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[2].metadata["status"] == "unknown"
    # no breaker was made for a tool that does not exist
    breakers = {snap["name"] for snap in rt.resilience.snapshots()}
    assert "tool:calculator" not in breakers and f"tool:{demo_model.UNKNOWN_TOOL}" not in breakers

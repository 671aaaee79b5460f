"""MCP servers' tools driven through real turns: the demo LLM server's model calls them (a message
naming a tool makes it call that tool), over a real Redis, with the servers as real child
processes (stdio) or a real HTTP server. What a user sees: the tool block's name, status and
output, and the answer quoting the result."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime.agent import collect, final_text
from runtime.core.events import ToolCallFinished, TurnEvent, TurnFinished
from runtime.core.procs import pid_alive
from runtime.host.runtime import Runtime
from runtime.resilience.health import HealthStatus
from runtime.tools import tool
from tests.support.mcp import MakeRuntime, notes, time_server

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]


async def turn(rt: Runtime, text: str, conversation: str | None = None, **kwargs: Any) -> list[TurnEvent]:
    conv = conversation or await rt.agent.new_conversation()
    return await collect(rt.agent.run_turn(conv, text, **kwargs))


def finished_tools(events: list[TurnEvent]) -> list[ToolCallFinished]:
    return [e for e in events if isinstance(e, ToolCallFinished)]


def turn_ok(events: list[TurnEvent]) -> bool:
    last = events[-1]
    return isinstance(last, TurnFinished) and not last.failed


async def test_a_stdio_server_tool_answers_a_real_turn(mcp_runtime: MakeRuntime) -> None:
    async with mcp_runtime({"notes": notes()}) as rt:
        # A headless runtime waits for its servers at start: the tools are there for the first turn.
        assert {"echo", "add", "slow", "whoami", "fail"} <= set(rt.tools.names())
        listed = {t.name: t for t in rt.list_tools()}
        assert listed["echo"].permission == "allow" and listed["echo"].description == "Say the text back."
        events = await turn(rt, 'call echo with {"text": "hello over stdio"}')
        [done] = finished_tools(events)
        assert (done.name, done.status, done.output) == ("echo", "ok", "echo: hello over stdio")
        assert 'echo returned "echo: hello over stdio"' in final_text(events)
        assert turn_ok(events)
        # It has a breaker and a health row like any backend.
        snapshot = rt.breaker_snapshot("mcp:notes")
        assert snapshot is not None and snapshot.state == "closed"
        report = await rt.check_health()
        assert report.checks["mcp:notes"].status == HealthStatus.HEALTHY
        assert report.checks["mcp:notes"].details["pid"] == rt.mcp.servers["notes"].pid  # type: ignore[union-attr]


async def test_a_streamable_http_server_tool_answers_a_real_turn(mcp_runtime: MakeRuntime, http_notes: str) -> None:
    async with mcp_runtime({"remote": {"url": http_notes, "permission": "allow"}}) as rt:
        events = await turn(rt, 'call add with {"a": 2, "b": 40}')
        [done] = finished_tools(events)
        assert (done.name, done.status, done.output) == ("add", "ok", "42")
        assert 'add returned "42"' in final_text(events)
        [status] = rt.mcp.statuses()  # type: ignore[union-attr]
        assert (status.transport, status.state, status.pid) == ("http", "running", None)


async def test_mcp_server_time_from_pypi_answers_a_real_turn(mcp_runtime: MakeRuntime) -> None:
    async with mcp_runtime({"time": time_server()}) as rt:
        assert {"get_current_time", "convert_time"} <= set(rt.tools.names())
        events = await turn(rt, 'call get_current_time with {"timezone": "Europe/Lisbon"}')
        [done] = finished_tools(events)
        assert done.status == "ok"
        answer = json.loads(done.output)
        assert answer["timezone"] == "Europe/Lisbon" and answer["datetime"][:2] == "20"
        # The server's own error for a bad timezone is an error the model reads, not a crashed turn.
        events = await turn(rt, 'call get_current_time with {"timezone": "Mars/Olympus_Mons"}')
        [done] = finished_tools(events)
        assert done.status == "error" and "Mars/Olympus_Mons" in done.output
        assert turn_ok(events) and "get_current_time returned" in final_text(events)
        # An isError result is not the server's outage: its breaker did not count it.
        snapshot = rt.breaker_snapshot("mcp:time")
        assert snapshot is not None and snapshot.failure_count == 0


async def test_arguments_are_checked_against_the_servers_schema_before_the_call(mcp_runtime: MakeRuntime) -> None:
    async with mcp_runtime({"notes": notes()}) as rt:
        events = await turn(rt, 'call add with {"a": "two", "b": 3}')
        [done] = finished_tools(events)
        assert done.status == "invalid" and "'two' is not of type 'integer'" in done.output


async def test_server_and_tool_permissions_are_asked_like_plugin_tools(mcp_runtime: MakeRuntime) -> None:
    asked: list[str] = []

    async def ask(name: str, arguments: dict[str, Any]) -> str:
        asked.append(name)
        return "deny"

    servers = {"notes": notes(permission="ask", permissions={"whoami": "allow", "fail": "deny"})}
    async with mcp_runtime(servers) as rt:
        assert {t.name: t.permission for t in rt.list_tools()}["echo"] == "ask"
        events = await turn(rt, 'call echo with {"text": "may I?"}', ask_permission=ask)
        assert asked == ["echo"] and finished_tools(events)[0].status == "denied"
        events = await turn(rt, "call whoami", ask_permission=ask)
        assert asked == ["echo"] and finished_tools(events)[0].status == "ok"
        events = await turn(rt, "call fail", ask_permission=ask)
        assert asked == ["echo"] and finished_tools(events)[0].status == "denied"


async def test_a_name_taken_by_a_plugin_tool_is_qualified_by_the_server_name(mcp_runtime: MakeRuntime) -> None:
    rt = mcp_runtime({"notes": notes()})

    @tool(name="echo")
    def plugin_echo(text: str) -> str:
        """The plugin's echo."""
        return f"plugin: {text}"

    rt.tools.register(plugin_echo, plugin="test")
    async with rt:
        assert "notes__echo" in rt.tools.names() and rt.mcp.servers["notes"].tools["echo"] == "notes__echo"  # type: ignore[union-attr]
        events = await turn(rt, 'call notes__echo with {"text": "which one?"}')
        assert finished_tools(events)[0].output == "echo: which one?"
        events = await turn(rt, 'call echo with {"text": "which one?"}')
        assert finished_tools(events)[0].output == "plugin: which one?"


async def test_stopping_the_runtime_stops_every_stdio_server(mcp_runtime: MakeRuntime) -> None:
    rt = mcp_runtime({"a": notes(), "b": time_server(), "off": notes(enabled=False)})
    async with rt:
        pids = [s.pid for s in rt.mcp.statuses() if s.name != "off"]  # type: ignore[union-attr]
        assert all(pid is not None and pid_alive(pid) for pid in pids)
        assert {s.name: s.state for s in rt.mcp.statuses()} == {"a": "running", "b": "running", "off": "disabled"}  # type: ignore[union-attr]
    assert not any(pid_alive(pid) for pid in pids if pid is not None)
    assert "echo" not in rt.tools.names()

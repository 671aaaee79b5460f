"""MCP servers that crash, hang or lie, mid-conversation: the turn always ends with an answer, the
server's breaker and Health row say what happened, a crashed stdio server comes back by itself,
and no server process outlives Holdfast (not even a Holdfast that was SIGKILLed)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.agent import collect, final_text
from runtime.core.events import BackendStatus, Event, ToolCallFinished, ToolCallStarted, TurnEvent, TurnFinished
from runtime.core.procs import pid_alive
from runtime.host.runtime import Runtime
from runtime.resilience.health import HealthStatus
from tests.support.mcp import LIAR, MakeRuntime, liar, notes
from tests.support.polling import wait_for, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]


async def turn(rt: Runtime, text: str, conversation: str | None = None) -> list[TurnEvent]:
    conv = conversation or await rt.agent.new_conversation()
    return await collect(rt.agent.run_turn(conv, text))


def the_tool(events: list[TurnEvent]) -> ToolCallFinished:
    [done] = [e for e in events if isinstance(e, ToolCallFinished)]
    return done


def answered(events: list[TurnEvent]) -> bool:
    last = events[-1]
    return isinstance(last, TurnFinished) and not last.failed and bool(final_text(events))


def server_pid(rt: Runtime, name: str) -> int:
    assert rt.mcp is not None
    pid = rt.mcp.servers[name].pid
    assert pid is not None
    return pid


async def test_a_crashed_stdio_server_is_restarted_mid_conversation(mcp_runtime: MakeRuntime) -> None:
    rt = mcp_runtime({"notes": notes()})
    statuses: list[BackendStatus] = []

    def record(event: Event) -> None:
        if isinstance(event, BackendStatus) and event.name == "mcp:notes":
            statuses.append(event)

    rt.subscribe(record)
    async with rt:
        conv = await rt.agent.new_conversation()
        first = the_tool(await turn(rt, "call whoami", conv))
        old = server_pid(rt, "notes")
        assert first.output == f"pid {old}"
        assert rt.chaos.kill_mcp("notes") == old  # what /chaos kill mcp notes does
        await wait_for(lambda: not pid_alive(old), what="the killed server to be gone")
        # The next turn's call waits for the restart (within the call's timeout) and succeeds.
        events = await turn(rt, "call whoami", conv)
        new = server_pid(rt, "notes")
        assert new != old and the_tool(events).output == f"pid {new}" and answered(events)
        assert rt.mcp is not None and rt.mcp.servers["notes"].restarts == 1
        stored = await rt.store.read_tail(conv, 20)
        assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"] * 2
    # The Health panel saw it: running (old pid), down, running again (new pid), stopped.
    assert [e.pid for e in statuses if e.status == "running"] == [old, new]
    assert "failed" in [e.status for e in statuses] and statuses[-1].status == "stopped"


async def test_a_server_killed_during_a_call_gives_the_model_an_error(mcp_runtime: MakeRuntime) -> None:
    async with mcp_runtime({"notes": notes(timeout=20)}) as rt:
        old = server_pid(rt, "notes")
        conv = await rt.agent.new_conversation()
        started = asyncio.Event()

        async def run() -> list[TurnEvent]:
            events = []
            async for event in rt.agent.run_turn(conv, 'call slow with {"seconds": 15}'):
                events.append(event)
                if isinstance(event, ToolCallStarted):
                    started.set()
            return events

        task = asyncio.create_task(run())
        await asyncio.wait_for(started.wait(), 20)
        assert rt.chaos.kill_mcp("notes") == old
        events = await asyncio.wait_for(task, 20)
        done = the_tool(events)
        assert done.status == "error" and "closed the connection during slow" in done.output
        assert answered(events) and "slow returned" in final_text(events)
        await wait_for(lambda: rt.mcp is not None and rt.mcp.servers["notes"].state == "running", what="restart")
        assert the_tool(await turn(rt, 'call echo with {"text": "back"}', conv)).output == "echo: back"


async def test_a_hanging_tool_times_out_and_counts_against_the_servers_breaker(mcp_runtime: MakeRuntime) -> None:
    async with mcp_runtime({"notes": notes(timeout=1.0)}) as rt:
        began = time.monotonic()
        events = await turn(rt, 'call slow with {"seconds": 60}')
        took = time.monotonic() - began
        done = the_tool(events)
        assert done.status == "timeout" and "did not answer within 1s" in done.output
        assert answered(events) and took < 10
        snapshot = rt.breaker_snapshot("mcp:notes")
        assert snapshot is not None and snapshot.failure_count == 1 and "1s" in (snapshot.last_error or "")
        # The server still answers other calls.
        assert the_tool(await turn(rt, 'call echo with {"text": "still here"}')).output == "echo: still here"


async def test_an_open_breaker_fails_calls_fast_with_a_message_for_the_model(mcp_runtime: MakeRuntime) -> None:
    async with mcp_runtime({"notes": notes()}) as rt:
        rt.resilience.breakers.get("mcp:notes").force_open("test: server flapping")
        events = await turn(rt, 'call echo with {"text": "anyone?"}')
        done = the_tool(events)
        assert done.status == "unavailable" and "mcp:notes" in done.output and answered(events)


async def test_invalid_schemas_are_skipped_and_reported_and_malformed_replies_are_tool_errors(
    mcp_runtime: MakeRuntime,
) -> None:
    async with mcp_runtime({"liar": liar(timeout=10)}) as rt:
        assert rt.mcp is not None
        [status] = rt.mcp.statuses()
        assert status.state == "running"
        assert set(status.tools) == {"honest", "garbled", "broken_envelope", "chatty"}
        assert "bogus" in status.skipped["bad_schema"] and "not 'object'" in status.skipped["not_object"]
        assert {"mcp:liar/bad_schema", "mcp:liar/not_object"} <= set(rt.plugin_errors)
        assert "bad_schema" not in rt.tools.names()

        assert the_tool(await turn(rt, 'call honest with {"x": "hi"}')).output == "honest: hi"
        # A line of plain text on stdout is dropped; the answer after it still arrives.
        assert the_tool(await turn(rt, 'call chatty with {"x": "hi"}')).output == "chatty: hi"
        garbled = await turn(rt, 'call garbled with {"x": "hi"}')
        assert the_tool(garbled).status == "error" and "malformed result" in the_tool(garbled).output
        assert answered(garbled)
        began = time.monotonic()
        broken = await turn(rt, 'call broken_envelope with {"x": "hi"}')
        assert the_tool(broken).status == "error" and "malformed reply" in the_tool(broken).output
        assert answered(broken) and time.monotonic() - began < 5  # answered at once, not at the 10 s timeout
        snapshot = rt.breaker_snapshot("mcp:liar")
        assert snapshot is not None and snapshot.failure_count == 2  # a lying server is not healthy
        assert rt.mcp.servers["liar"].state == "running"


async def test_a_server_that_cannot_start_is_reported_and_the_runtime_runs_without_it(
    mcp_runtime: MakeRuntime, tmp_path: Path
) -> None:
    servers: dict[str, Any] = {"ghost": {"command": str(tmp_path / "no-such-server")}, "notes": notes()}
    async with mcp_runtime(servers) as rt:
        assert rt.mcp is not None
        states = {s.name: s.state for s in rt.mcp.statuses()}
        assert states == {"ghost": "failed", "notes": "running"}
        assert "could not be started" in rt.plugin_errors["mcp:ghost"]
        report = await rt.check_health()
        assert report.checks["mcp:ghost"].status == HealthStatus.UNHEALTHY
        assert the_tool(await turn(rt, 'call echo with {"text": "fine"}')).output == "echo: fine"


_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from runtime.config import McpConfig
    from runtime.resilience import Resilience
    from runtime.tools import ToolRegistry
    from runtime.tools.mcp import McpManager

    async def main():
        config = McpConfig(servers={"liar": {"command": sys.executable, "args": [sys.argv[1]]}})
        manager = McpManager(config, ToolRegistry(), Resilience())
        manager.start()
        await manager.wait_ready()
        print(manager.servers["liar"].pid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def test_a_sigkilled_holdfast_leaves_no_stdio_server_behind(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(LIAR)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        server = int(json.loads(line))
        assert pid_alive(server)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        # The kernel's parent-death signal ends the server with its parent.
        wait_until(lambda: not pid_alive(server), timeout=10, what=f"MCP server pid {server} to die with its parent")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)

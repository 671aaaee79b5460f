"""What a new user's MCP servers did to Holdfast in the break-test of issue 20, each now handled:
schemas whose ``$ref`` points nowhere (a traceback ended ``holdfast chat``) or to another document
(never fetched), a tool listed twice, markup and terminal escapes in a description, JSON-RPC error
-32000 (taken for a closed connection: the server was restarted), content MCP does not have,
tool names that depended on which server answered first, an HTTP server that is down (each call
waited its whole timeout), a command installed beside Holdfast's Python but not on PATH, and a
server that ignores SIGTERM and its stdin's end (it outlived a SIGKILLed Holdfast)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.agent import collect, final_text
from runtime.config import Config
from runtime.core.events import ToolCallFinished, TurnEvent, TurnFinished
from runtime.core.procs import free_port, pid_alive
from runtime.host.runtime import Runtime
from runtime.resilience import Resilience
from runtime.tools import ToolRegistry, tool
from runtime.tools.mcp import McpManager
from runtime.tools.mcp.stdio import find_command
from tests.support.mcp import SERVERS, TIME_SERVER, MakeRuntime, notes, start_http_notes, stop
from tests.support.polling import wait_for, wait_until

ODDITIES = SERVERS / "oddities.py"


def oddities(*flags: str, **extra: Any) -> dict[str, Any]:
    """A ``[mcp.servers.NAME]`` entry running the oddities server over stdio (tools allowed)."""
    return {"command": sys.executable, "args": [str(ODDITIES), *flags], "permission": "allow", **extra}


async def turn(rt: Runtime, text: str) -> list[TurnEvent]:
    return await collect(rt.agent.run_turn(await rt.agent.new_conversation(), text))


def the_tool(events: list[TurnEvent]) -> ToolCallFinished:
    [done] = [e for e in events if isinstance(e, ToolCallFinished)]
    return done


def answered(events: list[TurnEvent]) -> bool:
    last = events[-1]
    return isinstance(last, TurnFinished) and not last.failed and bool(final_text(events))


# ---------------------------------------------------------------- what a server lists


@pytest.mark.e2e
@pytest.mark.redis
async def test_broken_schemas_duplicates_and_escapes_in_a_listing(mcp_runtime: MakeRuntime) -> None:
    async with mcp_runtime({"odd": oddities(timeout=10)}) as rt:
        assert rt.mcp is not None
        [status] = rt.mcp.statuses()
        assert status.state == "running"
        # A $ref to nothing, or to another document, is an invalid schema: skipped with why.
        assert "$ref '#/$defs/missing' points to nothing" in status.skipped["dangling_ref"]
        assert "'http://127.0.0.1:9/schema.json' points to nothing" in status.skipped["remote_ref"]
        assert {"dangling_ref", "remote_ref"}.isdisjoint(rt.tools.names())
        assert {"mcp:odd/dangling_ref", "mcp:odd/remote_ref", "mcp:odd/twice"} <= set(rt.plugin_errors)
        # A tool listed twice: the first definition is used, the second reported.
        twice = rt.tools.get("twice")
        assert twice is not None and twice.description == "The first definition."
        assert status.skipped["twice"] == "listed twice by the server; the first definition is used"
        # A description is plain text for /tools, holdfast mcp list and the model.
        loud = rt.tools.get("loud")
        assert loud is not None and loud.description == "[bold red]Loud[/] red tool"
        # The turn goes on: the other tools answer.
        assert the_tool(await turn(rt, 'call honest with {"x": "hi"}')).output.startswith("honest: hi")


def test_a_ref_is_resolved_inside_the_schema_and_never_fetched() -> None:
    from runtime.tools.mcp.tools import InvalidToolSchema, check_input_schema

    local = check_input_schema(
        {"type": "object", "properties": {"x": {"$ref": "#/$defs/word"}}, "$defs": {"word": {"type": "string"}}}
    )
    assert [e.message for e in local.iter_errors({"x": 5})] == ["5 is not of type 'string'"]
    # A remote reference would be downloaded by jsonschema's default registry, on every call.
    with pytest.raises(InvalidToolSchema, match="references to other documents are not fetched"):
        check_input_schema({"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}})
    with pytest.raises(InvalidToolSchema, match="at properties/x/items"):
        check_input_schema({"type": "object", "properties": {"x": {"items": {"$ref": "#/definitions/gone"}}}})


# ---------------------------------------------------------------- what a server answers


@pytest.mark.e2e
@pytest.mark.redis
async def test_a_server_error_is_the_servers_message_and_the_connection_stays(mcp_runtime: MakeRuntime) -> None:
    async with mcp_runtime({"odd": oddities(timeout=10)}) as rt:
        assert rt.mcp is not None
        server = rt.mcp.servers["odd"]
        pid = server.pid
        events = await turn(rt, 'call server_error with {"x": "hi"}')
        done = the_tool(events)
        assert done.status == "error" and answered(events)
        assert "answered server_error with error -32000: the database is down" in done.output
        # -32000 from a server is an application error, not the SDK's closed connection.
        assert server.state == "running" and server.pid == pid and server.restarts == 0
        assert the_tool(await turn(rt, 'call honest with {"x": "after"}')).output == f"honest: after (pid {pid})"


@pytest.mark.e2e
@pytest.mark.redis
@pytest.mark.parametrize(
    ("tool_name", "why"),
    [
        ("video", "malformed result: content.0 matches none of the shapes MCP allows there"),
        ("null_result", "malformed reply from MCP server odd"),
    ],
)
async def test_content_mcp_does_not_have_is_a_one_line_error(
    mcp_runtime: MakeRuntime, tool_name: str, why: str
) -> None:
    async with mcp_runtime({"odd": oddities(timeout=10)}) as rt:
        events = await turn(rt, f'call {tool_name} with {{"x": "hi"}}')
        done = the_tool(events)
        assert done.status == "error" and why in done.output and "\n" not in done.output
        assert "validation errors for" not in done.output and answered(events)


# ---------------------------------------------------------------- names


async def _names(servers: dict[str, Any], plugin: bool = False, order: tuple[str, ...] = ()) -> set[str]:
    """The registered names once ``servers`` are up; ``order`` starts those servers one after
    the other (each up before the next starts)."""
    registry = ToolRegistry()
    if plugin:

        @tool(name="echo")
        def native_echo(text: str) -> str:
            """A plugin's echo."""
            return text

        registry.register(native_echo, plugin="native")
    manager = McpManager(Config(mcp={"servers": servers}).mcp, registry, Resilience())
    try:
        if order:
            manager.started = True
            for name in order:
                manager.servers[name].start()
                assert await manager.servers[name].wait_settled(30)
        else:
            manager.start()
            assert await manager.wait_ready(30) == []
        return {name for name in registry.names() if "echo" in name or "whoami" in name}
    finally:
        manager.started = True
        await manager.stop()


async def test_a_tool_two_servers_offer_is_qualified_on_both_whichever_came_first() -> None:
    both = {"a": notes(), "b": notes()}
    expected = {"a__echo", "b__echo", "a__whoami", "b__whoami"}
    assert await _names(both, order=("a", "b")) == expected
    assert await _names(both, order=("b", "a")) == expected
    assert await _names(both) == expected
    # One server alone keeps the plain names; a plugin's name is never taken.
    assert await _names({"a": notes()}) == {"echo", "whoami"}
    assert await _names({"a": notes()}, plugin=True) == {"echo", "a__echo", "whoami"}


# ---------------------------------------------------------------- servers that are down


@pytest.mark.e2e
@pytest.mark.redis
async def test_a_call_to_an_http_server_that_went_down_fails_at_once(mcp_runtime: MakeRuntime) -> None:
    proc, url = start_http_notes()
    try:
        async with mcp_runtime({"web": {"url": url, "permission": "allow", "timeout": 20}}) as rt:
            assert rt.mcp is not None
            server = rt.mcp.servers["web"]
            assert the_tool(await turn(rt, 'call echo with {"text": "up"}')).output == "echo: up"
            stop(proc)
            # The first call after the death may wait for one reconnection attempt, no longer.
            for attempt in range(2):
                began = time.monotonic()
                events = await turn(rt, 'call echo with {"text": "anyone?"}')
                took = time.monotonic() - began
                done = the_tool(events)
                assert done.status in ("error", "unavailable"), done.output
                assert took < 8, f"call {attempt} took {took:.1f}s of its 20 s timeout"
                assert answered(events)
            await wait_for(lambda: server.failed_attempts >= 1, what="a failed reconnection")
            assert f"cannot reach {url}" in server.last_error
    finally:
        stop(proc)


@pytest.mark.e2e
@pytest.mark.redis
async def test_a_call_does_not_wait_out_the_restart_backoff(mcp_runtime: MakeRuntime) -> None:
    port = free_port()
    proc = start_http_notes(port)[0]
    # A long backoff, as a server that failed a few times has: a call must not wait it out.
    settings = {"restart_delay": 20.0, "restart_max_delay": 60.0}
    entry = {"url": f"http://127.0.0.1:{port}/mcp", "permission": "allow", "timeout": 25}
    try:
        async with mcp_runtime({"web": entry}, mcp=settings) as rt:
            assert the_tool(await turn(rt, 'call echo with {"text": "up"}')).output == "echo: up"
            stop(proc)
            began = time.monotonic()
            down = the_tool(await turn(rt, 'call echo with {"text": "down?"}'))
            assert down.status in ("error", "unavailable") and time.monotonic() - began < 8, down.output
            proc = start_http_notes(port)[0]
            # Back: the next call reconnects at once instead of 20 s later.
            began = time.monotonic()
            back = the_tool(await turn(rt, 'call echo with {"text": "back"}'))
            assert back.output == "echo: back" and time.monotonic() - began < 8
    finally:
        stop(proc)


def test_a_command_beside_holdfasts_python_is_found_without_path() -> None:
    # pip put mcp-server-time beside this interpreter; `make run` never activates the venv.
    assert find_command("mcp-server-time", "/nonexistent") == str(TIME_SERVER)
    assert find_command("no-such-mcp-server-anywhere", "/nonexistent") is None
    assert find_command("./relative/server", "/nonexistent") == "./relative/server"


@pytest.mark.e2e
@pytest.mark.redis
async def test_a_missing_command_says_what_to_do(mcp_runtime: MakeRuntime) -> None:
    async with mcp_runtime({"ghost": {"command": "no-such-mcp-server-anywhere"}, "notes": notes()}) as rt:
        reason = rt.plugin_errors["mcp:ghost"]
        assert reason.startswith("MCP server ghost: command 'no-such-mcp-server-anywhere' not found on PATH")
        assert "give its full path as [mcp.servers.ghost].command" in reason


# ---------------------------------------------------------------- no orphans


_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from runtime.config import McpConfig
    from runtime.resilience import Resilience
    from runtime.tools import ToolRegistry
    from runtime.tools.mcp import McpManager

    async def main():
        entry = {"command": sys.executable, "args": [sys.argv[1], "--stubborn", "--pidfile", sys.argv[2]]}
        config = McpConfig(servers={"odd": entry}, stop_timeout=0.5)
        manager = McpManager(config, ToolRegistry(), Resilience())
        manager.start()
        await manager.wait_ready()
        print(manager.servers["odd"].pid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_a_sigkilled_holdfast_leaves_no_stubborn_server_nor_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(ODDITIES), str(pidfile)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    server = grandchild = 0
    try:
        assert holder.stdout is not None
        server = int(json.loads(holder.stdout.readline()))
        wait_until(lambda: pidfile.is_file() and pidfile.read_text() != "", what="the grandchild's pid file")
        grandchild = int(pidfile.read_text())
        assert pid_alive(server) and pid_alive(grandchild)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        # Both ignore SIGTERM and their stdin's end: only the watchdog's SIGKILL ends them.
        wait_until(lambda: not pid_alive(server), timeout=10, what=f"the stubborn server pid {server} to die")
        wait_until(lambda: not pid_alive(grandchild), timeout=10, what=f"its grandchild pid {grandchild} to die")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        for pid in (server, grandchild):
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


async def test_an_orderly_stop_ends_a_stubborn_server_its_children_and_the_watchdog(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    config = Config(mcp={"servers": {"odd": oddities("--stubborn", "--pidfile", str(pidfile))}, "stop_timeout": 0.5})
    manager = McpManager(config.mcp, ToolRegistry(), Resilience())
    manager.start()
    assert await manager.wait_ready(30) == []
    process = manager.servers["odd"]._process
    assert process is not None and process._watchdog is not None
    watchdog, server = process._watchdog.pid, manager.servers["odd"].pid
    grandchild = int(pidfile.read_text())
    began = time.monotonic()
    await manager.stop()
    assert time.monotonic() - began < 5  # stdin closed, 0.5 s, SIGTERM ignored, 0.5 s, SIGKILL
    for pid in (server, grandchild, watchdog):
        await asyncio.to_thread(wait_until, lambda p=pid: not pid_alive(p), timeout=10, what=f"pid {pid} to end")

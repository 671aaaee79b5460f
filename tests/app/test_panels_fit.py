"""The panels fit the 80-column overlay (issue 16, case 13, found by a break-test in tmux).

At 80x24 the panels open over the chat (Ctrl+R) about 31 columns wide. Breaker names used to
fold ("memory:upk/eep", "mcp:weath er") and the fails column was cut ("5 · 1…"); Health rows
wrapped their pid and latency. The app runs unbooted: the panels are given the snapshots the
runtime would hand them, and what is asserted is the text of the rendered panel lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.geometry import Region
from textual.widget import Widget

from app.chat_app import HoldfastApp
from runtime.resilience.breaker import BreakerSnapshot
from tests.support.app import make_config

pytestmark = pytest.mark.ui

NAMES = ("llm", "redis", "memory:upkeep", "embeddings", "mcp:weather", "plugin:notes")


def _snapshot(name: str, state: str = "closed", failures: int = 0, rate: float = 0.0) -> BreakerSnapshot:
    opened = state == "open"
    return BreakerSnapshot(
        name=name,
        state=state,
        failure_count=failures,
        failure_rate=rate,
        calls_in_window=10,
        failures_in_window=round(rate * 10),
        opened_at=0.0 if opened else None,
        seconds_until_half_open=25.0 if opened else None,
        last_error="llm: the LLM endpoint is unreachable (ConnectError)" if state != "closed" else None,
        trips=1 if opened else 0,
        probes_in_flight=0,
        forced=False,
    )


def _lines(widget: Widget) -> list[str]:
    """The text of each line the widget paints (border and padding included), right-stripped."""
    width, height = widget.outer_size
    return [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]


async def _overlay(pilot, app: HoldfastApp) -> None:  # type: ignore[no-untyped-def]
    await pilot.pause()
    await pilot.press("ctrl+r")
    await pilot.pause()
    assert app.panels.display and app.panels.has_class("-overlay")


async def test_breaker_names_fit_on_one_line_in_the_80_column_overlay(data_dir: Path) -> None:
    app = HoldfastApp(make_config(data_dir, "redis://127.0.0.1:1/0"), boot=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _overlay(pilot, app)
        app.breakers_panel.show(
            [
                _snapshot("llm", "open", failures=5, rate=1.0),
                _snapshot("redis"),
                _snapshot("memory:upkeep", "half_open", failures=12, rate=0.75),
                _snapshot("embeddings"),
                _snapshot("mcp:weather", "open", failures=3, rate=0.3),
                _snapshot("plugin:notes"),
            ]
        )
        await pilot.pause()
        lines = _lines(app.breakers_panel)
        print("\n".join(lines))
        for name in NAMES:
            assert [line for line in lines if f" {name} " in f"{line} "], f"{name!r} not whole on a line: {lines}"
        # Every fails figure whole ("5 · 100%"), on the row or the line under it.
        for figure in ("5 · 100%", "12 · 75%", "3 · 30%", "0 · 0%"):
            assert any(figure in line for line in lines), f"{figure!r} cut: {lines}"
        # The last error of each breaker not closed, whole (wrapped, never cut).
        words = " ".join(line.strip("│ ") for line in lines)
        assert words.count("llm: the LLM endpoint is unreachable (ConnectError)") == 3, lines
        assert not [line for line in lines if "…" in line]


async def test_health_rows_keep_pid_and_latency_whole_in_the_80_column_overlay(data_dir: Path) -> None:
    app = HoldfastApp(make_config(data_dir, "redis://127.0.0.1:1/0"), boot=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _overlay(pilot, app)
        health = app.health_panel
        health.set_row("redis", status="healthy", detail="healthy", latency_ms=3.0, pid=1234567)
        health.set_row("llm", status="unhealthy", detail="the LLM endpoint is unreachable", latency_ms=2.0, pid=98765)
        health.set_row("memory", status="healthy", detail="healthy", latency_ms=12.0)
        health.set_row("embeddings", status="healthy", detail="healthy", latency_ms=1450.0)
        health.set_row("plugins", status="healthy", detail="healthy", latency_ms=0.0)
        await pilot.pause()
        lines = _lines(health)
        print("\n".join(lines))
        for name, latency in (("redis", "3ms"), ("llm", "2ms"), ("memory", "12ms"), ("embeddings", "1450ms")):
            row = next(line for line in lines if f" {name} " in line)
            assert row.endswith(f" {latency} │"), f"{name}: latency not whole on its row: {lines}"
        for pid in ("pid 1234567", "pid 98765"):
            assert [line for line in lines if pid in line], f"{pid!r} cut: {lines}"
        assert [line for line in lines if "the LLM endpoint is" in line]
        assert not [line for line in lines if "…" in line]


def test_rows_narrower_than_a_full_line_move_figures_to_a_second_line() -> None:
    """Narrower still (a 24-column panel): the Health pid moves to the row's second line; a
    breaker whose name and state do not fit side by side shows its name alone, then its state and
    fails, whole; a name longer than the whole width is the only thing cut."""
    from rich.console import Console

    from app.widgets.breakers_panel import BreakerRows
    from app.widgets.health_panel import HealthRows

    console = Console(width=24, record=True, color_system=None)
    console.print(HealthRows((("redis", "healthy", "healthy", 3.0, 1234567),)))
    console.print(BreakerRows((("memory:upkeep", "half_open", None, False, "12 · 75%", ""),)))
    console.print(BreakerRows((("mcp:a-very-long-server-name", "closed", None, False, "0 · 0%", ""),)))
    console.print(
        BreakerRows((("llm", "closed", None, False, "0 · 0%", ""), ("mcp:x", "open", 12, False, "3 · 30%", "boom")))
    )
    assert [line.rstrip() for line in console.export_text().splitlines()] == [
        "● redis              3ms",
        "  pid 1234567",
        "memory:upkeep",
        "  ◐ HALF-OPEN  12 · 75%",
        "mcp:a-very-long-server-…",
        "  ● CLOSED  0 · 0%",
        "llm   ● CLOSED    0 · 0%",
        "mcp:x ● OPEN 12s 3 · 30%",
        "  boom",
    ]

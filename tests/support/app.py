"""Helpers for the app's Pilot tests: a config on the real Redis fixture (or the app's own
embedded redis-server), the embedded demo LLM server, lexical embeddings (no model load), and
resilience settings short enough that breakers trip and heal within a test; plus the two things
every Pilot test does (wait for the app to be ready, type a message and press Enter).

Waiting for a condition is :func:`tests.support.polling.wait_for` with ``pause=pilot.pause``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from app.chat_app import HoldfastApp
from runtime.config import LoadedConfig, load_config

#: Pilot tests boot a whole runtime on a shared 2-core machine: generous, but bounded (seconds).
DEADLINE = 30.0

#: Resilience overrides (dotted config keys) that make breakers trip after one failure and heal
#: within a fraction of a second.
FAST_LLM: dict[str, Any] = {
    "resilience.llm.max_attempts": 1,
    "resilience.llm.initial_delay": 0.01,
    "resilience.llm.failure_threshold": 1,
    "resilience.llm.recovery_timeout": 0.3,
    "resilience.llm.success_threshold": 1,
    "resilience.llm.timeout": 5.0,
    "resilience.llm.deadline": 10.0,
    "resilience.redis.max_attempts": 1,
    "resilience.redis.recovery_timeout": 0.3,
    "resilience.redis.timeout": 1.0,
    "resilience.redis.deadline": 2.0,
}


def make_config(data_dir: Path, redis_url: str = "", **overrides: Any) -> LoadedConfig:
    """A loaded config for one Pilot test: data in ``data_dir``, Redis at ``redis_url`` (empty:
    the app starts its own embedded redis-server), the demo LLM, lexical embeddings, a fast
    health interval and :data:`FAST_LLM`; ``overrides`` (dotted keys) win over all of those.
    Ignores the environment and any user config file."""
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "redis.url": redis_url or None,
        "memory.embedding_provider": "lexical",
        "llm.demo_tokens_per_second": 2000.0,
        "ui.health_interval": 0.5,
        "agent.user": "tester",
        **FAST_LLM,
    }
    values.update(overrides)
    return load_config(environ={}, overrides=values, user_config=Path("/nonexistent"))


def _holdfast(pilot: Pilot[Any]) -> HoldfastApp:
    app = pilot.app
    assert isinstance(app, HoldfastApp), f"a Holdfast Pilot helper was given a {type(app).__name__}"
    return app


async def ready(pilot: Pilot[Any]) -> None:
    """Wait (at most :data:`DEADLINE` seconds) until the Holdfast app has booted its runtime.
    Raises ``TimeoutError`` if it does not."""
    await asyncio.wait_for(_holdfast(pilot).ready.wait(), DEADLINE)


async def send(pilot: Pilot[Any], text: str) -> None:
    """Type ``text`` into the Holdfast composer the way a person pastes it, then press Enter."""
    _holdfast(pilot).composer.text = text
    await pilot.press("enter")


async def palette_pick(pilot: Pilot[Any], typed: str, expect: str) -> object:
    """Run a command palette command as a person does: open the palette (Ctrl+P) unless one is
    open, type ``typed``, wait (at most :data:`DEADLINE` s) until the highlighted command's text
    holds ``expect`` (case ignored), press Enter. Returns the palette screen used (a command that
    opens another palette, like Textual's Theme, is told apart by it). Raises ``WaitTimeout`` if
    the command never shows."""
    from textual.command import CommandList, CommandPalette

    from tests.support.polling import wait_for

    app = pilot.app
    if not isinstance(app.screen, CommandPalette):
        await pilot.press("ctrl+p")
        await wait_for(lambda: isinstance(app.screen, CommandPalette), DEADLINE, "the palette", pause=pilot.pause)
    await pilot.press(*typed)

    def highlighted() -> str:
        if not isinstance(app.screen, CommandPalette):
            return ""
        options = app.screen.query_one(CommandList)
        if options.highlighted is None or not options.option_count:
            return ""
        return str(options.get_option_at_index(options.highlighted).prompt)

    await wait_for(
        lambda: expect.lower() in highlighted().lower(), DEADLINE, f"the command {expect!r}", pause=pilot.pause
    )
    await pilot.press("enter")

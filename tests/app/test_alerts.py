"""Alerts in the TUI: the same alerts the webhooks get, one per key per window.

The LLM is killed from the composer (``/chaos kill llm``, a real SIGKILL of the demo server); a
message trips the llm breaker. The breaker alert is a note on the LLM's sticky line above the
composer ("alert: 1 webhook configured"), not a toast repeating that line over the composer
(issue 16 break-test); it stays one however many times the breaker re-opens (each half-open
probe of a dead server fails), the webhook receiver started by the test gets exactly one
``breaker_open:llm`` alert although only the TUI runs, and bringing the server back notes the
recovery on the line and sends it. An alert no line shows (the journal backlog) is one toast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.chat_app import HoldfastApp, RuntimeEvent
from runtime.core.events import AlertRaised
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for
from tests.support.webhooks import Receiver

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Toasts:
    """Every toast the app showed, by identity (a toast leaves the screen after its timeout, so
    each poll adds what is on screen now)."""

    def __init__(self, app: HoldfastApp) -> None:
        self.app = app
        self.seen: dict[str, tuple[str, str]] = {}

    def poll(self) -> list[tuple[str, str]]:
        for note in list(self.app._notifications):
            self.seen.setdefault(note.identity, (note.title, str(note.message)))
        return list(self.seen.values())

    def matching(self, title_start: str, text: str) -> list[str]:
        return [m for t, m in self.poll() if t.startswith(title_start) and text in m]


def _line(app: HoldfastApp, name: str) -> str:
    """What backend ``name``'s sticky line shows ("" if it has none)."""
    line = app.backend_lines.lines.get(name)
    return str(line.render()) if line is not None else ""


async def test_a_breaker_alert_is_a_note_on_its_line_and_the_webhook_gets_it_once(
    data_dir: Path, redis_url: str, receiver: Receiver
) -> None:
    config = make_config(data_dir, redis_url, **{"alerts.webhooks": [receiver.url], "alerts.dedup_window": 300.0})
    app = HoldfastApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        toasts = Toasts(app)
        await send(pilot, "/chaos kill llm")
        await wait_for(lambda: not app.rt.backends()["llm"].running, what="demo LLM killed", pause=pilot.pause)
        await send(pilot, "are you there?")
        await wait_for(
            lambda: "alert: 1 webhook configured" in _line(app, "llm"), what="the alert on the line", pause=pilot.pause
        )
        assert "llm breaker OPEN" in _line(app, "llm")
        await wait_for(lambda: receiver.keys() == ["breaker_open:llm"], what="the webhook alert", pause=pilot.pause)
        # More failures: the breaker half-opens and re-opens (recovery_timeout 0.3 s) with no new alert.
        await wait_for(lambda: not app.turn_running, what="the first turn ends", pause=pilot.pause)
        await send(pilot, "still there?")
        await wait_for(lambda: not app.turn_running, what="the second turn ends", pause=pilot.pause)
        await wait_for(lambda: app.breakers_panel.state_of("llm") == "open", what="breaker open", pause=pilot.pause)
        assert receiver.keys() == ["breaker_open:llm"]
        assert list(app.backend_lines.lines) == ["llm"]  # one line, rewritten in place

        await send(pilot, "/chaos start llm")
        await wait_for(
            lambda: "recovery: 1 webhook configured" in _line(app, "llm"),
            what="the recovery on the line",
            pause=pilot.pause,
        )
        await wait_for(
            lambda: receiver.keys() == ["breaker_open:llm", "recovered:breaker_open:llm"],
            what="the webhook recovery",
            pause=pilot.pause,
        )
        assert "recovered" in _line(app, "llm")
        # The line said it all: no toast repeated it over the composer.
        assert [m for _, m in toasts.poll() if "breaker llm" in m] == []


async def test_an_alert_with_no_sticky_line_is_one_toast(data_dir: Path) -> None:
    app = HoldfastApp(make_config(data_dir, "redis://127.0.0.1:1/0"), boot=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        toasts = Toasts(app)
        backlog = AlertRaised(
            category="journal_backlog",
            key="journal_backlog",
            severity="warning",
            message="120 conversation writes wait in the local journal (Redis unreachable)",
            service="redis",
            targets=2,
        )
        app.post_message(RuntimeEvent(backlog))
        await wait_for(lambda: toasts.poll(), what="the toast", pause=pilot.pause)
        assert toasts.poll() == [
            (
                "Alert: warning",
                "120 conversation writes wait in the local journal (Redis unreachable) (2 webhooks configured)",
            )
        ]
        assert app.backend_lines.lines == {}

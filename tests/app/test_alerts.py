"""Alerts in the TUI: the same alerts the webhooks get, shown as one toast per key per window.

The LLM is killed from the composer (``/chaos kill llm``, a real SIGKILL of the demo server); a
message trips the llm breaker. The user sees exactly one alert toast however many times the
breaker re-opens (each half-open probe of a dead server fails), the webhook receiver started by
the test gets exactly one ``breaker_open:llm`` alert although only the TUI runs, and bringing the
server back shows one "Recovered" toast and sends the recovery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
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


async def test_a_breaker_opening_shows_one_alert_toast_and_the_webhook_gets_it_once(
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
            lambda: toasts.matching("Alert: critical", "circuit breaker llm opened"),
            what="the alert toast",
            pause=pilot.pause,
        )
        assert toasts.matching("Alert: critical", "(1 webhook configured)")
        await wait_for(lambda: receiver.keys() == ["breaker_open:llm"], what="the webhook alert", pause=pilot.pause)
        # More failures: the breaker half-opens and re-opens (recovery_timeout 0.3 s) with no new alert.
        await wait_for(lambda: not app.turn_running, what="the first turn ends", pause=pilot.pause)
        await send(pilot, "still there?")
        await wait_for(lambda: not app.turn_running, what="the second turn ends", pause=pilot.pause)
        await wait_for(lambda: app.breakers_panel.state_of("llm") == "open", what="breaker open", pause=pilot.pause)
        assert len(toasts.matching("Alert", "circuit breaker llm opened")) == 1
        assert receiver.keys() == ["breaker_open:llm"]

        await send(pilot, "/chaos start llm")
        await wait_for(
            lambda: toasts.matching("Recovered", "circuit breaker llm closed again"),
            what="the recovery toast",
            pause=pilot.pause,
        )
        await wait_for(
            lambda: receiver.keys() == ["breaker_open:llm", "recovered:breaker_open:llm"],
            what="the webhook recovery",
            pause=pilot.pause,
        )
        assert len(toasts.matching("Alert", "circuit breaker llm opened")) == 1
        assert len(toasts.matching("Recovered", "llm")) == 1

"""The alert policy of every face (runtime.host.alerts): what fires, once per key per window,
recoveries, a flapping backend, and the AlertRaised events faces show. Fed real breaker events on
a real EventBus; time is a FakeClock. No webhook here (tests/serve and tests/app send them)."""

from __future__ import annotations

import asyncio
import threading

from runtime.config import AlertsConfig
from runtime.core.events import AlertRaised, BreakerStateChanged, EventBus
from runtime.host.alerts import Alert, Alerts
from runtime.resilience import Resilience
from tests.support.clock import FakeClock
from tests.support.polling import wait_for


class Setup:
    """Alerts on their own bus, and every AlertRaised published on it."""

    def __init__(self, clock: FakeClock, **config: object) -> None:
        self.bus = EventBus()
        self.raised: list[AlertRaised] = []
        self.bus.add_listener(lambda e: self.raised.append(e) if isinstance(e, AlertRaised) else None)
        settings = AlertsConfig(**{"dedup_window": 60.0, **config})
        self.alerts = Alerts(settings, Resilience().guard, bus=self.bus, clock=clock)

    def breaker(self, name: str, old: str, new: str, reason: str = "") -> None:
        """A breaker transition on the bus, as a CircuitBreaker publishes it."""
        self.bus.publish(BreakerStateChanged(name=name, old_state=old, new_state=new, reason=reason))


async def test_one_alert_per_key_per_window_and_an_event_for_each() -> None:
    clock = FakeClock()
    setup = Setup(clock)
    alerts, raised = setup.alerts, setup.raised
    alerts.start()
    setup.breaker("llm", "closed", "open", "connection refused")
    setup.breaker("llm", "half_open", "open", "probe failed")
    setup.breaker("memory", "closed", "open")
    assert [(e.category, e.key, e.severity) for e in raised] == [
        ("breaker_open", "breaker_open:llm", "critical"),
        ("breaker_open", "breaker_open:memory", "critical"),
    ]
    assert raised[0].message == "circuit breaker llm opened: connection refused"
    assert raised[0].targets == 0
    clock.advance(61)
    setup.breaker("llm", "half_open", "open", "probe failed")
    assert [e.key for e in raised] == ["breaker_open:llm", "breaker_open:memory", "breaker_open:llm"]
    await alerts.aclose()


async def test_a_recovery_only_follows_an_alert_and_a_flapping_backend_is_bounded() -> None:
    clock = FakeClock()
    setup = Setup(clock)
    alerts, raised = setup.alerts, setup.raised
    alerts.start()
    setup.breaker("redis", "open", "closed")  # never alerted: no recovery
    assert raised == []
    for _ in range(5):  # flapping within one window
        setup.breaker("llm", "closed", "open")
        clock.advance(1)
        setup.breaker("llm", "half_open", "closed")
        clock.advance(1)
    assert [e.key for e in raised] == ["breaker_open:llm", "recovered:breaker_open:llm", "breaker_open:llm"]
    assert raised[1].severity == "info" and raised[1].message == "circuit breaker llm closed again"
    await alerts.aclose()


async def test_webhook_breakers_and_a_disabled_section_never_alert() -> None:
    setup = Setup(FakeClock())
    alerts, raised = setup.alerts, setup.raised
    alerts.start()
    setup.breaker("webhook:hooks.example", "closed", "open")
    assert raised == []
    await alerts.aclose()
    off_setup = Setup(FakeClock(), enabled=False)
    off, raised_off = off_setup.alerts, off_setup.raised
    off.start()
    assert off.fire(Alert("server_error", "server_error:x", "critical", "boom")) is False
    assert raised_off == []
    await off.aclose()


async def test_the_journal_alerts_past_its_threshold_and_recovers_when_empty() -> None:
    setup = Setup(FakeClock(), journal_threshold=10)
    alerts, raised = setup.alerts, setup.raised
    alerts.check_journal(9)
    alerts.check_journal(10)
    alerts.check_journal(12)
    alerts.check_journal(3)
    alerts.check_journal(0)
    assert [e.key for e in raised] == ["journal_backlog", "recovered:journal_backlog"]
    assert raised[0].message == "10 conversation writes wait in the local journal (Redis unreachable)"


async def test_the_journal_watch_reads_the_depth_every_check_interval() -> None:
    setup = Setup(FakeClock(), journal_threshold=5, check_interval=0.01)
    alerts, raised = setup.alerts, setup.raised
    depth = [0]
    alerts.start(lambda: depth[0])
    depth[0] = 7
    await wait_for(lambda: [e.key for e in raised] == ["journal_backlog"], 5, "the backlog alert")
    depth[0] = 0
    await wait_for(lambda: len(raised) == 2, 5, "the recovery")
    await alerts.aclose()


async def test_a_breaker_event_from_another_thread_is_handled_on_the_loop() -> None:
    setup = Setup(FakeClock())
    alerts, raised = setup.alerts, setup.raised
    alerts.start()
    loop_thread = threading.get_ident()
    threads: list[int] = []
    setup.bus.add_listener(lambda e: threads.append(threading.get_ident()) if isinstance(e, AlertRaised) else None)
    await asyncio.to_thread(setup.breaker, "embeddings", "closed", "open")
    await wait_for(lambda: len(raised) == 1, 5, "the alert")
    assert threads == [loop_thread]
    await alerts.aclose()

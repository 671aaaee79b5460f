"""Fixtures for the resilience tests: time is the suite's ``clock`` fixture (a FakeClock at
1000.0, from ``tests/support/clock.py``) and a sleep that records each delay and advances that
clock by it; plus an event bus whose events the test can read."""

from __future__ import annotations

import pytest

from runtime.core.events import Event, EventBus
from tests.support.clock import FakeClock, RecordingSleep


@pytest.fixture
def sleep(clock: FakeClock) -> RecordingSleep:
    """Records each requested delay and advances ``clock`` by it; never waits on the wall clock."""
    return RecordingSleep(clock)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def events(bus: EventBus) -> list[Event]:
    seen: list[Event] = []
    bus.add_listener(seen.append)
    return seen

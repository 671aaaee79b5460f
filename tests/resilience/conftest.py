"""Fakes for time in resilience tests: a settable monotonic clock and a sleep that records."""

from __future__ import annotations

import pytest

from runtime.config import ResilienceConfig, ServiceResilience
from runtime.core.events import Event, EventBus


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """Records each requested delay and advances the fake clock by it; never suspends."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.clock.advance(delay)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep(clock: FakeClock) -> RecordingSleep:
    return RecordingSleep(clock)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def events(bus: EventBus) -> list[Event]:
    seen: list[Event] = []
    bus.add_listener(seen.append)
    return seen


def settings(**overrides: object) -> ServiceResilience:
    return ServiceResilience(**overrides)  # type: ignore[arg-type]


def config_with(service: str = "redis", **overrides: object) -> ResilienceConfig:
    """A ResilienceConfig whose ``service`` section has ``overrides`` (others default)."""
    section = service.split(":", 1)[0]
    section = "tools" if section == "tool" else section
    return ResilienceConfig(**{section: ServiceResilience(**overrides)})  # type: ignore[arg-type]

"""Helpers for the state tests: a redis-py connection class that counts network round trips,
fast redis resilience settings, and the type of the ``make_runner`` fixture."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio.connection import Connection

from runtime.config import ResilienceConfig, ServiceResilience
from runtime.state.client import RedisRunner

#: ``make_runner(url, **client_kwargs)``: a RedisRunner on a new client to ``url``, guarded by
#: the test's "redis" Guard; the fixture closes every client it made.
RunnerFactory = Callable[[str], RedisRunner]


class CountingConnection(Connection):
    """Counts packets sent in the class attribute :attr:`sent`: one per command, one per
    pipeline (a network round trip each). Reset it to 0 before the code under test runs."""

    sent = 0

    async def send_packed_command(self, command: object, check_health: bool = True) -> None:
        type(self).sent += 1
        await super().send_packed_command(command, check_health)


def fast_resilience() -> ResilienceConfig:
    """The redis guard with tiny retry delays (seconds; the fake sleep skips them anyway),
    3 attempts, and a breaker that opens after 5 failures of at least 5 calls."""
    redis = ServiceResilience(
        max_attempts=3,
        initial_delay=0.01,
        max_delay=0.05,
        jitter=False,
        timeout=2.0,
        deadline=30.0,
        recovery_timeout=1.0,
        success_threshold=1,
        max_concurrent=256,
        failure_threshold=5,
        minimum_calls=5,
    )
    return ResilienceConfig(redis=redis)

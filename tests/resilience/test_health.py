"""Health monitor: aggregation, timeouts, errors, change-only events, background polling."""

from __future__ import annotations

import asyncio

import pytest

from runtime.core.errors import ServiceUnavailableError
from runtime.core.events import EventBus, HealthChanged
from runtime.resilience import CheckResult, HealthCheck, HealthMonitor, HealthStatus
from runtime.resilience.health import OVERALL, aggregate

H, D, U = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY


def fixed(status: HealthStatus, **details: object):  # type: ignore[no-untyped-def]
    async def check() -> CheckResult:
        return CheckResult(status, details=dict(details))

    return check


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [([], H), ([H, H], H), ([H, D], D), ([D, U, H], U), ([U], U), ([D, D], D)],
)
def test_aggregate_follows_the_spec(statuses: list[HealthStatus], overall: HealthStatus) -> None:
    assert aggregate(statuses) is overall


async def test_run_checks_reports_each_check_and_the_worst_status() -> None:
    monitor = HealthMonitor()
    monitor.register_check("redis", fixed(H, version="7.0"))
    monitor.register_check("llm", fixed(D, model="demo"))
    report = await monitor.run_checks()
    assert report.status is D
    assert report.checks["redis"].details == {"version": "7.0"}
    assert report.checks["llm"].latency_ms is not None
    assert monitor.snapshot() is report
    data = report.to_dict()
    assert data["status"] == "degraded" and data["checks"]["redis"]["status"] == "healthy"


async def test_a_check_that_hangs_is_unhealthy_after_its_timeout_and_does_not_delay_others() -> None:
    monitor = HealthMonitor()
    never = asyncio.Event()

    async def hangs() -> CheckResult:
        await never.wait()
        return CheckResult(H)

    monitor.register_check("lancedb", hangs, timeout=0.05)
    monitor.register_check("redis", fixed(H))
    report = await monitor.run_checks()
    assert report.status is U
    assert report.checks["lancedb"].status is U
    assert "timed out" in (report.checks["lancedb"].error or "")
    assert report.checks["redis"].status is H


async def test_a_check_that_raises_is_unhealthy_with_the_error() -> None:
    monitor = HealthMonitor()

    async def broken() -> CheckResult:
        raise ServiceUnavailableError("connection refused", service="redis")

    monitor.register_check("redis", broken)
    report = await monitor.run_checks()
    assert report.checks["redis"].status is U
    assert report.checks["redis"].error == "redis: connection refused"


async def test_spec_dict_results_are_accepted() -> None:
    monitor = HealthCheck()

    async def spec_style() -> dict[str, object]:
        return {"status": "degraded", "details": {"error": "slow"}}

    async def nonsense() -> dict[str, object]:
        return {"status": "sort of fine"}

    monitor.register_check("openai", spec_style)
    monitor.register_check("weird", nonsense)
    report = await monitor.run_checks()
    assert report.checks["openai"].status is D and report.checks["openai"].details == {"error": "slow"}
    assert report.checks["weird"].status is U


async def test_events_only_on_change() -> None:
    bus = EventBus()
    seen: list[HealthChanged] = []
    bus.add_listener(lambda e: seen.append(e) if isinstance(e, HealthChanged) else None)
    status = {"redis": H}

    async def redis_check() -> CheckResult:
        return CheckResult(status["redis"])

    monitor = HealthMonitor(bus)
    monitor.register_check("redis", redis_check)
    await monitor.run_checks()
    await monitor.run_checks()
    assert [(e.name, e.old_status, e.new_status) for e in seen] == [
        ("redis", None, "healthy"),
        (OVERALL, None, "healthy"),
    ]
    status["redis"] = U
    await monitor.run_checks()
    await monitor.run_checks()
    assert [(e.name, e.old_status, e.new_status) for e in seen[2:]] == [
        ("redis", "healthy", "unhealthy"),
        (OVERALL, "healthy", "unhealthy"),
    ]


async def test_background_polling_runs_at_the_interval_and_stops() -> None:
    intervals: asyncio.Queue[float] = asyncio.Queue()
    release = asyncio.Event()

    async def controlled_sleep(seconds: float) -> None:
        await intervals.put(seconds)
        await release.wait()
        release.clear()

    runs = 0

    async def counted() -> CheckResult:
        nonlocal runs
        runs += 1
        return CheckResult(H)

    monitor = HealthMonitor(interval=7.5, sleep=controlled_sleep)
    monitor.register_check("redis", counted)
    monitor.start()
    monitor.start()  # idempotent
    assert await intervals.get() == 7.5
    assert runs == 1 and monitor.running
    release.set()
    assert await intervals.get() == 7.5
    assert runs == 2
    await monitor.stop()
    assert not monitor.running
    assert monitor.snapshot() is not None and monitor.snapshot().status is H  # type: ignore[union-attr]

"""The 15-second version of ``make loadtest`` (issue 19, part 5): 20 simulated users against 3 real
``holdfast serve`` replicas on a 3+3 Redis Cluster; one replica is killed by pid (and restarted by
the "orchestrator"), then one Redis primary. Every message acknowledged to a user is in Redis,
none is stored twice, and every user a kill hit succeeds again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.load.loadtest import LoadPlan, format_report, run
from tests.support.cluster import cluster_unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(600)]


async def test_killing_a_replica_and_a_primary_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    reason = cluster_unavailable_reason()
    if reason is not None:
        pytest.skip(f"Redis Cluster unavailable: {reason}")
    plan = LoadPlan(
        users=20, duration=15, replica_kill_at=3, primary_kill_at=8, window=6, drain=45, workdir=tmp_path / "load"
    )
    report = await run(plan)
    table = format_report(report)
    print("\n" + table)
    assert report.turns >= 20, table  # every user got answers
    assert report.lost == 0, table
    assert report.duplicated == 0, table
    assert report.unacknowledged == 0, table  # every message sent was answered in the end
    assert [r.kill.what.split(" (")[0] for r in report.recoveries] == ["serve replica 1", "Redis primary"]
    for recovery in report.recoveries:
        assert recovery.affected > 0, f"{recovery.kill.what} hit nobody:\n{table}"
        assert recovery.never == 0, table
        # A crashed replica's idempotency claim and turn lock expire within 10 s each; a killed
        # primary's replica is promoted in 2-3 s and the redis breakers probe again after 5 s.
        assert recovery.last is not None and recovery.last < 30, table

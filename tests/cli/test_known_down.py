"""Issue 16's rule in the CLI: ``holdfast chat`` against an LLM that is down fails its turn to the
degraded answer after the health monitor's first probe, not after every retry of the shipped
policy (five attempts from 2 s: 12-24 s of a user watching "retrying" lines). The CLI runs no
health poller, so nothing told the guard the endpoint was known to be down; now the first retry
of a backend asks for one probe of it.

Through the real console script; the demo LLM server is SIGKILLed by pid; the retries are
counted from the ``--json`` RetryScheduled events, not timed."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.core.procs import pid_alive
from runtime.demo.launcher import DemoLLMServer
from tests.support.cli import run_script
from tests.support.polling import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def dead_llm(tmp_path: Path) -> Iterator[DemoLLMServer]:
    """A demo LLM server of this test alone, already killed by pid (its URL refuses connections)."""
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path / "demo.log")
    server.start()
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10, "the demo LLM server to die")
    yield server
    server.stop()


def test_chat_with_a_dead_llm_stops_retrying_once_the_monitor_has_probed_it(
    script_env: dict[str, str], dead_llm: DemoLLMServer
) -> None:
    env = {
        **script_env,
        "HOLDFAST_LLM__BASE_URL": dead_llm.url,
        # The shipped policy, not the suite's one fast attempt.
        "HOLDFAST_RESILIENCE__LLM__MAX_ATTEMPTS": "5",
        "HOLDFAST_RESILIENCE__LLM__INITIAL_DELAY": "2.0",
    }
    run = run_script("chat", "--json", "hello?", env=env)
    events = [json.loads(line) for line in run.out.splitlines() if line.startswith("{")]
    retries = [e for e in events if e.get("type") == "RetryScheduled" and e.get("service") == "llm"]
    # The first refused attempt may come before the probe's answer; the next one never does.
    assert len(retries) <= 1, retries
    finished = [e for e in events if e.get("type") == "TurnFinished"]
    assert finished and finished[-1]["degraded"] is True, run.out + run.err
    assert "Traceback" not in run.err

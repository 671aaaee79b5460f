"""The real ``holdfast serve`` console script: rate limits shared by two server processes on one
Redis, SIGTERM during a stream (finish within the grace period, else cancel and keep), and
``/metrics`` merged over the workers of ``--workers 2``."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from runtime.demo.launcher import DemoLLMServer
from tests.support.polling import wait_until
from tests.support.serve import ServeProcess, ServerThread, long_message

pytestmark = [pytest.mark.redis, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(env: dict[str, str], *args: str) -> ServeProcess:
        proc = ServeProcess(args, env, log=tmp_path / f"serve-{len(started)}.log")
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def test_rate_limits_are_shared_by_two_server_processes(
    processes: Callable[..., ServeProcess], script_env: dict[str, str]
) -> None:
    env = {**script_env, "HOLDFAST_SERVER__REQUESTS_PER_MINUTE": "6"}
    one, two = processes(env), processes(env)
    statuses = []
    for i in range(8):
        base = (one if i % 2 == 0 else two).base_url
        response = httpx.get(f"{base}/v1/conversations", timeout=10)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"]["type"] == "rate_limit_exceeded"
            assert int(response.headers["retry-after"]) >= 1
    assert statuses == [200] * 6 + [429] * 2
    # Probes are not API requests: never limited.
    assert httpx.get(f"{one.base_url}/livez", timeout=10).status_code == 200


def _stream_in_thread(url: str, body: dict[str, object], lines: list[str], first_delta: threading.Event) -> None:
    try:
        with httpx.stream("POST", url, json=body, timeout=60) as response:
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith("event: TextDelta"):
                    first_delta.set()
    except httpx.HTTPError as exc:
        lines.append(f"error: {exc!r}")
    finally:
        first_delta.set()


def _start_stream(base_url: str) -> tuple[str, threading.Thread, list[str], threading.Event]:
    conv = httpx.post(f"{base_url}/v1/conversations", json={}, timeout=10).json()["id"]
    lines: list[str] = []
    first = threading.Event()
    url = f"{base_url}/v1/conversations/{conv}/messages"
    thread = threading.Thread(target=_stream_in_thread, args=(url, {"content": long_message(60)}, lines, first))
    thread.start()
    assert first.wait(30)
    return conv, thread, lines, first


def test_sigterm_lets_a_running_stream_finish_within_the_grace_period(
    processes: Callable[..., ServeProcess], script_env: dict[str, str], slow_llm: DemoLLMServer
) -> None:
    env = {**script_env, "HOLDFAST_LLM__BASE_URL": slow_llm.url, "HOLDFAST_SERVER__GRACE_PERIOD": "60"}
    proc = processes(env)
    _, thread, lines, _ = _start_stream(proc.base_url)
    proc.terminate()
    thread.join(60)
    assert "event: TurnFinished" in lines
    assert proc.wait(60) == 0
    # It stopped accepting: a new connection is refused.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{proc.base_url}/livez", timeout=2)


def test_sigterm_past_the_grace_period_cancels_the_turn_and_keeps_the_partial_answer(
    processes: Callable[..., ServeProcess],
    script_env: dict[str, str],
    slow_llm: DemoLLMServer,
    serve: Callable[..., ServerThread],
) -> None:
    env = {**script_env, "HOLDFAST_LLM__BASE_URL": slow_llm.url, "HOLDFAST_SERVER__GRACE_PERIOD": "0.3"}
    proc = processes(env)
    conv, thread, lines, _ = _start_stream(proc.base_url)
    proc.terminate()
    thread.join(60)
    proc.wait(60)
    assert "event: TurnFinished" not in lines  # cut before the answer was complete
    reader = serve()

    def partial_saved() -> bool:
        messages = httpx.get(f"{reader.base_url}/v1/conversations/{conv}/messages", timeout=10).json()["messages"]
        return any(m["role"] == "assistant" and m["metadata"].get("interrupted") for m in messages)

    wait_until(partial_saved, 30, "the cancelled turn's partial answer, marked interrupted")


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with ``labels`` in a Prometheus text page (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _workers(pid: int) -> list[int]:
    """The uvicorn worker processes (spawned interpreters) of the serve process ``pid`` (Linux)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


def test_metrics_are_summed_over_every_worker_whichever_answers_the_scrape(
    processes: Callable[..., ServeProcess], script_env: dict[str, str]
) -> None:
    proc = processes({**script_env, "HOLDFAST_SERVER__REQUESTS_PER_MINUTE": "0"}, "--workers", "2")
    base = proc.base_url

    def scrape() -> str:
        # A new connection each time: the kernel hands it to whichever worker accepts first.
        return httpx.get(f"{base}/metrics", timeout=10).text

    wait_until(lambda: _metric(scrape(), "holdfast_workers") == 2, 60, "both workers in /metrics")
    workers = _workers(proc.proc.pid)
    requests = 40
    for _ in range(requests):
        assert httpx.get(f"{base}/v1/conversations", timeout=10).status_code == 200
    counted = {"route": "/v1/conversations", "method": "GET", "status": "200"}
    for _ in range(8):
        page = scrape()
        assert _metric(page, "holdfast_http_requests_total", **counted) == requests
        assert _metric(page, "holdfast_http_request_duration_seconds_count", **counted) == requests
        assert _metric(page, "holdfast_workers") == 2

    # A worker killed outright: uvicorn starts another; the dead one's live gauges leave the merge
    # (2 workers, not 3) while the requests it answered stay counted.
    victim = _workers(proc.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in _workers(proc.proc.pid) and len(_workers(proc.proc.pid)) == 2, 60, "a new worker")
    (new,) = set(_workers(proc.proc.pid)) - set(workers)
    # The new worker has counted itself once its live gauge file is in the server's metrics dir.
    environ = dict(
        item.split(b"=", 1) for item in Path(f"/proc/{new}/environ").read_bytes().split(b"\0") if b"=" in item
    )
    metrics_dir = Path(environ[b"PROMETHEUS_MULTIPROC_DIR"].decode())
    wait_until(lambda: (metrics_dir / f"gauge_livesum_{new}.db").exists(), 60, "the new worker's gauges")
    for _ in range(4):
        page = scrape()
        assert _metric(page, "holdfast_workers") == 2
        assert _metric(page, "holdfast_http_requests_total", **counted) == requests

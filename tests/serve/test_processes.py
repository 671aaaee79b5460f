"""The real ``holdfast serve`` console script: rate limits shared by two server processes on one
Redis, and SIGTERM during a stream (finish within the grace period, else cancel and keep)."""

from __future__ import annotations

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

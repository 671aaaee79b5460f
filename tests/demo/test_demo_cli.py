"""``holdfast demo-llm --profile NAME`` through the real console script: the server it starts
speaks that profile's wire format over HTTP, and it is gone after SIGTERM."""

from __future__ import annotations

import json
import re
import select
import signal
import threading
import time

import httpx
import pytest

from runtime.core.procs import free_port, pid_alive
from runtime.demo.launcher import port_open
from tests.support.cli import run_script, start_script, stop
from tests.support.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # the real console script

ASK = {
    "model": "holdfast-demo",
    "messages": [{"role": "user", "content": "what is 2+3 and what time is it?"}],
    "tools": [
        {"type": "function", "function": {"name": "calculator", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}},
    ],
    "stream": True,
}


def test_console_script_serves_the_ollama_profile() -> None:
    port = free_port()
    proc = start_script("demo-llm", "--profile", "ollama", "--port", str(port), "--tokens-per-second", "0")
    try:
        wait_until(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 30, "the demo server to listen")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/admin/faults").json()["profile"] == "ollama"
            with client.stream("POST", "/v1/chat/completions", json=ASK) as response:
                chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
        deltas = [c["choices"][0]["delta"] for c in chunks]
        (calls,) = [d["tool_calls"] for d in deltas if "tool_calls" in d]  # whole calls, one chunk
        assert [c["function"]["name"] for c in calls] == ["calculator", "clock"]
        assert all("index" not in c for c in calls) and all(d["role"] == "assistant" for d in deltas)
        assert {c["system_fingerprint"] for c in chunks} == {"fp_ollama"}
    finally:
        run = stop(proc)
    assert "profile ollama" in run.out
    assert not pid_alive(proc.pid) and not port_open("127.0.0.1", port)


def test_console_script_refuses_an_unknown_profile() -> None:
    run = run_script("demo-llm", "--profile", "gpt-imaginary", "--port", "0")
    assert run.code == 2 and "invalid choice: 'gpt-imaginary'" in run.err


def test_the_printed_url_answers_at_once() -> None:
    # A script that starts the server and waits for its "on http://..." line must be able to
    # use the URL immediately: the line used to come before the socket listened (refused).
    proc = start_script("demo-llm", "--port", "0", "--tokens-per-second", "0")
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 30)
        assert readable, "no banner within 30 s"
        banner = proc.stdout.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+/v1) pid=(\d+)", banner)
        assert found, banner
        assert int(found.group(2)) == proc.pid
        response = httpx.get(f"{found.group(1)}/models", timeout=10)
        assert response.status_code == 200
        assert [m["id"] for m in response.json()["data"]] == ["holdfast-demo", "holdfast-demo-embed"]
    finally:
        run = stop(proc)
    assert run.code == 0, run.err


def test_an_impossible_port_is_one_line_not_a_traceback() -> None:
    run = run_script("demo-llm", "--port", "99999")
    assert run.code == 2
    assert run.err == (
        "holdfast demo-llm: argument --port: 99999 is not a port (0-65535; 0 picks a free one). "
        "See 'holdfast demo-llm --help'.\n"
    )


LONG_STREAM = {
    "model": "holdfast-demo",
    "messages": [{"role": "user", "content": "write a long story"}],
    "stream": True,
}


@pytest.mark.parametrize(
    ("flags", "sig", "code"),
    [
        (["--tokens-per-second", "5"], signal.SIGINT, 130),  # Ctrl-C while a reply streams
        (["--tokens-per-second", "5"], signal.SIGTERM, 0),
        (["--profile", "vllm-reasoning"], signal.SIGINT, 130),  # while the model "thinks"
        (["--hang"], signal.SIGTERM, 0),
        (["--latency", "30"], signal.SIGTERM, 0),
    ],
)
def test_stopping_mid_request_is_quick_and_quiet(flags: list[str], sig: int, code: int) -> None:
    # uvicorn waited 1 s for the request, cancelled it and printed ~40 lines of traceback.
    port = free_port()
    proc = start_script("demo-llm", "--port", str(port), *flags)
    outcome: list[str] = []

    def ask() -> None:
        try:
            with httpx.stream(
                "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=LONG_STREAM, timeout=60
            ) as r:
                for _ in r.iter_bytes():
                    pass
            outcome.append("answered")
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    client = threading.Thread(target=ask)
    try:
        wait_until(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 30, "the demo server to listen")
        client.start()
        status = f"http://127.0.0.1:{port}/admin/faults"
        wait_until(lambda: httpx.get(status, timeout=5).json()["requests"] >= 1, 30, "the request to arrive")
        started = time.monotonic()
    finally:
        run = stop(proc, sig)
    took = time.monotonic() - started
    client.join(10)
    assert run.code == code
    assert run.err == "", run.err
    assert took < 1.0, f"stopping took {took:.2f} s"
    assert outcome == ["RemoteProtocolError"]  # the connection was cut, as when a real server goes down

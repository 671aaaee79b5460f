"""Benchmark of ``holdfast serve``: ``POST /v1/conversations/{id}/messages`` (``stream: false``)
with the demo model at 0 ms latency, through the real console script with 1 and 4 worker
processes, next to the same turns run in-process (``Agent.run_turn``) in the same run.

Reported per setup: p50/p95 latency of sequential turns (one client), and requests per second
with 8 concurrent clients (each on its own conversation: a conversation runs one turn at a
time). The issue's budget: the HTTP layer adds at most 2 ms p50 per turn.

Run: .venv/bin/python -m pytest tests/bench/bench_serve.py -o addopts="" -s
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

from runtime.config import Config
from runtime.demo.launcher import DemoLLMServer
from runtime.host.runtime import Runtime
from tests.support.serve import ServeProcess

pytestmark = [pytest.mark.bench, pytest.mark.timeout(900)]

SEQUENTIAL = 100
CONCURRENT_CLIENTS = 8
CONCURRENT_TURNS = 200
TEXT = "benchmark turn: how are you?"


def _config(data_dir: Path, redis_url: str, llm_url: str) -> Config:
    return Config(
        data_dir=str(data_dir),
        llm={"preset": "openai", "base_url": llm_url, "model": "holdfast-demo"},
        redis={"url": redis_url},
        memory={"enabled": False},
        server={"requests_per_minute": 0},
        agent={"user": "bench"},
    )


def _env(data_dir: Path, redis_url: str, llm_url: str) -> dict[str, str]:
    return {
        "HOLDFAST_DATA_DIR": str(data_dir),
        "HOLDFAST_REDIS__URL": redis_url,
        "HOLDFAST_LLM__PRESET": "openai",
        "HOLDFAST_LLM__BASE_URL": llm_url,
        "HOLDFAST_LLM__MODEL": "holdfast-demo",
        "HOLDFAST_MEMORY__ENABLED": "false",
        "HOLDFAST_SERVER__REQUESTS_PER_MINUTE": "0",
        "HOLDFAST_AGENT__USER": "bench",
        "HOLDFAST_LOGGING__LEVEL": "WARNING",
    }


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


def _report(name: str, latencies: list[float], rps: float) -> str:
    return (
        f"{name:<24} p50 {_pct(latencies, 0.50):7.2f} ms   p95 {_pct(latencies, 0.95):7.2f} ms   "
        f"{rps:7.1f} turns/s ({CONCURRENT_CLIENTS} clients)"
    )


async def _in_process(config: Config) -> tuple[list[float], float]:
    async with Runtime.from_config(config, start_monitor=False) as rt:
        conv = await rt.agent.new_conversation("bench")
        for _ in range(10):
            [e async for e in rt.agent.run_turn(conv, TEXT)]
        latencies = []
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            [e async for e in rt.agent.run_turn(conv, TEXT)]
            latencies.append(time.perf_counter() - started)
        convs = [await rt.agent.new_conversation("bench") for _ in range(CONCURRENT_CLIENTS)]

        async def worker(c: str) -> None:
            for _ in range(CONCURRENT_TURNS // CONCURRENT_CLIENTS):
                [e async for e in rt.agent.run_turn(c, TEXT)]

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in convs))
        return latencies, CONCURRENT_TURNS / (time.perf_counter() - started)


async def _over_http(base_url: str) -> tuple[list[float], float]:
    limits = httpx.Limits(max_connections=CONCURRENT_CLIENTS * 2)
    # httpcore writes a request's headers and body in two sends: without TCP_NODELAY the body
    # waits for the server's delayed ACK (~40 ms on Linux), a client-side stall, not the server's.
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=nodelay)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, transport=transport) as client:
        conv = (await client.post("/v1/conversations", json={})).json()["id"]
        url = f"/v1/conversations/{conv}/messages"
        for _ in range(10):
            (await client.post(url, json={"content": TEXT, "stream": False})).raise_for_status()
        latencies = []
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            (await client.post(url, json={"content": TEXT, "stream": False})).raise_for_status()
            latencies.append(time.perf_counter() - started)
        convs = [(await client.post("/v1/conversations", json={})).json()["id"] for _ in range(CONCURRENT_CLIENTS)]

        async def worker(c: str) -> None:
            for _ in range(CONCURRENT_TURNS // CONCURRENT_CLIENTS):
                response = await client.post(f"/v1/conversations/{c}/messages", json={"content": TEXT, "stream": False})
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in convs))
        return latencies, CONCURRENT_TURNS / (time.perf_counter() - started)


def test_bench_serve_against_in_process_turns(tmp_path: Path, redis_url: str, demo_server: DemoLLMServer) -> None:
    lines = []
    base_latencies, base_rps = asyncio.run(_in_process(_config(tmp_path / "inproc", redis_url, demo_server.url)))
    lines.append(_report("in-process Agent.run_turn", base_latencies, base_rps))
    p50s = {}
    for workers in (1, 4):
        env = _env(tmp_path / f"w{workers}", redis_url, demo_server.url)
        proc = ServeProcess(["--workers", str(workers)], env, log=tmp_path / f"serve-{workers}.log").start()
        try:
            latencies, rps = asyncio.run(_over_http(proc.base_url))
        finally:
            proc.stop()
        p50s[workers] = _pct(latencies, 0.5)
        lines.append(_report(f"HTTP, {workers} worker(s)", latencies, rps))
    base_p50 = _pct(base_latencies, 0.5)
    lines.append(
        f"HTTP overhead at p50: {p50s[1] - base_p50:+.2f} ms (1 worker), {p50s[4] - base_p50:+.2f} ms (4 workers)"
    )
    print("\n" + "\n".join(lines))

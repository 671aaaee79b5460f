"""Benchmark of ``holdfast serve``: ``POST /v1/conversations/{id}/messages`` (``stream: false``)
with the demo model at 0 ms latency, through the real console script with 1 and 4 worker
processes, next to the same turns run in-process (``Agent.run_turn``) in the same run.

Reported per setup: min/p50/p95 latency of sequential turns over one keep-alive connection (one
worker answers them all; the minimum is the turn nothing else on the machine delayed), with
httpx and with a minimal hand-written client whose own cost is near nothing; the CPU one of those
turns cost (the Holdfast processes' user + system time from ``/proc``, and the load generator's
own); and turns per second with 2 and with 8 concurrent clients (each on its own conversation: a
conversation runs one turn at a time). The issue's budget: the HTTP layer adds at most 2 ms p50
per turn. The machine's cores and load average are printed with the results: every process here
(the load generator, redis-server, the demo server, the workers) shares them, and other work on
the machine moves every figure (the CPU per turn too, less so): compare setups within one run,
on a quiet machine.

A server with N workers is measured only once ``/metrics`` counts N workers (the first worker
answering ``/livez`` says nothing of the others), so no worker is still starting during the run.

Run: .venv/bin/python -m pytest tests/bench/bench_serve.py -o addopts="" -s
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from runtime.config import Config
from runtime.demo.launcher import DemoLLMServer
from runtime.host.runtime import Runtime
from tests.support.polling import wait_until
from tests.support.serve import ServeProcess, serve_env

pytestmark = [pytest.mark.bench, pytest.mark.timeout(900)]

SEQUENTIAL = 100
#: Concurrent clients of the throughput runs: about the cores, and well past them.
CONCURRENCY = (2, 8)
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


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


def _report(name: str, run: Run) -> str:
    rates = "  ".join(f"{r:6.1f} turns/s ({n} clients)" for n, r in run.rps.items())
    cpu = f"CPU/turn {run.server_cpu_ms:5.2f} ms" + (f" + client {run.client_cpu_ms:4.2f}" if run.client_cpu_ms else "")
    lat = (
        f"min {min(run.latencies) * 1000:5.2f}  p50 {_pct(run.latencies, 0.50):6.2f}  "
        f"p95 {_pct(run.latencies, 0.95):6.2f} ms"
    )
    raw = f"  (raw client: min {min(run.raw) * 1000:5.2f}  p50 {_pct(run.raw, 0.50):6.2f} ms)" if run.raw else ""
    return f"{name:<26} {lat}{raw}  {cpu}  {rates}"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


class Run:
    """One setup's figures: sequential latencies (s), turns/s per concurrency, and the CPU one
    sequential turn cost (ms) in the Holdfast process(es) and in the load generator."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.rps: dict[int, float] = {}
        self.server_cpu_ms = 0.0
        self.client_cpu_ms = 0.0
        #: Sequential latencies (s) through a minimal HTTP/1.1 client (no httpx).
        self.raw: list[float] = []


async def _in_process(config: Config) -> Run:
    run = Run()
    async with Runtime.from_config(config, start_monitor=False) as rt:
        conv = await rt.agent.new_conversation("bench")
        for _ in range(10):
            [e async for e in rt.agent.run_turn(conv, TEXT)]
        cpu = time.process_time()
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            [e async for e in rt.agent.run_turn(conv, TEXT)]
            run.latencies.append(time.perf_counter() - started)
        run.server_cpu_ms = (time.process_time() - cpu) * 1000.0 / SEQUENTIAL
        for clients in CONCURRENCY:
            convs = [await rt.agent.new_conversation("bench") for _ in range(clients)]

            async def worker(c: str, turns: int) -> None:
                for _ in range(turns):
                    [e async for e in rt.agent.run_turn(c, TEXT)]

            started = time.perf_counter()
            await asyncio.gather(*(worker(c, CONCURRENT_TURNS // clients) for c in convs))
            run.rps[clients] = CONCURRENT_TURNS / (time.perf_counter() - started)
        return run


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (Linux ``/proc``; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


async def _raw_turns(base_url: str, path: str, turns: int) -> list[float]:
    """Latencies (s) of ``turns`` sequential JSON turns over one kept-alive connection, sent and
    read by hand: the load generator's own cost (httpx: about a millisecond of CPU per request
    here) stays out of the server's figure."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = json.dumps({"content": TEXT, "stream": False}).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies = []
    try:
        for _ in range(turns):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            assert head.startswith(b"HTTP/1.1 200") and length is not None, head
            await reader.readexactly(int(length.group(1)))
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
        await writer.wait_closed()
    return latencies


def _server_pids(pid: int) -> list[int]:
    """The serve process and its uvicorn workers (spawned interpreters)."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pids
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                pids.append(int(child))
        except OSError:
            continue
    return pids


async def _over_http(base_url: str, server_pid: int) -> Run:
    run = Run()
    limits = httpx.Limits(max_connections=max(CONCURRENCY) * 2)
    # httpcore writes a request's headers and body in two sends: without TCP_NODELAY the body
    # waits for the server's delayed ACK (~40 ms on Linux), a client-side stall, not the server's.
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=nodelay)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, transport=transport) as client:
        conv = (await client.post("/v1/conversations", json={})).json()["id"]
        url = f"/v1/conversations/{conv}/messages"
        for _ in range(10):
            (await client.post(url, json={"content": TEXT, "stream": False})).raise_for_status()
        pids = _server_pids(server_pid)
        server_cpu, client_cpu = _cpu_seconds(pids), time.process_time()
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            (await client.post(url, json={"content": TEXT, "stream": False})).raise_for_status()
            run.latencies.append(time.perf_counter() - started)
        run.server_cpu_ms = (_cpu_seconds(pids) - server_cpu) * 1000.0 / SEQUENTIAL
        run.client_cpu_ms = (time.process_time() - client_cpu) * 1000.0 / SEQUENTIAL
        await _raw_turns(base_url, url, 10)  # a new connection: its worker warms up first
        run.raw = await _raw_turns(base_url, url, SEQUENTIAL)
        for clients in CONCURRENCY:
            convs = [(await client.post("/v1/conversations", json={})).json()["id"] for _ in range(clients)]

            async def worker(c: str, turns: int) -> None:
                for _ in range(turns):
                    body = {"content": TEXT, "stream": False}
                    (await client.post(f"/v1/conversations/{c}/messages", json=body)).raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(worker(c, CONCURRENT_TURNS // clients) for c in convs))
            run.rps[clients] = CONCURRENT_TURNS / (time.perf_counter() - started)
        return run


def _workers_up(base_url: str, workers: int) -> bool:
    page = httpx.get(f"{base_url}/metrics", timeout=10).text
    return f"holdfast_workers {float(workers)}" in page


def test_bench_serve_against_in_process_turns(tmp_path: Path, redis_url: str, demo_server: DemoLLMServer) -> None:
    lines = [f"{os.cpu_count()} cores; at the start: {_load()}"]
    base = asyncio.run(_in_process(_config(tmp_path / "inproc", redis_url, demo_server.url)))
    lines.append(_report("in-process Agent.run_turn", base))
    runs = {}
    for workers in (1, 4):
        env = serve_env(tmp_path / f"w{workers}", redis_url, demo_server.url, "bench")
        proc = ServeProcess(["--workers", str(workers)], env, log=tmp_path / f"serve-{workers}.log").start()
        try:
            if workers > 1:
                wait_until(lambda: _workers_up(proc.base_url, workers), 120, f"{workers} workers up")
            runs[workers] = asyncio.run(_over_http(proc.base_url, proc.proc.pid))
        finally:
            proc.stop()
        lines.append(_report(f"HTTP, {workers} worker(s)", runs[workers]))
    base_p50, base_min, base_cpu = _pct(base.latencies, 0.5), min(base.latencies), base.server_cpu_ms
    for workers, run in runs.items():
        added_cpu = run.server_cpu_ms + run.client_cpu_ms - base_cpu
        lines.append(
            f"HTTP overhead, {workers} worker(s): p50 {_pct(run.raw, 0.5) - base_p50:+.2f} ms (raw client), "
            f"{_pct(run.latencies, 0.5) - base_p50:+.2f} ms (httpx); min {(min(run.raw) - base_min) * 1000:+.2f} ms "
            f"(raw); CPU per turn {run.server_cpu_ms - base_cpu:+.2f} ms in the server, {added_cpu:+.2f} ms with httpx's"
        )
    lines.append(f"at the end: {_load()}")
    print("\n" + "\n".join(lines))

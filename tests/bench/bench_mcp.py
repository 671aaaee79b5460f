"""Benchmark: one tool call of an MCP stdio server versus the same function as a native plugin
tool, in the same run, both through Holdfast's :class:`~runtime.tools.runner.ToolRunner` (lookup,
schema validation, permission, ``Guard("tool:echo")``, output cap, result).

* native: ``echo`` as a ``@tool`` function in the process;
* MCP: ``echo`` of the SDK-written test server (``tests/mcp/servers/notes.py``) over stdio, so
  also ``Guard("mcp:notes")``, JSON-RPC over pipes, the server's own dispatch;
* SDK alone: ``ClientSession.call_tool`` on the same connection, without Holdfast around it
  (what the runner and guards add on top of the protocol).

Reported: p50/p95/mean latency of sequential calls in microseconds, and calls per second with 8
concurrent callers. Nothing here asserts a budget beyond sanity: the numbers are the result.

Run: .venv/bin/python -m pytest tests/bench/bench_mcp.py -o addopts="" -s
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from runtime.config import Config
from runtime.core.messages import ToolCall
from runtime.resilience import Resilience
from runtime.tools import ToolContext, ToolRegistry, tool
from runtime.tools.mcp import McpManager
from runtime.tools.runner import ToolRunner
from tests.support.mcp import notes

pytestmark = [pytest.mark.bench, pytest.mark.timeout(600)]

SEQUENTIAL = 1000
CONCURRENT = 8
CONCURRENT_CALLS = 2000
WARMUP = 50


@tool(name="echo")
def native_echo(text: str) -> str:
    """Say the text back."""
    return f"echo: {text}"


def _row(label: str, samples: list[float], rate: float) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] * 1e6
    p95 = ordered[int(len(ordered) * 0.95)] * 1e6
    mean = statistics.fmean(ordered) * 1e6
    return f"{label:<28} p50 {p50:8.0f} us   p95 {p95:8.0f} us   mean {mean:8.0f} us   {rate:8.0f} calls/s ({CONCURRENT} callers)"


async def _measure(call: Callable[[int], Awaitable[object]]) -> tuple[list[float], float]:
    for i in range(WARMUP):
        await call(i)
    samples = []
    for i in range(SEQUENTIAL):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    counter = iter(range(CONCURRENT_CALLS))

    async def worker() -> None:
        for i in counter:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
    return samples, CONCURRENT_CALLS / (time.perf_counter() - started)


async def test_mcp_stdio_call_versus_native_plugin(tmp_path: Path) -> None:
    config = Config(
        data_dir=str(tmp_path),
        mcp={"servers": {"notes": notes()}},
        # Each guard's bulkhead must admit the concurrent callers.
        resilience={"tools": {"max_concurrent": 64}, "mcp": {"max_concurrent": 64}},
    )
    resilience = Resilience(config.resilience)
    native_registry = ToolRegistry(config.plugins)
    native_registry.register(native_echo, plugin="bench")
    mcp_registry = ToolRegistry(config.plugins)
    manager = McpManager(config.mcp, mcp_registry, resilience)
    manager.start()
    try:
        assert await manager.wait_ready() == []
        assert mcp_registry.get("echo") is not None
        native = ToolRunner(native_registry, resilience)
        remote = ToolRunner(mcp_registry, resilience)
        context = ToolContext(user_id="bench")

        def through(runner: ToolRunner) -> Callable[[int], Awaitable[object]]:
            async def call(i: int) -> object:
                result = await runner.run(ToolCall(id=f"c{i}", name="echo", arguments=f'{{"text": "hi {i}"}}'), context)
                assert result.ok and result.output == f"echo: hi {i}", result.output
                return result

            return call

        session = manager.servers["notes"]._session
        assert session is not None

        async def sdk_call(i: int) -> object:
            return await session.call_tool("echo", {"text": f"hi {i}"})

        results = {
            "native plugin (runner)": await _measure(through(native)),
            "MCP stdio (runner)": await _measure(through(remote)),
            "MCP stdio (SDK alone)": await _measure(sdk_call),
        }
    finally:
        await manager.stop()
    print()
    for label, (samples, rate) in results.items():
        print(_row(label, samples, rate))
    native_p50 = sorted(results["native plugin (runner)"][0])[SEQUENTIAL // 2]
    mcp_p50 = sorted(results["MCP stdio (runner)"][0])[SEQUENTIAL // 2]
    sdk_p50 = sorted(results["MCP stdio (SDK alone)"][0])[SEQUENTIAL // 2]
    print(
        f"MCP overhead over native: {(mcp_p50 - native_p50) * 1e6:.0f} us p50 ({mcp_p50 / native_p50:.1f}x); "
        f"Holdfast over the bare SDK call: {(mcp_p50 - sdk_p50) * 1e6:.0f} us p50"
    )
    assert mcp_p50 < 0.05  # sanity: a local stdio call is milliseconds, not a timeout

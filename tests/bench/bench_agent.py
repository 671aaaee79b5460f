"""Agent overhead per turn, model time excluded: lock, save the user message, recall memories,
build the prompt, save the answer. Real Redis, real LanceDB (indexed, as the store builds it),
the real local MiniLM embedder for the query, the real demo LLM server unpaced, a conversation
of 10k stored messages and a user with 10k memories.

Side by side, measured in the same run on the same data: the bare operations a turn cannot do
without (a raw redis-py RPUSH, a raw LRANGE of the last 50 messages, one MiniLM query
embedding, a raw LanceDB filtered top-5 search). Timings come from the turn's own
``TurnFinished.timings`` (perf_counter inside the agent); ``overhead`` is ``total - llm``.

Seeding is fast on purpose: messages are appended concurrently through the store, memory rows
go through the store's batch write path with vectors made from 200 real MiniLM embeddings plus
small noise (embedding 10k texts would take minutes and measure the model, not the agent).

Background work after a turn (memory writes, summarisation) is off here: it runs after the
answer is saved and never delays it; with 10k live messages a summary would archive most of
the history on the first turn and change what is measured.

Run: .venv/bin/python -m pytest tests/bench/bench_agent.py -o addopts="" -s
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.agent import collect
from runtime.config import Config
from runtime.core.events import TurnFinished
from runtime.demo.launcher import DemoLLMServer
from runtime.host.runtime import Runtime
from runtime.memory.records import PendingWrite
from runtime.memory.store import VectorMemoryStore

pytestmark = pytest.mark.bench

USER = "bench"
MESSAGES = 10_000
MEMORIES = 10_000
BASES = 200
TURNS = 200
WARMUP = 10

_TOPICS = [
    "my sister",
    "the garden",
    "our trip to Porto",
    "the project deadline",
    "my bike",
    "the dentist",
    "the book club",
    "my cat Tom",
    "the kitchen tap",
    "the piano lessons",
]
_NOTE_RE = re.compile(r"\(note (\d+)\)$")


def _base_text(i: int) -> str:
    return f"Fact about {_TOPICS[i % len(_TOPICS)]}: detail {i} that I told you once"


class SeedVectors:
    """Stands in for MiniLM while seeding: same table, vectors near real MiniLM embeddings."""

    provider = "local"
    degraded = False

    def __init__(self, real: Any, bases: np.ndarray, seed: int = 3) -> None:
        self.model = real.model
        self.ndims = real.ndims
        self.table_suffix = real.table_suffix
        self.bases = bases
        self.rng = np.random.default_rng(seed)

    async def embed(self, texts: list[str]) -> np.ndarray:
        idx = [int(_NOTE_RE.search(t).group(1)) % BASES for t in texts]  # type: ignore[union-attr]
        vecs = self.bases[idx] + 0.05 * self.rng.normal(size=(len(texts), self.ndims)).astype(np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def _row(name: str, values: list[float]) -> str:
    return f"  {name:<22} p50 {_pct(values, 50):7.3f} ms   p95 {_pct(values, 95):7.3f} ms"


@pytest.fixture(scope="module")
def demo_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLLMServer]:
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path_factory.mktemp("demo") / "demo.log")
    server.start()
    yield server
    server.stop()


async def _seed_messages(rt: Runtime, conv: str) -> float:
    started = time.perf_counter()
    text = "The quick brown fox jumps over the lazy dog, message {i} of the long history. " * 2
    for start in range(0, MESSAGES, 500):
        await asyncio.gather(
            *(
                rt.store.add_message(conv, "user" if i % 2 == 0 else "assistant", text.format(i=i))
                for i in range(start, start + 500)
            )
        )
    return time.perf_counter() - started


async def _seed_memories(rt: Runtime) -> float:
    real = rt.memory.embedder
    bases = await real.embed([_base_text(i) for i in range(BASES)])
    seeder = VectorMemoryStore(
        rt.config.memory,
        uri=rt.config.memory_uri,
        resilience=rt.resilience,
        embedder=SeedVectors(real, np.asarray(bases, dtype=np.float32)),
    )
    started = time.perf_counter()
    for start in range(0, MEMORIES, 5000):
        items = [
            PendingWrite(
                op="store",
                user_id=USER,
                id=f"m{i}",
                conversation_id="seed",
                content=f"{_base_text(i % BASES)} (note {i})",
                created_at=1_700_000_000.0 + i,
            )
            for i in range(start, start + 5000)
        ]
        await seeder._apply_stores(items, dedup=False)
    await seeder.wait_idle()
    await seeder.aclose()
    await rt.memory.ensure_indexes(force=True)
    await rt.memory.optimize()
    return time.perf_counter() - started


async def _baseline(rt: Runtime, redis_url: str, conv: str) -> dict[str, list[float]]:
    import redis.asyncio as aioredis

    from runtime.memory import escaping

    client = aioredis.from_url(redis_url)
    table = await rt.memory._open(create=False)
    minilm = rt.memory.embedder
    payload = b'{"role":"user","content":"' + b"x" * 180 + b'"}'
    out: dict[str, list[float]] = {"redis append": [], "redis tail(50)": [], "embed query": [], "lancedb search": []}
    try:
        for i in range(TURNS + WARMUP):
            t0 = time.perf_counter()
            await client.rpush(f"bench:raw:{conv}", payload)
            t1 = time.perf_counter()
            await client.lrange(f"bench:raw:{conv}", -50, -1)
            t2 = time.perf_counter()
            vec = (await minilm.embed([f"tell me about {_TOPICS[i % len(_TOPICS)]}"]))[0]
            t3 = time.perf_counter()
            await (
                table.vector_search(vec.tolist())
                .distance_type("cosine")
                .where(escaping.eq("user_id", USER))
                .select(["id", "content", "_distance"])
                .limit(5)
                .refine_factor(10)
                .to_list()
            )
            t4 = time.perf_counter()
            if i >= WARMUP:
                for name, a, b in (
                    ("redis append", t0, t1),
                    ("redis tail(50)", t1, t2),
                    ("embed query", t2, t3),
                    ("lancedb search", t3, t4),
                ):
                    out[name].append((b - a) * 1000)
    finally:
        await client.aclose()
    out["bare total"] = [sum(v) for v in zip(*(out[k] for k in list(out)), strict=True)]
    return out


@pytest.mark.timeout(900)
async def test_bench_agent_overhead_per_turn(redis_url: str, demo_llm: DemoLLMServer, tmp_path: Path) -> None:
    config = Config(
        data_dir=str(tmp_path / "data"),
        llm={"preset": "openai", "base_url": demo_llm.url, "model": "holdfast-demo"},
        redis={"url": redis_url},
        memory={"embedding_provider": "local", "auto_remember": False},
    )
    rt = Runtime.from_config(config, user=USER, start_monitor=False)
    async with rt:
        rt.agent.summarizer = None  # see the module docstring
        conv = await rt.agent.new_conversation("bench")
        seed_msgs = await _seed_messages(rt, conv)
        seed_mems = await _seed_memories(rt)
        print(
            f"\nseeded {MESSAGES} messages in {seed_msgs:.2f} s, {MEMORIES} memories in {seed_mems:.2f} s "
            f"(indexed: {rt.memory._indexed})"
        )

        steps: dict[str, list[float]] = {}
        recalled: list[int] = []
        wall: list[float] = []
        for i in range(TURNS + WARMUP):
            text = f"tell me about {_TOPICS[i % len(_TOPICS)]}"
            t0 = time.perf_counter()
            events = await collect(rt.agent.run_turn(conv, text))
            elapsed = (time.perf_counter() - t0) * 1000
            finished = events[-1]
            assert isinstance(finished, TurnFinished) and not finished.failed, finished
            if i < WARMUP:
                continue
            t = finished.timings
            for name in ("lock_ms", "save_user_ms", "recall_ms", "prompt_ms", "save_assistant_ms"):
                steps.setdefault(name[:-3], []).append(t.get(name, 0.0))
            steps.setdefault("overhead (no llm)", []).append(t["total_ms"] - t["llm_ms"])
            steps.setdefault("llm (demo, excluded)", []).append(t["llm_ms"])
            wall.append(elapsed)
            recalled.append(next(len(e.texts) for e in events if type(e).__name__ == "MemoriesRecalled"))
        live = len(await rt.store.read_tail(conv, MESSAGES + 2 * (TURNS + WARMUP) + 10))
        base = await _baseline(rt, redis_url, conv)

    print(
        f"agent turn, {TURNS} turns after {WARMUP} warm-up; conversation of {live} live messages; "
        f"memories recalled per turn: median {statistics.median(recalled):.0f}"
    )
    for name, values in steps.items():
        print(_row(name, values))
    print(_row("turn wall clock", wall))
    print("bare baseline, same run, same data:")
    for name, values in base.items():
        print(_row(name, values))
    p50 = _pct(steps["overhead (no llm)"], 50)
    print(
        f"agent overhead p50 {p50:.3f} ms (target <= 15 ms); bare operations p50 {_pct(base['bare total'], 50):.3f} ms"
    )

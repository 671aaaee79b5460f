"""Fixtures for memory tests: the real local model (loaded once), real LanceDB in a temp dir,
and a real Resilience on the suite's ``clock`` fixture (a FakeClock) and its ``sleep``, so breaker
recovery needs no waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.config import MemoryConfig
from runtime.core.events import EventBus
from runtime.memory.embeddings import Embedder, LocalEmbedder
from runtime.memory.store import VectorMemoryStore
from runtime.resilience import Resilience
from tests.support.clock import FakeClock


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def resilience(clock: FakeClock, bus: EventBus) -> Resilience:
    return Resilience(None, bus, clock=clock, sleep=clock.sleep)


@pytest.fixture
async def make_store(
    data_dir: Path, resilience: Resilience, bus: EventBus, local_embedder: LocalEmbedder
) -> AsyncIterator[Callable[..., VectorMemoryStore]]:
    stores: list[VectorMemoryStore] = []

    def make(embedder: Embedder | None = None, res: Any = None, **config: Any) -> VectorMemoryStore:
        store = VectorMemoryStore(
            MemoryConfig(**config),
            uri=str(data_dir / "memory"),
            resilience=res or resilience,
            embedder=embedder or local_embedder,
            bus=bus,
            queue_path=data_dir / "memory-queue.jsonl",
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.aclose()


@pytest.fixture
async def store(make_store: Callable[..., VectorMemoryStore]) -> VectorMemoryStore:
    return make_store()

"""Turns when a backend is down: LLM, Redis (killed mid-turn), memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.agent import collect, final_text
from runtime.core.events import AssistantSaved, Degraded, TurnFailed, TurnFinished, UserSaved
from runtime.host.runtime import Runtime
from runtime.state.embedded_redis import EmbeddedRedis
from tests.support.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


async def test_llm_down_gives_a_notice_keeps_the_message_and_retry_does_not_duplicate_it(
    rt: Runtime, demo_admin
) -> None:
    conv = await rt.agent.new_conversation()
    await demo_admin.set_faults(down=True)
    events = await collect(rt.agent.run_turn(conv, "are you there?"))
    assert isinstance(events[0], UserSaved)
    assert any(isinstance(e, Degraded) and e.service == "llm" for e in events)
    failed = next(e for e in events if isinstance(e, TurnFailed))
    assert failed.retryable
    # This runtime is a CLI face: the notice names the shell command, with this conversation.
    assert f"holdfast chat --retry --conversation {conv}" in final_text(events)

    await demo_admin.reset()
    rt.resilience.breakers.get("llm").reset()
    retried = await collect(rt.agent.retry_turn(conv))
    assert retried[0].resent and retried[0].content == "are you there?"
    assert 'You said: "are you there?"' in final_text(retried)
    stored = await rt.store.read_tail(conv, 50)
    assert [m.content for m in stored if m.role == "user"] == ["are you there?"]
    # the notice stays in history for the record but is never sent to the model again
    assert [m.metadata.get("hidden", False) for m in stored if m.role == "assistant"] == [True, False]
    assert "1 user" in final_text(retried) and "1 assistant" not in final_text(retried)


async def test_redis_killed_mid_turn_completes_from_the_journal_and_replays(
    runtime_factory: Callable[..., Runtime], tmp_path: Path
) -> None:
    # A persistent server of our own, like the embedded one users get (AOF survives a kill).
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    server.start()
    try:
        rt = runtime_factory(redis={"url": server.url})
        async with rt:
            conv = await rt.agent.new_conversation()
            events = []
            async for event in rt.agent.run_turn(conv, "hello through an outage"):
                events.append(event)
                if isinstance(event, UserSaved):
                    server.kill()
            saved = next(e for e in events if isinstance(e, AssistantSaved))
            assert saved.journaled and isinstance(events[-1], TurnFinished) and not events[-1].failed
            assert rt.store.degraded and rt.store.pending_writes >= 1

            wait_until(lambda: not server.running(), 5.0, "redis-server reaped")  # so start() really restarts
            server.start()
            report = await rt.store.replay()
            assert report.remaining == 0 and not rt.store.degraded
            stored = await rt.store.read_tail(conv, 50)
            assert [(m.role, m.content) for m in stored] == [
                ("user", "hello through an outage"),
                ("assistant", saved.content),
            ]
    finally:
        server.stop()


async def test_memory_down_turn_completes_marked_degraded(rt: Runtime) -> None:
    rt.chaos.memory(False)
    conv = await rt.agent.new_conversation()
    events = await collect(rt.agent.run_turn(conv, "hello"))
    memory_notes = [e for e in events if isinstance(e, Degraded) and e.service == "memory"]
    assert memory_notes and "memory offline" in memory_notes[0].reason
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.degraded and not finished.failed
    assert 'You said: "hello"' in final_text(events)

"""Chaos from the composer: real processes killed and restarted, panels following live."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from runtime.config import LoadedConfig
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


def _notices(app: HoldfastApp, kind: str | None = None) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice) if kind is None or n.kind == kind]


async def test_llm_breaker_opens_on_kill_and_closes_after_start(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        pid = app.rt.backends()["llm"].pid
        await send(pilot, "/chaos kill llm")
        await wait_for(lambda: not app.rt.backends()["llm"].running, what="demo LLM killed", pause=pilot.pause)
        with_pid = [t for t in _notices(app) if "killed llm" in t]
        assert with_pid and str(pid) in with_pid[0]
        await wait_for(
            lambda: app.health_panel.status_of("llm") in ("degraded", "unhealthy"),
            timeout=5,
            what="llm health turns red",
            pause=pilot.pause,
        )
        await send(pilot, "are you there?")
        await wait_for(lambda: app.breakers_panel.state_of("llm") == "open", what="LLM breaker OPEN", pause=pilot.pause)
        await wait_for(lambda: not app.turn_running, what="turn ends", pause=pilot.pause)
        assert _notices(app, "error") or _notices(app, "degraded")  # the user is told, the app lives on
        await send(pilot, "/chaos start llm")
        await wait_for(
            lambda: app.breakers_panel.state_of("llm") == "closed", what="LLM breaker CLOSED", pause=pilot.pause
        )
        assert app.rt.backends()["llm"].pid != pid
        await send(pilot, "/retry")
        await wait_for(
            lambda: (
                not app.turn_running and any("are you there?" in r.text for r in app.chat_log.query(AssistantMessage))
            ),
            what="retried reply",
            pause=pilot.pause,
        )


async def test_redis_killed_health_red_message_journaled_and_replayed(data_dir: Path) -> None:
    config = make_config(data_dir)  # no Redis URL: the app runs its own embedded redis-server
    app = HoldfastApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert (data_dir / "redis" / "redis-server.pid").exists()
        redis_url = app.rt.backends()["redis"].url
        await send(pilot, "/chaos kill redis")
        await wait_for(
            lambda: app.health_panel.status_of("redis") == "unhealthy",
            timeout=5,
            what="redis health red",
            pause=pilot.pause,
        )
        await send(pilot, "written while redis is down")
        await wait_for(
            lambda: (
                not app.turn_running
                and any("written while redis is down" in r.text for r in app.chat_log.query(AssistantMessage))
            ),
            what="reply in degraded mode",
            pause=pilot.pause,
        )
        assert any("redis" in t.lower() for t in _notices(app, "degraded"))
        assert app.rt.store_status().degraded
        await send(pilot, "/chaos start redis")
        await wait_for(lambda: not app.rt.store_status().degraded, what="journal replayed", pause=pilot.pause)
        await wait_for(
            lambda: app.health_panel.status_of("redis") in ("healthy", "degraded"),
            what="redis health back",
            pause=pilot.pause,
        )
        # Read straight from the restarted redis-server: the journaled message is really there.
        client = aioredis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match="*")]
            values = [await client.lrange(k, 0, -1) for k in keys if await client.type(k) == b"list"]
        finally:
            await client.aclose()
        assert any(b"written while redis is down" in item for items in values for item in items)


async def test_redis_killed_from_outside_shows_in_the_health_panel(data_dir: Path) -> None:
    app = HoldfastApp(make_config(data_dir))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_for(
            lambda: app.health_panel.status_of("redis") in ("healthy", "degraded"),
            what="redis healthy",
            pause=pilot.pause,
        )
        os.kill(app.rt.backends()["redis"].pid, signal.SIGKILL)
        # ui.health_interval is 0.5 s here; the issue allows 2 s.
        await wait_for(
            lambda: app.health_panel.status_of("redis") == "unhealthy",
            timeout=3,
            what="redis health red after kill PID",
            pause=pilot.pause,
        )
        assert app.health_panel.rows["redis"].pid is None


async def test_chaos_faults_memory_and_reset(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "/chaos faults llm latency=0.1s errors=100% status=503")
        await wait_for(lambda: any("error_rate" in t for t in _notices(app)), what="faults applied", pause=pilot.pause)
        await send(pilot, "this one fails")
        await wait_for(
            lambda: app.breakers_panel.state_of("llm") == "open", what="breaker opens on 503s", pause=pilot.pause
        )
        await send(pilot, "/chaos memory off")
        await wait_for(
            lambda: app.breakers_panel.state_of("memory") == "open", what="memory offline", pause=pilot.pause
        )
        await send(pilot, "/chaos reset")
        await wait_for(
            lambda: (
                app.breakers_panel.state_of("memory") == "closed" and app.breakers_panel.state_of("llm") == "closed"
            ),
            what="reset",
            pause=pilot.pause,
        )
        await send(pilot, "/chaos explode llm")
        await wait_for(lambda: any("usage: /chaos" in t for t in _notices(app, "hint")), what="hint", pause=pilot.pause)


async def test_a_retry_is_shown_while_waiting_and_the_notice_goes_with_the_answer(
    data_dir: Path, redis_url: str
) -> None:
    config = make_config(
        data_dir,
        redis_url,
        **{
            "resilience.llm.max_attempts": 2,
            "resilience.llm.initial_delay": 0.5,
            "resilience.llm.jitter": False,
            "resilience.llm.failure_threshold": 5,
        },
    )
    app = HoldfastApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await app.rt.chaos.faults(fail_next=1, error_status=503)
        await send(pilot, "please answer after one failure")
        await wait_for(
            lambda: any("retry 1" in t for t in _notices(app, "hint")), what="retry shown", pause=pilot.pause
        )
        await wait_for(
            lambda: (
                not app.turn_running
                and any("please answer after one failure" in r.text for r in app.chat_log.query(AssistantMessage))
            ),
            what="answer after the retry",
            pause=pilot.pause,
        )
        assert not any("waiting for the model" in t or "retry 1" in t for t in _notices(app))


async def test_chaos_quirk_makes_the_demo_llm_speak_like_another_server(app_config: LoadedConfig) -> None:
    from runtime.demo.admin import DemoAdmin

    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        admin = DemoAdmin(app.rt.backends()["llm"].url)
        try:
            await send(pilot, "/chaos quirk ollama")
            await wait_for(
                lambda: any("'ollama' profile" in t for t in _notices(app, "degraded")),
                what="quirk notice",
                pause=pilot.pause,
            )
            assert await admin.profile() == "ollama"
            await send(pilot, "hello through ollama")  # the chat goes on over Ollama's wire format
            await wait_for(
                lambda: (
                    not app.turn_running
                    and any("hello through ollama" in r.text for r in app.chat_log.query(AssistantMessage))
                ),
                what="a reply in the ollama format",
                pause=pilot.pause,
            )
            await send(pilot, "/chaos quirk gpt-imaginary")
            await wait_for(
                lambda: any("unknown profile 'gpt-imaginary'" in t for t in _notices(app, "error")),
                what="unknown profile refused",
                pause=pilot.pause,
            )
            await send(pilot, "/chaos reset")
            await wait_for(lambda: any("chaos reset" in t for t in _notices(app)), what="reset", pause=pilot.pause)
            assert await admin.profile() == "openai"
        finally:
            await admin.aclose()

"""Self-healing you can watch (issue 16, case 10): the real demo LLM server is killed and
restarted by pid; the breaker closes by the health monitor's probes alone (no user message),
a refused call to an LLM the monitor knows is down fails fast to the degraded reply, and the
notices are one line per backend, rewritten in place, not a toast per event.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)
INTERVAL = 0.5
RECOVERY = 1.0


async def test_the_llm_breaker_closes_by_health_probes_alone(data_dir: Path, redis_url: str) -> None:
    config = make_config(
        data_dir,
        redis_url,
        **{"ui.health_interval": INTERVAL, "resilience.llm.recovery_timeout": RECOVERY},
    )
    app = HoldfastApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.rt is not None
        rt = app.rt
        await send(pilot, "/chaos kill llm")
        await wait_for(lambda: not rt.backends()["llm"].running, what="demo LLM killed", pause=pilot.pause)
        await send(pilot, "are you there?")
        await wait_for(lambda: app.breakers_panel.state_of("llm") == "open", what="breaker OPEN", pause=pilot.pause)
        await wait_for(lambda: not app.turn_running, what="turn ends", pause=pilot.pause)
        conversation = app.conversation_id
        assert conversation is not None
        stored_before = len(await rt.read_messages(conversation, 50))
        await send(pilot, "/chaos start llm")
        await wait_for(lambda: rt.backends()["llm"].running, what="demo LLM back", pause=pilot.pause)
        back_at = time.monotonic()
        await wait_for(
            lambda: app.breakers_panel.state_of("llm") == "closed", timeout=15, what="breaker CLOSED", pause=pilot.pause
        )
        healed_in = time.monotonic() - back_at
        # recovery_timeout + one probe interval, plus one probe's own time on a shared machine.
        assert healed_in <= RECOVERY + INTERVAL + 1.5, f"closed {healed_in:.2f} s after the LLM came back"
        assert len(await rt.read_messages(conversation, 50)) == stored_before  # no user message needed
        assert "recovered" in app.backend_lines.texts.get("llm", "")
        assert list(app.backend_lines.lines) == ["llm"]  # one line for the LLM, rewritten in place


async def test_a_refused_call_to_an_llm_known_down_fails_fast(data_dir: Path, redis_url: str) -> None:
    # The shipped retry settings (5 attempts from 2 s) and a breaker that needs 5 failures.
    config = make_config(
        data_dir,
        redis_url,
        **{
            "ui.health_interval": INTERVAL,
            "resilience.llm.max_attempts": 5,
            "resilience.llm.initial_delay": 2.0,
            "resilience.llm.failure_threshold": 5,
        },
    )
    app = HoldfastApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.rt is not None
        await send(pilot, "/chaos kill llm")
        await wait_for(
            lambda: app.health_panel.status_of("llm") in ("degraded", "unhealthy"),
            timeout=5,
            what="the monitor sees the LLM down",
            pause=pilot.pause,
        )

        def answered() -> bool:
            replies = list(app.chat_log.query(AssistantMessage))
            return not app.turn_running and not app._queue and bool(replies) and not replies[-1].streaming

        started = time.monotonic()
        await send(pilot, "anyone home?")
        await wait_for(answered, what="the degraded reply", pause=pilot.pause)
        took = time.monotonic() - started
        assert took <= 2.0, f"the turn took {took:.2f} s"
        reply = list(app.chat_log.query(AssistantMessage))[-1]
        assert reply.source not in ("llm", "")  # the degraded stand-in, marked as such
        assert not [n for n in app.chat_log.query(Notice) if "retry 2" in n.text]  # no retry was waited for

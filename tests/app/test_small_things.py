"""Small things people notice, part 2 (issue 16, case 14): input history survives a restart, per
user; ``/forget`` takes a unique prefix of a memory id; counts read "1 memory", "2 memories".

Real Redis, the embedded demo LLM server, LanceDB memory with lexical embeddings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.widgets.notice import Notice
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


def _notices(app: HoldfastApp) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice)]


async def _command(pilot, app: HoldfastApp, line: str, expect: str) -> str:  # type: ignore[no-untyped-def]
    before = len(_notices(app))
    await send(pilot, line)
    await wait_for(lambda: any(expect in t for t in _notices(app)[before:]), what=f"{line!r}", pause=pilot.pause)
    return next(t for t in _notices(app)[before:] if expect in t)


async def test_input_history_survives_a_restart_per_user(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "first input")
        await wait_for(lambda: not app.turn_running and app.chat_log.last_reply() is not None, pause=pilot.pause)
        await _command(pilot, app, "/help", "Commands")

    again = HoldfastApp(make_config(data_dir, redis_url))
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("up")
        assert again.composer.text == "/help"
        await pilot.press("up")
        assert again.composer.text == "first input"

    other = HoldfastApp(make_config(data_dir, redis_url, **{"agent.user": "someone-else"}))
    async with other.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("up")
        assert other.composer.text == ""  # another user's inputs are not recalled


async def test_forget_by_unique_prefix_and_plurals(data_dir: Path, redis_url: str) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        tea = (await _command(pilot, app, "/remember I like green tea", "remembered as")).split()[-1]
        await _command(pilot, app, "/remember I like black coffee", "remembered as")
        listing = await _command(pilot, app, "/memory like", "for 'like'")
        assert listing.startswith("2 memories for 'like'")
        assert tea[:8] in listing and tea not in listing  # ids are shown shortened

        assert "at least 4 characters" in await _command(pilot, app, "/forget ab", "characters")
        assert "no memory id starts with" in await _command(pilot, app, "/forget zzzz", "no memory id")
        forgot = await _command(pilot, app, f"/forget {tea[:6]}", "forgot")
        assert forgot == f"forgot {tea}"
        listing = await _command(pilot, app, "/memory like", "for 'like'")
        assert listing.startswith("1 memory for 'like'")
        assert "coffee" in listing and "tea" not in listing
        tools = await _command(pilot, app, "/tools", "tool")
        assert re.match(r"^(1 tool|\d+ tools)$", tools.splitlines()[0])


async def test_a_failed_llm_turn_says_its_error_once(data_dir: Path, redis_url: str) -> None:
    """Issue 16 break-test: the LLM down showed the error three times (a degraded notice, the
    fallback reply, "the reply failed: ..."). Now: the fallback reply, marked, plus one /retry line."""
    from app.widgets.assistant_message import AssistantMessage

    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.rt is not None
        rt = app.rt
        await send(pilot, "/chaos kill llm")
        await wait_for(lambda: not rt.backends()["llm"].running, what="demo LLM killed", pause=pilot.pause)
        await send(pilot, "are you there?")

        def fallback() -> AssistantMessage | None:
            replies = [r for r in app.chat_log.query(AssistantMessage) if r.source not in ("llm", "")]
            return replies[-1] if replies and not app.turn_running else None

        await wait_for(fallback, what="the fallback reply", pause=pilot.pause)
        await pilot.pause()
        reply = fallback()
        assert reply is not None
        error = "the LLM endpoint is unreachable"
        assert error in reply.text and "/retry" in reply.text
        texts = [reply.text for reply in app.chat_log.query(AssistantMessage)] + _notices(app)
        assert sum(t.count(error) for t in texts) == 1, texts
        assert sum(t.count("/retry") for t in texts) == 1, texts  # what to do, said once
        assert not [t for t in _notices(app) if t.startswith(("degraded (llm)", "the reply failed"))]

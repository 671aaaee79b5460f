"""Start-up edge cases: a runtime that cannot start, and a small terminal."""

from __future__ import annotations

import pytest

from app.chat_app import HoldfastApp
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from app.widgets.user_message import UserMessage
from runtime.config import LoadedConfig
from runtime.core.errors import InternalError
from tests.support.app import ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def _broken_factory(config: object) -> object:
    raise InternalError("the runtime could not be built")


async def test_a_failed_start_says_so_and_keeps_what_the_user_typed(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config, runtime_factory=_broken_factory)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(
            lambda: any("could not start" in str(n.render()) for n in app.query(Notice)),
            what="start-up failure notice",
            pause=pilot.pause,
        )
        await send(pilot, "please do not lose me")
        await pilot.pause()
        assert app.composer.text == "please do not lose me"
        assert not app.query(UserMessage)  # nothing pretends to be queued forever


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_small_terminals_start_and_chat(app_config: LoadedConfig, size: tuple[int, int]) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await send(pilot, "hello from a small terminal")
        await wait_for(
            lambda: not app.turn_running and bool(app.chat_log.query(AssistantMessage)), what="reply", pause=pilot.pause
        )
        assert app.is_running and len(app.query(UserMessage)) == 1

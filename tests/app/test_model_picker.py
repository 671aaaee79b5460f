"""The model picker (issue 17, item 5): Ctrl+O and ``/model`` list the endpoint's ``/v1/models`` in
a filterable list; the pick is stored with the conversation (its turns ask for it), shown in the
header, and other conversations keep theirs; ``/model NAME`` with a name the endpoint does not
list gets a did-you-mean and changes nothing.

Real Redis, the embedded demo LLM server, which lists ``holdfast-demo`` and its embedding model
``holdfast-demo-embed`` (a chat request naming the embedding model is refused with a 404 that
says so: how the test sees which model a turn asked for).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.screens.model_picker import ModelPickerScreen
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis]

EMBED = "holdfast-demo-embed"


def _notices(app: HoldfastApp) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice)]


async def _picker(pilot, app: HoldfastApp) -> ModelPickerScreen:  # type: ignore[no-untyped-def]
    await wait_for(lambda: isinstance(app.screen, ModelPickerScreen), what="the model picker", pause=pilot.pause)
    screen = app.screen
    assert isinstance(screen, ModelPickerScreen)
    await wait_for(lambda: bool(screen.shown()), what="the model list", pause=pilot.pause)
    return screen


@pytest.mark.parametrize("size", [(80, 24), (140, 40)], ids=["80x24", "wide"])
async def test_pick_a_model_per_conversation(data_dir: Path, redis_url: str, size: tuple[int, int]) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        assert app.rt is not None
        await send(pilot, "hello")
        await wait_for(lambda: bool(app.chat_log.query(AssistantMessage)) and not app.turn_running, pause=pilot.pause)
        first = app.conversation_id
        assert first is not None and app.header.model == "holdfast-demo"

        # Ctrl+O: the endpoint's models, the current one marked; typing filters.
        await pilot.press("ctrl+o")
        picker = await _picker(pilot, app)
        assert picker.shown() == ["holdfast-demo", EMBED]
        await pilot.press(*"embed")
        await wait_for(lambda: picker.shown() == [EMBED], what="the filtered list", pause=pilot.pause)
        await pilot.press("enter")
        await wait_for(lambda: app.header.model == EMBED, what="the header", pause=pilot.pause)
        assert EMBED in str(app.header.render())
        assert (await app.rt.get_conversation(first)).model == EMBED

        # The conversation's turns ask for its model (the demo refuses chat on its embedding model).
        await send(pilot, "which model answers?")
        await wait_for(
            lambda: any("embedding model" in t for t in _notices(app)) and not app.turn_running,
            what="the refusal naming the embedding model",
            pause=pilot.pause,
        )
        # The endpoint's hint names only [llm].model: the line after it names the pick to change.
        await wait_for(
            lambda: any(f"this conversation asks for model {EMBED} (its /model pick)" in t for t in _notices(app)),
            what="the hint naming the conversation's model",
            pause=pilot.pause,
        )

        # A new conversation has no model of its own: the default, and its turns work.
        await send(pilot, "/new")
        await wait_for(lambda: app.conversation_id != first, what="/new", pause=pilot.pause)
        assert app.header.model == "holdfast-demo"
        await send(pilot, "still fine?")
        await wait_for(lambda: bool(app.chat_log.query(AssistantMessage)) and not app.turn_running, pause=pilot.pause)
        assert "[holdfast-demo]" in app.chat_log.query(AssistantMessage).last().text
        second = app.conversation_id

        # Back to the first: its model is shown again (read from the store).
        await app.open_conversation(first)
        assert app.header.model == EMBED

        # /model with no name opens the picker too; Esc changes nothing.
        await send(pilot, "/model")
        picker = await _picker(pilot, app)
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, ModelPickerScreen), pause=pilot.pause)
        assert app.header.model == EMBED

        # A name typed by hand that the endpoint does not list: a did-you-mean, nothing applied.
        await send(pilot, "/model holdfast-dmeo")
        await wait_for(lambda: any("did you mean" in t for t in _notices(app)), what="did-you-mean", pause=pilot.pause)
        hint = next(t for t in _notices(app) if "did you mean" in t)
        assert "unknown model 'holdfast-dmeo', not switched" in hint and "holdfast-demo" in hint
        assert app.header.model == EMBED and (await app.rt.get_conversation(first)).model == EMBED
        # A listed name is applied to this conversation only.
        await send(pilot, "/model holdfast-demo")
        await wait_for(lambda: app.header.model == "holdfast-demo", what="the switch", pause=pilot.pause)
        assert (await app.rt.get_conversation(first)).model == "holdfast-demo"
        assert second is not None and (await app.rt.get_conversation(second)).model == ""


@pytest.mark.parametrize("size", [(80, 24), (140, 40)], ids=["80x24", "wide"])
async def test_a_filter_that_matches_no_model_says_so(data_dir: Path, redis_url: str, size: tuple[int, int]) -> None:
    app = HoldfastApp(make_config(data_dir, redis_url))
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+o")
        picker = await _picker(pilot, app)
        assert picker.none_text() == ""
        await pilot.press(*"xyz")
        await wait_for(lambda: picker.shown() == [], what="the empty list", pause=pilot.pause)
        assert picker.none_text() == "no model matches “xyz”; Esc keeps the current one"
        await pilot.press("backspace", "backspace", "backspace")
        await wait_for(lambda: picker.shown() == ["holdfast-demo", EMBED], what="the whole list", pause=pilot.pause)
        assert picker.none_text() == ""
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, ModelPickerScreen), what="closed", pause=pilot.pause)
        assert app.header.model == "holdfast-demo"

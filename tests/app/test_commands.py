"""Every slash command through the composer, the command palette, the permission modal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.chat_app import HoldfastApp
from app.screens.confirm import ConfirmScreen
from app.screens.model_picker import ModelPickerScreen
from app.screens.permission import PermissionScreen
from app.screens.text_prompt import TextPromptScreen
from app.widgets.assistant_message import AssistantMessage
from app.widgets.notice import Notice
from app.widgets.tool_call_block import ToolCallBlock
from app.widgets.user_message import UserMessage
from runtime.config import LoadedConfig
from tests.support.app import make_config, ready, send
from tests.support.polling import wait_for

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

SIZE = (140, 40)


def _notices(app: HoldfastApp, kind: str | None = None) -> list[str]:
    return [n.text for n in app.chat_log.query(Notice) if kind is None or n.kind == kind]


async def _command(pilot, line: str, expect: str, kind: str | None = None) -> str:
    app = pilot.app
    before = len(_notices(app))
    await send(pilot, line)
    await wait_for(
        lambda: (
            any(expect in t for t in _notices(app, kind)[before:] if kind is None)
            or any(expect in t for t in _notices(app, kind))
        ),
        what=f"{line!r} -> {expect!r}",
        pause=pilot.pause,
    )
    return next(t for t in reversed(_notices(app, kind)) if expect in t)


async def _reply(pilot, text: str) -> None:
    app = pilot.app
    count = len(app.chat_log.query(AssistantMessage))
    await send(pilot, text)
    await wait_for(
        lambda: not app.turn_running and len(app.chat_log.query(AssistantMessage)) > count,
        what=f"reply to {text!r}",
        pause=pilot.pause,
    )


async def test_help_unknown_and_bad_arguments(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        help_text = await _command(pilot, "/help", "/chaos")
        for name in (
            "/new",
            "/system",
            "/model",
            "/retry",
            "/summarize",
            "/memory",
            "/remember",
            "/forget",
            "/tools",
            "/export",
            "/breakers",
            "/health",
            "/copy",
        ):
            assert name in help_text
        await _command(pilot, "/frobnicate", "unknown command /frobnicate", "hint")
        await _command(pilot, "/forget", "usage: /forget <id>", "hint")
        await _command(pilot, "/export md a b", "usage: /export", "hint")
        assert not app.chat_log.query(UserMessage)  # commands are not sent to the model


async def test_new_system_and_model(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await _reply(pilot, "first conversation")
        first = app.conversation_id
        await _command(pilot, "/system Answer in French.", "system prompt")
        assert app.conversation_id == first  # same conversation, history kept
        info = await app.rt.get_conversation(first)
        assert info.system_prompt == "Answer in French." and info.message_count >= 2
        await send(pilot, "/new")
        await wait_for(
            lambda: app.conversation_id != first and not app.chat_log.query(UserMessage), what="/new", pause=pilot.pause
        )
        await _command(pilot, "/system You are a pirate.", "system prompt set")
        info = await app.rt.get_conversation(app.conversation_id)
        assert info.system_prompt == "You are a pirate."
        await send(pilot, "/model")  # the picker over the endpoint's models (tests/app/test_model_picker.py)
        await wait_for(lambda: isinstance(app.screen, ModelPickerScreen), what="the model picker", pause=pilot.pause)
        assert isinstance(app.screen, ModelPickerScreen) and "holdfast-demo" in app.screen.shown()
        await pilot.press("escape")
        await _command(pilot, "/model no-such-model", "unknown model", "hint")


async def test_memory_commands_tools_health_breakers_copy(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        remembered = await _command(pilot, "/remember my favourite colour is teal", "remembered as")
        memory_id = remembered.split("remembered as ")[1].strip()
        found = await _command(pilot, "/memory favourite colour", "for 'favourite colour'")
        assert found.startswith("1 memory for") and memory_id[:8] in found and "teal" in found
        await _command(pilot, f"/forget {memory_id}", f"forgot {memory_id}")
        tools = await _command(pilot, "/tools", "tools")
        assert "calculator" in tools and "clock" in tools
        health = await _command(pilot, "/health", "overall:")
        assert "redis:" in health and "llm:" in health
        await _command(pilot, "/breakers reset llm", "reset breaker: llm")
        await _command(pilot, "/breakers reset nope", "no breaker 'nope'", "hint")
        await _command(pilot, "/copy", "no reply to copy yet", "hint")
        await _reply(pilot, "copy me please")
        await send(pilot, "/copy")
        await wait_for(lambda: "copy me please" in app.clipboard, what="clipboard", pause=pilot.pause)


async def test_export_markdown_and_json(app_config: LoadedConfig, tmp_path: Path) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await _reply(pilot, "export this please")
        md_path = tmp_path / "out.md"
        await _command(pilot, f"/export md {md_path}", "exported")
        assert "export this please" in md_path.read_text()
        json_path = tmp_path / "out.json"
        await _command(pilot, f"/export json {json_path}", "exported")
        data = json.loads(json_path.read_text())
        assert "export this please" in json.dumps(data)


async def test_retry_and_summarize(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await _reply(pilot, "say it twice")
        await send(pilot, "/retry")
        await wait_for(
            lambda: not app.turn_running and len(app.chat_log.query(AssistantMessage)) == 2,
            what="retried reply",
            pause=pilot.pause,
        )
        stored = await app.rt.read_messages(app.conversation_id, 10)
        assert [m.content for m in stored if m.role == "user"] == ["say it twice"]  # not duplicated
        await _command(pilot, "/summarize", "summar")


async def test_rename_and_delete_with_confirm(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await _reply(pilot, "to be renamed")
        await pilot.press("f2")
        await wait_for(lambda: isinstance(app.screen, TextPromptScreen), what="rename prompt", pause=pilot.pause)
        app.screen.query_one("#prompt-input").value = "Renamed [b]title[/b]"
        await pilot.press("enter")
        await wait_for(lambda: app.header.title_text == "Renamed [b]title[/b]", what="renamed", pause=pilot.pause)
        assert (await app.rt.get_conversation(app.conversation_id)).title == "Renamed [b]title[/b]"
        doomed = app.conversation_id
        await pilot.press("f8")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="confirm", pause=pilot.pause)
        await pilot.press("escape")  # cancel keeps it
        await wait_for(lambda: not isinstance(app.screen, ConfirmScreen), what="confirm closed", pause=pilot.pause)
        assert app.conversation_id == doomed
        await pilot.press("f8")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="confirm again", pause=pilot.pause)
        await pilot.click("#yes")
        await wait_for(lambda: app.conversation_id != doomed, what="deleted", pause=pilot.pause)
        assert all(c.id != doomed for c in await app.rt.list_conversations())


async def test_search_filters_conversations_by_title(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await _reply(pilot, "apples are red")
        await pilot.press("ctrl+n")
        await _reply(pilot, "bananas are yellow")
        await wait_for(lambda: len(app.sidebar.conversations) == 2, what="two conversations", pause=pilot.pause)
        await pilot.press("ctrl+f")
        await pilot.press(*"banana")
        await wait_for(lambda: len(app.sidebar.titles()) == 1, what="filtered", pause=pilot.pause)
        assert app.sidebar.title_of(app.sidebar.titles()[0]).startswith("bananas")


async def test_permission_modal_allow_once_and_deny(data_dir: Path, redis_url: str) -> None:
    config = make_config(data_dir, redis_url, **{"plugins.permissions": {"calculator": "ask"}})
    app = HoldfastApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await send(pilot, "what is 6*7?")
        await wait_for(lambda: isinstance(app.screen, PermissionScreen), what="permission modal", pause=pilot.pause)
        assert app.screen.tool_name == "calculator"
        await pilot.click("#once")
        await wait_for(
            lambda: not app.turn_running and bool(app.chat_log.query(ToolCallBlock)), what="ran", pause=pilot.pause
        )
        assert app.chat_log.query(ToolCallBlock).last().status == "ok"
        await send(pilot, "what is 5*5?")
        await wait_for(lambda: isinstance(app.screen, PermissionScreen), what="asked again (once)", pause=pilot.pause)
        await pilot.click("#deny")
        await wait_for(
            lambda: not app.turn_running and len(app.chat_log.query(ToolCallBlock)) == 2,
            what="denied",
            pause=pilot.pause,
        )
        assert app.chat_log.query(ToolCallBlock).last().status == "denied"
        await send(pilot, "what is 2*3?")
        await wait_for(lambda: isinstance(app.screen, PermissionScreen), what="asked a third time", pause=pilot.pause)
        await pilot.click("#always")
        await wait_for(
            lambda: not app.turn_running and len(app.chat_log.query(ToolCallBlock)) == 3,
            what="allowed always",
            pause=pilot.pause,
        )
        await send(pilot, "what is 9*9?")
        await wait_for(
            lambda: not app.turn_running and len(app.chat_log.query(ToolCallBlock)) == 4,
            what="no question after always",
            pause=pilot.pause,
        )
        assert not isinstance(app.screen, PermissionScreen)
        assert [b.status for b in app.chat_log.query(ToolCallBlock)][2:] == ["ok", "ok"]


async def test_palette_lists_the_slash_commands(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        titles = [cmd.title for cmd in app.get_system_commands(app.screen)]
        for usage in ("/new", "/retry", "/health", "/help"):
            assert usage in titles
        run_health = next(cmd for cmd in app.get_system_commands(app.screen) if cmd.title == "/health")
        run_health.callback()
        await wait_for(lambda: any("overall:" in t for t in _notices(app)), what="palette /health", pause=pilot.pause)
        system = next(cmd for cmd in app.get_system_commands(app.screen) if cmd.title.startswith("/system"))
        system.callback()
        assert app.composer.text == "/system "


async def test_an_exception_in_a_worker_is_a_visible_notice_not_a_crash(app_config: LoadedConfig) -> None:
    app = HoldfastApp(app_config)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await _reply(pilot, "something to export")
        # /proc refuses new directories: an OSError escapes the handler inside its worker.
        await send(pilot, "/export md /proc/holdfast-nope/out.md")
        await wait_for(
            lambda: any("failed" in t and "/proc/holdfast-nope" in t for t in _notices(app, "error")),
            what="error notice",
            pause=pilot.pause,
        )
        assert app.is_running
        await _command(pilot, "/health", "overall:")

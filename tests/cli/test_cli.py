"""``holdfast`` headless commands end to end: real Redis, real LanceDB, the real demo LLM server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from tests.support.cli import Run, run_script

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

Holdfast = Callable[..., Run]


def conversation_id(run: Run) -> str:
    found = re.search(r"\[conversation (conv_\w+)\]", run.err)
    assert found, run.err
    return found.group(1)


def conversation_ids(holdfast: Holdfast, *user: str) -> list[str]:
    listed = holdfast(*user, "conversations", "list")
    assert listed.code == 0, listed.err
    return [row["id"] for row in listed.json_lines()]


# ---------------------------------------------------------------- chat


def test_chat_streams_the_answer_to_stdout_and_shows_tool_calls(holdfast: Holdfast) -> None:
    run = holdfast("chat", "what is 12*(3+4)?")
    assert run.code == 0, run.err
    assert run.out.strip() == '[holdfast-demo] The calculator returned "12*(3+4) = 84".'
    assert '[tool calculator {"expression": "12*(3+4)"}]' in run.err
    assert "[tool calculator: ok] 12*(3+4) = 84" in run.err
    assert conversation_ids(holdfast) == [conversation_id(run)]


def test_chat_json_prints_every_event_as_a_line_with_type_and_conversation(holdfast: Holdfast) -> None:
    run = holdfast("chat", "--json", "what is 2+2 and what time is it?")
    assert run.code == 0, run.err
    events = run.json_lines()
    types = [e["type"] for e in events]
    assert types[:3] == ["UserSaved", "MemoriesRecalled", "PromptBuilt"]
    assert types[-2:] == ["AssistantSaved", "TurnFinished"]
    assert types.count("ToolCallStarted") == 2 and types.count("ToolCallFinished") == 2
    (conv,) = {e["conversation_id"] for e in events}
    assert conv.startswith("conv_") and conversation_ids(holdfast) == [conv]
    streamed = "".join(e["text"] for e in events if e["type"] == "TextDelta")
    assert streamed == events[-2]["content"] and "2+2 = 4" in streamed


def test_conversation_flag_continues_and_new_starts_afresh(holdfast: Holdfast) -> None:
    first = holdfast("chat", "hello")
    conv = conversation_id(first)
    again = holdfast("chat", "--conversation", conv, "hello again")
    assert again.code == 0 and conversation_id(again) == conv
    # the model saw the earlier exchange: system + user + assistant + user
    assert "I received 4 messages (1 system, 2 user, 1 assistant)" in again.out
    fresh = holdfast("chat", "--new", "hello once more")
    assert conversation_id(fresh) != conv
    assert "I received 2 messages" in fresh.out
    assert sorted(conversation_ids(holdfast)) == sorted([conv, conversation_id(fresh)])


def test_ask_permission_tool_runs_only_with_yes(holdfast: Holdfast, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLDFAST_PLUGINS__PERMISSIONS", '{"calculator": "ask"}')
    refused = holdfast("chat", "what is 6*7?")
    assert refused.code == 0, refused.err  # the model answers the refusal; the turn did not fail
    assert "[tool calculator: denied]" in refused.err
    assert "the user refused to run the tool 'calculator'" in refused.out and "42" not in refused.out
    allowed = holdfast("chat", "--yes", "what is 6*7?")
    assert allowed.code == 0 and '"6*7 = 42"' in allowed.out


def test_chat_fails_with_exit_1_when_the_model_is_down_and_keeps_the_message(
    holdfast: Holdfast, set_faults: Callable[..., None]
) -> None:
    set_faults(down=True)
    run = holdfast("chat", "are you there?")
    assert run.code == 1
    conv = conversation_id(run)
    # The notice names the command that exists here (the TUI's /retry does not), with the id.
    resend = f"holdfast chat --retry --conversation {conv}"
    assert "[turn failed:" in run.err and resend in run.out and "/retry" not in run.out
    assert f"[resend with: {resend}]" in run.err
    shown = holdfast("conversations", "show", conv)
    assert "are you there?" in shown.out

    set_faults(reset=True)
    again = holdfast("chat", "--retry", "--conversation", conv)
    assert again.code == 0, again.err
    assert again.out.startswith("[holdfast-demo]") and "are you there?" in again.out
    exported = holdfast("conversations", "export", conv, "--format", "json")
    roles = [m["role"] for m in json.loads(exported.out)["messages"]]
    assert roles == ["user", "assistant", "assistant"]  # resent, not saved twice (the notice stays, hidden)


def test_chat_retry_needs_a_conversation_and_no_message(holdfast: Holdfast) -> None:
    assert holdfast("chat", "--retry").code == 2
    assert holdfast("chat", "--retry", "--conversation", "conv_x", "hello").code == 2


# ---------------------------------------------------------------- conversations


def test_conversations_list_show_export_and_delete(holdfast: Holdfast) -> None:
    conv = conversation_id(holdfast("chat", "hello there"))
    (row,) = holdfast("conversations", "list").json_lines()
    assert row["id"] == conv and row["title"] == "hello there" and row["message_count"] == 2

    markdown = holdfast("conversations", "export", conv)
    assert markdown.code == 0
    assert markdown.out.startswith("# hello there") and "## Messages" in markdown.out
    assert "hello there" in markdown.out
    assert "[holdfast-demo] I received 2 messages" in markdown.out
    assert holdfast("conversations", "export", conv, "--format", "md").out == markdown.out

    exported = holdfast("conversations", "export", conv, "--format", "json")
    data = json.loads(exported.out)
    assert [(m["role"], m["content"][:11]) for m in data["messages"]] == [
        ("user", "hello there"),
        ("assistant", "[holdfast-d"),
    ]

    deleted = holdfast("conversations", "delete", conv)
    assert deleted.code == 0 and conv in deleted.out
    assert conversation_ids(holdfast) == []
    gone = holdfast("conversations", "show", conv)
    assert gone.code == 1 and conv in gone.err


def test_conversation_commands_without_an_id_are_usage_errors(holdfast: Holdfast) -> None:
    for action in ("show", "export", "delete"):
        run = holdfast("conversations", action)
        assert run.code == 2 and "Traceback" not in run.err
        assert run.err == (
            f"holdfast conversations {action}: Missing argument 'ID'. See 'holdfast conversations {action} --help'.\n"
        )


# ---------------------------------------------------------------- memory


def test_memory_add_search_list_forget(holdfast: Holdfast) -> None:
    added = holdfast("memory", "add", "My cat is called Tom")
    assert added.code == 0
    (row,) = added.json_lines()
    holdfast("memory", "add", "I work as a lighthouse keeper")

    hits = holdfast("memory", "search", "what is my cat called").json_lines()
    assert hits and hits[0]["id"] == row["id"] and hits[0]["content"] == "My cat is called Tom"
    listed = {m["content"] for m in holdfast("memory", "list").json_lines()}
    assert listed == {"My cat is called Tom", "I work as a lighthouse keeper"}

    forgot = holdfast("memory", "forget", row["id"])
    assert forgot.code == 0
    assert {m["content"] for m in holdfast("memory", "list").json_lines()} == {"I work as a lighthouse keeper"}
    assert all(h["id"] != row["id"] for h in holdfast("memory", "search", "my cat").json_lines())


def test_a_remembered_fact_reaches_the_model_in_chat(holdfast: Holdfast) -> None:
    holdfast("memory", "add", "My cat is called Tom")
    run = holdfast("chat", "what is my cat called?")
    assert run.code == 0 and "My cat is called Tom" in run.out


def test_escape_sequences_in_model_text_never_reach_the_terminal(holdfast: Holdfast) -> None:
    # A memory that tries to retitle the window and write the clipboard (OSC 0, OSC 52).
    holdfast("memory", "add", "My cat is called \x1b]0;pwned\x07Tom\x1b]52;c;ZXZpbA==\x07 \x1b[31mred")
    run = holdfast("chat", "what is my cat called?")
    assert run.code == 0, run.err
    assert "Tom" in run.out and "red" in run.out
    assert "\x1b" not in run.out and "\x07" not in run.out and "\x1b" not in run.err


# ---------------------------------------------------------------- health and tools


def test_health_prints_breakers_and_checks_as_json(holdfast: Holdfast) -> None:
    run = holdfast("health")
    report = json.loads(run.out)
    assert {"redis", "llm", "memory", "embeddings"} <= set(report["checks"])
    assert report["checks"]["redis"]["status"] == "healthy"
    assert report["checks"]["llm"]["status"] == "healthy"
    assert {b["name"] for b in report["breakers"]} >= {"redis"}
    assert all("state" in b for b in report["breakers"])
    assert run.code == (0 if report["status"] == "healthy" else 1)


def test_health_exit_code_says_when_the_llm_is_down(holdfast: Holdfast, set_faults: Callable[..., None]) -> None:
    set_faults(down=True)
    run = holdfast("health")
    report = json.loads(run.out)
    assert report["checks"]["llm"]["status"] != "healthy" and report["status"] != "healthy"
    assert run.code == 1


def test_tools_lists_every_builtin_tool_with_its_schema(holdfast: Holdfast) -> None:
    run = holdfast("tools")
    assert run.code == 0
    (data,) = run.json_lines()
    tools = {t["function"]["name"]: t for t in data["tools"]}
    assert {"calculator", "clock", "memory", "notes", "runtime_status"} <= set(tools)
    calc = tools["calculator"]["function"]["parameters"]
    assert calc["properties"]["expression"]["type"] == "string" and calc["required"] == ["expression"]
    # the injected context parameter is not part of any schema
    assert "ctx" not in tools["notes"]["function"]["parameters"]["properties"]
    assert data["plugin_errors"] == {}


# ---------------------------------------------------------------- users


def test_user_scopes_conversations_and_memories(holdfast: Holdfast) -> None:
    conv = conversation_id(holdfast("--user", "alice", "chat", "my secret plan"))
    # --user works after the subcommand too
    mem = holdfast("memory", "add", "Alice keeps the key under the mat", "--user", "alice").json_lines()[0]

    assert conversation_ids(holdfast, "--user", "bob") == []
    assert holdfast("--user", "bob", "memory", "list").json_lines() == []
    assert holdfast("--user", "bob", "memory", "search", "key under the mat").json_lines() == []
    for action in ("show", "export", "delete"):
        refused = holdfast("--user", "bob", "conversations", action, conv)
        assert refused.code == 1 and "does not exist" in refused.err
    stolen = holdfast("--user", "bob", "chat", "--conversation", conv, "show me")
    assert stolen.code == 1 and "another user" in stolen.err
    assert holdfast("--user", "bob", "memory", "forget", mem["id"]).code == 1

    # alice still has everything, untouched by bob
    assert conversation_ids(holdfast, "--user", "alice") == [conv]
    exported = json.loads(holdfast("--user", "alice", "conversations", "export", conv, "--format", "json").out)
    assert [m["content"] for m in exported["messages"] if m["role"] == "user"] == ["my secret plan"]
    assert [m["id"] for m in holdfast("--user", "alice", "memory", "list").json_lines()] == [mem["id"]]


# ---------------------------------------------------------------- exit codes


def test_exit_codes_are_documented_in_help() -> None:
    run = run_script("--help")
    assert run.code == 0
    for code in ("0", "1", "2", "130"):
        assert re.search(rf"^\W*{code}\s+\w", run.out, re.MULTILINE), run.out


def test_bad_usage_and_bad_config_exit_2_with_one_line(holdfast: Holdfast, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = holdfast("chat", "   ")
    assert empty.code == 2 and empty.err.count("\n") == 1
    both = holdfast("chat", "--new", "--conversation", "conv_x", "hi")
    assert both.code == 2 and "cannot be used together" in both.err
    monkeypatch.setenv("HOLDFAST_AGENT__MAX_STEPS", "zero")
    bad = holdfast("chat", "hi")
    assert bad.code == 2 and "max_steps" in bad.err and "Traceback" not in bad.err

"""The ``holdfast mcp`` commands and MCP tools in ``holdfast chat``, through the real console script;
``holdfast mcp serve`` driven by the official SDK's client (stdio), as another agent would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import mcp_types
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from tests.support.cli import HOLDFAST, run_script
from tests.support.mcp import LIAR, NOTES

pytestmark = [pytest.mark.slow]


def write_config(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


SERVERS = f"""
[mcp.servers.notes]
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(NOTES))}]
permission = "allow"

[mcp.servers.liar]
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(LIAR))}]
"""


def test_mcp_list_shows_each_servers_state_and_tools(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", SERVERS)
    done = run_script("mcp", "list", "--config", str(config))
    assert done.code == 1, done.err  # a tool of liar was skipped
    assert "notes: running (stdio:" in done.out and "  echo [allow] Say the text back." in done.out
    assert "liar: running" in done.out and "  honest [ask] Answers properly." in done.out
    assert "✖ bad_schema skipped: not a valid JSON Schema" in done.out
    rows = {row["name"]: row for row in run_script("mcp", "list", "--json", "--config", str(config)).json_lines()}
    assert {t["name"] for t in rows["notes"]["tools"]} == {"echo", "add", "slow", "whoami", "fail"}
    assert rows["liar"]["skipped"].keys() == {"bad_schema", "not_object"}
    assert rows["notes"]["pid"] is not None and not _alive(rows["notes"]["pid"])  # stopped on exit


def test_holdfast_tools_lists_mcp_tools_like_built_in_ones(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", SERVERS)
    done = run_script("tools", "--config", str(config))
    assert done.code == 1, done.err  # liar's invalid schemas are load errors
    listed = {t["function"]["name"]: t for t in json.loads(done.out)["tools"]}
    assert {"calculator", "echo", "add", "honest"} <= listed.keys()
    assert listed["echo"]["function"]["description"] == "Say the text back."
    assert listed["echo"]["permission"] == "allow" and listed["honest"]["permission"] == "ask"
    assert "bad_schema" not in listed
    assert any("bad_schema" in key for key in json.loads(done.out)["plugin_errors"])


def test_mcp_add_writes_the_user_config_and_keeps_what_it_held(isolated_dirs: Path) -> None:
    user_config = isolated_dirs / "config" / "holdfast" / "config.toml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text("# my settings\n[agent]\nmax_steps = 4\n", encoding="utf-8")
    done = run_script("mcp", "add", "notes", "--env", "NOTES_MODE=test", "--", sys.executable, str(NOTES))
    assert done.code == 0, done.err
    assert f"added MCP server notes to {user_config}" in done.out
    written = user_config.read_text(encoding="utf-8")
    assert written.startswith("# my settings\n[agent]\nmax_steps = 4\n")
    assert tomllib.loads(written)["mcp"]["servers"]["notes"] == {
        "command": sys.executable,
        "args": [str(NOTES)],
        "env": {"NOTES_MODE": "test"},
        "permission": "ask",
    }
    again = run_script("mcp", "add", "notes", "--", "other")
    assert again.code == 1 and "already has [mcp.servers.notes]" in again.err
    bad = run_script("mcp", "add", "x", "--permission", "maybe", "--", "cmd")
    assert bad.code == 2 and "'allow', 'ask' or 'deny'" in bad.err
    listed = run_script("mcp", "list")
    assert listed.code == 0 and "  echo [ask] Say the text back." in listed.out


def test_holdfast_chat_calls_an_mcp_tool_like_a_built_in_one(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", SERVERS + '\n[memory]\nembedding_provider = "lexical"\n')
    done = run_script("chat", "--config", str(config), 'call echo with {"text": "from the cli"}')
    assert done.code == 0, done.err
    assert '[tool echo {"text": "from the cli"}]' in done.err and "[tool echo: ok] echo: from the cli" in done.err
    assert 'echo returned "echo: from the cli"' in done.out
    # "ask" tools need --yes, exactly like a plugin's.
    refused = run_script("chat", "--config", str(config), 'call honest with {"x": "y"}')
    assert "[tool honest: denied]" in refused.err


def _alive(pid: int) -> bool:
    from runtime.core.procs import pid_alive

    return pid_alive(pid)


async def _call(session: ClientSession, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
    result = await session.call_tool(name, arguments)
    assert isinstance(result, mcp_types.CallToolResult)
    return result


def _text(result: mcp_types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, mcp_types.TextContent))


@pytest.mark.e2e
async def test_holdfast_mcp_serve_scopes_memory_to_its_user(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "PATH") or k.startswith("XDG_")} | {
        "HOLDFAST_DATA_DIR": str(tmp_path / "data"),
        "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "lexical",
        "HOLDFAST_MEMORY__MIN_SIMILARITY": "0.05",
    }
    ids: dict[str, str] = {}
    for user, fact in (
        ("bob", "bob drinks green tea every morning"),
        ("alice", "alice drinks black coffee every morning"),
    ):
        params = StdioServerParameters(command=str(HOLDFAST), args=["mcp", "serve", "--user", user], env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = {t.name for t in (await session.list_tools()).tools}
            assert listed == {"search_memories", "add_memory", "forget_memory"}
            added = await _call(session, "add_memory", {"text": fact})
            assert not added.is_error
            ids[user] = _text(added)

    params = StdioServerParameters(command=str(HOLDFAST), args=["mcp", "serve", "--user", "alice"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        found = await _call(session, "search_memories", {"query": "what does she drink every morning?"})
        assert not found.is_error and found.structured_content is not None
        memories = found.structured_content["memories"]
        assert [m["content"] for m in memories] == ["alice drinks black coffee every morning"]
        assert memories[0]["id"] == ids["alice"]
        # Bob's memory is out of reach: forgetting it by id is an error, and it stays.
        refused = await _call(session, "forget_memory", {"memory_id": ids["bob"]})
        assert refused.is_error and f"no memory {ids['bob']}" in _text(refused)
        forgot = await _call(session, "forget_memory", {"memory_id": ids["alice"]})
        assert not forgot.is_error and _text(forgot) == f"forgot {ids['alice']}"
        after = await _call(session, "search_memories", {"query": "drink every morning"})
        assert after.structured_content is not None and after.structured_content["memories"] == []

    params = StdioServerParameters(command=str(HOLDFAST), args=["mcp", "serve", "--user", "bob"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        bobs = await _call(session, "search_memories", {"query": "drink every morning"})
        assert bobs.structured_content is not None
        assert [m["id"] for m in bobs.structured_content["memories"]] == [ids["bob"]]


ODDITIES = LIAR.with_name("oddities.py")


def test_mcp_add_checks_the_url_and_which_options_go_with_which_transport(isolated_dirs: Path) -> None:
    for argv, why in (
        (("--url", "notaurl"), "--url 'notaurl' is not an http:// or https:// URL"),
        (("--url", "ftp://host/mcp"), "is not an http:// or https:// URL"),
        (("--url", "http:///mcp"), "has no host"),
        (("--url", "http://127.0.0.1:9/mcp", "--env", "A=B"), "--env is for a stdio server"),
        (("--header", "A=B", "--", "cmd"), "--header is for a --url server"),
        (("--url", "http://127.0.0.1:9/mcp", "--header", "novalue"), "--header takes KEY=VALUE"),
    ):
        done = run_script("mcp", "add", "web", *argv)
        assert done.code == 2 and why in done.err and len(done.err.strip().splitlines()) == 1, (argv, done.err)
    user_config = isolated_dirs / "config" / "holdfast" / "config.toml"
    assert not user_config.exists()  # nothing written for a refused entry
    done = run_script("mcp", "add", "web", "--url", "http://127.0.0.1:9/mcp", "--header", "Authorization=Bearer t")
    assert done.code == 0, done.err
    assert tomllib.loads(user_config.read_text(encoding="utf-8"))["mcp"]["servers"]["web"] == {
        "url": "http://127.0.0.1:9/mcp",
        "headers": {"Authorization": "Bearer t"},
        "permission": "ask",
    }


def test_mcp_list_prints_a_servers_text_plainly_and_a_closed_stdout_is_no_failure(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml",
        f"[mcp.servers.odd]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(ODDITIES))}]\n",
    )
    done = run_script("mcp", "list", "--config", str(config))
    assert done.code == 1, done.err  # tools were skipped
    assert "\x1b" not in done.out and "\x07" not in done.out
    assert "  loud [ask] [bold red]Loud[/] red tool" in done.out
    assert "✖ dangling_ref skipped: not a valid JSON Schema at properties/x: $ref '#/$defs/missing'" in done.out
    assert "✖ twice skipped: listed twice by the server" in done.out
    # `holdfast mcp list | head -1`: the reader leaving is not the data dir's fault, nor a failure.
    for extra in ((), ("--json",)):
        proc = subprocess.Popen(
            [str(HOLDFAST), "mcp", "list", *extra, "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 0 and err == "", (extra, err)


@pytest.mark.e2e
async def test_holdfast_mcp_serve_reports_bad_arguments_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "PATH") or k.startswith("XDG_")} | {
        "HOLDFAST_DATA_DIR": str(tmp_path / "data"),
        "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "lexical",
    }
    params = StdioServerParameters(command=str(HOLDFAST), args=["mcp", "serve", "--user", "alice"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for name, arguments, expected in (
            (
                "search_memories",
                {"query": "tea", "limit": 0},
                "invalid arguments for search_memories: limit: Input should be greater than or equal to 1",
            ),
            ("add_memory", {}, "invalid arguments for add_memory: text: Field required"),
        ):
            result = await _call(session, name, arguments)
            assert result.is_error and _text(result) == expected


def test_holdfast_doctor_checks_the_mcp_servers(tmp_path: Path) -> None:
    healthy = write_config(
        tmp_path / "ok.toml",
        f"[mcp.servers.notes]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(NOTES))}]\n",
    )
    done = run_script("doctor", "--config", str(healthy))
    assert done.code == 0, done.out + done.err
    assert "  ok    mcp         1 of 1 servers running, 5 tools" in done.out
    broken = write_config(
        tmp_path / "broken.toml",
        f"[mcp.servers.odd]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(ODDITIES))}]\n"
        '[mcp.servers.ghost]\ncommand = "no-such-mcp-server-anywhere"\n',
    )
    done = run_script("doctor", "--config", str(broken))
    assert done.code == 1 and "not healthy: mcp failed" in done.out, done.out + done.err
    [row] = [line for line in done.out.splitlines() if line.startswith("  FAIL  mcp")]
    assert "1 of 2 servers running" in row and "ghost: MCP server ghost: command 'no-such-mcp-server-anywhere'" in row
    assert "skipped: odd/dangling_ref, odd/remote_ref, odd/twice (holdfast mcp list says why)" in row

"""Each running Holdfast holds a session: a started Runtime lists it (with its face, pid, host and
conversation), a turn makes its conversation the active one, another user does not see it, an
orderly stop deletes it and keeps where the user was; ``holdfast sessions`` (the real console
script) lists a running process's session by user."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from runtime.agent import collect
from runtime.demo.launcher import DemoLLMServer
from tests.support.cli import run_script
from tests.support.host import StartRuntime
from tests.support.polling import wait_for

pytestmark = pytest.mark.redis


async def test_a_started_runtime_holds_a_session_for_its_user(start_runtime: StartRuntime) -> None:
    alice = await start_runtime("alice", face="tui")
    [session] = await alice.list_sessions()
    assert session.current and session.id == alice.session_id
    assert (session.user_id, session.face, session.pid, session.host) == (
        "alice",
        "tui",
        os.getpid(),
        socket.gethostname(),
    )
    assert session.last_seen <= session.expires_at


async def test_a_turn_makes_its_conversation_active_and_stop_deletes_the_session(
    start_runtime: StartRuntime,
) -> None:
    alice = await start_runtime("alice")
    bob = await start_runtime("bob")
    conv = await alice.agent.new_conversation()
    await collect(alice.run_turn(conv, "hello from the command line"))

    async def active() -> bool:
        return [s.active_conversation_id for s in await bob.list_sessions("alice")] == [conv]

    await wait_for(active, what="alice's session shows the conversation she chats in")
    assert [s.user_id for s in await bob.list_sessions()] == ["bob"]  # bob's own, not alice's
    await alice.stop()
    assert await bob.list_sessions("alice") == []
    assert await bob.sessions.last_conversation("alice") == conv  # a relaunch finds it


@pytest.mark.slow
@pytest.mark.e2e
async def test_holdfast_sessions_lists_a_running_process_by_user(
    start_runtime: StartRuntime, data_dir: Path, redis_url: str, demo_server: DemoLLMServer
) -> None:
    alice = await start_runtime("alice")
    conv = alice.new_conversation_id()
    alice.set_active_conversation(conv)

    async def recorded() -> bool:
        return [s.active_conversation_id for s in await alice.list_sessions()] == [conv]

    await wait_for(recorded, what="the active conversation in alice's session")
    env = {
        "HOLDFAST_DATA_DIR": str(data_dir / "cli"),
        "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "lexical",
        "HOLDFAST_REDIS__URL": redis_url,
    }
    base = ["--base-url", demo_server.url, "--model", "holdfast-demo"]

    listed = await asyncio.to_thread(run_script, "sessions", "--user", "alice", "--json", *base, env=env)
    assert listed.code == 0, listed.err
    [line] = listed.json_lines()  # the command's own short-lived session is not listed
    assert line["id"] == alice.session_id and line["pid"] == os.getpid()
    assert (line["user_id"], line["face"], line["active_conversation_id"]) == ("alice", "cli", conv)

    table = await asyncio.to_thread(run_script, *base, "sessions", "--user", "alice", env=env)
    assert table.code == 0, table.err
    assert str(os.getpid()) in table.out and conv in table.out and "FACE" in table.out

    other = await asyncio.to_thread(run_script, "sessions", "--json", "--user", "bob", *base, env=env)
    assert other.code == 0, other.err
    assert other.json_lines() == []

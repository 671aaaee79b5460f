"""Storage you can trust, through the real ``holdfast`` console script: a damaged journal record
costs only itself and the user is told; a Redis that refuses writes (out of memory, read-only
replica) keeps the message in the journal and health says why; no secret of a URL reaches any
output; a corrupted memory store says "memory offline"; a read-only or full data dir (real tmpfs
mounts) and a read-only log dir are one line naming the path and what to do, never a traceback
or a silent success; a model's bidi trick reaches the terminal in stored order."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from runtime.core.procs import free_port
from runtime.core.safe_text import INVISIBLE
from runtime.state.embedded_redis import find_redis_server, ping
from tests.support.cli import Run, run_script
from tests.support.polling import wait_until
from tests.support.storage import (
    fill,
    flip_line,
    journal_while_redis_is_down,
    need_tmpfs,
    read_only,
    redis_servers_of,
    tmpfs,
)

pytestmark = pytest.mark.slow

ONE_LINE_RULES = "one line, no traceback"


def _one_line(run: Run) -> str:
    """The single line a failing command printed on stderr (asserted to be exactly one)."""
    assert run.err.count("\n") == 1 and "Traceback" not in run.err, (ONE_LINE_RULES, run.err)
    return run.err.strip()


# ---------------------------------------------------------------- the journal survives damage


@pytest.mark.timeout(2 * 20)
def test_a_flipped_byte_in_line_5_of_10_loses_that_record_only_and_the_user_is_told(
    data_dir: Path, script_env: dict[str, str], redis_url: str
) -> None:
    conv = asyncio.run(journal_while_redis_is_down(data_dir / "journal"))
    journal = data_dir / "journal" / "redis-journal.jsonl"
    assert journal.read_bytes().count(b"\n") == 10
    flip_line(journal, 5, b"message 4", b"messagE 4")  # one byte of line 5

    run = run_script("--user", "alice", "conversations", "show", conv, env=script_env)

    assert run.code == 0, run.err
    quarantine = data_dir / "journal" / "redis-journal.quarantine.jsonl"
    assert run.err == (
        f"holdfast: 1 damaged record(s) of the local journal {journal} (line 5) moved to {quarantine}; "
        "every other record is kept\n"
    )
    # The nine good records before and after it reached Redis: the conversation and 8 messages.
    shown = [f"message {i}" for i in (1, 2, 3, 5, 6, 7, 8, 9)]
    assert [line for line in run.out.splitlines() if line.startswith("message ")] == shown
    assert redis.Redis.from_url(redis_url).keys("*conv*")  # replayed into the real Redis
    [entry] = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert entry["line"] == 5 and "messagE 4" in entry["raw"] and entry["reason"] == "checksum mismatch"
    assert journal.read_bytes() == b""

    again = run_script("--user", "alice", "conversations", "show", conv, env=script_env)
    assert again.code == 0 and again.err == ""  # reported once


# ---------------------------------------------------------------- Redis refuses writes


@pytest.fixture
def full_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The suite's Redis, made to refuse writes (maxmemory 1 under noeviction) for the test."""
    admin = redis.Redis.from_url(redis_url)
    old = admin.config_get("maxmemory*")
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    yield admin
    admin.config_set("maxmemory", old["maxmemory"])
    admin.config_set("maxmemory-policy", old["maxmemory-policy"])
    admin.close()


@pytest.mark.timeout(5 * 20)
def test_chat_on_an_out_of_memory_redis_journals_the_message_and_health_says_why(
    data_dir: Path, script_env: dict[str, str], full_redis: redis.Redis
) -> None:
    run = run_script("--user", "alice", "chat", "buy the milk", env=script_env)
    assert run.code == 0, run.err
    assert 'You said: "buy the milk"' in run.out
    conv = run.err.rsplit("[conversation ", 1)[1].split("]")[0]
    journal = (data_dir / "journal" / "redis-journal.jsonl").read_text()
    assert "buy the milk" in journal  # kept on disk, not lost

    health = run_script("health", env=script_env)
    assert health.code == 1
    check = json.loads(health.out)["checks"]["redis"]
    assert check["status"] == "degraded" and check["details"]["redis_reply"] == "OOM"
    assert "out of memory" in check["error"] and "refuses writes" in check["error"]

    full_redis.config_set("maxmemory", 0)  # the limit is lifted: the next command replays
    exported = run_script("--user", "alice", "conversations", "export", conv, "--format", "json", env=script_env)
    assert exported.code == 0, exported.err
    messages = json.loads(exported.out)["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["buy the milk"]  # once
    assert [m["seq"] for m in messages] == [0, 1]
    assert (data_dir / "journal" / "redis-journal.jsonl").read_text() == ""
    after = json.loads(run_script("health", env=script_env).out)["checks"]["redis"]
    assert "writes" not in after["details"] and "refuses" not in (after["error"] or "")  # (slow is possible)


@pytest.fixture
def replica(tmp_path: Path, redis_url: str) -> Iterator[str]:
    """A real read-only replica of the suite's Redis; yields its URL."""
    binary = find_redis_server()
    assert binary is not None
    port = free_port()
    primary = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["port"]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--replicaof", "127.0.0.1", str(primary)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: ping("127.0.0.1", port), 10, "the replica to answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.timeout(2 * 20)
def test_a_read_only_replica_keeps_the_message_in_the_journal_and_health_says_why(
    data_dir: Path, script_env: dict[str, str], replica: str
) -> None:
    env = {**script_env, "HOLDFAST_REDIS__URL": replica}
    run = run_script("--user", "alice", "chat", "written to a replica", env=env)
    assert run.code == 0, run.err
    assert "written to a replica" in (data_dir / "journal" / "redis-journal.jsonl").read_text()
    check = json.loads(run_script("health", env=env).out)["checks"]["redis"]
    assert check["status"] == "degraded" and check["details"]["redis_reply"] == "READONLY"
    assert "read-only replica" in check["error"]


def _received(run: Run) -> str:
    """The demo model's count of the prompt it was sent ("I received 5 messages (...)")."""
    return run.out.split("I received ", 1)[1].split(")", 1)[0] + ")"


def _user_turns(redis_url: str, conv: str, env: dict[str, str]) -> list[str]:
    exported = run_script("--user", "alice", "conversations", "export", conv, "--format", "json", env=env)
    assert exported.code == 0, exported.err
    return [m["content"] for m in json.loads(exported.out)["messages"] if m["role"] == "user"]


@pytest.mark.timeout(6 * 20)
def test_a_second_process_on_an_out_of_memory_redis_still_sends_the_whole_history_and_replays_later(
    data_dir: Path, script_env: dict[str, str], redis_url: str, full_redis: redis.Redis
) -> None:
    full_redis.config_set("maxmemory", 0)  # the conversation is written while Redis has room
    first = run_script("--user", "alice", "chat", "the boat is blue", env=script_env)
    assert first.code == 0, first.err
    conv = first.err.rsplit("[conversation ", 1)[1].split("]")[0]
    second = run_script("--user", "alice", "chat", "--conversation", conv, "the oar is red", env=script_env)
    assert _received(second) == "4 messages (1 system, 2 user, 1 assistant)"

    full_redis.config_set("maxmemory", 1)  # now every write is refused (OOM); reads are not
    third = run_script("--user", "alice", "chat", "--conversation", conv, "the sail is white", env=script_env)
    fourth = run_script("--user", "alice", "chat", "--conversation", conv, "and the mast?", env=script_env)

    assert third.code == 0 and fourth.code == 0, (third.err, fourth.err)
    # Each fresh process read the history from Redis, plus what earlier processes journaled.
    assert _received(third) == "6 messages (1 system, 3 user, 2 assistant)"
    assert _received(fourth) == "8 messages (1 system, 4 user, 3 assistant)"
    assert "out of memory" in fourth.err and "local journal" in fourth.err
    assert "circuit open" not in third.err + fourth.err
    journal = data_dir / "journal" / "redis-journal.jsonl"
    assert journal.read_text().count('"op":"append"') == 4  # two turns: user and assistant each

    full_redis.config_set("maxmemory", 0)  # writes accepted again: the next command replays
    assert _user_turns(redis_url, conv, script_env) == [
        "the boat is blue",
        "the oar is red",
        "the sail is white",
        "and the mast?",
    ]  # each once, in order
    assert journal.read_text() == ""


@pytest.mark.timeout(4 * 20)
def test_a_second_process_on_a_read_only_replica_still_sends_the_whole_history(
    data_dir: Path, script_env: dict[str, str], redis_url: str, replica: str
) -> None:
    first = run_script("--user", "alice", "chat", "the boat is blue", env=script_env)
    assert first.code == 0, first.err
    conv = first.err.rsplit("[conversation ", 1)[1].split("]")[0]
    on_replica = {**script_env, "HOLDFAST_REDIS__URL": replica}
    wait_until(
        lambda: redis.Redis.from_url(replica).exists(*redis.Redis.from_url(redis_url).keys("*")) > 0,
        10,
        "the replica to copy the conversation",
    )

    second = run_script("--user", "alice", "chat", "--conversation", conv, "the oar is red", env=on_replica)

    assert second.code == 0, second.err
    assert _received(second) == "4 messages (1 system, 2 user, 1 assistant)"
    assert "read-only replica" in second.err and "circuit open" not in second.err
    assert "the oar is red" in (data_dir / "journal" / "redis-journal.jsonl").read_text()


# ---------------------------------------------------------------- secrets in URLs


def test_redis_url_password_is_masked_in_config() -> None:
    run = run_script("config", env={"REDIS_URL": "redis://:hunter2pw@db.internal:6380/0"})
    assert run.code == 0
    assert "hunter2pw" not in run.out + run.err
    assert '"redis://:****@db.internal:6380/0"' in run.out


@pytest.mark.timeout(4 * 20)
def test_a_base_url_with_credentials_never_reaches_an_output_a_notice_health_or_the_log(
    data_dir: Path, script_env: dict[str, str], tmp_path: Path
) -> None:
    secret = "sk-live-0123456789abcdefSECRET"
    dead = f"http://user:{secret}@127.0.0.1:{free_port()}/v1"  # nothing listens: the LLM is down
    log_file = tmp_path / "holdfast.log"
    env = {**script_env, "HOLDFAST_LLM__BASE_URL": dead, "HOLDFAST_LOGGING__FILE": str(log_file)}

    config = run_script("config", env=env)
    chat = run_script("--user", "alice", "chat", "are you there?", env=env)
    conv = chat.err.rsplit("[conversation ", 1)[1].split("]")[0]
    shown = run_script("--user", "alice", "conversations", "export", conv, "--format", "json", env=env)
    health = run_script("health", env=env)

    assert "user:****@127.0.0.1" in config.out
    assert "unavailable" in chat.out  # the saved degraded notice, printed and stored
    assert "user:****@127.0.0.1" in health.out
    everything = [config.out, config.err, chat.out, chat.err, shown.out, shown.err, health.out, health.err]
    everything.append(log_file.read_text())
    for text in everything:
        assert secret not in text


# ---------------------------------------------------------------- memory offline


@pytest.mark.timeout(3 * 20)
def test_memory_search_on_a_corrupted_store_says_memory_offline_and_fails(
    data_dir: Path, script_env: dict[str, str]
) -> None:
    assert run_script("memory", "add", "My dog is called Rex", env=script_env).code == 0
    assert "Rex" in run_script("memory", "search", "dog", env=script_env).out
    for manifest in (data_dir / "memory").rglob("*.manifest"):
        manifest.write_bytes(b"garbage\n")

    run = run_script("memory", "search", "dog", env=script_env)

    assert run.code == 1 and run.out == ""
    assert _one_line(run).startswith("holdfast: memory offline: memory store")


# ---------------------------------------------------------------- read-only and full disks


def test_memory_add_on_a_read_only_data_dir_fails_naming_the_queue(tmp_path: Path, script_env: dict[str, str]) -> None:
    need_tmpfs()
    with tmpfs(tmp_path / "ro") as data:
        read_only(data)
        run = run_script("memory", "add", "a fact", env={**script_env, "HOLDFAST_DATA_DIR": str(data)})
    assert run.code == 1 and run.out == ""  # no id printed for a memory that was never stored
    assert _one_line(run) == (
        f"holdfast: memory: cannot queue the memory write in {data / 'memory-write-queue.jsonl'}: the file "
        "system is read-only; free some space or make it writable, or choose another data dir with HOLDFAST_DATA_DIR"
    )


def test_memory_add_on_a_full_data_dir_fails_naming_the_queue(tmp_path: Path, script_env: dict[str, str]) -> None:
    need_tmpfs()
    with tmpfs(tmp_path / "full", size="1m") as data:
        fill(data)
        run = run_script("memory", "add", "a fact", env={**script_env, "HOLDFAST_DATA_DIR": str(data)})
        assert (
            not (data / "memory-write-queue.jsonl").exists()
            or b"a fact" not in (data / "memory-write-queue.jsonl").read_bytes()
        )
    assert run.code == 1 and run.out == ""
    assert "the disk is full" in _one_line(run) and str(data) in run.err


@pytest.fixture
def embedded_env(script_env: dict[str, str]) -> dict[str, str]:
    """The console script on embedded defaults (the data dir's own redis-server)."""
    return {k: v for k, v in script_env.items() if k != "HOLDFAST_REDIS__URL"}


def test_chat_on_a_read_only_data_dir_with_the_embedded_redis_is_one_line(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    need_tmpfs()
    with tmpfs(tmp_path / "ro") as data:
        read_only(data)
        run = run_script("chat", "hello", env={**embedded_env, "HOLDFAST_DATA_DIR": str(data)})
        assert redis_servers_of(data) == []
    assert run.code == 1
    line = _one_line(run) if run.err.count("\n") == 1 else run.err.strip().splitlines()[-1]
    assert "Traceback" not in run.err
    assert str(data) in line and "the file system is read-only" in line and "HOLDFAST_DATA_DIR" in line


@pytest.mark.timeout(3 * 20)
def test_when_the_embedded_redis_cannot_start_health_and_the_notice_give_the_real_reason(
    tmp_path: Path, data_dir: Path, embedded_env: dict[str, str]
) -> None:
    need_tmpfs()
    with tmpfs(tmp_path / "redis-ro") as redis_dir:
        read_only(redis_dir)
        env = {**embedded_env, "HOLDFAST_REDIS__EMBEDDED_DATA_DIR": str(redis_dir)}
        health = run_script("health", env=env)
        chat = run_script("--user", "alice", "chat", "kept anyway", env=env)
        assert redis_servers_of(redis_dir) == []

    check = json.loads(health.out)["checks"]["redis"]
    assert check["status"] == "unhealthy" and check["details"]["embedded"] == "not started"
    reason = check["error"]
    assert reason.startswith("embedded Redis could not start: ") and "\n" not in reason
    assert str(redis_dir) in reason and "the file system is read-only" in reason and "[redis].url" in reason
    assert "unreachable" not in reason and "circuit open" not in reason
    # The chat goes on, on the local journal, and its degraded notice says the same.
    assert chat.code == 0, chat.err
    assert f"[degraded: {reason}: the conversation is kept in the local journal" in chat.err
    assert "kept anyway" in (data_dir / "journal" / "redis-journal.jsonl").read_text()


def test_chat_on_a_full_data_dir_with_the_embedded_redis_is_one_line_and_leaves_no_server(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    need_tmpfs()
    with tmpfs(tmp_path / "full", size="1m") as data:
        fill(data)
        run = run_script("chat", "hello", env={**embedded_env, "HOLDFAST_DATA_DIR": str(data)})
        assert redis_servers_of(data / "redis") == []
    assert run.code == 1 and "Traceback" not in run.err
    last = run.err.strip().splitlines()[-1]
    assert last.startswith("holdfast: ") and "the disk is full" in last and str(data) in last


@pytest.mark.timeout(3 * 20)
def test_a_read_only_log_dir_is_one_line_for_every_command(tmp_path: Path, script_env: dict[str, str]) -> None:
    need_tmpfs()
    with tmpfs(tmp_path / "logs") as logs:
        read_only(logs)
        env = {**script_env, "HOLDFAST_LOG_DIR": str(logs / "holdfast")}
        for argv in (["config"], ["memory", "list"], ["chat", "hi"]):
            run = run_script(*argv, env=env)
            assert run.code == 1, (argv, run)
            assert _one_line(run) == (
                f"holdfast: cannot write the log file {logs / 'holdfast' / 'holdfast.log'}: the file system is "
                "read-only; make it writable, or choose another log dir with HOLDFAST_LOG_DIR (or [logging].file)"
            )


# ---------------------------------------------------------------- what reaches the terminal


@pytest.mark.timeout(2 * 20)
def test_holdfast_chat_prints_a_models_bidi_trick_in_stored_order(script_env: dict[str, str]) -> None:
    # The demo model echoes the message: what reaches the terminal is the text without overrides.
    run = run_script("chat", "read this: \u202egnp.exe\u2066 \u200bdone", env=script_env)
    assert run.code == 0, run.err
    assert 'read this: gnp.exe done"' in run.out
    assert not set(run.out) & set(INVISIBLE)
    listed = run_script("conversations", "list", env=script_env)
    assert not set(listed.out) & set(INVISIBLE)

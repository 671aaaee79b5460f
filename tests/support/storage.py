"""Helpers for the storage tests: real small file systems, the embedded Redis's processes, and
the environment of a ``holdfast`` that runs on embedded defaults.

:func:`tmpfs` mounts a real tmpfs of a given size (full when filled, read-only when asked), which
needs root; :func:`need_tmpfs` skips a test with the reason when mounting is impossible.
:func:`redis_servers_of` lists the redis-server processes serving a directory (from ``/proc``:
redis-server rewrites its command line, but it runs in its ``--dir``).
:func:`embedded_env` is the environment of a console script with no Redis URL (the data dir's
own redis-server) and a given LLM endpoint. :func:`journal_while_redis_is_down` writes a real
journal the way the conversation store does when Redis is out, and :func:`flip_line` damages
one of its records.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.config import RedisConfig, ResilienceConfig, ServiceResilience
from runtime.core.events import EventBus
from runtime.core.procs import free_port, pid_alive
from runtime.resilience import Resilience
from runtime.state.client import RedisRunner, make_redis_client
from runtime.state.conversations import ConversationStore


def can_mount() -> str:
    """Why tmpfs mounts are impossible here ("" when they work): not root, or no permission."""
    if os.geteuid() != 0:
        return f"mounting a tmpfs needs root (the test runs as uid {os.geteuid()})"
    probe = Path("/tmp") / f"holdfast-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if done.returncode != 0:
            return f"mount -t tmpfs failed: {done.stderr.decode(errors='replace').strip()}"
        subprocess.run(["umount", str(probe)], check=True)
        return ""
    except FileNotFoundError:
        return "no mount command"
    finally:
        probe.rmdir()


def need_tmpfs() -> None:
    """Skip the calling test, saying why, when a tmpfs cannot be mounted here."""
    reason = can_mount()
    if reason:
        pytest.skip(reason)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "4m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``mount -o size=``) on ``path`` (created) for the block; unmounted
    after it, lazily if a process still has a file open there."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        done = subprocess.run(["umount", str(path)], capture_output=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)


def read_only(path: Path) -> None:
    """Remount the tmpfs at ``path`` read-only (EROFS for every write, root included)."""
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def fill(path: Path) -> None:
    """Fill the file system of ``path`` until a write fails with ENOSPC (a file ``fill`` in it)."""
    # Unbuffered, down to single bytes: a buffered file would raise ENOSPC again on close, and
    # big writes would leave a partial page free.
    with (path / "fill").open("wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * size)
            fh.flush()


def redis_servers_of(directory: Path) -> list[int]:
    """Pids of the live redis-server processes running in ``directory``."""
    target = directory.resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "cmdline").read_bytes().split(b"\0")[0].split(b" ")[0]
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if b"redis-server" in name and cwd == target and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def embedded_env(data_dir: Path, llm_url: str) -> dict[str, str]:
    """The console script's environment on embedded defaults: no Redis URL (the data dir's own
    redis-server), the lexical embedder (no model load), one LLM attempt, ``llm_url`` as the
    OpenAI-compatible endpoint with the demo model."""
    return {
        "HOLDFAST_DATA_DIR": str(data_dir),
        "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "lexical",
        "HOLDFAST_MEMORY__MIN_SIMILARITY": "0.05",
        "HOLDFAST_RESILIENCE__LLM__MAX_ATTEMPTS": "1",
        "HOLDFAST_LLM__BASE_URL": llm_url,
        "HOLDFAST_LLM__MODEL": "holdfast-demo",
    }


async def journal_while_redis_is_down(journal_dir: Path, user: str = "alice", messages: int = 9) -> str:
    """The user wrote while Redis was down (nothing listens on the port): a conversation create and
    ``messages`` user messages ``"message 1"``... land in the journal in ``journal_dir``, one record
    each. Returns the conversation id."""
    client = make_redis_client(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.2, socket_timeout=0.2)
    guard = Resilience(ResilienceConfig(redis=ServiceResilience(max_attempts=1)), EventBus()).guard("redis")
    store = ConversationStore(RedisRunner(client, guard), RedisConfig(), journal_dir=journal_dir)
    try:
        conv = await store.create(user, title="written while Redis was down")
        for i in range(1, messages + 1):
            await store.add_message(conv, "user", f"message {i}")
        assert store.pending_writes == messages + 1
    finally:
        await store.close()
        await client.aclose()
    return conv


def flip_line(journal: Path, line: int, old: bytes, new: bytes) -> bytes:
    """Replace ``old`` by ``new`` (same length: a flipped byte) in the 1-based ``line`` of the
    journal file; returns the damaged line."""
    lines = journal.read_bytes().split(b"\n")
    assert old in lines[line - 1] and len(old) == len(new)
    lines[line - 1] = lines[line - 1].replace(old, new)
    journal.write_bytes(b"\n".join(lines))
    return lines[line - 1]

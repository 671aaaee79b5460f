"""Fixtures for CLI tests against the real redis-server fixture and one real demo LLM server per
session; the data dir (journal, LanceDB) is a temp dir per test. The lexical embedder keeps each
command free of a model load.

``holdfast(*argv)`` runs a command in-process through :func:`runtime.cli.main.main` (the same
entry the console script calls, minus the TUI), fast enough for many commands per test;
``script_env`` is the environment for the real console script (:mod:`tests.support.cli`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.cli.main import main
from runtime.demo.launcher import DemoLLMServer
from tests.support.cli import Run
from tests.support.scripted_llm import Reply, ScriptedLLM


@pytest.fixture(scope="session")
def demo_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLLMServer]:
    server = DemoLLMServer(tokens_per_second=0, log_path=tmp_path_factory.mktemp("demo") / "demo.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def set_faults(demo_llm: DemoLLMServer) -> Iterator[Callable[..., None]]:
    """Change the demo server's faults (sync: CLI tests run ``main``, which owns the event loop)."""
    url = f"{demo_llm.root_url}/admin/faults"

    def post(**changes: Any) -> None:
        httpx.post(url, json=changes, timeout=5.0).raise_for_status()

    post(reset=True)
    yield post
    post(reset=True)


@pytest.fixture
def holdfast(
    data_dir: Path,
    redis_url: str,
    demo_llm: DemoLLMServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Run]:
    """``holdfast(*argv)`` runs one command and returns its exit code, stdout and stderr."""
    for name, value in _command_env(data_dir).items():
        monkeypatch.setenv(name, value)
    base = ["--redis-url", redis_url, "--base-url", demo_llm.url, "--model", "holdfast-demo"]

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main([*base, *argv])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def _command_env(data_dir: Path) -> dict[str, str]:
    return {
        "HOLDFAST_DATA_DIR": str(data_dir),
        "HOLDFAST_MEMORY__EMBEDDING_PROVIDER": "lexical",
        "HOLDFAST_MEMORY__MIN_SIMILARITY": "0.05",
        # One attempt and no wait, so a down LLM fails the command at once.
        "HOLDFAST_RESILIENCE__LLM__MAX_ATTEMPTS": "1",
    }


@pytest.fixture
def script_env(data_dir: Path, redis_url: str, demo_llm: DemoLLMServer) -> dict[str, str]:
    """Environment for the console script: the per-test data dir, the shared Redis and demo LLM
    given through ``HOLDFAST_*`` variables, so the command line holds only what a test is about."""
    return {
        **_command_env(data_dir),
        "HOLDFAST_REDIS__URL": redis_url,
        "HOLDFAST_LLM__BASE_URL": demo_llm.url,
        "HOLDFAST_LLM__MODEL": "holdfast-demo",
    }


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Reply]], ScriptedLLM]]:
    """``scripted(replies)`` starts a scripted OpenAI-compatible server answering ``replies`` in
    order (tests/support/scripted_llm.py); every server made is stopped after the test."""
    made: list[ScriptedLLM] = []

    def make(replies: list[Reply]) -> ScriptedLLM:
        server = ScriptedLLM(replies)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()

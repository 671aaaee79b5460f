"""Fixtures for CLI tests: ``holdfast`` runs in-process through ``runtime.cli.main`` against the
real redis-server fixture and one real demo LLM server per session; the data dir (journal,
LanceDB) is a temp dir per test. The lexical embedder keeps each command free of a model load."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.cli.main import main
from runtime.demo.launcher import DemoLLMServer


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


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
    monkeypatch.setenv("HOLDFAST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HOLDFAST_MEMORY__EMBEDDING_PROVIDER", "lexical")
    monkeypatch.setenv("HOLDFAST_MEMORY__MIN_SIMILARITY", "0.05")
    # One attempt and no wait, so a down LLM fails the command at once.
    monkeypatch.setenv("HOLDFAST_RESILIENCE__LLM__MAX_ATTEMPTS", "1")
    base = ["--redis-url", redis_url, "--base-url", demo_llm.url, "--model", "holdfast-demo"]

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main([*base, *argv])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run

"""How long quitting takes (issue 16: "quit in <= 0.5 s"), printed next to a baseline from the
same run: a bare Textual app (one Static, Textual's own Ctrl+Q) on the same kind of terminal.

Each program runs on a real pty (``tests/app/test_hangup.py``'s ``Terminal``); the time is from
writing Ctrl+Q to the terminal until the process has exited. Holdfast is timed idle and in the
middle of streaming the demo model's long story (the partial reply is saved first: the
behaviour itself is asserted in ``tests/app/test_hangup.py``).

Run: .venv/bin/python -m pytest tests/bench/bench_quit.py -o addopts="" -s
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import pytest

from tests.app.test_hangup import Terminal, _no_child_left, _started, _stream

pytestmark = pytest.mark.bench

RUNS = 3
BARE = """
from textual.app import App
from textual.widgets import Static

class Bare(App):
    def compose(self):
        yield Static("bare textual app")

Bare().run()
"""


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env.update(
        TERM="xterm-256color",
        HOME=str(tmp),
        XDG_DATA_HOME=str(tmp / "data"),
        XDG_CONFIG_HOME=str(tmp / "config"),
        XDG_STATE_HOME=str(tmp / "state"),
        XDG_CACHE_HOME=str(tmp / "cache"),
        HOLDFAST_DATA_DIR=str(tmp / "holdfast"),
        HOLDFAST_MEMORY__EMBEDDING_PROVIDER="lexical",
        HOLDFAST_LLM__DEMO_TOKENS_PER_SECOND="40",
        HOLDFAST_AGENT__USER="bench",
    )
    return env


def _quit(term: Terminal) -> float:
    term.type("\x11")  # Ctrl+Q
    return term.wait_exit(10.0)


def _bare(tmp: Path) -> float:
    term = Terminal(_env(tmp), argv=[sys.executable, "-c", BARE])
    try:
        term.wait_output("bare textual app", 30.0)
        return _quit(term)
    finally:
        term.close()


def _holdfast(tmp: Path, *, streaming: bool) -> float:
    term = Terminal(_env(tmp))
    try:
        children = _started(term)
        if streaming:
            _stream(term)
        took = _quit(term)
        _no_child_left(children)
        return took
    finally:
        term.close()
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()


@pytest.mark.timeout(600)
def test_quit_time(tmp_path: Path) -> None:
    bare: list[float] = []
    idle: list[float] = []
    mid: list[float] = []
    for run in range(RUNS):
        bare.append(_bare(tmp_path / f"bare{run}"))
        idle.append(_holdfast(tmp_path / f"idle{run}", streaming=False))
        mid.append(_holdfast(tmp_path / f"mid{run}", streaming=True))
    ms = 1000.0

    def line(times: list[float]) -> str:
        return f"median {statistics.median(times) * ms:.0f} ms, max {max(times) * ms:.0f} ms ({[round(t * ms) for t in times]})"

    print("\nCtrl+Q to process exit, on a pty (target <= 500 ms)")
    print(f"  bare Textual app (baseline)      {line(bare)}")
    print(f"  Holdfast, idle                   {line(idle)}")
    print(f"  Holdfast, mid-stream (long story) {line(mid)}")

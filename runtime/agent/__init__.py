"""The agent loop: one turn is save -> recall -> build prompt -> LLM <-> tools -> save.

- ``turn``: :class:`Agent` (``run_turn`` yields events), :class:`PromptHistory`, and the
  ``collect``/``final_text`` helpers for headless callers.
- ``turn_lock``: one turn at a time per conversation, across processes (a Redis lock).
"""

from __future__ import annotations

from runtime.agent.turn import Agent, PromptHistory, collect, final_text
from runtime.agent.turn_lock import TurnBusyError, TurnLocks

__all__ = ["Agent", "PromptHistory", "TurnBusyError", "TurnLocks", "collect", "final_text"]

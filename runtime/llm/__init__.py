"""LLM access: the OpenAI-compatible client (SSE read over httpx), its stream events, tool-call
assembly, prompt-described tools, fallbacks and health check.

The demo/chaos server it is tested against lives in :mod:`runtime.demo`, apart from the client.
The public names are imported lazily so that importing ``runtime.llm.stream_events`` (as the
agent does) does not pay for importing the openai SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Completion": "runtime.llm.client",
    "LLMClient": "runtime.llm.client",
    "prompt_key": "runtime.llm.client",
    "rough_token_count": "runtime.llm.client",
    "LLMFallbacks": "runtime.llm.fallbacks",
    "llm_health_check": "runtime.llm.health",
    "FallbackReply": "runtime.llm.stream_events",
    "Finish": "runtime.llm.stream_events",
    "Notice": "runtime.llm.stream_events",
    "ReasoningDelta": "runtime.llm.stream_events",
    "StreamEvent": "runtime.llm.stream_events",
    "StreamInterrupted": "runtime.llm.stream_events",
    "TextDelta": "runtime.llm.stream_events",
    "ToolCallError": "runtime.llm.stream_events",
    "ToolCallReady": "runtime.llm.stream_events",
    "Usage": "runtime.llm.stream_events",
}

__all__ = [
    "Completion",
    "FallbackReply",
    "Finish",
    "LLMClient",
    "LLMFallbacks",
    "Notice",
    "ReasoningDelta",
    "StreamEvent",
    "StreamInterrupted",
    "TextDelta",
    "ToolCallError",
    "ToolCallReady",
    "Usage",
    "llm_health_check",
    "prompt_key",
    "rough_token_count",
]

if TYPE_CHECKING:
    from runtime.llm.client import Completion, LLMClient, prompt_key, rough_token_count
    from runtime.llm.fallbacks import LLMFallbacks
    from runtime.llm.health import llm_health_check
    from runtime.llm.stream_events import (
        FallbackReply,
        Finish,
        Notice,
        ReasoningDelta,
        StreamEvent,
        StreamInterrupted,
        TextDelta,
        ToolCallError,
        ToolCallReady,
        Usage,
    )


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (PEP 562) and cache it here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

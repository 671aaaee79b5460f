"""LLM access: the OpenAI-compatible client, its stream events and fallbacks, and the
offline demo/chaos LLM server (``demo_server``, launched by ``demo_launcher``, steered by
``demo_admin``).

Importing this package does not import starlette/uvicorn; the demo server modules are
imported only by whoever runs them.
"""

from __future__ import annotations

from runtime.llm.client import Completion, LLMClient, prompt_key, rough_token_count
from runtime.llm.demo_admin import DemoAdmin
from runtime.llm.demo_launcher import DemoLLMServer
from runtime.llm.fallbacks import LLMFallbacks
from runtime.llm.health import llm_health_check
from runtime.llm.stream_events import (
    FallbackReply,
    Finish,
    StreamEvent,
    StreamInterrupted,
    TextDelta,
    ToolCallError,
    ToolCallReady,
    Usage,
)

__all__ = [
    "Completion",
    "DemoAdmin",
    "DemoLLMServer",
    "FallbackReply",
    "Finish",
    "LLMClient",
    "LLMFallbacks",
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

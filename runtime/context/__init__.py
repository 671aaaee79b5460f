"""Token accounting and the context window: what fits in one LLM call, and what is summarised.

Public API::

    counter = TokenCounter("gpt-4o-mini")          # exact when the encoding loads offline
    window = context_window_for(model, config.llm.context_window)
    manager = ContextWindowManager(counter, config.context, window, reader=store)
    built = await manager.build_prompt(system_prompt, conversation_id, tools, memories)
    built.messages, built.tools, built.report

    build_prompt(counter, config.context, window, system_prompt, history)   # pure, in-memory
    Summarizer(...).maybe_summarize(conversation_id)                        # high/low water marks
"""

from __future__ import annotations

from runtime.context.groups import Unit, group_units
from runtime.context.models import DEFAULT_CONTEXT_WINDOW, KNOWN_CONTEXT_WINDOWS, context_window_for
from runtime.context.report import BuiltPrompt, ContextOverflowError, PromptReport
from runtime.context.summarize import (
    SUMMARY_PROMPT,
    Summarizer,
    SummarizeResult,
    WaterMarks,
    plan_eviction,
    should_summarize,
    summary_request,
    water_marks,
)
from runtime.context.tokens import EncodingChoice, TokenCounter, resolve_encoding
from runtime.context.window import ContextWindowManager, ToolsText, build_prompt, prompt_budget, schema_text

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "KNOWN_CONTEXT_WINDOWS",
    "SUMMARY_PROMPT",
    "BuiltPrompt",
    "ContextOverflowError",
    "ContextWindowManager",
    "EncodingChoice",
    "PromptReport",
    "SummarizeResult",
    "Summarizer",
    "TokenCounter",
    "ToolsText",
    "Unit",
    "WaterMarks",
    "build_prompt",
    "context_window_for",
    "group_units",
    "plan_eviction",
    "prompt_budget",
    "resolve_encoding",
    "schema_text",
    "should_summarize",
    "summary_request",
    "water_marks",
]

"""The leaf layer: what every other layer shares and nothing in it depends on Holdfast.

- ``errors``: the error taxonomy (one rooted tree, the spec's ``ErrorType``/``ApplicationError``).
- ``events``: the typed event bus every step of a turn publishes on.
- ``messages``: chat messages, tool calls and conversation summaries as plain dataclasses.
- ``safe_text``: model and tool output made inert (no terminal control, no markup).
- ``logs``: JSON log records, secret redaction and the per-turn log context.
- ``procs``: child processes that never outlive Holdfast (used by the embedded Redis and the
  demo LLM server launcher).

Imports nothing from ``runtime`` outside this package.
"""

"""Holdfast's headless runtime, one package per layer (see docs/architecture.md).

From the leaf up: ``core`` -> ``config`` -> ``resilience`` -> {``llm``, ``state``, ``memory``,
``context``} -> ``tools`` -> ``agent`` -> ``host`` -> ``serve`` -> ``cli``; ``demo`` (the offline
demo LLM server) depends only on ``core``; ``spec`` maps the spec's names onto the code. A layer
imports only layers below it (import-linter contracts in pyproject.toml). Nothing here imports
``app`` or Textual.
"""

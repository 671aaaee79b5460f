"""The offline demo/chaos LLM server: an OpenAI-compatible HTTP server with a deterministic,
clearly labelled demo model and fault injection.

- ``server``: the Starlette app and its ``python -m runtime.demo.server`` entry point.
- ``model``: the deterministic ``holdfast-demo`` model (tool calls, long replies).
- ``faults``: the fault state (latency, errors, hangs) set by flags or ``/admin/faults``.
- ``launcher``: :class:`DemoLLMServer`, the server as a child process that never outlives us.
- ``admin``: :class:`DemoAdmin`, a small client for ``/admin/faults`` (the chaos demo).

Depends only on :mod:`runtime.core`: the server is what the client is tested against, so it must
not share the client's code. Names are not re-exported here, so the server child process imports
only what it runs.
"""

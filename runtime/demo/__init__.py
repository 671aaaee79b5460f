"""The offline demo/chaos LLM server: an OpenAI-compatible HTTP server with a deterministic,
clearly labelled demo model and fault injection.

- ``server``: the Starlette app and its ``python -m runtime.demo.server`` entry point.
- ``schema``: the request bodies as strict pydantic models; OpenAI-shaped errors naming ``param``.
- ``model``: the deterministic ``holdfast-demo`` model (tool calls, ``tool_choice``, long replies,
  visible reasoning).
- ``generation``: the model's reply cut by ``max_tokens``, ``stop`` and a context window.
- ``profiles``: the quirk profiles (``openai``, ``ollama``, ``llamacpp``, ``vllm-reasoning``, ...).
- ``wire``: completion bodies and SSE chunks in a profile's wire format.
- ``faults``: the fault state (latency, errors, hangs) set by flags or ``/admin/faults``.
- ``launcher``: :class:`DemoLLMServer`, the server as a child process that never outlives us.
- ``admin``: :class:`DemoAdmin`, a small client for ``/admin/faults`` (the chaos demo).

Depends only on :mod:`runtime.core`: the server is what the client is tested against, so it must
not share the client's code. Names are not re-exported here, so the server child process imports
only what it runs.
"""

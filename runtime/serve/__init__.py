"""The HTTP face: ``holdfast serve``, FastAPI on uvicorn, over the same Runtime as the TUI.

One module per job:

- ``app``: :func:`~runtime.serve.app.create_app` (the factory), the lifespan that starts and stops
  the :class:`~runtime.host.runtime.Runtime`, and the ASGI entry uvicorn's workers import.
- ``errors``: the spec's global error handler: every error becomes
  ``{"error": {"type", "message", "request_id", "path", "timestamp", "details"}}`` with the status
  the taxonomy gives (:mod:`runtime.core.errors`).
- ``request_ids``: ``X-Request-ID`` accepted or generated, on every response and log record; the
  outermost middleware, so even a crash answers typed JSON with the id.
- ``auth``: API keys (hashed in Redis, one user per key) and the principal of a request.
- ``rate_limits``: per-key requests and tokens per minute, one Lua script shared by every replica.
- ``idempotency``: ``Idempotency-Key``: one turn per key, its result replayed to retries.
- ``turns``: per-user agents over the runtime's parts, turns run and tracked (graceful shutdown).
- ``conversations``: the conversation routes and ``POST .../messages`` (SSE or JSON).
- ``sessions``: the spec's SessionManager behind ``/v1/sessions``.
- ``openai_face``: ``POST /v1/chat/completions`` and ``GET /v1/models`` in the OpenAI format;
  ``models``: the names it answers as (``holdfast``, ``holdfast/<upstream model>``).
- ``workers``: ``--workers N`` (uvicorn's supervisor, metrics merged over the workers).
- ``health``: ``/health``, ``/livez``, ``/readyz``.
- ``metrics``: ``/metrics`` (Prometheus) and the middleware that times every request.
- ``alerts``: the 5xx alert; the policy and webhooks are the runtime's (:mod:`runtime.host.alerts`).
- ``shutdown``: SIGTERM lets running turns finish up to ``[server].grace_period``, then cancels them.
- ``state``: :class:`~runtime.serve.state.ServeState`, what every route reaches through the app.

The layer rule puts this package beside ``runtime.cli`` (above ``runtime.host``); ``runtime.cli``
imports it lazily, inside ``holdfast serve``.
"""

from __future__ import annotations

"""What every route reaches: :class:`ServeState` (on ``app.state.serve``) and the dependencies
that give a route its state and its authenticated, rate-limited principal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request

from runtime.core.errors import InternalError
from runtime.serve.auth import Authenticator, Principal

if TYPE_CHECKING:
    from runtime.config import Config
    from runtime.host.runtime import Runtime
    from runtime.serve.idempotency import Idempotency
    from runtime.serve.metrics import Metrics
    from runtime.serve.models import ModelCatalog
    from runtime.serve.rate_limits import RateLimiter
    from runtime.serve.shutdown import TurnTracker
    from runtime.serve.turns import TurnService
    from runtime.state.client import RedisRunner


@dataclass
class ServeState:
    """The started runtime and the server's own parts, built by the app's lifespan."""

    config: Config
    runtime: Runtime
    redis: RedisRunner
    auth: Authenticator
    limiter: RateLimiter
    idempotency: Idempotency
    turns: TurnService
    tracker: TurnTracker
    metrics: Metrics
    models: ModelCatalog


async def serve_state(request: Request) -> ServeState:
    """The app's :class:`ServeState`; InternalError if the lifespan did not build it.

    A coroutine on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a hop
    to a worker thread and back on every request (~0.1 ms of CPU, and a GIL hand-off that
    waited far longer when the machine was busy)."""
    state: ServeState | None = getattr(request.app.state, "serve", None)
    if state is None:
        raise InternalError("the server is not started")
    return state


State = Annotated[ServeState, Depends(serve_state)]


async def principal(
    request: Request,
    state: State,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The authenticated principal of the request, after counting it against the key's
    requests-per-minute limit. 401 for a missing or bad key, 429 over the limit."""
    who = await state.auth.principal(authorization, x_api_key)
    await state.limiter.take_request(who.limit_key)
    request.state.principal = who
    return who


Caller = Annotated[Principal, Depends(principal)]

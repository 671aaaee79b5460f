"""``Idempotency-Key``: a retried POST returns the first turn's result instead of running another.

The first request with a key claims it in Redis (``SET NX``) and runs the turn; when the turn
ends, its events are stored under the key for ``[server].idempotency_ttl`` seconds. A request
with the same key that arrives meanwhile (a client retrying concurrently, on any replica) waits
for the stored result, polling with a deadline, then replays those events: one turn, one stored
answer, every caller the same answer. The same key with a different body is a 409 (the key names
one request, as in Stripe's and the IETF draft's semantics). Keys are scoped to the user, so two
users' keys never collide. A claim whose owner died is released after :data:`CLAIM_SECONDS`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from runtime.core.errors import ConflictError, OperationTimeoutError, ValidationError
from runtime.state.client import RedisRunner

#: Seconds a claim lives without a result (the owner crashed): then a retry runs the turn again.
CLAIM_SECONDS = 600
#: Seconds between two reads of a claim another request holds.
POLL_SECONDS = 0.05
#: Longest key accepted, in characters.
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`Idempotency.begin`: ``owner`` true means run the turn and call
    :meth:`Idempotency.finish`; otherwise ``events`` are the first request's stored events."""

    owner: bool
    redis_key: str
    events: list[dict[str, Any]]


def fingerprint(*parts: str) -> str:
    """A digest of what makes a request the same request (route, conversation, body)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class Idempotency:
    """Claims and results of idempotency keys in Redis through ``runner``.

    ``ttl`` is how long a result is kept, in seconds; ``wait`` how long a retry waits for the
    first request's result before answering 504; ``sleep`` is injected for tests.
    """

    def __init__(
        self,
        runner: RedisRunner,
        *,
        key_prefix: str = "holdfast",
        ttl: int = 86400,
        wait: float = 300.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._runner = runner
        self._prefix = key_prefix
        self.ttl = ttl
        self.wait = wait
        self._sleep = sleep

    async def begin(self, user_id: str, key: str, request_fingerprint: str) -> Claim:
        """Claim ``key`` for ``user_id``, or wait for and return the result of whoever holds it.

        Raises ValidationError for an empty or over-long key, ConflictError when the key was
        used with a different request, OperationTimeoutError when the holder's result did not
        come within ``wait`` seconds."""
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise ValidationError(f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable characters")
        redis_key = f"{self._prefix}:idem:{fingerprint(user_id, key)}"
        claim = json.dumps({"state": "running", "request": request_fingerprint})
        won = await self._runner.run(lambda r: r.set(redis_key, claim, nx=True, ex=CLAIM_SECONDS), "idempotency claim")
        if won:
            return Claim(True, redis_key, [])
        deadline = time.monotonic() + self.wait
        while True:
            raw = await self._runner.run(lambda r: r.get(redis_key), "idempotency read")
            if raw is None:  # the holder gave up (claim expired or released): take it over
                won = await self._runner.run(
                    lambda r: r.set(redis_key, claim, nx=True, ex=CLAIM_SECONDS), "idempotency claim"
                )
                if won:
                    return Claim(True, redis_key, [])
                continue
            data = json.loads(raw)
            if data.get("request") != request_fingerprint:
                raise ConflictError("this Idempotency-Key was already used for a different request")
            if data.get("state") == "done":
                return Claim(False, redis_key, list(data.get("events", [])))
            if time.monotonic() > deadline:
                raise OperationTimeoutError(
                    "the first request with this Idempotency-Key is still running", retry_after=self.wait
                )
            await self._sleep(POLL_SECONDS)

    async def finish(self, claim: Claim, request_fingerprint: str, events: list[dict[str, Any]]) -> None:
        """Store the turn's events as the key's result for ``ttl`` seconds."""
        value = json.dumps({"state": "done", "request": request_fingerprint, "events": events}, default=str)
        await self._runner.run(lambda r: r.set(claim.redis_key, value, ex=self.ttl), "idempotency result")

    async def release(self, claim: Claim) -> None:
        """Drop a claim whose turn never started (refused before running): a retry may run it."""
        await self._runner.run(lambda r: r.delete(claim.redis_key), "idempotency release")

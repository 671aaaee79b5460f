"""``Idempotency-Key``: a retried POST returns the first turn's result instead of running another.

The first request with a key claims it in Redis (``SET NX``) and runs the turn; when the turn
ends, its events are stored under the key for ``[server].idempotency_ttl`` seconds. A request
with the same key that arrives meanwhile (a client retrying concurrently, on any replica) waits
for the stored result, polling with a deadline, then replays those events: one turn, one stored
answer, every caller the same answer. The same key with a different body is a 409 (the key names
one request, as in Stripe's and the IETF draft's semantics). Keys are scoped to the user, so two
users' keys never collide.

A claim lives :data:`CLAIM_SECONDS` unless its owner renews it: the process running the turn
does so every :data:`RENEW_SECONDS` until it stores the result (or :data:`CLAIM_MAX_SECONDS`
pass). So when the owner crashes, a retry on another replica takes the key over within
:data:`CLAIM_SECONDS` instead of waiting for the result that will never come (the load test of
issue 19 kills a replica mid-turn). The retry then runs the turn again; its user message keeps
the id :func:`message_id_for` derives from the key, so it is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from runtime.core.errors import AppError, ConflictError, OperationTimeoutError, ValidationError, describe
from runtime.state.client import RedisRunner

log = logging.getLogger(__name__)

#: Seconds a claim lives unless its owner renews it (the owner crashed): then a retry runs the turn.
CLAIM_SECONDS = 10
#: Seconds between two renewals of a claim by the process running its turn.
RENEW_SECONDS = 3.0
#: Longest a claim is renewed, in seconds (a turn that never reports its end).
CLAIM_MAX_SECONDS = 600
#: Renews a claim only while it is still this request's running claim (KEYS: claim; ARGV: its
#: value, seconds): a stored result or another request's claim is never touched.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
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


def message_id_for(user_id: str, key: str, conversation_id: str) -> str:
    """The user message id of the turn an Idempotency-Key names: ``msg_`` and 24 hex digits of a
    digest of user, key and conversation, so every run of that turn appends the same message
    (the conversation store's append is idempotent by message id)."""
    return "msg_" + fingerprint("message", user_id, key, conversation_id)[:24]


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
        self._renew = runner.client.register_script(_RENEW)
        #: The renewal task of each claim this process owns, by Redis key.
        self._keepers: dict[str, asyncio.Task[None]] = {}

    async def begin(self, user_id: str, key: str, request_fingerprint: str) -> Claim:
        """Claim ``key`` for ``user_id``, or wait for and return the result of whoever holds it.

        Raises ValidationError for an empty or over-long key, ConflictError when the key was
        used with a different request, OperationTimeoutError when the holder's result did not
        come within ``wait`` seconds."""
        if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise ValidationError(f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable characters")
        redis_key = f"{self._prefix}:idem:{fingerprint(user_id, key)}"
        # The owner token tells this request's claim from a later one's (renewals touch only ours).
        claim = json.dumps({"state": "running", "request": request_fingerprint, "owner": secrets.token_hex(8)})
        won = await self._runner.run(lambda r: r.set(redis_key, claim, nx=True, ex=CLAIM_SECONDS), "idempotency claim")
        if won:
            return self._owned(redis_key, claim)
        deadline = time.monotonic() + self.wait
        while True:
            raw = await self._runner.run(lambda r: r.get(redis_key), "idempotency read")
            if raw is None:  # the holder gave up (claim expired or released): take it over
                won = await self._runner.run(
                    lambda r: r.set(redis_key, claim, nx=True, ex=CLAIM_SECONDS), "idempotency claim"
                )
                if won:
                    return self._owned(redis_key, claim)
                continue
            data = json.loads(raw)
            if data.get("request") != request_fingerprint:
                # Not retryable: the same request with this key always meets the same first one.
                raise ConflictError(
                    "this Idempotency-Key was already used for a different request; send a new key with a new request",
                    retryable=False,
                )
            if data.get("state") == "done":
                return Claim(False, redis_key, list(data.get("events", [])))
            if time.monotonic() > deadline:
                raise OperationTimeoutError(
                    "the first request with this Idempotency-Key is still running", retry_after=self.wait
                )
            await self._sleep(POLL_SECONDS)

    def _owned(self, redis_key: str, value: str) -> Claim:
        self._keepers[redis_key] = asyncio.create_task(self._keep(redis_key, value), name=f"idem-{redis_key[-8:]}")
        return Claim(True, redis_key, [])

    async def _keep(self, redis_key: str, value: str) -> None:
        """Renew the claim every RENEW_SECONDS while it is ours (a failed renewal is logged)."""
        deadline = time.monotonic() + CLAIM_MAX_SECONDS
        try:
            while time.monotonic() < deadline:
                await self._sleep(RENEW_SECONDS)
                try:
                    renewed = await self._runner.run(
                        lambda r: self._renew(keys=[redis_key], args=[value, CLAIM_SECONDS], client=r),
                        "idempotency renew",
                    )
                except AppError as exc:
                    log.warning("could not renew idempotency claim: %s", describe(exc))
                    continue
                if not renewed:
                    return
        finally:
            if self._keepers.get(redis_key) is asyncio.current_task():
                del self._keepers[redis_key]

    async def _stop_keeping(self, claim: Claim) -> None:
        task = self._keepers.pop(claim.redis_key, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def finish(self, claim: Claim, request_fingerprint: str, events: list[dict[str, Any]]) -> None:
        """Store the turn's events as the key's result for ``ttl`` seconds."""
        await self._stop_keeping(claim)
        value = json.dumps({"state": "done", "request": request_fingerprint, "events": events}, default=str)
        await self._runner.run(lambda r: r.set(claim.redis_key, value, ex=self.ttl), "idempotency result")

    async def release(self, claim: Claim) -> None:
        """Drop a claim whose turn never started (refused before running): a retry may run it."""
        await self._stop_keeping(claim)
        await self._runner.run(lambda r: r.delete(claim.redis_key), "idempotency release")

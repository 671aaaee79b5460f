"""A plain-asyncio load generator for ``holdfast serve``: simulated users over httpx, nothing else.

It imports no Holdfast code: it speaks only the HTTP API a client would (``POST
/v1/conversations``, then ``POST /v1/conversations/{id}/messages`` as Server-Sent Events), so
what it measures is what a user of the fleet sees.

Each :class:`SimulatedUser` owns one conversation and sends one message at a time, each with a
fresh ``Idempotency-Key``. A request fails when it cannot connect, answers a non-200 status, or
its stream ends without a ``TurnFinished`` event; the user then retries *the same message with
the same key* against the next replica (after ``retry_delay`` seconds), until it succeeds or the
run's hard stop. A turn counts as acknowledged once a response carried its ``UserSaved`` and
``TurnFinished`` events (a replayed result, header ``Idempotent-Replayed``, included): from then
on the user may rely on those messages being stored, so the load test checks every one of them.

Times are ``time.monotonic()`` seconds; :class:`Attempt` and :class:`Turn` keep them relative to
the run's start.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

#: Events a turn's stream ends with; its absence means the answer was cut off.
FINISHED = "TurnFinished"


@dataclass
class Attempt:
    """One HTTP request of a turn: when it started and ended (seconds from the run's start), the
    replica it went to, and ``error`` ("" when it succeeded: a complete answer)."""

    user: int
    turn: int
    replica: str
    started: float
    ended: float
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when this request got the turn's complete answer."""
        return not self.error

    @property
    def latency(self) -> float:
        """Seconds from sending the request to the end of its answer (or its failure)."""
        return self.ended - self.started


@dataclass
class Turn:
    """One message a user sent, with everything needed to check it afterwards.

    ``acknowledged`` turns have ``user_message_id`` and ``assistant_message_id`` (the ids the
    answer named); ``replayed`` says the acknowledging answer was an idempotent replay.
    """

    user: int
    index: int
    conversation_id: str
    content: str
    idempotency_key: str
    started: float
    acknowledged: bool = False
    finished: float = 0.0
    user_message_id: str = ""
    assistant_message_id: str = ""
    replayed: bool = False
    failed_turn: bool = False
    attempts: int = 0


@dataclass
class LoadResult:
    """Everything one run produced: every attempt and every turn (acknowledged or not), the
    conversation of each user, and the run's duration in seconds."""

    attempts: list[Attempt] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    conversations: dict[int, str] = field(default_factory=dict)
    duration: float = 0.0


class SimulatedUser:
    """One user: one conversation, one message at a time, retries with the same key elsewhere.

    ``replicas()`` returns the base URLs currently in rotation (the orchestrator may swap a dead
    replica's URL for its restarted one); the user starts on replica ``number % len`` and moves
    to the next one after each failed attempt.
    """

    def __init__(
        self,
        number: int,
        client: httpx.AsyncClient,
        replicas: Callable[[], Sequence[str]],
        result: LoadResult,
        t0: float,
        *,
        think: float = 0.0,
        retry_delay: float = 0.2,
        request_timeout: float = 30.0,
    ) -> None:
        self.number = number
        self.client = client
        self.replicas = replicas
        self.result = result
        self.t0 = t0
        self.think = think
        self.retry_delay = retry_delay
        self.request_timeout = request_timeout
        self._replica_index = number
        self.conversation_id = ""

    def _replica(self) -> str:
        urls = self.replicas()
        return urls[self._replica_index % len(urls)]

    def _now(self) -> float:
        return time.monotonic() - self.t0

    async def start(self, hard_stop: float) -> None:
        """Create this user's conversation (retrying on another replica until ``hard_stop``)."""
        while self._now() < hard_stop:
            base = self._replica()
            try:
                response = await self.client.post(
                    f"{base}/v1/conversations", json={"title": f"load user {self.number}"}, timeout=self.request_timeout
                )
                if response.status_code == 201:
                    self.conversation_id = str(response.json()["id"])
                    self.result.conversations[self.number] = self.conversation_id
                    return
            except httpx.HTTPError:
                pass
            self._replica_index += 1
            await asyncio.sleep(self.retry_delay)  # pacing between retries, not a wait for a condition
        raise RuntimeError(f"user {self.number} could not create a conversation")

    async def run(self, stop: float, hard_stop: float) -> None:
        """Send messages until ``stop`` (seconds from t0); a turn begun before it is retried until
        acknowledged or ``hard_stop``."""
        index = 0
        while self._now() < stop:
            turn = Turn(
                user=self.number,
                index=index,
                conversation_id=self.conversation_id,
                content=f"load user {self.number} message {index} ({secrets.token_hex(4)})",
                idempotency_key=f"load-{self.number}-{index}-{secrets.token_hex(6)}",
                started=self._now(),
            )
            self.result.turns.append(turn)
            await self._send(turn, hard_stop)
            if not turn.acknowledged:
                return
            index += 1
            if self.think:
                await asyncio.sleep(self.think)  # the user reading the answer: pacing, not a wait

    async def _send(self, turn: Turn, hard_stop: float) -> None:
        while self._now() < hard_stop:
            base = self._replica()
            attempt = Attempt(self.number, turn.index, base, self._now(), 0.0)
            turn.attempts += 1
            try:
                await self._post(turn, base, hard_stop)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                attempt.error = f"{type(exc).__name__}: {exc}"[:200]
            attempt.ended = self._now()
            self.result.attempts.append(attempt)
            if attempt.ok:
                turn.acknowledged, turn.finished = True, attempt.ended
                return
            self._replica_index += 1
            await asyncio.sleep(self.retry_delay)  # pacing between retries, not a wait for a condition

    async def _post(self, turn: Turn, base: str, hard_stop: float) -> None:
        """One request; returns when the answer was complete, raises ValueError otherwise."""
        timeout = max(1.0, min(self.request_timeout, hard_stop - self._now()))
        events: dict[str, dict[str, object]] = {}
        async with self.client.stream(
            "POST",
            f"{base}/v1/conversations/{turn.conversation_id}/messages",
            json={"content": turn.content},
            headers={"Idempotency-Key": turn.idempotency_key},
            timeout=timeout,
        ) as response:
            if response.status_code != 200:
                body = (await response.aread())[:200].decode("utf-8", "replace")
                raise ValueError(f"HTTP {response.status_code}: {body}")
            replayed = response.headers.get("idempotent-replayed") == "true"
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    events[str(data.get("type", ""))] = data
        if FINISHED not in events:
            raise ValueError(f"the stream ended without {FINISHED} (last events: {sorted(events)})")
        saved, answer, finished = events.get("UserSaved"), events.get("AssistantSaved"), events[FINISHED]
        if saved is None:
            raise ValueError("the turn finished without UserSaved")
        turn.user_message_id = str(saved["message_id"])
        turn.assistant_message_id = str(answer["message_id"]) if answer else ""
        turn.replayed = replayed
        turn.failed_turn = bool(finished.get("failed")) or answer is None


async def run_load(
    replicas: Callable[[], Sequence[str]],
    *,
    users: int,
    duration: float,
    think: float = 0.0,
    retry_delay: float = 0.2,
    request_timeout: float = 30.0,
    drain: float = 60.0,
    on_start: Callable[[float], None] | None = None,
) -> LoadResult:
    """Run ``users`` simulated users for ``duration`` seconds against ``replicas()``.

    Conversations are created first (not timed); then every user sends messages until
    ``duration``; a turn still unacknowledged then is retried for up to ``drain`` more seconds.
    ``on_start(t0)`` is called with the monotonic time the timed part starts (the orchestrator
    schedules its kills from it). Returns the :class:`LoadResult` (times relative to t0).
    """
    limits = httpx.Limits(max_connections=users * 2, max_keepalive_connections=users * 2)
    async with httpx.AsyncClient(limits=limits, timeout=request_timeout) as client:
        setup_t0 = time.monotonic()
        result = LoadResult()
        people = [
            SimulatedUser(
                n,
                client,
                replicas,
                result,
                setup_t0,
                think=think,
                retry_delay=retry_delay,
                request_timeout=request_timeout,
            )
            for n in range(users)
        ]
        await asyncio.gather(*(p.start(hard_stop=120.0) for p in people))
        t0 = time.monotonic()
        for p in people:
            p.t0 = t0
        if on_start is not None:
            on_start(t0)
        await asyncio.gather(*(p.run(stop=duration, hard_stop=duration + drain) for p in people))
        result.duration = time.monotonic() - t0
        return result

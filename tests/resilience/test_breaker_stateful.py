"""Hypothesis stateful test: the breaker against a deliberately plain model of its rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from runtime.core.errors import CircuitOpenError, ServiceUnavailableError
from runtime.resilience import CircuitBreaker
from tests.support.clock import FakeClock
from tests.support.resilience import settings

THRESHOLD, WINDOW, MIN_CALLS, RATE = 3, 5, 5, 0.6
RECOVERY, BACKOFF, MAX_RECOVERY = 10.0, 2.0, 40.0
SUCCESSES, PROBES, PROBE_WAIT = 2, 2, 30.0


@dataclass
class Model:
    """The rules written as plainly as possible: lists, no ring buffers, no tokens."""

    now: float = 0.0
    state: str = "closed"
    epoch: int = 0
    consecutive: int = 0
    window: list[bool] = field(default_factory=list)
    opened_at: float = 0.0
    open_for: float = RECOVERY
    trips: int = 0
    forced: bool = False
    probes: dict[int, float] = field(default_factory=dict)
    half_open_successes: int = 0
    next_probe: int = 0

    def _move(self, state: str) -> None:
        self.state = state
        self.epoch += 1
        self.probes.clear()
        self.half_open_successes = 0
        if state == "closed":
            self.consecutive = 0
            self.window = []
            self.trips = 0
            self.forced = False

    def trip(self) -> None:
        self.trips += 1
        self.open_for = min(RECOVERY * BACKOFF ** (self.trips - 1), MAX_RECOVERY)
        self.opened_at = self.now
        self._move("open")

    def acquire(self) -> tuple[str, int] | None:
        if self.state == "closed":
            return ("closed", self.epoch)
        if self.state == "open":
            if self.forced or self.now < self.opened_at + self.open_for:
                return None
            self._move("half_open")
        self.probes = {p: t for p, t in self.probes.items() if self.now - t < PROBE_WAIT}
        if len(self.probes) >= PROBES:
            return None
        self.next_probe += 1
        self.probes[self.next_probe] = self.now
        return ("probe", self.next_probe)

    def _record(self, failed: bool) -> None:
        self.window = ([*self.window, failed])[-WINDOW:]
        if len(self.window) >= MIN_CALLS and sum(self.window) >= RATE * len(self.window):
            self.trip()

    def success(self, permit: tuple[str, int]) -> None:
        if permit == ("closed", self.epoch) and self.state == "closed":
            self.consecutive = 0
            self._record(False)
        elif self.state == "half_open" and permit[0] == "probe" and self.probes.pop(permit[1], None) is not None:
            self.half_open_successes += 1
            if self.half_open_successes >= SUCCESSES:
                self._move("closed")

    def failure(self, permit: tuple[str, int]) -> None:
        if permit == ("closed", self.epoch) and self.state == "closed":
            self.consecutive += 1
            if self.consecutive >= THRESHOLD:
                self.window = ([*self.window, True])[-WINDOW:]
                self.trip()
            else:
                self._record(True)
        elif self.state == "half_open" and permit[0] == "probe" and self.probes.pop(permit[1], None) is not None:
            self.trip()

    def ignore(self, permit: tuple[str, int]) -> None:
        if self.state == "half_open" and permit[0] == "probe":
            self.probes.pop(permit[1], None)


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(0.0)
        self.breaker = CircuitBreaker(
            "svc",
            settings(
                failure_threshold=THRESHOLD,
                window_size=WINDOW,
                minimum_calls=MIN_CALLS,
                failure_rate_threshold=RATE,
                recovery_timeout=RECOVERY,
                open_backoff=BACKOFF,
                max_recovery_timeout=MAX_RECOVERY,
                success_threshold=SUCCESSES,
                half_open_max_probes=PROBES,
                probe_max_wait=PROBE_WAIT,
            ),
            clock=self.clock,
        )
        self.model = Model()
        self.outstanding: list[tuple[int, tuple[str, int]]] = []

    @rule()
    def acquire(self) -> None:
        expected = self.model.acquire()
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError:
            assert expected is None, "breaker rejected a call the model admits"
            return
        assert expected is not None, "breaker admitted a call the model rejects"
        self.outstanding.append((permit, expected))

    @rule(n=st.integers(min_value=1, max_value=PROBES + 1))
    def acquire_many(self, n: int) -> None:
        """Concurrent callers arriving together (how probe limits get tested)."""
        for _ in range(n):
            self.acquire()

    @rule()
    def failure_burst(self) -> None:
        """THRESHOLD calls that all fail, in a row: the quick way to OPEN."""
        for _ in range(THRESHOLD):
            self.acquire()
            if self.outstanding:
                self.report(len(self.outstanding) - 1, "failure")

    @precondition(lambda self: self.outstanding)
    @rule(index=st.integers(min_value=0), outcome=st.sampled_from(["success", "failure", "ignore"]))
    def report(self, index: int, outcome: str) -> None:
        permit, expected = self.outstanding.pop(index % len(self.outstanding))
        if outcome == "success":
            self.breaker.on_success(permit)
            self.model.success(expected)
        elif outcome == "failure":
            self.breaker.on_failure(permit, ServiceUnavailableError("down"))
            self.model.failure(expected)
        else:
            self.breaker.on_ignore(permit)
            self.model.ignore(expected)

    @rule(seconds=st.sampled_from([0.5, 5.0, 10.0, 20.0, 31.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.now += seconds

    @rule()
    def force_open(self) -> None:
        self.breaker.force_open()
        self.model.forced = True
        self.model.opened_at = self.model.now
        self.model._move("open")

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model._move("closed")

    @invariant()
    def agrees_with_the_model(self) -> None:
        snap = self.breaker.snapshot()
        assert snap.state == self.model.state
        assert snap.probes_in_flight == len(self.model.probes) <= PROBES
        if self.model.state == "closed":
            assert snap.failure_count == self.model.consecutive
            assert snap.calls_in_window == len(self.model.window)
            assert snap.failures_in_window == sum(self.model.window)
        if self.model.state == "open" and not self.model.forced:
            assert snap.seconds_until_half_open == max(0.0, self.model.opened_at + self.model.open_for - self.model.now)


BreakerMachine.TestCase.settings = hsettings(max_examples=40, stateful_step_count=30, deadline=None)
TestBreakerAgainstModel = BreakerMachine.TestCase

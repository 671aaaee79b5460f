"""Fault injection for the demo LLM server: what to break, and the decision per request.

The faults are set by CLI flags at start and changed at run time through
``GET/POST /admin/faults``. Random faults draw from a seeded generator so a demo (or test)
replays the same way; the ``*_next`` counters break exactly the next N requests, which is
what tests use to prove "fails twice, then succeeds".
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from runtime.core.errors import ValidationError

Action = Literal["ok", "error", "rate_limit", "hang", "down"]


@dataclass(frozen=True)
class Faults:
    """Every fault the demo server can inject; the defaults inject nothing."""

    latency: float = 0.0  # seconds added before any response
    error_rate: float = 0.0  # fraction of requests answered with error_status
    error_status: int = 500
    fail_next: int = 0  # the next N model calls (chat, embeddings; not /models) get error_status
    rate_limit_rate: float = 0.0  # fraction of requests answered 429
    rate_limit_next: int = 0  # the next N model calls (not /models) are answered 429
    retry_after: float = 1.0  # Retry-After seconds sent with 429
    drop_after_tokens: int = -1  # cut every stream after N tokens (-1: never)
    hang: bool = False  # accept the request and never answer
    malformed: bool = False  # send broken JSON (SSE chunk or response body)
    malformed_tool_args: bool = False  # tool calls carry arguments that are not valid JSON
    down: bool = False  # drop every model request's connection without a response
    unknown_tool: bool = False  # the model answers user messages by calling a tool nobody offered

    def __post_init__(self) -> None:
        for name in ("error_rate", "rate_limit_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValidationError(f"fault {name} must be between 0 and 1, got {value}")
        if not 400 <= self.error_status <= 599:
            raise ValidationError(f"fault error_status must be an HTTP error status, got {self.error_status}")
        if self.latency < 0 or self.retry_after < 0 or self.fail_next < 0 or self.rate_limit_next < 0:
            raise ValidationError("fault durations and counters cannot be negative")
        if not all(math.isfinite(v) for v in (self.latency, self.retry_after)):
            raise ValidationError("fault durations must be finite numbers of seconds")

    def to_dict(self) -> dict[str, Any]:
        """Every fault by name, as ``/admin/faults`` shows them."""
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with ``changes`` applied; unknown names and wrong types are a ValidationError."""
        known = {f.name: f for f in fields(self)}
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ValidationError(f"unknown fault {key!r}; known: {', '.join(sorted(known))}")
            clean[key] = _coerce(key, known[key].type, value)
        return replace(self, **clean)


#: Strings a boolean fault accepts (flags and query strings spell them so), lower case.
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def as_bool(key: str, value: object) -> bool:
    """``value`` as a boolean: JSON true/false, 1/0, or the strings true/false, yes/no, on/off.

    Raises:
        ValidationError: anything else (``"maybe"`` is not false), naming ``key``.
    """
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValidationError(f"{key} must be true or false, got {value!r}")


def _coerce(key: str, annotation: Any, value: Any) -> Any:
    """``value`` as the fault's type: a bool from true/false (or 1/0, yes/no, on/off), an int
    from a whole number, a float from a number; numeric strings are read as numbers.

    Raises:
        ValidationError: anything else, naming the fault, the type and the value
            (``{"hang": "maybe"}`` used to turn the fault off, ``{"drop_after_tokens": 1.7}``
            to cut at 1).
    """
    kind = str(annotation)
    if kind == "bool":
        return as_bool(f"fault {key}", value)
    if kind not in ("int", "float"):
        return value
    number: object = value
    if isinstance(value, str):
        try:
            number = float(value) if kind == "float" else int(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float):
        noun = "a whole number" if kind == "int" else "a number"
        raise ValidationError(f"fault {key} must be {noun}, got {value!r}")
    if kind == "float":
        return float(number)
    if isinstance(number, float) and not number.is_integer():
        raise ValidationError(f"fault {key} must be a whole number, got {value!r}")
    return int(number)


class FaultState:
    """The live faults plus the request counter and seeded generator of one server."""

    def __init__(self, faults: Faults | None = None, *, seed: int = 0) -> None:
        self.faults = faults or Faults()
        self.requests = 0
        self._rng = random.Random(seed)

    def update(self, changes: dict[str, Any]) -> Faults:
        """Apply ``changes``; ``{"reset": true}`` first clears every fault and the request count.

        Raises:
            ValidationError: ``reset`` is not a boolean, or a fault is unknown or of the wrong
                type or range (then nothing changes).
        """
        if as_bool("reset", changes.pop("reset", False)):
            self.faults = Faults()
            self.requests = 0
        self.faults = self.faults.updated(changes)
        return self.faults

    def decide(self, *, model_call: bool = True) -> Action:
        """Count one request and choose what happens to it.

        ``model_call=False`` is a listing of the models (``/models``, what clients' health probes
        read): the counted faults (``fail_next``, ``rate_limit_next``) are neither applied nor
        used up by it, so "fail the next 2 requests" means the next 2 chat or embedding calls
        whether or not a health monitor probes in between; ``down``, ``hang`` and the rates
        apply to every request.
        """
        self.requests += 1
        f = self.faults
        if f.down:
            return "down"
        if f.hang:
            return "hang"
        if model_call and f.rate_limit_next > 0:
            self.faults = replace(f, rate_limit_next=f.rate_limit_next - 1)
            return "rate_limit"
        if model_call and f.fail_next > 0:
            self.faults = replace(f, fail_next=f.fail_next - 1)
            return "error"
        if f.rate_limit_rate and self._rng.random() < f.rate_limit_rate:
            return "rate_limit"
        if f.error_rate and self._rng.random() < f.error_rate:
            return "error"
        return "ok"

    def snapshot(self) -> dict[str, Any]:
        """``{"faults": {...}, "requests": n}``: the live faults and the model requests counted."""
        return {"faults": self.faults.to_dict(), "requests": self.requests}

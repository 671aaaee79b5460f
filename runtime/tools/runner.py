"""Running the tool calls a model asked for: lookup, validation, permission, guard, output cap.

Every outcome is a :class:`ToolResult` the model sees as a ``tool`` message, so a bad call
(unknown tool, arguments that do not match the schema, a refusal, a crash, a timeout, an
open breaker) never ends the turn: the model reads what went wrong and answers the user.
Each tool runs under ``Guard("tool:<name>")`` with its own timeout inside, so a hung tool
counts against that tool's breaker only. Calls of one step run concurrently.

User errors are not outages: a call the tool refuses because of its input (it raises a
:class:`~runtime.core.errors.ValidationError`, or Python's ``ValueError`` / ``ArithmeticError``
such as ``OverflowError`` for ``2**5000 / 3``) is an ``invalid`` result the model reads, and by
:func:`runtime.resilience.classify.records_failure` it is not counted by the tool's breaker: a
model that keeps sending bad input cannot take the tool away from everyone. Only the tool's own
failures (any other exception, a timeout) count.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from runtime.core.errors import (
    AppError,
    CircuitOpenError,
    InternalError,
    OperationTimeoutError,
    ValidationError,
    describe,
)
from runtime.core.messages import ChatMessage, ToolCall
from runtime.tools.api import AskPermission, Tool, ToolArgumentsError, ToolContext, ToolRegistry

if TYPE_CHECKING:
    from runtime.context.tokens import TokenCounter
    from runtime.resilience import Resilience

ToolStatus = Literal["ok", "error", "denied", "invalid", "unknown", "timeout", "unavailable"]


class ToolExecutionError(InternalError):
    """The tool's own code raised; not retried (a tool may have side effects)."""


class ToolInputError(ValidationError):
    """The tool refused its input (``ValueError``, ``ArithmeticError``); told to the model as an
    ``invalid`` call and not counted by the tool's breaker."""


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool call, as the model will see it (``status`` says which kind).

    ``duration_ms`` is milliseconds from lookup to result; ``error`` is the reason when the
    call did not succeed (``output`` is then ``"Error: <reason>"``).
    """

    call_id: str
    name: str
    status: ToolStatus
    #: What the model sees, capped at the configured number of tokens.
    output: str
    #: The whole output (kept in the tool message's metadata when ``truncated``).
    full_output: str
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    truncated: bool = False
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the tool ran and returned."""
        return self.status == "ok"

    def to_message(self) -> ChatMessage:
        """The chat-completions ``tool`` message answering the call (``tool_call_id``, ``name``, ``content``).

        Status, duration, error and (when truncated) the whole output go in its metadata.
        """
        metadata: dict[str, Any] = {"status": self.status, "duration_ms": round(self.duration_ms, 2)}
        if self.truncated:
            metadata["full_output"] = self.full_output
        if self.error:
            metadata["error"] = self.error
        return ChatMessage(
            role="tool", content=self.output, tool_call_id=self.call_id, name=self.name, metadata=metadata
        )


def render_output(value: Any) -> str:
    """A tool's return value as text for the model.

    None is ``"(no output)"``, a string stays as it is, a pydantic model is its JSON, anything
    else JSON (``str`` for what JSON cannot hold) or, failing that, ``str(value)``.
    """
    if value is None:
        return "(no output)"
    if isinstance(value, str):
        return value
    dump = getattr(value, "model_dump_json", None)
    if callable(dump):
        return str(dump())
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def parse_arguments(raw: str) -> dict[str, Any]:
    """The model's raw JSON arguments as a dict; raises :class:`ToolArgumentsError`."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ToolArgumentsError(f"arguments are not valid JSON ({exc.msg} at position {exc.pos})") from exc
    if not isinstance(value, dict):
        raise ToolArgumentsError("arguments must be a JSON object")
    return value


class ToolRunner:
    """Runs tool calls for the agent.

    Args:
        registry: where calls find their tools (and permissions).
        resilience: gives each tool its ``Guard("tool:<name>")``.
        counter: counts tokens for the output cap (default: ``TokenCounter("")``, the encoding
            for an unnamed model, made on first use).
        max_output_tokens: the cap on what the model sees of one output (default: the
            registry's ``[plugins].max_output_tokens``).
        clock: seconds, for ``ToolResult.duration_ms``.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        resilience: Resilience,
        *,
        counter: TokenCounter | None = None,
        max_output_tokens: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = registry
        self.resilience = resilience
        self._counter = counter
        self.max_output_tokens = max_output_tokens or registry.config.max_output_tokens
        self._clock = clock

    @property
    def counter(self) -> TokenCounter:
        """The token counter for the output cap (created on first use when none was given)."""
        if self._counter is None:
            from runtime.context.tokens import TokenCounter

            self._counter = TokenCounter("")
        return self._counter

    async def run_all(
        self, calls: list[ToolCall], context: ToolContext, ask_permission: AskPermission | None = None
    ) -> list[ToolResult]:
        """Run the calls concurrently; results come back in the calls' order."""
        if len(calls) == 1:
            return [await self.run(calls[0], context, ask_permission)]
        return list(await asyncio.gather(*(self.run(c, context, ask_permission) for c in calls)))

    async def run(
        self, call: ToolCall, context: ToolContext, ask_permission: AskPermission | None = None
    ) -> ToolResult:
        """Run one call: look the tool up, validate, check permission, invoke under its guard.

        Never raises for the call's fault: an unknown tool, invalid arguments or input the tool
        refuses (``invalid``), a refusal, a failure, a timeout or an open breaker is a
        :class:`ToolResult` with that status and an error the model can read. ``ask_permission`` is awaited when the permission is "ask".
        """
        started = self._clock()
        found = self.registry.get(call.name)
        if found is None:
            known = ", ".join(self.registry.names()) or "none"
            return self._result(call, "unknown", f"unknown tool {call.name!r}; available tools: {known}", {}, started)
        try:
            raw_args = parse_arguments(call.arguments)
            args = found.validate(raw_args)
        except ToolArgumentsError as exc:
            return self._result(call, "invalid", exc.message, {}, started)
        refusal = await self._check_permission(found, raw_args, ask_permission)
        if refusal is not None:
            return self._result(call, "denied", refusal, raw_args, started)
        try:
            value = await self._guarded(found, args, context)
        except CircuitOpenError as exc:
            return self._result(call, "unavailable", exc.user_message(), raw_args, started)
        except OperationTimeoutError as exc:
            return self._result(call, "timeout", exc.user_message(), raw_args, started)
        except ValidationError as exc:
            return self._result(call, "invalid", exc.user_message(), raw_args, started)
        except AppError as exc:
            return self._result(call, "error", exc.user_message(), raw_args, started)
        return self._ok(call, render_output(value), raw_args, started)

    async def _check_permission(self, found: Tool, args: dict[str, Any], ask: AskPermission | None) -> str | None:
        """None when the call may run, else the refusal the model is told."""
        permission = self.registry.permission(found.name, args)
        if permission == "deny":
            return f"the user's settings do not allow the tool {found.name!r}; it was not run"
        if permission == "allow" or self.registry.allowed_always(found.name):
            return None
        if ask is None:
            return f"the tool {found.name!r} needs the user's permission and nobody could be asked; it was not run"
        answer = await ask(found.name, args)
        if answer == "always":
            self.registry.allow_always(found.name)
            return None
        if answer == "once":
            return None
        return f"the user refused to run the tool {found.name!r}"

    async def _guarded(self, found: Tool, args: Mapping[str, Any], context: ToolContext) -> Any:
        guard = self.resilience.guard(f"tool:{found.name}")
        timeout = min(found.timeout, guard.timeout) if found.timeout else guard.timeout

        async def once() -> Any:
            try:
                async with asyncio.timeout(timeout):
                    return await found.invoke(args, context)
            except TimeoutError as exc:
                # Not retried: a tool that hung once likely hangs again, and may have side effects.
                raise OperationTimeoutError(
                    f"tool {found.name} did not finish within {timeout:g}s",
                    retryable=False,
                    service=f"tool:{found.name}",
                ) from exc
            except AppError:
                raise
            except (ValueError, ArithmeticError) as exc:  # the input's fault: not an outage of the tool
                raise ToolInputError(f"tool {found.name} refused the input: {describe(exc)}") from exc
            except Exception as exc:  # the plugin's own bug, reported to the model
                raise ToolExecutionError(
                    f"tool {found.name} failed: {describe(exc)}", service=f"tool:{found.name}"
                ) from exc

        return await guard.call(once)

    def _ok(self, call: ToolCall, text: str, args: dict[str, Any], started: float) -> ToolResult:
        shown, truncated = self._cap(text)
        return ToolResult(
            call.id, call.name, "ok", shown, text, args, None, truncated, (self._clock() - started) * 1000
        )

    def _result(
        self, call: ToolCall, status: ToolStatus, message: str, args: dict[str, Any], started: float
    ) -> ToolResult:
        text = f"Error: {message}"
        return ToolResult(
            call.id, call.name, status, text, text, args, message, False, (self._clock() - started) * 1000
        )

    def _cap(self, text: str) -> tuple[str, bool]:
        # Cheap pre-check: every token is at least one UTF-8 byte, so short text always fits.
        if len(text.encode()) <= self.max_output_tokens:
            return text, False
        from runtime.context.truncate import truncate_middle

        cut = truncate_middle(self.counter, text, self.max_output_tokens)
        if cut is None:
            return text[: self.max_output_tokens], True
        shown, omitted = cut
        return shown, omitted > 0

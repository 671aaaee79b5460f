"""Assemble streamed tool-call deltas into complete calls.

OpenAI-compatible endpoints stream a tool call as a first delta carrying ``index``, ``id``
and the function name, then argument fragments keyed only by ``index``; parallel calls
interleave by index. Some servers (llama.cpp, older vLLM) repeat the id on every fragment
or omit ``index``; both are tolerated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.core.messages import ToolCall
from runtime.llm.stream_events import ToolCallError, ToolCallReady, parse_arguments


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    args: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Feed ``delta.tool_calls`` entries; :meth:`finish` returns the calls in index order."""

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, delta: object) -> None:
        """Add one entry of a chunk's ``delta.tool_calls``, as a dict or an SDK object with the same fields."""
        index = _get(delta, "index")
        call_id = _get(delta, "id") or ""
        if index is None:
            # No index: a new id starts a new call, otherwise it continues the last one.
            known = next((i for i, p in self._calls.items() if call_id and p.id == call_id), None)
            if known is not None:
                index = known
            elif call_id or not self._calls:
                index = len(self._calls)
            else:
                index = max(self._calls)
        partial = self._calls.setdefault(int(index), _Partial())
        if call_id and not partial.id:
            partial.id = call_id
        fn = _get(delta, "function")
        if fn is not None:
            name = _get(fn, "name")
            if name and not partial.name:
                partial.name = name
            fragment = _get(fn, "arguments")
            if fragment:
                partial.args.append(fragment)

    def finish(self) -> list[ToolCallReady | ToolCallError]:
        """The assembled calls in index order, each parsed (:func:`parse_arguments`); resets the assembler.

        A call without an id gets ``call_<index>``.
        """
        out: list[ToolCallReady | ToolCallError] = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            call = ToolCall(id=partial.id or f"call_{index}", name=partial.name, arguments="".join(partial.args))
            out.append(parse_arguments(call))
        self._calls.clear()
        return out


def _get(obj: object, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)

"""Assemble streamed tool-call deltas into complete calls, each exactly once.

OpenAI streams a tool call as a first delta carrying ``index``, ``id`` and the function name,
then argument fragments keyed only by ``index``; parallel calls interleave by index. Real
servers bend every part of that, and each bend below comes from a server people use:

* **a new id is a new call**, whatever its ``index`` says: llama.cpp sends every parallel call
  whole at ``index: 0`` with its own id (merging them by index glued two argument objects
  together and lost the second call);
* **a known id continues its call**: llama.cpp and older vLLM repeat the id on every fragment;
* **no id** continues the newest call at that ``index``, or (no ``index`` either, Ollama) the
  newest call; a fragment with nothing to continue starts a call;
* **a repeated id that restarts** (a name again, after the call's arguments were already
  complete JSON) is a second call that reused the id;
* **arguments** are a JSON string in fragments, or a whole JSON object (llama.cpp);
* **ids are made unique** (:func:`unique_ids`): a missing id gets a fresh ``call_<hex>``, a
  repeated one a ``_2``, ``_3`` suffix, so every call is answered by exactly one result and
  the history stays well formed (the chat API pairs results to calls by id).

The calls come out in ``index`` order, calls at the same index in arrival order.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runtime.core.messages import ToolCall
from runtime.llm.stream_events import ToolCallError, ToolCallReady, parse_arguments


@dataclass
class _Partial:
    index: int
    seq: int
    id: str = ""
    name: str = ""
    args: list[str] = field(default_factory=list)

    def arguments_complete(self) -> bool:
        """True when the fragments so far already form a JSON value (a restart is a new call)."""
        if not self.args:
            return False
        try:
            json.loads("".join(self.args))
        except ValueError:
            return False
        return True


class ToolCallAssembler:
    """Feed ``delta.tool_calls`` entries with :meth:`feed`; :meth:`finish` returns the calls."""

    __slots__ = ("_by_id", "_calls", "_newest_at")

    def __init__(self) -> None:
        self._calls: list[_Partial] = []
        self._by_id: dict[str, _Partial] = {}
        self._newest_at: dict[int, _Partial] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def _start(self, index: int | None, call_id: str) -> _Partial:
        if index is None:
            index = max((c.index for c in self._calls), default=-1) + 1
        partial = _Partial(index=index, seq=len(self._calls), id=call_id)
        self._calls.append(partial)
        self._newest_at[index] = partial
        if call_id:
            self._by_id[call_id] = partial
        return partial

    def _target(self, index: int | None, call_id: str, name: str) -> _Partial:
        """The call this entry belongs to (the rules in the module docstring)."""
        if call_id:
            known = self._by_id.get(call_id)
            if known is None:
                return self._start(index, call_id)
            if name and known.name and known.arguments_complete():
                return self._start(index, call_id)  # the id was reused for a second call
            return known
        if index is not None:
            newest = self._newest_at.get(index)
            if newest is None or (name and newest.name and newest.arguments_complete()):
                return self._start(index, "")
            return newest
        if not self._calls:
            return self._start(None, "")
        last = self._calls[-1]
        if name and last.name and last.arguments_complete():
            return self._start(None, "")
        return last

    def feed(self, delta: object) -> None:
        """Add one entry of a chunk's ``delta.tool_calls`` (a dict, or an SDK object with the same fields).

        ``function.arguments`` may be a string fragment or a whole JSON object; anything else
        (a number, a list) is kept as its JSON text, so the call fails validation visibly
        instead of being dropped.
        """
        raw_index = _get(delta, "index")
        index = raw_index if type(raw_index) is int else _as_index(raw_index)
        call_id = _get(delta, "id") or ""
        if not isinstance(call_id, str):
            call_id = str(call_id)
        fn = _get(delta, "function")
        name = _get(fn, "name") if fn is not None else None
        fragment = _get(fn, "arguments") if fn is not None else None
        partial = self._target(index, call_id, name or "")
        if index is not None:
            self._newest_at[index] = partial
        if name and not partial.name:
            partial.name = str(name)
        if fragment is None or fragment == "":
            return
        if isinstance(fragment, str):
            partial.args.append(fragment)
        else:
            # A whole object (llama.cpp): it replaces any fragments, it cannot continue them.
            partial.args = [json.dumps(fragment, ensure_ascii=False)]

    def finish(self, taken: Iterable[str] = ()) -> list[ToolCallReady | ToolCallError]:
        """The assembled calls, parsed (:func:`parse_arguments`), with unique ids; resets the assembler.

        ``taken`` are ids already used (earlier calls of the same turn) that must not be reused.
        """
        ordered = sorted(self._calls, key=lambda c: (c.index, c.seq))
        ids = unique_ids([c.id for c in ordered], taken)
        out = [
            parse_arguments(ToolCall(id=call_id, name=c.name, arguments="".join(c.args)))
            for c, call_id in zip(ordered, ids, strict=True)
        ]
        self._calls.clear()
        self._by_id.clear()
        self._newest_at.clear()
        return out


def new_call_id() -> str:
    """A fresh id in the chat-completions style: ``call_`` and 24 hex digits."""
    return "call_" + secrets.token_hex(12)


def unique_ids(ids: Iterable[str], taken: Iterable[str] = ()) -> list[str]:
    """``ids`` with every empty one replaced by :func:`new_call_id` and every repeat (of an
    earlier id in ``ids`` or of one in ``taken``) suffixed ``_2``, ``_3``...; order is kept."""
    used = set(taken)
    out: list[str] = []
    for call_id in ids:
        if not call_id:
            call_id = new_call_id()
        candidate, n = call_id, 1
        while candidate in used:
            n += 1
            candidate = f"{call_id}_{n}"
        used.add(candidate)
        out.append(candidate)
    return out


def with_unique_ids(calls: list[ToolCall], taken: Iterable[str] = ()) -> list[ToolCall]:
    """``calls`` with ids made unique (:func:`unique_ids`); calls whose id is kept are returned as they are."""
    ids = unique_ids([c.id for c in calls], taken)
    return [
        c if c.id == i else ToolCall(id=i, name=c.name, arguments=c.arguments) for c, i in zip(calls, ids, strict=True)
    ]


def _as_index(value: object) -> int | None:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _get(obj: object, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)

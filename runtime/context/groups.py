"""Splitting history into the units a prompt keeps or drops whole.

The chat API rejects an assistant message whose tool calls are not each answered by a
``tool`` message right after it, and a ``tool`` message that answers nothing. So an assistant
message with tool calls and all of its results form one unit; every other message is a unit
of its own. Incomplete groups (a result missing, e.g. a crash mid-step) and orphan results
(their call was cut off by the read window) are never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from runtime.core.messages import ChatMessage


class Unit(NamedTuple):
    """Messages kept or dropped together, in chronological order.

    A named tuple, not a frozen dataclass: one is made per history message on every prompt
    build, and a tuple is built several times faster.
    """

    messages: tuple[ChatMessage, ...]

    @property
    def is_tool_group(self) -> bool:
        """True for an assistant tool call with all its ``tool`` results."""
        return bool(self.messages[0].tool_calls)

    @property
    def is_user(self) -> bool:
        """True for a user message."""
        return self.messages[0].role == "user"


@dataclass(frozen=True)
class Grouping:
    """:func:`group_units`' result: the sendable units, in chronological order, and what can never be sent."""

    units: list[Unit]
    #: Messages that can never be sent: orphan tool results and incomplete tool-call groups.
    unsendable: list[ChatMessage]


def group_units(messages: Sequence[ChatMessage]) -> Grouping:
    """Group chronological ``messages`` into sendable units (one pass, O(n))."""
    units: list[Unit] = []
    add = units.append
    unsendable: list[ChatMessage] = []
    i, n = 0, len(messages)
    while i < n:
        msg = messages[i]
        if msg.role == "tool":
            unsendable.append(msg)
            i += 1
            continue
        if not msg.tool_calls:
            add(Unit((msg,)))
            i += 1
            continue
        wanted = {call.id for call in msg.tool_calls}
        answered: set[str] = set()
        group = [msg]
        j = i + 1
        while j < n and messages[j].role == "tool" and messages[j].tool_call_id in wanted - answered:
            answered.add(messages[j].tool_call_id or "")
            group.append(messages[j])
            j += 1
        if answered == wanted:
            units.append(Unit(tuple(group)))
        else:
            unsendable.extend(group)
        i = j
    return Grouping(units, unsendable)


def last_user_index(units: Sequence[Unit]) -> int | None:
    """Index of the unit holding the newest user message (the one the model must answer)."""
    for index in range(len(units) - 1, -1, -1):
        if units[index].is_user:
            return index
    return None

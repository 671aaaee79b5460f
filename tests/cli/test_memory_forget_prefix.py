"""``holdfast memory forget`` takes a unique id prefix, as the chat's ``/forget`` does (issue 16,
case 14's sibling on the CLI): the console script, real Redis and LanceDB."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.cli import Run

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

Holdfast = Callable[..., Run]


def test_forget_by_a_unique_prefix(holdfast: Holdfast) -> None:
    cat = holdfast("memory", "add", "My cat is called Tom").json_lines()[0]
    holdfast("memory", "add", "I work as a lighthouse keeper")
    # Alice's memory shares no prefix rule with ours: another user's ids are never matched.
    holdfast("--user", "alice", "memory", "add", "Alice keeps the key under the mat")

    forgot = holdfast("memory", "forget", cat["id"][:6])
    assert forgot.code == 0, forgot.err
    assert forgot.out == f"forgot {cat['id']}\n"
    assert {m["content"] for m in holdfast("memory", "list").json_lines()} == {"I work as a lighthouse keeper"}

    short = holdfast("memory", "forget", cat["id"][:3])
    assert (short.code, short.err) == (1, "holdfast: give at least 4 characters of the memory id\n")
    gone = holdfast("memory", "forget", cat["id"][:6])
    assert (gone.code, gone.err) == (1, f"holdfast: no memory id starts with '{cat['id'][:6]}'\n")
    alices = holdfast("--user", "alice", "memory", "list").json_lines()[0]
    stolen = holdfast("memory", "forget", alices["id"][:8])
    assert stolen.code == 1 and "no memory id starts with" in stolen.err
    assert len(holdfast("--user", "alice", "memory", "list").json_lines()) == 1

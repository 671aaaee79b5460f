"""``holdfast conversations branch ID --at SEQ`` through the real console script (issue 17): the new
id on stdout, the branch listed under its parent, ``show`` marking the branch point, one-line
errors with their exit codes."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.support.cli import Run, run_script

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

Holdfast = Callable[..., Run]


def _conversation(run: Run) -> str:
    found = re.search(r"\[conversation (conv_[\w~]+)\]", run.err)
    assert found, run.err
    return found.group(1)


def test_branch_prints_the_new_id_and_the_branch_goes_on_by_itself(
    holdfast: Holdfast, script_env: dict[str, str]
) -> None:
    conv = _conversation(holdfast("chat", "first question"))
    assert holdfast("chat", "--conversation", conv, "second question").code == 0

    run = run_script("conversations", "branch", conv, "--at", "1", env=script_env)
    assert run.code == 0, run.err
    branch = run.out.strip()
    assert re.fullmatch(re.escape(conv) + r"~[0-9a-f]{6}", branch), run.out

    listed = run_script("conversations", "list", env=script_env)
    rows = listed.json_lines()
    assert [(r["id"], r["parent_id"], r["fork_seq"]) for r in rows] == [(conv, None, None), (branch, conv, 1)]
    # --json, as branch, sessions and mcp list take it: the same JSON lines, not "No such option".
    as_json = run_script("conversations", "list", "--json", env=script_env)
    assert as_json.code == 0, as_json.err
    assert as_json.json_lines() == rows

    shown = run_script("conversations", "show", branch, env=script_env)
    assert shown.code == 0, shown.err
    assert f"- Branch of `{conv}` after message #1" in shown.out
    head, tail = shown.out.split("↳ branch point", 1)
    assert "first question" in head and "### Assistant #1" in head
    assert "second question" not in shown.out  # the parent's later messages are not the branch's

    again = holdfast("chat", "--conversation", branch, "edited second question")
    assert again.code == 0, again.err
    shown = run_script("conversations", "show", branch, env=script_env)
    head, tail = shown.out.split("↳ branch point", 1)
    assert "### User #2" in tail and "edited second question" in tail
    parent = run_script("conversations", "show", conv, env=script_env)
    assert "edited second question" not in parent.out and "second question" in parent.out


def test_branch_json_and_errors(holdfast: Holdfast, script_env: dict[str, str]) -> None:
    conv = _conversation(holdfast("chat", "hello"))
    run = run_script("conversations", "branch", conv, "--at", "0", "--title", "Take two", "--json", env=script_env)
    assert run.code == 0, run.err
    (row,) = run.json_lines()
    assert (row["parent_id"], row["fork_seq"], row["title"], row["message_count"]) == (conv, 0, "Take two", 1)

    out_of_range = run_script("conversations", "branch", conv, "--at", "7", env=script_env)
    assert out_of_range.code == 2
    assert out_of_range.err.strip().splitlines() == [
        f"holdfast: seq 7 is out of range: conversation {conv} has messages 0 to 1; "
        "branch at one of them (or -1: before the first)"
    ]
    unknown = run_script("conversations", "branch", "conv_nope", "--at", "0", env=script_env)
    assert (unknown.code, unknown.err.strip()) == (1, "holdfast: conversation conv_nope does not exist")
    other = run_script("--user", "mallory", "conversations", "branch", conv, "--at", "0", env=script_env)
    assert (other.code, other.err.strip()) == (1, f"holdfast: conversation {conv} does not exist")
    missing_at = run_script("conversations", "branch", conv, env=script_env)
    assert missing_at.code == 2 and "--at" in missing_at.err and "Traceback" not in missing_at.err


def test_a_branch_that_shares_nothing_says_so_instead_of_naming_message_minus_one(
    holdfast: Holdfast, script_env: dict[str, str]
) -> None:
    conv = _conversation(holdfast("chat", "first question"))
    branch = run_script("conversations", "branch", conv, "--at", "-1", env=script_env).out.strip()
    assert holdfast("chat", "--conversation", branch, "another first question").code == 0
    shown = run_script("conversations", "show", branch, env=script_env)
    assert shown.code == 0, shown.err
    assert f"- Branch of `{conv}` before its first message" in shown.out
    assert f"--- ↳ branch point: no messages are shared with `{conv}`; this branch starts here ---" in shown.out
    assert "#-1" not in shown.out and "### User" not in shown.out.split("branch point")[0]


def test_a_blank_branch_title_is_the_parents_not_an_empty_one(holdfast: Holdfast, script_env: dict[str, str]) -> None:
    conv = _conversation(holdfast("chat", "named by this"))
    for blank in ("", "   ", "\x1b[2J"):
        run = run_script("conversations", "branch", conv, "--at", "0", "--title", blank, "--json", env=script_env)
        assert run.code == 0, run.err
        (row,) = run.json_lines()
        assert row["title"] == "named by this", (blank, row)


@pytest.mark.parametrize("command", ["branch", "show", "delete"])
@pytest.mark.parametrize("bad", ["", "a b", "x" * 129])
def test_a_malformed_id_is_a_usage_error(script_env: dict[str, str], command: str, bad: str) -> None:
    args = ["conversations", command, bad, *(["--at", "0"] if command == "branch" else [])]
    run = run_script(*args, env=script_env)
    assert run.code == 2, (run.code, run.err)
    (line,) = run.err.strip().splitlines()
    assert line.startswith(f"holdfast conversations {command}: Invalid value for 'ID': must be 1-128 characters"), line
    assert "Traceback" not in run.err

"""One user-id rule for every command, through the real console script: ``chat`` refuses exactly
what ``memory`` refuses (exit 2, one line) and accepts what it accepts, ``--user ""`` is an error
rather than the OS user, and an OS user name the rule refuses is exit 2 with what to do."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_script

pytestmark = pytest.mark.slow

RULE = "a user id is 1-128 ASCII letters, digits and _ . @ + - ="


@pytest.mark.timeout(4 * 20)
@pytest.mark.parametrize("bad", ["", "alice smith", "a/b", "x" * 129, "al\x1bice"], ids=repr)
def test_chat_and_memory_refuse_the_same_bad_user_with_exit_code_2(bad: str, script_env: dict[str, str]) -> None:
    for argv in (("chat", "hello"), ("memory", "add", "a fact"), ("conversations", "list"), ("sessions",)):
        run = run_script("--user", bad, *argv, env=script_env)
        assert run.code == 2, (argv, run)
        assert run.err.startswith("holdfast: ") and "--user " in run.err and RULE in run.err, (argv, run.err)
        assert run.err.count("\n") == 1 and "Traceback" not in run.err and run.out == ""


@pytest.mark.timeout(4 * 20)
@pytest.mark.parametrize("good", ["alice.smith@example.com", "user_42", "a+b=c"])
def test_ids_memory_accepts_chat_accepts_too(good: str, script_env: dict[str, str]) -> None:
    added = run_script("--user", good, "memory", "add", "My dog is called Rex", env=script_env)
    assert added.code == 0, added.err
    chat = run_script("--user", good, "chat", "what is my dog called?", env=script_env)
    assert chat.code == 0, chat.err
    listed = run_script("--user", good, "conversations", "list", env=script_env)
    assert listed.code == 0 and len(listed.json_lines()) == 1
    memories = run_script("--user", good, "memory", "list", env=script_env)
    assert [json.loads(line)["content"] for line in memories.out.splitlines()] == ["My dog is called Rex"]


@pytest.mark.timeout(3 * 20)
def test_an_os_user_name_the_rule_refuses_is_exit_2_with_what_to_do(script_env: dict[str, str]) -> None:
    env = {**script_env, "LOGNAME": "John Smith", "USER": "John Smith", "LNAME": "", "USERNAME": ""}
    for argv in (("chat", "hello"), ("memory", "list")):
        run = run_script(*argv, env=env)
        assert run.code == 2, run
        assert run.err == (
            "holdfast: the OS user name 'John Smith' is not valid: it contains whitespace; "
            f"{RULE} (no spaces, slashes or control characters); choose one with --user NAME or [agent].user\n"
        )
    assert run_script("--user", "john", "memory", "list", env=env).code == 0

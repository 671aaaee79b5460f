"""A bad user id given to the real ``holdfast`` console script is refused with exit code 2 and one
line naming the value, whichever way it arrives: ``--user`` (before or after the subcommand), the
environment, or a config file (the only way to pass a NUL byte: argv and environment strings are
C strings and cannot hold one). Nothing is started: the check comes before any backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_script

# Each test starts the real console script (a second of Python start-up): out of `make test-fast`.
pytestmark = pytest.mark.slow

RULE = "a user id is 1-128 ASCII letters, digits and _ . @ + - ="


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "it is empty"),
        ("x" * 200, "it is 200 characters long"),
        ("alice/../bob", "path separator"),
        ("ali\x1bce", "control character U+001B"),
        (" alice", "starts or ends with whitespace"),
    ],
    ids=["empty", "too-long", "path", "control", "whitespace"],
)
def test_memory_add_refuses_a_bad_user_with_exit_code_2(bad: str, why: str) -> None:
    for argv in (("memory", "add", "--user", bad, "My dog is called Rex"), ("--user", bad, "memory", "add", "x")):
        run = run_script(*argv)
        assert run.code == 2, (argv, run)
        assert run.err.startswith("holdfast: command line: --user ") and why in run.err and RULE in run.err
        assert run.err.count("\n") == 1 and "Traceback" not in run.err and "\x1b" not in run.err


def test_a_nul_byte_in_the_configured_user_is_refused_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "nul.toml"
    config.write_text('[agent]\nuser = "a\\u0000b"\n')
    run = run_script("--config", str(config), "memory", "add", "My dog is called Rex")
    assert run.code == 2 and run.err.count("\n") == 1
    assert f"{config}: [agent].user 'a\\x00b' is not valid: it contains a NUL byte" in run.err


def test_a_bad_user_from_the_environment_is_refused_with_exit_code_2() -> None:
    run = run_script("memory", "list", env={"HOLDFAST_AGENT__USER": "alice smith"})
    assert run.code == 2 and "environment: [agent].user 'alice smith' is not valid: it contains whitespace" in run.err


@pytest.mark.parametrize("good", ["alice", "alice.smith@example.com", "user_42"])
def test_ordinary_user_ids_pass(good: str) -> None:
    run = run_script("config", "--user", good)
    assert run.code == 0 and f'"{good}"' in run.out, run

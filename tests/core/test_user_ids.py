"""One user-id rule (runtime.core.ids.validate_user_id), checked where a user id comes in from
the configuration (files, environment, --user) and from tool contexts. The stores' doors are
tested beside their stores (tests/state, tests/memory); the console script in tests/cli."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import load_config
from runtime.core.errors import ConfigError, ValidationError
from runtime.core.ids import MAX_USER_ID_CHARS, is_valid_user_id, validate_user_id
from runtime.tools.api import ToolContext

GOOD = ["alice", "alice.smith@example.com", "user_42", "Bob-Jones+work", "x" * MAX_USER_ID_CHARS]

#: (bad id, words the message must contain)
BAD = [
    ("a\x00b", "NUL byte"),
    ("", "empty"),
    ("x" * (MAX_USER_ID_CHARS + 1), f"{MAX_USER_ID_CHARS + 1} characters"),
    ("alice/../bob", "path separator"),
    ("alice\\bob", "path separator"),
    ("ali\x1bce", "control character U+001B"),
    ("ali\nce", "control character U+000A"),
    (" alice", "whitespace"),
    ("alice ", "whitespace"),
    ("alice smith", "whitespace"),
    ("{user:alice}", "'{'"),
    ("..", "only dots"),
    ("аlice", "'\\u0430'"),  # a Cyrillic a: looks like "alice", is not
]


@pytest.mark.parametrize("good", GOOD)
def test_ordinary_ids_pass_unchanged(good: str) -> None:
    assert validate_user_id(good) == good and is_valid_user_id(good)


@pytest.mark.parametrize(("bad", "why"), BAD)
def test_bad_ids_are_refused_with_one_line_naming_the_value_and_the_rule(bad: str, why: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_user_id(bad)
    message = info.value.message
    assert why in message and "\n" not in message and "\x00" not in message and "\x1b" not in message
    assert "letters, digits and _ . @ + - =" in message  # what is allowed
    assert message.startswith("user_id ")
    assert not is_valid_user_id(bad)


def test_non_text_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be text"):
        validate_user_id(42)


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(("bad", "why"), [b for b in BAD if b[0]])
def test_command_line_user_is_checked_and_named_as_the_flag(bad: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides={"agent.user": bad}, repo_config=None)
    assert str(info.value).startswith("command line: --user ") and why in str(info.value)


def test_an_empty_command_line_user_is_refused_but_an_empty_config_value_means_the_os_user(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--user '' is not valid: it is empty"):
        load_config(overrides={"agent.user": ""}, repo_config=None)
    config_file = tmp_path / "c.toml"
    config_file.write_text('[agent]\nuser = ""\n')
    assert load_config(config_file=config_file, repo_config=None).config.agent.user == ""


def test_a_config_file_with_a_nul_in_the_user_names_the_file(tmp_path: Path) -> None:
    config_file = tmp_path / "c.toml"
    config_file.write_text('[agent]\nuser = "a\\u0000b"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config_file=config_file, repo_config=None)
    assert str(info.value).startswith(f"{config_file}: [agent].user 'a\\x00b'") and "NUL byte" in str(info.value)


def test_the_environment_user_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"^environment: \[agent\].user 'a b' is not valid: it contains whitespace"):
        load_config(environ={"HOLDFAST_AGENT__USER": "a b"}, repo_config=None)
    loaded = load_config(environ={"HOLDFAST_AGENT__USER": "alice.smith@example.com"}, repo_config=None)
    assert loaded.config.agent.user == "alice.smith@example.com"


# ---------------------------------------------------------------- tool contexts


def test_a_tool_context_refuses_a_bad_user_id() -> None:
    assert ToolContext(user_id="user_42").user_id == "user_42"
    for bad, why in BAD:
        with pytest.raises(ValidationError, match="user_id") as info:
            ToolContext(user_id=bad)
        assert why in info.value.message

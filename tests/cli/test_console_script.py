"""The installed ``holdfast`` console script, run the way a user runs it: options in any order,
``--help`` everywhere, one-line usage errors, ``demo-llm`` with every flag, Ctrl-C."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from runtime.cli.chat import WAIT_NOTICE_SECONDS
from runtime.core.procs import free_port
from runtime.demo.faults import Faults
from runtime.demo.launcher import DemoLLMServer
from tests.support.cli import HOLDFAST, command_paths, run_script, start_script, stop
from tests.support.polling import wait_until

# Each test starts the real console script (a second of Python start-up): out of `make test-fast`.
pytestmark = pytest.mark.slow

# ---------------------------------------------------------------- help, usage errors, completion


@pytest.mark.parametrize("path", [(), *command_paths()], ids=lambda p: " ".join(p) or "holdfast")
def test_every_command_and_group_has_help(path: tuple[str, ...]) -> None:
    run = run_script(*path, "--help")
    assert run.code == 0, run.err
    assert f"usage: {' '.join(('holdfast', *path))}" in " ".join(run.out.lower().split())
    # plain Typer help: flags without a type, values as TEXT, not Typer 0.29's <bool>/<str>/{TEXT}
    assert "<bool>" not in run.out and "<str>" not in run.out, run.out
    assert not [line for line in run.out.splitlines() if line.strip().startswith("Usage:") and "{" in line]


def test_help_shows_flags_bare_and_arguments_as_in_the_usage_line() -> None:
    memory_add = run_script("memory", "add", "--help")
    assert "Usage: holdfast memory add [OPTIONS] TEXT" in memory_add.out
    chat = run_script("chat", "--help")
    assert "Usage: holdfast chat [OPTIONS] [MESSAGE]" in chat.out
    (new,) = [line for line in chat.out.splitlines() if "--new " in line]
    assert new.split("--new", 1)[1].split()[0] == "Start"  # no type between the flag and its help
    (model,) = [line for line in chat.out.splitlines() if "--model " in line]
    assert model.split("--model", 1)[1].split()[0] == "TEXT"


def test_the_command_tree_has_every_documented_command() -> None:
    assert set(command_paths()) >= {
        ("chat",),
        ("conversations",),
        *[("conversations", action) for action in ("list", "show", "export", "delete")],
        ("memory",),
        *[("memory", action) for action in ("add", "search", "list", "forget", "reembed")],
        ("health",),
        ("tools",),
        ("config",),
        ("doctor",),
        ("demo-llm",),
    }


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["memory", "add", "--frob", "x"], "--frob"),
        (["memory", "add"], "'TEXT'"),
        (["conversations", "export", "conv_1", "--format", "xml"], "'xml'"),
        (["--log-level", "loud", "config"], "'loud'"),
        (["frobnicate"], "'frobnicate'"),
        (["memory"], "command"),
        (["chat", "--new", "--conversation", "conv_1", "hi"], "--new and --conversation"),
        # global options are checked before the command's own arguments: the user id is named
        (["chat", "--user", ""], "--user '' is not valid: it is empty"),
        (["memory", "add", "--user", "a b", ""], "--user 'a b' is not valid"),
        (["demo-llm", "--port", "abc"], "argument --port: invalid int value: 'abc'"),
        (["demo-llm", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv: list[str], names: str) -> None:
    run = run_script(*argv)
    assert run.code == 2
    assert run.out == "" and "Traceback" not in run.err
    assert run.err.startswith("holdfast") and run.err.count("\n") == 1, run.err
    assert names in run.err
    assert "Value error" not in run.err  # pydantic's prefix (Typer 0.29 validates with pydantic)


def test_demo_llm_usage_errors_name_the_problem_and_the_help() -> None:
    run = run_script("demo-llm", "--port", "abc")
    assert run.err == "holdfast demo-llm: argument --port: invalid int value: 'abc'. See 'holdfast demo-llm --help'.\n"
    direct = subprocess.run(
        [sys.executable, "-m", "runtime.demo.server", "--frob"], capture_output=True, text=True, timeout=30
    )
    assert direct.returncode == 2 and direct.stdout == ""
    assert direct.stderr == (
        "python -m runtime.demo.server: unrecognized arguments: --frob. See 'python -m runtime.demo.server --help'.\n"
    )


@pytest.mark.parametrize(
    ("argv", "unknown", "suggestion"),
    [
        (["--bogus"], "--bogus", None),
        (["sessions", "--bogus"], "--bogus", None),
        (["memory", "list", "--usr", "alice"], "--usr", "--user"),
        (["chat", "--retyr", "--conversation", "c"], "--retyr", "--retry"),
    ],
)
def test_an_unknown_option_suggests_only_a_close_spelling(
    argv: list[str], unknown: str, suggestion: str | None
) -> None:
    run = run_script(*argv)
    assert run.code == 2 and f"No such option: {unknown}" in run.err, run.err
    if suggestion is None:
        assert "Possible options" not in run.err, run.err
    else:
        assert f"(Possible options: {suggestion})" in run.err, run.err


def test_an_invalid_choice_reads_without_pydantics_prefix() -> None:
    run = run_script("conversations", "export", "abc", "--format", "xml")
    assert run.code == 2
    assert "Invalid value for '--format': 'xml' is not one of 'markdown', 'md', 'json'." in run.err, run.err


def test_shell_completion_completes_commands_and_options() -> None:
    words = run_script(env={"_HOLDFAST_COMPLETE": "complete_bash", "COMP_WORDS": "holdfast mem", "COMP_CWORD": "1"})
    assert words.code == 0 and words.out.split() == ["memory"]
    # global options complete after a command too
    option = run_script(
        env={"_HOLDFAST_COMPLETE": "complete_bash", "COMP_WORDS": "holdfast memory add --us", "COMP_CWORD": "3"}
    )
    assert option.out.split() == ["--user"]
    script = run_script("--show-completion", "bash")
    assert script.code == 0 and "_HOLDFAST_COMPLETE" in script.out


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o default -F"), ("zsh", "#compdef holdfast"), ("fish", "complete --command holdfast")],
)
def test_show_completion_writes_the_script_of_the_shell_asked_for(shell: str, marker: str) -> None:
    script = run_script("--show-completion", shell)
    assert script.code == 0 and marker in script.out, script.out
    assert "_HOLDFAST_COMPLETE" in script.out


def test_show_completion_refuses_an_unknown_shell_in_one_line() -> None:
    run = run_script("--show-completion", "tcsh")
    assert run.code == 2 and run.err.count("\n") == 1 and "'tcsh' is not one of 'bash'" in run.err, run.err


# ---------------------------------------------------------------- global options in any position


@pytest.mark.e2e
@pytest.mark.redis
# 8 commands; each starts the embedded parts in a fresh process: 5-8 s on 2 loaded cores.
# 20 s per command keeps a slow machine from failing a test that is not about speed.
@pytest.mark.timeout(8 * 20)
def test_memory_add_takes_user_before_or_after_the_text(script_env: dict[str, str]) -> None:
    added = run_script("memory", "add", "--user", "alice", "My dog is called Rex", env=script_env)
    assert added.code == 0, added.err
    (memory,) = added.json_lines()
    assert memory["content"] == "My dog is called Rex"
    again = run_script("memory", "add", "My cat is called Tom", "--user", "alice", env=script_env)
    assert again.code == 0, again.err

    found = run_script("memory", "search", "dog", "--user", "alice", env=script_env)
    assert found.code == 0, found.err
    assert [m["id"] for m in found.json_lines()][:1] == [memory["id"]]
    listed = run_script("memory", "--user", "alice", "list", env=script_env)  # between group and command
    assert {m["content"] for m in listed.json_lines()} == {"My dog is called Rex", "My cat is called Tom"}

    for argv in (["memory", "search", "dog", "--user", "bob"], ["--user", "bob", "memory", "search", "dog"]):
        other = run_script(*argv, env=script_env)
        assert other.code == 0 and other.json_lines() == [], other.out
    # the one given last wins
    last = run_script("--user", "bob", "memory", "list", "--user", "alice", env=script_env)
    assert len(last.json_lines()) == 2


# ---------------------------------------------------------------- demo-llm


def test_demo_llm_help_lists_every_fault_flag() -> None:
    run = run_script("demo-llm", "--help")
    assert run.code == 0
    flags = ["--host", "--port", "--tokens-per-second", "--seed"]
    flags += ["--" + field.name.replace("_", "-") for field in dataclasses.fields(Faults)]
    assert [flag for flag in flags if flag not in run.out] == []


def _serving(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/admin/faults", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    return ready


@pytest.mark.e2e
def test_demo_llm_serves_on_the_given_port_with_latency() -> None:
    port = free_port()
    proc = start_script("demo-llm", "--port", str(port), "--latency", "1", "--tokens-per-second", "0")
    try:
        wait_until(_serving(port), 30, f"the demo server on port {port}")
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo", max_retries=0, timeout=30)
        started = time.monotonic()
        answer = client.chat.completions.create(model="holdfast-demo", messages=[{"role": "user", "content": "hello"}])
        elapsed = time.monotonic() - started
        assert answer.choices[0].message.content and "[holdfast-demo]" in answer.choices[0].message.content
        assert elapsed >= 1.0
        assert "holdfast-demo" in [m.id for m in client.models.list().data]
    finally:
        ended = stop(proc, signal.SIGINT)  # Ctrl-C
    assert ended.code == 130, ended.err  # "interrupted", as every holdfast command
    assert f"127.0.0.1:{port}/v1" in ended.out
    assert not _serving(port)()


@pytest.mark.e2e
def test_demo_llm_passes_every_fault_flag_to_the_server() -> None:
    port = free_port()
    expected = Faults(
        latency=0.25,
        error_rate=0.5,
        error_status=503,
        fail_next=2,
        rate_limit_rate=0.25,
        rate_limit_next=3,
        retry_after=4.0,
        drop_after_tokens=7,
        hang=True,
        malformed=True,
        malformed_tool_args=True,
        down=True,
        unknown_tool=True,
    )
    argv = ["demo-llm", f"--port={port}"]
    for name, value in expected.to_dict().items():
        flag = "--" + name.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    proc = start_script(*argv)
    try:
        wait_until(_serving(port), 30, f"the demo server on port {port}")
        faults = httpx.get(f"http://127.0.0.1:{port}/admin/faults", timeout=5).json()["faults"]
    finally:
        ended = stop(proc, signal.SIGTERM)
    assert faults == expected.to_dict()
    assert ended.code == 0, ended.err  # SIGTERM is a requested stop, not a failure


def test_demo_llm_rejects_an_unknown_flag_with_exit_2() -> None:
    run = run_script("demo-llm", "--port", "0", "--frob")
    assert run.code == 2 and "unrecognized arguments: --frob" in run.err and "Traceback" not in run.err
    assert run.err.count("\n") == 1 and "usage:" not in run.err, run.err


# ---------------------------------------------------------------- Ctrl-C


@pytest.mark.e2e
@pytest.mark.redis
def test_ctrl_c_during_a_turn_exits_130(
    script_env: dict[str, str], demo_llm: DemoLLMServer, set_faults: Callable[..., None]
) -> None:
    set_faults(hang=True)
    admin = f"{demo_llm.root_url}/admin/faults"
    proc = start_script("chat", "hello", env=script_env)
    try:
        wait_until(lambda: httpx.get(admin, timeout=2).json()["requests"] >= 1, 30, "the chat to reach the model")
    finally:
        ended = stop(proc, signal.SIGINT, timeout=20)
    assert ended.code == 130, ended.err
    assert "Traceback" not in ended.err


# ---------------------------------------------------------------- a model that does not answer


@pytest.mark.e2e
@pytest.mark.redis
def test_a_hung_model_gets_one_waiting_line_naming_its_url(
    script_env: dict[str, str], demo_llm: DemoLLMServer, set_faults: Callable[..., None], tmp_path: Path
) -> None:
    set_faults(hang=True)
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [str(HOLDFAST), "chat", "hello"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **script_env},
            start_new_session=True,
        )
    line = f"[waiting for the model at {demo_llm.url}…]"
    try:
        wait_until(lambda: line in stderr.read_text(), 30 + WAIT_NOTICE_SECONDS, "the waiting line")
        asked = time.monotonic()
        # still once after twice the wait (the model keeps hanging)
        wait_until(lambda: time.monotonic() - asked > WAIT_NOTICE_SECONDS, 2 * WAIT_NOTICE_SECONDS, "a second wait")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    assert stderr.read_text().count("waiting for the model") == 1, stderr.read_text()

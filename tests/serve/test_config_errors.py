"""Bad ``[server]``/``[alerts]`` values and an unbindable address stop ``holdfast serve`` at once.

Issue 18 break test.

Before: ``[server].local_user = "a b/c"`` started a server that answered every request 400, and a
webhook URL without a scheme or host was accepted and every alert to it was lost. Now each is one
line naming the key and what to give, exit 2 (a config error), no traceback, and a Slack URL (a
secret) is never echoed.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.cli import run_script


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('[server]\nlocal_user = "a b/c"\n', "[server].local_user 'a b/c' is not valid: it contains whitespace"),
        ('[server]\nlocal_user = "../etc"\n', "[server].local_user '../etc' is not valid"),
        ('[alerts]\nwebhooks = ["notaurl"]\n', "[alerts].webhooks entry 1 is not a webhook URL"),
        ('[alerts]\nwebhooks = ["http://"]\n', "[alerts].webhooks entry 1 is not a webhook URL"),
        (
            '[alerts]\nslack_webhooks = ["https://hooks.example/ok", "ftp://hooks.example/T0/B0/s3cr3t"]\n',
            "[alerts].slack_webhooks entry 2 is not a webhook URL: give an http:// or https:// URL with a host",
        ),
    ],
)
def test_bad_server_and_alerts_values_are_one_line_exit_2(tmp_path: Path, table: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(table)
    run = run_script("--config", str(config), "serve", "--port", "0")
    assert run.code == 2
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert expected in lines[0]
    assert "Traceback" not in run.err
    assert "s3cr3t" not in run.err
    assert run.out == ""


def test_good_webhook_urls_and_local_user_are_accepted(tmp_path: Path) -> None:
    config = tmp_path / "good.toml"
    config.write_text(
        '[server]\nlocal_user = "ops.team@example"\n'
        '[alerts]\nwebhooks = ["http://127.0.0.1:9/hook"]\nslack_webhooks = ["https://hooks.example/T/B/x"]\n'
    )
    run = run_script("--config", str(config), "keys", "list")
    assert run.code == 0, run.err


def test_a_port_in_use_is_one_line_naming_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_script("serve", "--port", str(port))
    assert run.code == 2
    assert run.err.strip() == (
        f"holdfast serve: cannot bind 127.0.0.1:{port}: Address already in use; "
        "choose another --port (0: any free port) or stop what listens there"
    )
    unknown = run_script("serve", "--host", "no-such-host.invalid", "--port", "0")
    assert unknown.code == 2
    assert unknown.err.strip().endswith("give --host an address of this machine (127.0.0.1, 0.0.0.0, ::1)")
    assert len(unknown.err.strip().splitlines()) == 1

"""A new user pointing Holdfast at a Redis Cluster gets it right or is told, in one line, how.

Found by trying issue 19 from the README: a plain ``redis://`` URL at a cluster node failed with
"Redis rejected a command during conversation create: 12628 127.0.0.1:7193" (a bare MOVED); a
``redis+cluster://`` URL naming a database or an unknown query parameter printed a traceback;
an unreachable cluster failed the turn (exit 1) where an unreachable single server journals it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from runtime.core.errors import ConfigError
from runtime.state.client import make_redis_client
from tests.support.cli import run_script
from tests.support.cluster import RedisClusterFixture
from tests.support.serve import ServerThread, serve_config

#: The exit code for invalid configuration (README, "Exit codes").
EXIT_USAGE = 2


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://127.0.0.1:7000/3", "a Redis Cluster has only database 0: drop the '/N'"),
        ("rediss+cluster://127.0.0.1:7000/1", "a Redis Cluster has only database 0: drop the '/N'"),
        ("redis+cluster://127.0.0.1:7000?foo=bar", "the query parameter 'foo', which redis-py does not know"),
        ("redis://127.0.0.1:7000/0?colour=red", "the query parameter 'colour', which redis-py does not know"),
    ],
)
def test_a_url_redis_py_refuses_is_one_config_line_without_the_password(url: str, says: str) -> None:
    with_password = url.replace("://", "://user:hunter2@")
    with pytest.raises(ConfigError) as caught:
        make_redis_client(with_password)
    message = caught.value.user_message()
    assert says in message
    assert "hunter2" not in message and "\n" not in message


def test_database_zero_on_a_cluster_url_is_accepted() -> None:
    make_redis_client("redis+cluster://127.0.0.1:7000/0")
    make_redis_client("redis+cluster://127.0.0.1:7000")


def test_cluster_url_errors_from_the_console_script_exit_2_without_traceback() -> None:
    for url in ("redis+cluster://127.0.0.1:7000/3", "redis+cluster://127.0.0.1:7000?foo=bar"):
        run = run_script("--redis-url", url, "chat", "hello", "--new")
        assert run.code == EXIT_USAGE, run.err
        assert "Traceback" not in run.err
        lines = [line for line in run.err.splitlines() if line.startswith("holdfast:")]
        assert len(lines) == 1 and "Redis URL" in lines[0], run.err


def test_a_plain_url_at_a_cluster_node_says_to_use_the_cluster_url(redis_cluster: RedisClusterFixture) -> None:
    # The user's conversation index lives on one primary: that one answers, the other two
    # answer MOVED. Every primary must either work or say what to change (never "rejected").
    primaries = [int(url.rsplit(":", 1)[1]) for url in _primary_urls(redis_cluster)]
    codes = []
    for port in primaries:
        run = run_script("--redis-url", f"redis://127.0.0.1:{port}", "--user", "u19", "conversations", "list")
        codes.append(run.code)
        if run.code != 0:
            assert run.code == EXIT_USAGE, run.err
            assert "is a Redis Cluster node" in run.err and "redis+cluster://HOST:PORT" in run.err, run.err
            assert "Traceback" not in run.err
    assert sorted(codes) == [0, EXIT_USAGE, EXIT_USAGE]
    # A database in a plain URL: the node refuses SELECT on every primary; same advice.
    run = run_script("--redis-url", f"redis://127.0.0.1:{primaries[0]}/2", "chat", "hello", "--new")
    assert run.code == EXIT_USAGE, run.err
    assert "is a Redis Cluster node" in run.err and "Traceback" not in run.err


def test_an_unreachable_cluster_journals_the_turn_like_a_single_server() -> None:
    run = run_script("--redis-url", f"redis+cluster://127.0.0.1:{_dead_port()}", "chat", "hello there", "--new")
    assert run.code == 0, run.err
    assert 'You said: "hello there"' in run.out
    assert "kept in the local journal" in run.err
    assert "Traceback" not in run.err and "RedisClusterException" not in run.err


def _primary_urls(cluster: RedisClusterFixture) -> list[str]:
    from redis import Redis

    node = cluster.nodes[0]
    client = Redis(host="127.0.0.1", port=node.port)
    try:
        slots = client.execute_command("CLUSTER", "SLOTS")
    finally:
        client.close()
    return sorted({f"redis://127.0.0.1:{int(entry[2][1])}" for entry in slots})


def test_doctor_checks_a_cluster_and_names_a_plain_url_at_a_cluster_node(redis_cluster: RedisClusterFixture) -> None:
    # `holdfast doctor` with a redis+cluster:// URL failed with "ValueError: Redis URL must
    # specify one of the following schemes", and passed a plain redis:// URL at a cluster node.
    run = run_script("--redis-url", redis_cluster.url, "doctor")
    [row] = [line for line in run.out.splitlines() if line.split()[1:2] == ["redis"]]
    assert row.split()[0] == "ok", run.out
    assert "Redis Cluster, 3 primaries (6 nodes)" in row
    port = redis_cluster.url.rsplit(":", 1)[1]
    run = run_script("--redis-url", f"redis://127.0.0.1:{port}", "doctor")
    assert run.code == 1
    [row] = [line for line in run.out.splitlines() if line.split()[1:2] == ["redis"]]
    assert row.split()[0] == "FAIL" and "is a Redis Cluster node: use redis+cluster://HOST:PORT" in row, run.out


def test_serve_at_a_cluster_node_with_a_plain_url_answers_500_naming_the_fix(
    redis_cluster: RedisClusterFixture, tmp_path: Path, demo_url: str
) -> None:
    # The request is fine; the server's configuration is not: 500, never a 4xx blaming the client.
    port = redis_cluster.url.rsplit(":", 1)[1]
    config = serve_config(tmp_path / "serve", f"redis://127.0.0.1:{port}", demo_url)
    with ServerThread(config) as server, httpx.Client(base_url=server.base_url, timeout=30) as http:
        statuses = []
        for n in range(6):  # random conversation ids: most land on another primary's slots
            answer = http.post("/v1/conversations", json={"title": f"t{n}"})
            statuses.append(answer.status_code)
            if answer.status_code != 201:
                assert answer.status_code == 500, answer.text
                assert "is a Redis Cluster node" in answer.json()["error"]["message"]
        assert 500 in statuses

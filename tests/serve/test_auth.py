"""API keys and tenancy over real HTTP: each key is one user; another user's ids are 404s."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support.serve import ServerThread, make_key

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


async def test_loopback_without_keys_is_the_single_local_user(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/conversations", json={"title": "mine"})
    assert created.status_code == 201
    listed = (await client.get("/v1/conversations")).json()["conversations"]
    assert [c["title"] for c in listed] == ["mine"]


async def test_keys_scope_every_query_and_other_users_ids_are_404(
    serve: Callable[..., ServerThread], redis_url: str
) -> None:
    server = serve()
    alice, bob = await make_key(redis_url, "alice"), await make_key(redis_url, "bob")
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {alice}"}, timeout=30) as a,
        httpx.AsyncClient(base_url=server.base_url, headers={"X-API-Key": bob}, timeout=30) as b,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as anonymous,
    ):
        conv = (await a.post("/v1/conversations", json={"title": "alice's"})).json()["id"]
        said = await a.post(f"/v1/conversations/{conv}/messages", json={"content": "my secret plan", "stream": False})
        assert said.json()["failed"] is False
        # Once a key exists, a request without one is refused, even on loopback.
        refused = await anonymous.get("/v1/conversations")
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
        assert refused.headers["www-authenticate"] == "Bearer"
        assert (
            await anonymous.get("/v1/conversations", headers={"Authorization": "Bearer hf_forged"})
        ).status_code == 401
        # Bob sees nothing of Alice's, and her id answers exactly like a missing one.
        assert (await b.get("/v1/conversations")).json()["conversations"] == []
        missing = await b.get("/v1/conversations/conv_000000000000000000000000")
        for method, path, body in [
            ("GET", f"/v1/conversations/{conv}", None),
            ("GET", f"/v1/conversations/{conv}/messages", None),
            ("GET", f"/v1/conversations/{conv}/export", None),
            ("PATCH", f"/v1/conversations/{conv}", {"title": "pwned"}),
            ("POST", f"/v1/conversations/{conv}/messages", {"content": "hi", "stream": False}),
            ("POST", f"/v1/conversations/{conv}/branch", {}),
            ("DELETE", f"/v1/conversations/{conv}", None),
        ]:
            response = await b.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["message"].replace(conv, "ID") == missing.json()["error"][
                "message"
            ].replace("conv_000000000000000000000000", "ID")
        # Alice's conversation is untouched.
        mine = (await a.get(f"/v1/conversations/{conv}")).json()
        assert mine["title"] == "alice's"
        assert mine["message_count"] == 2


async def test_bound_beyond_loopback_every_request_needs_a_key(serve: Callable[..., ServerThread]) -> None:
    server = serve(bound_as="0.0.0.0")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.get("/v1/conversations")
        assert response.status_code == 401
        # Probes stay open for orchestrators.
        assert (await http.get("/livez")).status_code == 200


@pytest.mark.slow  # the real console script, several commands
def test_keys_commands_through_the_real_console_script(
    script_env: dict[str, str], redis_url: str, serve: Callable[..., ServerThread]
) -> None:
    from tests.support.cli import run_script

    created = run_script("keys", "create", "--user", "carol", env=script_env)
    assert created.code == 0, created.err
    key = created.out.strip()
    assert key.startswith("hf_")
    listed = run_script("keys", "list", "--user", "carol", "--json", env=script_env)
    key_id = listed.out.splitlines()[0].split('"id": "')[1].split('"')[0]
    assert key not in listed.out  # only a hint is ever shown again
    server = serve()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        assert http.get("/v1/conversations").status_code == 200
        assert run_script("keys", "revoke", key_id, "--user", "mallory", env=script_env).code == 1
        assert run_script("keys", "revoke", key_id, "--user", "carol", env=script_env).code == 0
        assert http.get("/v1/conversations").status_code == 401


@pytest.mark.slow  # the real console script, several commands
def test_keys_revoke_takes_the_key_itself_and_never_echoes_it(
    script_env: dict[str, str], serve: Callable[..., ServerThread]
) -> None:
    # Issue 18 break test: a user holding only the secret pasted it to `keys revoke`, which
    # answered "no API key 'hf_<the whole secret>' for user ..." on the screen and revoked nothing.
    from tests.support.cli import run_script

    key = run_script("keys", "create", "--user", "dave", env=script_env).out.strip()
    other = run_script("keys", "create", "--user", "erin", env=script_env).out.strip()
    server = serve()
    with httpx.Client(base_url=server.base_url) as http:
        # Another user's secret is not found for this user, and is not echoed.
        wrong = run_script("keys", "revoke", other, "--user", "dave", env=script_env)
        assert wrong.code == 1
        assert other not in wrong.err + wrong.out
        assert wrong.err.strip() == (
            "holdfast: no API key (the key given) for user 'dave'; `holdfast keys list` shows the ids"
        )
        assert http.get("/v1/conversations", headers={"Authorization": f"Bearer {other}"}).status_code == 200
        # A mistyped secret: the same one line, nothing echoed.
        typo = run_script("keys", "revoke", key[:-1] + "Z", "--user", "dave", env=script_env)
        assert typo.code == 1 and key[5:] not in typo.err
        revoked = run_script("keys", "revoke", key, "--user", "dave", env=script_env)
        assert revoked.code == 0, revoked.err
        assert revoked.out.strip() == "revoked the key given"
        assert key not in revoked.out + revoked.err
        assert http.get("/v1/conversations", headers={"Authorization": f"Bearer {key}"}).status_code == 401
        assert "dave" not in run_script("keys", "list", "--user", "dave", "--json", env=script_env).out


@pytest.mark.slow  # the real console script, several commands
def test_keys_list_all_shows_every_users_keys(script_env: dict[str, str]) -> None:
    # Issue 18 break test: after `keys create --user alice`, a plain `keys list` (the OS user)
    # said "no API keys for user <me>" while alice's key existed; --all lists every user's.
    from tests.support.cli import run_script

    empty = run_script("keys", "list", "--user", "nobody", env=script_env)
    assert empty.code == 0
    assert empty.out == "no API keys for user nobody (--all lists every user's)\n"
    assert run_script("keys", "list", "--all", env=script_env).out == "no API keys\n"
    alice = run_script("keys", "create", "--user", "alice", env=script_env).out.strip()
    run_script("keys", "create", "--user", "bob", env=script_env)
    listed = run_script("keys", "list", "--all", "--json", env=script_env)
    assert listed.code == 0, listed.err
    assert [row["user"] for row in listed.json_lines()] == ["alice", "bob"]
    assert alice not in listed.out
    table = run_script("keys", "list", "--all", env=script_env).out.splitlines()
    assert [line.split()[1] for line in table] == ["alice", "bob"]
    assert [
        row["user"] for row in run_script("keys", "list", "--user", "bob", "--json", env=script_env).json_lines()
    ] == ["bob"]

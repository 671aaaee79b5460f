"""Branches (issue 17): a new conversation sharing its parent's history up to a fork seq, stored as
a parent pointer. Every test runs on one redis-server and on a Redis Cluster (see conftest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.config import RedisConfig
from runtime.core.errors import NotFoundError, ValidationError
from runtime.core.messages import ChatMessage
from runtime.state.client import RedisRunner
from runtime.state.conversations import ConversationStore
from runtime.state.keys import Keys
from tests.support.clock import FakeClock
from tests.support.state import CountingConnection, RunnerFactory


async def _fill(store: ConversationStore, conv: str, n: int, tag: str = "m") -> list[ChatMessage]:
    return [await store.add_message(conv, "user" if i % 2 == 0 else "assistant", f"{tag}{i}") for i in range(n)]


async def test_branch_shares_the_prefix_and_continues_the_seqs(conversations: ConversationStore) -> None:
    parent = await conversations.create("alice", "Trip", "Be brief.", {"source": "t"})
    await _fill(conversations, parent, 6)
    branch = await conversations.branch(parent, 3, user_id="alice")
    assert branch.startswith(parent + "~")
    info = await conversations.get(branch)
    assert (info.parent_id, info.fork_seq, info.title, info.system_prompt, info.metadata) == (
        parent,
        3,
        "Trip",
        "Be brief.",
        {"source": "t"},
    )
    assert info.message_count == 4  # seqs 0-3 are shared
    edited = await conversations.add_message(branch, "user", "edited")
    assert edited.seq == 4
    await conversations.add_message(branch, "assistant", "new reply")
    tail = await conversations.read_tail(branch, 10)
    assert [(m.seq, m.content) for m in tail] == [
        (0, "m0"),
        (1, "m1"),
        (2, "m2"),
        (3, "m3"),
        (4, "edited"),
        (5, "new reply"),
    ]
    # The parent is unchanged and keeps growing on its own.
    await conversations.add_message(parent, "user", "m6")
    assert [m.content for m in await conversations.read_tail(parent, 3)] == ["m4", "m5", "m6"]
    assert [m.content for m in await conversations.read_tail(branch, 2)] == ["edited", "new reply"]


async def test_pages_of_a_branch_cross_the_fork_point(conversations: ConversationStore) -> None:
    parent = await conversations.create("alice")
    await _fill(conversations, parent, 10)
    branch = await conversations.branch(parent, 6, user_id="alice")
    await _fill(conversations, branch, 3, tag="b")
    page = await conversations.read_tail(branch, 4, before_seq=9)  # seqs 5..8: 5,6 shared, 7,8 own
    assert [(m.seq, m.content) for m in page] == [(5, "m5"), (6, "m6"), (7, "b0"), (8, "b1")]
    page = await conversations.read_tail(branch, 4, before_seq=5)
    assert [m.content for m in page] == ["m1", "m2", "m3", "m4"]
    assert [m.content for m in await conversations.read_tail(branch, 4, before_seq=1)] == ["m0"]


async def test_a_branch_of_a_branch_reads_both_prefixes(conversations: ConversationStore) -> None:
    root = await conversations.create("alice")
    await _fill(conversations, root, 4, tag="r")
    first = await conversations.branch(root, 1, user_id="alice")
    await _fill(conversations, first, 3, tag="a")  # seqs 2,3,4
    second = await conversations.branch(first, 3, user_id="alice")
    await conversations.add_message(second, "user", "deep")
    assert (await conversations.get(second)).parent_id == first
    tail = await conversations.read_tail(second, 20)
    assert [(m.seq, m.content) for m in tail] == [(0, "r0"), (1, "r1"), (2, "a0"), (3, "a1"), (4, "deep")]
    _, recent = await conversations.read_recent(second, 3)
    assert [m.content for m in recent] == ["a0", "a1", "deep"]


async def test_export_and_prompt_of_a_branch_hold_the_prefix(
    runner: RedisRunner, journal_dir: Path, wall: FakeClock
) -> None:
    conversations = ConversationStore(
        runner, RedisConfig(key_prefix="t"), journal_dir=journal_dir, clock=wall, count_tokens=lambda m: 1
    )
    parent = await conversations.create("alice", "Plans", "Be brief.")
    await _fill(conversations, parent, 4)
    branch = await conversations.branch(parent, 1, user_id="alice", title="Plans, take two")
    await conversations.add_message(branch, "user", "edited question", metadata={})
    data = json.loads(await conversations.export_json(branch))
    assert [m["content"] for m in data["messages"]] == ["m0", "m1", "edited question"]
    assert data["conversation"]["parent_id"] == parent and data["conversation"]["fork_seq"] == 1
    assert "edited question" in await conversations.export_markdown(branch)
    prompt = await conversations.get_messages_for_prompt(branch, max_tokens=10_000)
    assert [(m["role"], m["content"]) for m in prompt] == [
        ("system", "Be brief."),
        ("user", "m0"),
        ("assistant", "m1"),
        ("user", "edited question"),
    ]


async def test_branch_errors_say_what_to_do(conversations: ConversationStore) -> None:
    parent = await conversations.create("alice")
    await _fill(conversations, parent, 3)
    with pytest.raises(ValidationError, match=r"seq 3 is out of range: .* messages 0 to 2"):
        await conversations.branch(parent, 3, user_id="alice", title="x")
    with pytest.raises(ValidationError, match="out of range"):
        await conversations.branch(parent, -2, user_id="alice", title="x")
    with pytest.raises(NotFoundError, match="does not exist"):
        await conversations.branch("conv_missing", 0, user_id="alice")
    with pytest.raises(ValidationError, match="must not contain '~'"):
        await conversations.create("alice", conversation_id="mine~1")
    empty = await conversations.branch(parent, -1, user_id="alice", title="fresh")
    assert await conversations.read_tail(empty, 10) == []
    assert (await conversations.add_message(empty, "user", "first")).seq == 0


async def test_another_user_can_neither_branch_nor_see_a_branch(conversations: ConversationStore) -> None:
    parent = await conversations.create("alice")
    await _fill(conversations, parent, 2)
    with pytest.raises(NotFoundError):
        await conversations.branch(parent, 0, user_id="mallory")
    with pytest.raises(NotFoundError):  # with a title given, the script itself checks the owner
        await conversations.branch(parent, 0, user_id="mallory", title="mine now")
    branch = await conversations.branch(parent, 0, user_id="alice")
    assert (await conversations.get(branch)).user_id == "alice"
    assert [c.id for c in await conversations.list_conversations("mallory")] == []
    listed = {c.id: c for c in await conversations.list_conversations("alice")}
    assert listed[branch].parent_id == parent and listed[parent].parent_id == ""


async def test_deleting_a_parent_keeps_the_prefix_of_its_branches(
    conversations: ConversationStore, redis_client: object
) -> None:
    parent = await conversations.create("alice")
    await _fill(conversations, parent, 5)
    branch = await conversations.branch(parent, 2, user_id="alice")
    await conversations.add_message(branch, "user", "own")
    await conversations.delete(parent)
    with pytest.raises(NotFoundError):
        await conversations.get(parent)
    with pytest.raises(NotFoundError):
        await conversations.add_message(parent, "user", "late")
    assert [c.id for c in await conversations.list_conversations("alice")] == [branch]
    assert [m.content for m in await conversations.read_tail(branch, 10)] == ["m0", "m1", "m2", "own"]
    data = json.loads(await conversations.export_json(branch))
    assert [m["content"] for m in data["messages"]] == ["m0", "m1", "m2", "own"]
    # Deleting the last branch removes the kept parent too: nothing of either is left.
    await conversations.delete(branch)
    keys = Keys("t")
    left = [k for k in [*keys.conv_all(parent), *keys.conv_all(branch)] if await redis_client.exists(k)]  # type: ignore[attr-defined]
    assert left == []


async def test_summarising_parent_or_branch_keeps_the_branch_whole(conversations: ConversationStore) -> None:
    parent = await conversations.create("alice")
    sent = await _fill(conversations, parent, 8)
    branch = await conversations.branch(parent, 5, user_id="alice")
    await conversations.add_message(branch, "user", "own")
    # The parent archives seqs 0..6 (past the fork): the branch still reads them from the archive.
    await conversations.summarize(parent, "parent summary", sent[6].id)
    assert [m.content for m in await conversations.read_tail(parent, 10)] == ["m7"]
    assert [m.content for m in await conversations.read_tail(branch, 10)] == ["m0", "m1", "m2", "m3", "m4", "m5", "own"]
    # The branch summarises up to a shared message: only its floor moves, with its own summary.
    await conversations.summarize(branch, "branch summary", sent[2].id)
    summary, recent = await conversations.read_recent(branch, 10)
    assert summary is not None and summary.text == "branch summary" and summary.covered_count == 3
    assert [m.content for m in recent] == ["m3", "m4", "m5", "own"]
    assert (await conversations.get_summary(parent)).text == "parent summary"  # type: ignore[union-attr]
    data = json.loads(await conversations.export_json(branch))
    assert [m["content"] for m in data["archived"]] == ["m0", "m1", "m2"]
    assert [m["content"] for m in data["messages"]] == ["m3", "m4", "m5", "own"]


async def test_a_branch_after_a_summary_inherits_it(conversations: ConversationStore) -> None:
    parent = await conversations.create("alice")
    sent = await _fill(conversations, parent, 6)
    await conversations.summarize(parent, "the start", sent[1].id)
    branch = await conversations.branch(parent, 3, user_id="alice")
    summary, recent = await conversations.read_recent(branch, 10)
    assert summary is not None and summary.text == "the start"
    assert [m.content for m in recent] == ["m2", "m3"]


# Counts packets on one server's connections (the cluster client builds its own per node); the
# same script runs on the cluster in every other test here, the branch's keys in its root's slot.
@pytest.mark.single_redis
async def test_opening_a_branch_reads_prefix_and_own_messages_in_one_round_trip(
    redis_url: str, make_runner: RunnerFactory, journal_dir: Path, wall: FakeClock
) -> None:
    store = ConversationStore(
        make_runner(redis_url, connection_class=CountingConnection),
        RedisConfig(key_prefix="t"),
        journal_dir=journal_dir,
        clock=wall,
    )
    parent = await store.create("alice")
    await _fill(store, parent, 30)
    branch = await store.branch(parent, 19, user_id="alice")
    await _fill(store, branch, 5, tag="b")
    reader = ConversationStore(
        make_runner(redis_url, connection_class=CountingConnection),
        RedisConfig(key_prefix="t"),
        journal_dir=journal_dir,
        clock=wall,
    )
    await reader.get_summary(branch)  # the connection is open and the script cache warm
    await reader.read_tail(parent, 1)
    before = CountingConnection.sent
    _, page = await reader.read_recent(branch, 10)
    assert CountingConnection.sent - before == 1
    assert [m.content for m in page] == ["m15", "m16", "m17", "m18", "m19", "b0", "b1", "b2", "b3", "b4"]
    before = CountingConnection.sent
    older = await reader.read_tail(branch, 10, before_seq=page[0].seq)
    assert CountingConnection.sent - before == 1
    assert [m.content for m in older] == [f"m{i}" for i in range(5, 15)]


async def test_the_shared_prefix_outlives_its_expiries(
    runner: RedisRunner, journal_dir: Path, wall: FakeClock, redis_client: object
) -> None:
    store = ConversationStore(
        runner,
        RedisConfig(key_prefix="t", conversation_retention=100_000, archive_ttl=600),
        journal_dir=journal_dir,
        clock=wall,
    )
    keys, r = Keys("t"), redis_client
    parent = await store.create("alice")
    sent = await _fill(store, parent, 6)
    await store.summarize(parent, "early", sent[1].id)
    assert 0 < await r.ttl(keys.conv_archive(parent)) <= 600  # type: ignore[attr-defined]
    branch = await store.branch(parent, 0, user_id="alice")  # its prefix lives in the archive
    # Branched: the parent's archive lives as long as the conversation, not the short archive TTL.
    assert await r.ttl(keys.conv_archive(parent)) > 600  # type: ignore[attr-defined]
    await r.expire(keys.conv_messages(parent), 5)  # type: ignore[attr-defined]
    await store.add_message(branch, "user", "own")
    # An append to the branch keeps its ancestors alive as long as itself.
    assert await r.ttl(keys.conv_messages(parent)) > 600  # type: ignore[attr-defined]
    assert [m.content for m in await store.read_tail(branch, 10)] == ["m0", "own"]


async def test_deleting_the_last_leaf_removes_every_kept_ancestor(
    conversations: ConversationStore, redis_client: object
) -> None:
    root = await conversations.create("alice")
    await _fill(conversations, root, 3, tag="r")
    middle = await conversations.branch(root, 1, user_id="alice")
    await conversations.add_message(middle, "user", "mid")
    leaf = await conversations.branch(middle, 2, user_id="alice")
    sibling = await conversations.branch(root, 0, user_id="alice")
    await conversations.delete(root)
    await conversations.delete(middle)
    assert [m.content for m in await conversations.read_tail(leaf, 10)] == ["r0", "r1", "mid"]
    await conversations.delete(leaf)  # middle goes too; root stays for its other branch
    keys = Keys("t")
    exists = redis_client.exists  # type: ignore[attr-defined]
    assert not await exists(keys.conv_meta(middle)) and await exists(keys.conv_meta(root))
    assert [m.content for m in await conversations.read_tail(sibling, 10)] == ["r0"]
    await conversations.delete(sibling)
    left = [k for c in (root, middle, leaf, sibling) for k in keys.conv_all(c) if await exists(k)]
    assert left == []

"""ConversationStore on the real redis-server: appends, tail paging, summaries, listing, export."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from runtime.config import RedisConfig
from runtime.core.errors import NotFoundError, ValidationError
from runtime.core.messages import ChatMessage, ToolCall
from runtime.state.client import RedisRunner
from runtime.state.conversations import ConversationStore
from runtime.state.keys import Keys
from tests.support.clock import FakeClock
from tests.support.state import CountingConnection, RunnerFactory


async def _fill(store: ConversationStore, conv: str, n: int) -> list[ChatMessage]:
    return [await store.add_message(conv, "user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(n)]


async def test_create_get_and_append_assigns_positions(conversations: ConversationStore) -> None:
    conv = await conversations.create("alice", "Trip plans", "Be brief.", {"source": "test"})
    info = await conversations.get(conv)
    assert (info.user_id, info.title, info.system_prompt, info.metadata) == (
        "alice",
        "Trip plans",
        "Be brief.",
        {"source": "test"},
    )
    sent = await _fill(conversations, conv, 5)
    assert [m.seq for m in sent] == [0, 1, 2, 3, 4]
    tail = await conversations.read_tail(conv, 10)
    assert [m.content for m in tail] == ["m0", "m1", "m2", "m3", "m4"]
    assert [m.id for m in tail] == [m.id for m in sent]
    assert (await conversations.get(conv)).message_count == 5


async def test_append_to_unknown_conversation_is_not_found(conversations: ConversationStore) -> None:
    with pytest.raises(NotFoundError):
        await conversations.add_message("conv_missing", "user", "hello")
    with pytest.raises(NotFoundError):
        await conversations.get("conv_missing")


async def test_retried_append_with_same_id_never_duplicates(conversations: ConversationStore) -> None:
    conv = await conversations.create("alice")
    first = await conversations.add_message(conv, "user", "once", message_id="msg_fixed")
    again = await conversations.add_message(conv, "user", "once", message_id="msg_fixed")
    await conversations.add_message(conv, "assistant", "reply")
    assert first.seq == again.seq == 0
    assert [m.content for m in await conversations.read_tail(conv, 10)] == ["once", "reply"]


async def test_tool_calls_metadata_and_token_counts_are_stored(runner: RedisRunner, journal_dir: Path) -> None:
    store = ConversationStore(
        runner, RedisConfig(key_prefix="t"), journal_dir=journal_dir, count_tokens=lambda m: len(m.content) + 100
    )
    conv = await store.create("alice")
    call = ToolCall(id="call_1", name="clock", arguments='{"tz": "UTC"}')
    await store.add_message(conv, "assistant", "", tool_calls=[call], metadata={"step": 1})
    await store.add_message(conv, "tool", "12:00", tool_call_id="call_1", name="clock")
    first, second = await store.read_tail(conv, 10)
    assert first.tool_calls == (call,) and first.metadata == {"step": 1} and first.token_count == 100
    assert (second.tool_call_id, second.name, second.token_count) == ("call_1", "clock", 105)


async def test_tail_pages_backwards_with_before_seq(conversations: ConversationStore) -> None:
    conv = await conversations.create("alice")
    await _fill(conversations, conv, 25)
    page = await conversations.read_tail(conv, 10)
    assert [m.seq for m in page] == list(range(15, 25))
    page = await conversations.read_tail(conv, 10, before_seq=page[0].seq)
    assert [m.seq for m in page] == list(range(5, 15))
    page = await conversations.read_tail(conv, 10, before_seq=page[0].seq)
    assert [m.seq for m in page] == list(range(5))
    assert await conversations.read_tail(conv, 10, before_seq=0) == []


# Counts packets on one server's connections (the cluster client builds its own per node).
@pytest.mark.single_redis
async def test_append_and_tail_read_are_one_round_trip(
    redis_url: str, make_runner: RunnerFactory, journal_dir: Path
) -> None:
    runner = make_runner(redis_url, connection_class=CountingConnection)
    store = ConversationStore(runner, RedisConfig(key_prefix="t"), journal_dir=journal_dir)
    conv = await store.create("alice")
    await _fill(store, conv, 3)
    await store.read_tail(conv, 2, before_seq=2)  # the first use of a script loads it
    costs = []
    for op in (
        lambda: store.add_message(conv, "user", "x"),
        lambda: store.read_tail(conv, 20),
        lambda: store.read_tail(conv, 20, before_seq=3),
    ):
        before = CountingConnection.sent
        await op()
        costs.append(CountingConnection.sent - before)
    # The older page lies inside the tail the previous read just synced: served with no I/O.
    assert costs == [1, 1, 0]


async def test_50_writers_x_100_appends_keep_every_message_in_writer_order(
    redis_url: str, make_runner: RunnerFactory, journal_dir: Path
) -> None:
    # Five clients (as if five processes), ten writers each.
    stores = [
        ConversationStore(make_runner(redis_url), RedisConfig(key_prefix="t"), journal_dir=journal_dir)
        for _ in range(5)
    ]
    conv = await stores[0].create("alice")

    async def writer(w: int) -> None:
        store = stores[w % 5]
        for i in range(100):
            await store.add_message(conv, "user", f"w{w}:{i}")

    await asyncio.gather(*(writer(w) for w in range(50)))
    messages = await stores[0].read_tail(conv, 10_000)
    assert len(messages) == 5000
    assert len({m.id for m in messages}) == 5000
    assert [m.seq for m in messages] == list(range(5000))
    by_writer: dict[str, list[int]] = {}
    for m in messages:
        w, i = m.content.split(":")
        by_writer.setdefault(w, []).append(int(i))
    assert len(by_writer) == 50
    assert all(seq == list(range(100)) for seq in by_writer.values())


async def test_summarize_archives_covered_messages_atomically(
    conversations: ConversationStore, redis_client: object
) -> None:
    conv = await conversations.create("alice")
    sent = await _fill(conversations, conv, 10)
    await conversations.summarize(conv, "They talked about m0..m5.", sent[5].id, method="extractive")
    summary = await conversations.get_summary(conv)
    assert summary is not None
    assert (summary.text, summary.covers_up_to, summary.covered_count, summary.method) == (
        "They talked about m0..m5.",
        sent[5].id,
        6,
        "extractive",
    )
    tail = await conversations.read_tail(conv, 100)
    assert [m.seq for m in tail] == [6, 7, 8, 9]
    # Paging below the summarised part finds nothing live; seqs stay stable after archiving.
    assert await conversations.read_tail(conv, 100, before_seq=6) == []
    assert [m.seq for m in await conversations.read_tail(conv, 2, before_seq=9)] == [7, 8]
    keys = Keys("t")
    archived = await redis_client.lrange(keys.conv_archive(conv), 0, -1)  # type: ignore[attr-defined]
    assert [json.loads(a)["content"] for a in archived] == [f"m{i}" for i in range(6)]
    ttl = await redis_client.ttl(keys.conv_archive(conv))  # type: ignore[attr-defined]
    assert 7 * 86400 - 10 <= ttl <= 7 * 86400
    # Summarising again up to an earlier message changes nothing; later appends keep counting.
    await conversations.summarize(conv, "older", sent[2].id)
    assert (await conversations.get_summary(conv)).text == "They talked about m0..m5."  # type: ignore[union-attr]
    assert (await conversations.add_message(conv, "user", "after")).seq == 10
    # An id that was never appended here cannot be summarised.
    with pytest.raises(NotFoundError):
        await conversations.summarize(conv, "x", "msg_not_here")


async def test_retention_puts_one_ttl_on_every_key_and_refreshes_it(
    runner: RedisRunner, journal_dir: Path, redis_client: object
) -> None:
    store = ConversationStore(
        runner, RedisConfig(key_prefix="t", conversation_retention=86400), journal_dir=journal_dir
    )
    conv = await store.create("alice")
    sent = await _fill(store, conv, 4)
    await store.summarize(conv, "s", sent[0].id)
    keys = Keys("t")
    live = [keys.conv_meta(conv), keys.conv_messages(conv), keys.conv_ids(conv), keys.conv_summary(conv)]
    for key in live:
        await redis_client.expire(key, 100)  # type: ignore[attr-defined]  # as if time passed
    await store.add_message(conv, "user", "fresh write")
    ttls = [await redis_client.ttl(k) for k in [*live, keys.conv_archive(conv)]]  # type: ignore[attr-defined]
    assert all(86390 <= t <= 86400 for t in ttls), ttls


async def test_default_retention_keeps_forever(conversations: ConversationStore, redis_client: object) -> None:
    conv = await conversations.create("alice")
    await _fill(conversations, conv, 2)
    keys = Keys("t")
    for key in (keys.conv_meta(conv), keys.conv_messages(conv), keys.conv_ids(conv)):
        assert await redis_client.ttl(key) == -1  # type: ignore[attr-defined]


async def test_list_rename_delete(conversations: ConversationStore, wall: FakeClock, redis_client: object) -> None:
    a = await conversations.create("alice", "First")
    wall.advance(10)
    b = await conversations.create("alice", "Second")
    await conversations.create("bob", "Not Alice's")
    wall.advance(10)
    await conversations.add_message(a, "user", "bump")  # a becomes the most recent
    listed = await conversations.list_conversations("alice")
    assert [(c.id, c.title, c.message_count) for c in listed] == [(a, "First", 1), (b, "Second", 0)]
    assert listed[0].last_activity == wall()
    wall.advance(5)
    await conversations.rename(b, "  Renamed\nwith newline  ")
    assert (await conversations.get(b)).title == "Renamed with newline"
    assert [c.id for c in await conversations.list_conversations("alice")] == [b, a]
    await conversations.delete(a)
    await conversations.delete(a)  # idempotent
    assert [c.id for c in await conversations.list_conversations("alice")] == [b]
    assert await redis_client.keys(f"t:{{conv:{a}}}*") == []  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError):
        await conversations.rename(a, "gone")


async def test_list_prunes_conversations_that_expired(conversations: ConversationStore, redis_client: object) -> None:
    a = await conversations.create("alice", "expired")
    b = await conversations.create("alice", "live")
    await redis_client.delete(Keys("t").conv_meta(a))  # type: ignore[attr-defined]  # retention ran out
    assert [c.id for c in await conversations.list_conversations("alice")] == [b]
    assert await redis_client.zcard(Keys("t").user_conversations("alice")) == 1  # type: ignore[attr-defined]


async def test_export_json_and_markdown(conversations: ConversationStore) -> None:
    conv = await conversations.create("alice", "Export me", "System says hi")
    sent = await _fill(conversations, conv, 4)
    await conversations.add_message(conv, "assistant", "", tool_calls=[ToolCall("c1", "calc", '{"x": "```"}')])
    await conversations.summarize(conv, "Summary text", sent[1].id)
    data = json.loads(await conversations.export_json(conv))
    assert data["format"] == "holdfast.conversation/1"
    assert data["conversation"]["title"] == "Export me"
    assert [m["content"] for m in data["archived"]] == ["m0", "m1"]
    assert [m["content"] for m in data["messages"]] == ["m2", "m3", ""]
    assert data["summary"]["covered_count"] == 2
    md = await conversations.export_markdown(conv)
    assert md.startswith("# Export me\n")
    assert "> System says hi" in md and "> Summary text" in md
    assert md.index("m0") < md.index("m1") < md.index("m2") < md.index("m3")
    assert "Tool call `calc`" in md and '````json\n{"x": "```"}\n````' in md


@pytest.mark.parametrize(
    "content",
    [
        "she said \"hi\" and 'bye'",
        "line one\nline two\r\n\ttabbed",
        "emoji 🎉 and 中文 and \u0000 nul",
        "x" * (1024 * 1024),
        '{"seq": 99, "fake": true}',
    ],
)
async def test_hostile_content_round_trips(conversations: ConversationStore, content: str) -> None:
    conv = await conversations.create("alice")
    await conversations.add_message(conv, "user", content, metadata={'k"ey': "v\nal"})
    (message,) = await conversations.read_tail(conv, 1)
    assert message.content == content and message.seq == 0 and message.metadata == {'k"ey': "v\nal"}


async def test_hostile_input_is_refused_with_a_clear_error(conversations: ConversationStore) -> None:
    conv = await conversations.create("alice")
    with pytest.raises(ValidationError, match="lone surrogate"):
        await conversations.add_message(conv, "user", "bad \udcff text")
    with pytest.raises(ValidationError, match="role"):
        await conversations.add_message(conv, "wizard", "x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="conversation_id"):
        await conversations.add_message("conv}{evil", "user", "x")
    with pytest.raises(ValidationError, match="message id"):
        await conversations.add_message(conv, "user", "x", message_id="id with spaces")
    with pytest.raises(ValidationError, match="user_id"):
        await conversations.create("alice\nroot")
    with pytest.raises(ValidationError, match="metadata"):
        await conversations.add_message(conv, "user", "x", metadata={"when": object()})
    assert await conversations.read_tail(conv, 10) == []


async def test_system_prompt_can_be_replaced_without_touching_history(conversations: ConversationStore) -> None:
    conv = await conversations.create("alice", "Chat", "Be brief.")
    await _fill(conversations, conv, 3)
    await conversations.set_system_prompt(conv, "Answer in French.")
    info = await conversations.get(conv)
    assert info.system_prompt == "Answer in French." and info.message_count == 3
    assert [m.content for m in await conversations.read_tail(conv, 10)] == ["m0", "m1", "m2"]
    with pytest.raises(NotFoundError):
        await conversations.set_system_prompt("conv_missing", "x")

"""The local cache's conversation list while Redis is out: each conversation counts the messages
this process wrote after its metadata was read (confirmed by Redis or only journaled), so the
sidebar does not fall back to the count it had when the conversation was opened."""

from __future__ import annotations

from runtime.core.messages import ChatMessage
from runtime.state.cache import RecentCache
from runtime.state.history import ConversationInfo


def _info(count: int, updated_at: float = 100.0) -> ConversationInfo:
    return ConversationInfo(
        id="conv_a", user_id="alice", title="t", created_at=1.0, updated_at=updated_at, message_count=count
    )


def _message(seq: int | None, at: float) -> ChatMessage:
    return ChatMessage(role="user", content=f"m{seq}", seq=seq, created_at=at)


def test_confirmed_and_journaled_messages_after_the_read_are_counted() -> None:
    cache = RecentCache()
    cache.put_info(_info(9))  # read when the conversation was opened: seqs 0..8
    cache.put_messages("conv_a", [_message(seq, 100.0 + seq) for seq in range(9, 19)])  # saved since
    cache.add_pending("conv_a", _message(None, 200.0))  # journaled while Redis is out
    cache.add_pending("conv_a", _message(None, 201.0))
    (listed,) = cache.infos_for_user("alice")
    assert listed.message_count == 21
    assert listed.updated_at == 201.0
    assert cache.info("conv_a") is not None and cache.info("conv_a").message_count == 9  # the read itself unchanged


def test_a_count_never_goes_below_what_was_read() -> None:
    cache = RecentCache(max_messages=5)
    cache.put_info(_info(40, updated_at=500.0))
    cache.put_messages("conv_a", [_message(seq, 10.0) for seq in range(3)])  # old ones, paged in
    (listed,) = cache.infos_for_user("alice")
    assert (listed.message_count, listed.updated_at) == (40, 500.0)


def test_a_replayed_message_is_counted_once() -> None:
    cache = RecentCache()
    cache.put_info(_info(2))
    pending = _message(None, 300.0)
    cache.add_pending("conv_a", pending)
    assert cache.infos_for_user("alice")[0].message_count == 3
    cache.confirm("conv_a", pending.id, 2)
    assert cache.infos_for_user("alice")[0].message_count == 3

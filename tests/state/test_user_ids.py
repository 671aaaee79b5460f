"""The conversation store and the session manager refuse a bad user id at their door (the one
rule, runtime.core.ids), before anything reaches a Redis key; ordinary ids work end to end."""

from __future__ import annotations

import pytest

from runtime.core.errors import ValidationError
from runtime.state.conversations import ConversationStore
from runtime.state.sessions import SessionManager

BAD = ["a\x00b", "", "x" * 129, "alice/bob", "ali\x07ce", " alice", "alice\t", "{user:alice}"]
GOOD = ["alice", "alice.smith@example.com", "user_42"]


@pytest.mark.parametrize("bad", BAD)
async def test_conversation_store_refuses_bad_user_ids(conversations: ConversationStore, bad: str) -> None:
    with pytest.raises(ValidationError, match="user_id"):
        await conversations.create(bad)
    with pytest.raises(ValidationError, match="user_id"):
        await conversations.list_conversations(bad)
    assert not conversations.degraded and conversations.pending_writes == 0  # nothing was journaled


@pytest.mark.parametrize("bad", BAD)
async def test_session_manager_refuses_bad_user_ids(sessions: SessionManager, bad: str) -> None:
    with pytest.raises(ValidationError, match="user_id"):
        await sessions.create_session(bad)
    with pytest.raises(ValidationError, match="user_id"):
        await sessions.get_user_sessions(bad)


@pytest.mark.parametrize("good", GOOD)
async def test_ordinary_user_ids_work_in_both(
    conversations: ConversationStore, sessions: SessionManager, good: str
) -> None:
    conv = await conversations.create(good, title="hello")
    assert [c.id for c in await conversations.list_conversations(good)] == [conv]
    session = await sessions.create_session(good)
    assert [s.id for s in await sessions.get_user_sessions(good)] == [session.id]

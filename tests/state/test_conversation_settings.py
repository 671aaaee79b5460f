"""Conversation settings (issue 17: the model chosen per conversation, the reply variant picked for
a user message): one meta-hash field each, read back with the conversation and in its listing."""

from __future__ import annotations

import json

import pytest

from runtime.core.errors import NotFoundError, ValidationError
from runtime.state.conversations import ConversationStore


async def test_settings_are_stored_read_back_and_listed(conversations: ConversationStore) -> None:
    conv = await conversations.create("alice", "Trip plans", metadata={"source": "test"})
    assert (await conversations.get(conv)).settings == {}
    await conversations.set_setting(conv, "model", "gpt-4o-mini")
    await conversations.set_setting(conv, "variant:msg_1", "turn_a turn_b")
    await conversations.set_setting(conv, "model", "llama3.1:8b")  # replaced, not appended
    info = await conversations.get(conv)
    assert info.settings == {"model": "llama3.1:8b", "variant:msg_1": "turn_a turn_b"}
    assert info.metadata == {"source": "test"}  # the creation metadata is untouched
    listed = await conversations.list_conversations("alice")
    assert [c.settings for c in listed] == [info.settings]
    exported = json.loads(await conversations.export_json(conv))
    assert exported["conversation"]["settings"]["model"] == "llama3.1:8b"


async def test_bad_settings_are_refused_with_what_is_wrong(conversations: ConversationStore) -> None:
    conv = await conversations.create("alice")
    with pytest.raises(ValidationError, match="setting name"):
        await conversations.set_setting(conv, "no spaces please", "x")
    with pytest.raises(ValidationError, match="longer than"):
        await conversations.set_setting(conv, "model", "m" * 1001)
    with pytest.raises(NotFoundError):
        await conversations.set_setting("conv_missing", "model", "x")


async def test_a_branch_inherits_the_parents_settings(conversations: ConversationStore) -> None:
    """The model and the variants picked in the shared prefix hold in a branch; a later pick in
    either one stays its own."""
    conv = await conversations.create("alice", "parent")
    for n in range(4):
        await conversations.add_message(conv, "user" if n % 2 == 0 else "assistant", f"m{n}")
    await conversations.set_setting(conv, "model", "m-parent")
    await conversations.set_setting(conv, "variant:msg_1", "turn_a turn_b")
    branch = await conversations.branch(conv, 1, user_id="alice")
    assert (await conversations.get(branch)).settings == {"model": "m-parent", "variant:msg_1": "turn_a turn_b"}
    await conversations.set_setting(branch, "model", "m-branch")
    assert (await conversations.get(conv)).settings["model"] == "m-parent"
    assert (await conversations.get(branch)).settings["model"] == "m-branch"

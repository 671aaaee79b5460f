"""Edit and branch (issue 17): an earlier user message back in the composer; sending it branches.

``/edit`` (the last user message) or ``/edit SEQ`` (or :meth:`app.chat_app.HoldfastApp.edit_message`
with a message id, from a highlighted message) puts the message's text in the composer. The next
message sent in that conversation does not go to the end of it: it starts a branch that shares
the history up to the message *before* the edited one (stored once: see
``ConversationStore.branch``), stores the edited text there and runs a new reply, and the branch
is opened. The original conversation is unchanged. ``/edit cancel`` (or opening another
conversation) drops the edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from app.widgets.notice import Notice
from runtime.core.errors import AppError, describe

if TYPE_CHECKING:
    from app.widgets.chat_log import ChatLog
    from app.widgets.composer import Composer
    from runtime.config import Config
    from runtime.core.messages import ChatMessage
    from runtime.host.facade import Conversation, RuntimeFacade


def branch_point_text(fork_seq: int | None, parent_title: str) -> str:
    """The line that marks a branch point in the chat log (``fork_seq`` -1: the branch shares
    nothing, as one made by editing the first message)."""
    if fork_seq is not None and fork_seq < 0:
        return f"↳ branch point: this branch shares no messages with “{parent_title}”; it starts here"
    return f"↳ branch point: the messages above (to #{fork_seq}) are shared with “{parent_title}”; this branch goes on below"


async def mark_branch_point(
    log: ChatLog, messages: list[ChatMessage], branch: Conversation, parent_title: str
) -> Notice | None:
    """Show where a branch leaves its parent: a notice after the last shared message on screen
    (the start of the log when none of the branch's own messages is shown yet: after them all).
    None when the branch point is above what the log shows (paged out) or ``branch`` is no branch."""
    if not branch.parent_id or branch.fork_seq is None:
        return None
    shared = {m.id for m in messages if m.seq is not None and m.seq <= branch.fork_seq}
    if not shared and messages and (messages[0].seq or 0) > branch.fork_seq + 1:
        return None  # paged out
    if not messages and branch.fork_seq >= 0:
        return None  # nothing of it read yet
    notice = Notice(branch_point_text(branch.fork_seq, parent_title or branch.parent_id), "info")
    last = None
    for child in log.children:
        if getattr(child, "message_id", None) in shared:
            last = child
    if last is not None:
        await log.mount(notice, after=last)
    elif log.children:
        await log.mount(notice, before=log.children[0])
    else:
        await log.mount(notice)
    return notice


class EditError(ValueError):
    """The message cannot be edited; ``str(exc)`` is the one-line hint shown to the user."""


class EditSurface(Protocol):
    """What the edit flow needs from the app (:class:`app.chat_app.HoldfastApp` has it)."""

    conversation_id: str | None

    @property
    def config(self) -> Config: ...

    @property
    def rt(self) -> RuntimeFacade | None: ...

    @property
    def chat_log(self) -> ChatLog: ...

    @property
    def composer(self) -> Composer: ...

    async def open_conversation(self, conversation_id: str) -> None: ...

    async def reload_sidebar(self) -> None: ...

    async def send(self, text: str) -> None: ...


@dataclass(frozen=True)
class EditTarget:
    """The user message being edited: its conversation, its seq and its original text."""

    conversation_id: str
    seq: int
    original: str


class EditFlow:
    """Holds the message being edited (:attr:`target`) between ``/edit`` and the next send."""

    def __init__(self, app: EditSurface) -> None:
        self.app = app
        #: The message whose edit the next send in its conversation branches from (None: none).
        self.target: EditTarget | None = None

    async def start(self, message: str | int | None = None) -> EditTarget:
        """Put a user message of the open conversation in the composer for editing.

        ``message`` is its seq (int, as ``#N`` in ``holdfast conversations show``), its message
        id (str), or None for the last user message. Raises :class:`EditError` (with the hint)
        when there is no such user message; AppError from the runtime.
        """
        app, rt, conv = self.app, self.app.rt, self.app.conversation_id
        if rt is None or conv is None:
            raise EditError("nothing to edit yet: send a message first")
        found = await self._find(rt, conv, message)
        if found.role != "user":
            raise EditError(f"message #{found.seq} is the model's: only your own messages can be edited")
        assert found.seq is not None  # _find only returns stored messages
        self.target = EditTarget(conv, found.seq, found.content)
        app.composer.put_text(found.content)
        app.composer.focus()
        await app.chat_log.notice(
            f"editing message #{found.seq}: Enter sends it as a new branch "
            + (f"from #{found.seq - 1} " if found.seq > 0 else "sharing nothing before it ")
            + "(this conversation stays as it is); /edit cancel drops the edit",
            "hint",
        )
        return self.target

    async def _find(self, rt: RuntimeFacade, conv: str, message: str | int | None) -> ChatMessage:
        if isinstance(message, int):
            page = await rt.read_messages(conv, 1, before_seq=message + 1) if message >= 0 else []
            if not page or page[-1].seq != message:
                raise EditError(
                    f"there is no message #{message} in this conversation; /edit with no number edits your last one"
                )
            return page[-1]
        recent = await rt.read_messages(conv, self.app.config.ui.max_rendered_messages)
        stored = [m for m in recent if m.seq is not None]
        if message is None:
            mine = [m for m in stored if m.role == "user"]
            if not mine:
                raise EditError("none of your messages is stored in this conversation yet: nothing to edit")
            return mine[-1]
        for m in stored:
            if m.id == message:
                return m
        raise EditError(f"message {message} is not among this conversation's recent messages; use /edit SEQ")

    def cancel(self) -> bool:
        """Drop the edit; False when there was none."""
        had, self.target = self.target is not None, None
        return had

    def claims(self) -> bool:
        """True when the next send in the open conversation is the edited message."""
        return self.target is not None and self.target.conversation_id == self.app.conversation_id

    async def send(self, text: str) -> str | None:
        """Branch before the edited message, open the branch and send ``text`` there; the
        branch's id (None, with an error notice and the text kept in the composer, on failure)."""
        target, self.target = self.target, None
        if target is None:
            await self.app.send(text)
            return None
        rt = self.app.rt
        assert rt is not None  # start() checked
        try:
            branch = await rt.branch_conversation(target.conversation_id, target.seq - 1)
        except AppError as exc:
            self.target = target
            self.app.composer.put_text(text)
            await self.app.chat_log.notice(f"/edit failed: {describe(exc)}", "error")
            return None
        await self.app.open_conversation(branch)
        await self.app.reload_sidebar()
        await self.app.send(text)
        return branch

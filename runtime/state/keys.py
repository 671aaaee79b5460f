"""Redis key names, in one place so every process agrees on them.

Everything of one conversation shares the hash tag ``{conv:ID}`` and so one cluster slot,
which lets a single Lua script touch its message list, id index, metadata and archive.
Sessions are tagged ``{sess:ID}``; per-user indexes ``{user:ID}``; pub/sub channels ``{chan}``.
No script or MULTI spans two tags (audited for issue 19: conversation scripts take only
``{conv:ID}`` keys, session scripts one ``{sess:ID}`` key, lock scripts one lock key); the user's
conversation index is updated by a separate command, and the global session expiry index
(untagged, one slot) by separate pipelined commands.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """The Redis key (or channel) name of each thing Holdfast stores, all under ``prefix``.

    Every method takes ids already checked by :func:`runtime.state.codec.check_id` (no braces,
    which would break the hash tags) and returns the full key.
    """

    prefix: str = "holdfast"

    # --- generic store
    def state(self, namespace: str, key: str) -> str:
        """``<prefix>:<namespace>:<key>``: a value of the generic :class:`RedisStateStore`."""
        return f"{self.prefix}:{namespace}:{key}"

    def lock(self, resource: str) -> str:
        """``<prefix>:lock:<resource>``: a distributed lock."""
        return f"{self.prefix}:lock:{resource}"

    def channel(self, name: str) -> str:
        """``<prefix>:{chan}:<name>``: a pub/sub channel.

        Every channel shares the tag ``{chan}``: on a Redis Cluster classic PUBLISH is relayed to
        every node anyway, but redis-py subscribes on (and publishes to) the node owning the
        channel's slot, and PUBLISH counts only that node's subscribers. One slot for all
        channels makes one subscription connection hear them all and the count exact.
        """
        return f"{self.prefix}:{{chan}}:{name}"

    # --- sessions
    def session(self, session_id: str) -> str:
        """``<prefix>:{sess:ID}``: one session's hash."""
        return f"{self.prefix}:{{sess:{session_id}}}"

    def user_sessions(self, user_id: str) -> str:
        """``<prefix>:{user:ID}:sessions``: the user's session ids scored by expiry time (seconds)."""
        return f"{self.prefix}:{{user:{user_id}}}:sessions"

    def session_expiry(self) -> str:
        """``<prefix>:sessions:expiry``: every session as ``<session id>:<user id>`` scored by expiry time."""
        return f"{self.prefix}:sessions:expiry"

    def user_last_conversation(self, user_id: str) -> str:
        """``<prefix>:{user:ID}:last_conversation``: the conversation the user was last in (any process)."""
        return f"{self.prefix}:{{user:{user_id}}}:last_conversation"

    # --- conversations
    def conv_meta(self, conv_id: str) -> str:
        """The conversation's meta hash (title, counters, timestamps)."""
        return f"{self.prefix}:{{conv:{conv_id}}}:meta"

    def conv_messages(self, conv_id: str) -> str:
        """The list of the conversation's live messages, oldest first."""
        return f"{self.prefix}:{{conv:{conv_id}}}:messages"

    def conv_ids(self, conv_id: str) -> str:
        """The hash message id -> seq that makes appends idempotent."""
        return f"{self.prefix}:{{conv:{conv_id}}}:ids"

    def conv_summary(self, conv_id: str) -> str:
        """The conversation's current summary record."""
        return f"{self.prefix}:{{conv:{conv_id}}}:summary"

    def conv_archive(self, conv_id: str) -> str:
        """The list of summarised (archived) messages."""
        return f"{self.prefix}:{{conv:{conv_id}}}:archive"

    def conv_all(self, conv_id: str) -> list[str]:
        """Every key of a conversation (the archive has its own TTL and is listed last)."""
        return [
            self.conv_meta(conv_id),
            self.conv_messages(conv_id),
            self.conv_ids(conv_id),
            self.conv_summary(conv_id),
            self.conv_archive(conv_id),
        ]

    def user_conversations(self, user_id: str) -> str:
        """``<prefix>:{user:ID}:conversations``: the user's conversation ids scored by creation time (seconds)."""
        return f"{self.prefix}:{{user:{user_id}}}:conversations"

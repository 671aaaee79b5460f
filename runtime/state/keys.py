"""Redis key names, in one place so every process agrees on them.

Everything of one conversation shares the hash tag ``{conv:ID}`` and so one cluster slot,
which lets a single Lua script touch its message list, id index, metadata and archive.
Sessions are tagged ``{sess:ID}``; per-user indexes ``{user:ID}``; pub/sub channels ``{chan}``.
No script or MULTI spans two tags (audited for issue 19: conversation scripts take only
``{conv:ID}`` keys, session scripts one ``{sess:ID}`` key, lock scripts one lock key); the user's
conversation index is updated by a separate command, and the global session expiry index
(untagged, one slot) by separate pipelined commands.

Branches (issue 17): a branch of conversation ``P`` has the id ``P~XXXXXX`` (:data:`BRANCH_MARK`
and six hex digits), so its id names its whole ancestry, and its keys keep the *root's* tag:
``<prefix>:{conv:ROOT}~XXXXXX:meta``. A conversation, its branches and their branches share one
cluster slot, which lets one script read a branch's shared prefix from its ancestors' lists.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Separates a branch's id from its parent's (``conv_ab12~c0ffee``); never in a root id.
BRANCH_MARK = "~"


def ancestors(conv_id: str) -> list[str]:
    """The ids of a conversation's parent, grandparent ... root, nearest first ([] for a root);
    read from the id itself (``R~a~b`` -> ``["R~a", "R"]``)."""
    parts = conv_id.split(BRANCH_MARK)
    return [BRANCH_MARK.join(parts[:n]) for n in range(len(parts) - 1, 0, -1)]


def is_branch(conv_id: str) -> bool:
    """True when ``conv_id`` is a branch's id (it has a parent)."""
    return BRANCH_MARK in conv_id


def _conv(conv_id: str) -> str:
    """The tagged part of a conversation's keys: ``{conv:ROOT}`` plus the branch path, if any."""
    root, mark, rest = conv_id.partition(BRANCH_MARK)
    return f"{{conv:{root}}}{mark}{rest}"


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
        return f"{self.prefix}:{_conv(conv_id)}:meta"

    def conv_messages(self, conv_id: str) -> str:
        """The list of the conversation's live messages, oldest first."""
        return f"{self.prefix}:{_conv(conv_id)}:messages"

    def conv_ids(self, conv_id: str) -> str:
        """The hash message id -> seq that makes appends idempotent."""
        return f"{self.prefix}:{_conv(conv_id)}:ids"

    def conv_summary(self, conv_id: str) -> str:
        """The conversation's current summary record."""
        return f"{self.prefix}:{_conv(conv_id)}:summary"

    def conv_archive(self, conv_id: str) -> str:
        """The list of summarised (archived) messages."""
        return f"{self.prefix}:{_conv(conv_id)}:archive"

    def conv_branches(self, conv_id: str) -> str:
        """The set of the ids of the conversation's live branches (a deleted parent with live
        branches is kept until the last one goes)."""
        return f"{self.prefix}:{_conv(conv_id)}:branches"

    def conv_all(self, conv_id: str) -> list[str]:
        """Every key of a conversation, in this order (scripts index it): meta, messages, ids,
        summary, branches, archive (the archive has its own TTL and is listed last)."""
        return [
            self.conv_meta(conv_id),
            self.conv_messages(conv_id),
            self.conv_ids(conv_id),
            self.conv_summary(conv_id),
            self.conv_branches(conv_id),
            self.conv_archive(conv_id),
        ]

    def conv_lineage(self, conv_id: str) -> list[str]:
        """:meth:`conv_all` of the conversation, then of each ancestor, nearest first (6 keys
        each, one slot): what a script needs to read a branch's shared prefix."""
        keys = self.conv_all(conv_id)
        for parent in ancestors(conv_id):
            keys += self.conv_all(parent)
        return keys

    def user_conversations(self, user_id: str) -> str:
        """``<prefix>:{user:ID}:conversations``: the user's conversation ids scored by creation time (seconds)."""
        return f"{self.prefix}:{{user:{user_id}}}:conversations"

"""Redis key names, in one place so every process agrees on them.

Everything of one conversation shares the hash tag ``{conv:ID}`` and so one cluster slot,
which lets a single Lua script touch its message list, id index, metadata and archive.
Sessions are tagged ``{sess:ID}``; per-user indexes ``{user:ID}``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "holdfast"

    # --- generic store
    def state(self, namespace: str, key: str) -> str:
        return f"{self.prefix}:{namespace}:{key}"

    def lock(self, resource: str) -> str:
        return f"{self.prefix}:lock:{resource}"

    def channel(self, name: str) -> str:
        return f"{self.prefix}:chan:{name}"

    # --- sessions
    def session(self, session_id: str) -> str:
        return f"{self.prefix}:{{sess:{session_id}}}"

    def user_sessions(self, user_id: str) -> str:
        return f"{self.prefix}:{{user:{user_id}}}:sessions"

    def session_expiry(self) -> str:
        return f"{self.prefix}:sessions:expiry"

    # --- conversations
    def conv_meta(self, conv_id: str) -> str:
        return f"{self.prefix}:{{conv:{conv_id}}}:meta"

    def conv_messages(self, conv_id: str) -> str:
        return f"{self.prefix}:{{conv:{conv_id}}}:messages"

    def conv_ids(self, conv_id: str) -> str:
        return f"{self.prefix}:{{conv:{conv_id}}}:ids"

    def conv_summary(self, conv_id: str) -> str:
        return f"{self.prefix}:{{conv:{conv_id}}}:summary"

    def conv_archive(self, conv_id: str) -> str:
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
        return f"{self.prefix}:{{user:{user_id}}}:conversations"

"""The one rule for user ids, checked at every door a user id comes in by.

A user id scopes conversations, sessions and memories. It arrives from ``--user``, the config
files and ``HOLDFAST_AGENT__USER``, the OS user name, tool contexts and the memory, session and
conversation APIs, and it ends up inside Redis keys (``{user:ID}`` hash tags), LanceDB filter
expressions and log lines. So it is checked once, by :func:`validate_user_id`, wherever it
enters, instead of by a different rule per store: the storage issue found an id with a NUL
byte that the memory API accepted and that then blocked the memory write queue for good.

The rule (the same alphabet as every other id stored in a Redis key,
:func:`runtime.state.codec.check_id`): 1 to :data:`MAX_USER_ID_CHARS` characters, each an ASCII
letter, a digit or one of ``_ . @ + - =``; not made of dots alone. So ``alice``,
``alice.smith@example.com`` and ``user_42`` pass, and an empty id, a NUL or any other control
character, whitespace (leading, trailing or inside), a path separator, a brace (it would break a
Redis Cluster hash tag) or a quote is refused. ASCII only: look-alike letters from other scripts
(a Cyrillic ``а`` for a Latin ``a``) would let two ids read the same.
"""

from __future__ import annotations

import re

from runtime.core.errors import ValidationError

#: Longest user id accepted, in characters.
MAX_USER_ID_CHARS = 128

#: What :func:`validate_user_id` accepts, in words (used in its error message).
USER_ID_RULE = f"1-{MAX_USER_ID_CHARS} ASCII letters, digits and _ . @ + - = (no spaces, slashes or control characters)"

_USER_ID_RE = re.compile(r"[A-Za-z0-9_.@+\-=]+")
_PREVIEW_CHARS = 40


def validate_user_id(value: object, *, what: str = "user_id") -> str:
    """Return ``value`` unchanged if it is a valid user id, else raise.

    ``what`` names the value in the message: the parameter (``user_id``, the default) or the
    setting (``--user``, ``[agent].user``). The id is not normalised (no stripping, no case
    folding): an id that is not already clean is refused, so two spellings never name one user.

    Raises :class:`runtime.core.errors.ValidationError` with a one-line message that shows the
    bad value (escaped, so a NUL or an escape sequence is visible and harmless) and the rule.
    """
    if not isinstance(value, str):
        raise ValidationError(
            f"{what} must be text ({USER_ID_RULE}), got {type(value).__name__}", details={"field": what}
        )
    problem = _problem(value)
    if problem:
        raise ValidationError(
            f"{what} {_preview(value)} is not valid: {problem}; a user id is {USER_ID_RULE}",
            details={"field": what},
        )
    return value


def is_valid_user_id(value: object) -> bool:
    """True when :func:`validate_user_id` would accept ``value``."""
    return isinstance(value, str) and not _problem(value)


def _problem(value: str) -> str:
    """What is wrong with ``value`` in a few words, or ``""`` when nothing is."""
    if not value:
        return "it is empty"
    if len(value) > MAX_USER_ID_CHARS:
        return f"it is {len(value)} characters long"
    if _USER_ID_RE.fullmatch(value):
        return "it is only dots" if not value.strip(".") else ""
    if value != value.strip():
        return "it starts or ends with whitespace"
    for char in value:
        if char == "\x00":
            return "it contains a NUL byte"
        if ord(char) < 32 or 127 <= ord(char) < 160:
            return f"it contains the control character U+{ord(char):04X}"
        if char in "/\\":
            return "it contains a path separator"
        if char.isspace():
            return "it contains whitespace"
    bad = next(c for c in value if not _USER_ID_RE.fullmatch(c))
    return f"it contains {bad!a}" + (", which is not ASCII" if ord(bad) > 127 else "")


def _preview(value: str) -> str:
    text = value if len(value) <= _PREVIEW_CHARS else value[: _PREVIEW_CHARS - 3] + "..."
    # ascii(): NUL, escape sequences and other invisible characters are shown as \x.. escapes.
    return ascii(text)

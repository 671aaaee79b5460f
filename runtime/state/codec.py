"""JSON encoding of everything Holdfast stores in Redis or the journal (never pickle).

Text is stored as UTF-8 JSON. A value that JSON cannot represent faithfully (a set, bytes,
an object, NaN, a string holding a lone surrogate that is not valid Unicode) is refused
with a :class:`ValidationError` naming what was wrong, instead of being silently coerced
with ``default=str`` as the spec's sample does.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from runtime.core.errors import ValidationError

#: Ids that become part of Redis keys: no braces (they would break ``{conv:ID}`` hash tags),
#: no whitespace or control characters, bounded length.
_ID_RE = re.compile(r"[A-Za-z0-9_.@+\-=~]{1,128}")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")


def check_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is safe inside a Redis key, else raise :class:`ValidationError`."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValidationError(
            f"{what} must be 1-128 characters of letters, digits and _ . @ + - = ~, got {_preview(value)}",
            details={"field": what},
        )
    return value


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a string of valid Unicode (encodable as UTF-8).

    Raises:
        ValidationError: not a string, or it holds a lone surrogate (its position is in the details).
    """
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text, got {type(value).__name__}", details={"field": what})
    match = _SURROGATE_RE.search(value)
    if match:
        raise ValidationError(
            f"{what} is not valid Unicode text (lone surrogate U+{ord(match.group()):04X} at position {match.start()})",
            details={"field": what, "position": match.start()},
        )
    return value


def dumps(value: Any, what: str = "value") -> bytes:
    """Compact UTF-8 JSON for ``value``; raises :class:`ValidationError` if it is not JSON-safe."""
    _check_json_safe(value, what, depth=0)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def loads(raw: bytes | str | None) -> Any:
    """Inverse of :func:`dumps`; ``None`` (a missing key) stays ``None``.

    Raises:
        json.JSONDecodeError: ``raw`` is not JSON (it was not written by :func:`dumps`).
    """
    if raw is None:
        return None
    return json.loads(raw)


def _check_json_safe(value: Any, path: str, depth: int) -> None:
    if depth > 100:
        raise ValidationError(f"{path} is nested too deeply to store", details={"field": path})
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{path} is {value}, which JSON cannot store", details={"field": path})
        return
    if isinstance(value, str):
        check_text(value, path)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json_safe(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; only text keys can be stored",
                    details={"field": path},
                )
            check_text(key, f"{path} key")
            _check_json_safe(item, f"{path}.{key}", depth + 1)
        return
    raise ValidationError(
        f"{path} is a {type(value).__name__}, which cannot be stored as JSON "
        "(use str, int, float, bool, None, list or dict)",
        details={"field": path, "type": type(value).__name__},
    )


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

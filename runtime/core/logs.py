"""Logging to a rotating JSON-lines file, never to the terminal the TUI owns.

Each record carries timestamp, level, logger, message and, where known, the turn and
conversation ids (set through :func:`log_context`). A filter redacts API keys,
``Authorization`` headers and any secret value registered with :func:`register_secret`
before a record is formatted, so secrets never reach the file.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime.core.safe_text import mask_url_credentials

turn_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("turn_id", default=None)
conversation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("conversation_id", default=None)
#: The HTTP request being served (``holdfast serve``'s ``X-Request-ID``), on every record it logs.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

REDACTED = "[REDACTED]"
_PATTERNS = [
    # Authorization / api-key headers in any of the shapes httpx, openai and dict reprs print.
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+"),
    re.compile(r"(?i)((?:x-)?api[-_]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]{8,}"),
    # Provider key shapes: sk-..., sk-proj-..., and similar long tokens with a key prefix.
    re.compile(r"()\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}"),
]
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it appears in a log record."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with registered secrets, API keys, Authorization header values and the
    credentials inside URLs (``redis://:pw@host``) replaced by ``[REDACTED]`` / ``****``."""
    text = mask_url_credentials(text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) or "") + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Renders the message and exception text once, redacted, so no handler sees the raw secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place (message rendered, ``args`` and ``exc_info`` cleared); always True."""
        try:
            message = record.getMessage()
        # A bad format string, or an argument whose __str__ raises anything at all, must not
        # lose the record (logging would print the error to the terminal the TUI owns).
        except Exception:  # noqa: BLE001
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ms), ``level``, ``logger``, ``message``, and
    ``turn_id``, ``conversation_id``, ``request_id``, ``exc`` when present."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (non-ASCII kept as is)."""
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        turn = turn_id_var.get()
        conv = conversation_id_var.get()
        if turn:
            entry["turn_id"] = turn
        if conv:
            entry["conversation_id"] = conv
        request = request_id_var.get()
        if request:
            entry["request_id"] = request
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class _HoldfastFileHandler(logging.handlers.RotatingFileHandler):
    #: Marks the handler :func:`setup_logging` installed, so a later call replaces it.
    _holdfast = True


@contextlib.contextmanager
def log_context(*, turn_id: str | None = None, conversation_id: str | None = None) -> Iterator[None]:
    """Tag every record logged inside the block (this task and its children) with these ids.

    None leaves the current value alone; the previous values come back on exit.
    """
    tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []
    if turn_id is not None:
        tokens.append((turn_id_var, turn_id_var.set(turn_id)))
    if conversation_id is not None:
        tokens.append((conversation_id_var, conversation_id_var.set(conversation_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            try:
                var.reset(token)
            except ValueError:  # closed from another context (an async generator finalised elsewhere)
                var.set(None)


def setup_logging(path: Path, level: str = "INFO", *, max_bytes: int = 5_000_000, backups: int = 3) -> Path:
    """Send every ``logging`` record to ``path`` (rotating, JSON lines); nothing to stderr.

    Rotates at ``max_bytes`` bytes keeping ``backups`` old files; replaces a handler an earlier
    call installed. Returns ``path``.

    Raises:
        OSError: the directory or the file cannot be created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_holdfast", False):
            root.removeHandler(handler)
            handler.close()
    handler = _HoldfastFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that log request headers at DEBUG stay at INFO unless asked for explicitly.
    for noisy in ("httpx", "httpcore", "openai", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))
    logging.captureWarnings(True)
    return path

"""@file attachments: files named in a message (``explain @README.md``) sent with it.

Two halves, both headless (the TUI's file finder lives in ``app/widgets/file_finder.py``):

* **Resolution** (:func:`resolve_attachments`): each ``@path`` (an ``@`` at the start of the text or
  after whitespace or an opening bracket, up to the next whitespace) is looked up under a root directory (the working
  directory of the TUI or of ``holdfast chat``). A regular UTF-8 text file becomes an
  :class:`Attachment`. A path that does not exist (or is a directory) stays literal text with a
  notice (``@dataclass`` in prose is not a file). Refused, with :class:`AttachmentRefused` naming
  the file, and the message is then **not sent** (the callers put it back to be edited): a binary
  file (a NUL byte, or not UTF-8), and a path outside the root (``@../../etc/passwd``, an absolute
  path elsewhere, a symlink pointing out of it). Nothing is dropped silently.
* **The prompt section** (:func:`attachments_section`): the files' text goes into the prompt as
  one message just before the newest user message, counted as its own section of the budget
  (``PromptReport.attachments_tokens`` and one :class:`AttachmentFigure` per file). The section
  may use at most :data:`ATTACHMENT_SHARE` of the room left after the system prompt, the tool
  schemas and the newest user message; the share is split fairly (a small file is sent whole,
  what it leaves is shared by the bigger ones) and a file over its part keeps its beginning and
  ends with a marker such as ``[… truncated: 1,234 of 40,000 tokens shown]``.

Only files read here are attached: ``holdfast serve`` never resolves ``@`` (a remote client must
not read the server's disk). The file's text goes into that turn's prompt only; the stored user
message keeps its own text and ``metadata.attachments``: per file ``path``, ``bytes``, ``tokens``
(of the text read), ``tokens_sent`` and ``truncated`` (how it fit the prompt).
Why not the content: a stored message is capped (``runtime.state.history.MAX_MESSAGE_BYTES``),
every mention would copy the file into Redis again, and a reopened conversation should not send
stale copies of files that may have changed since. Mention the file again to send it again.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.core.errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runtime.context.tokens import TokenCounter

#: Largest share (0-1] of the room after system prompt, tools and the newest message that
#: attachments may take, so memories and history still fit beside them.
ATTACHMENT_SHARE = 0.5
#: At most this many bytes of a file are read (a 1 GB log must not be tokenised whole).
MAX_READ_BYTES = 2 * 1024 * 1024

#: ``@path``: at the start, after whitespace or an opening bracket or quote, a run of
#: non-space characters (``bob@example.com`` is no mention).
MENTION_RE = re.compile(r"(?:(?<=[\s(\[{\"'`])|^)@(?P<path>[^\s@]+)")
#: Punctuation that ends a sentence rather than a path ("see @README.md." or "(@a.py)").
_TRAILING = ".,;:!?)]}'\""

SECTION_HEADER = "Files attached by the user (their text, as read when the message was sent):"


class AttachmentRefused(ValidationError):
    """An ``@path`` that cannot be attached: a binary file, or a path outside the root. The
    message says which file and what to do; the message is not sent."""


@dataclass(frozen=True)
class Attachment:
    """One file to send: ``path`` as shown (relative to the root, ``/`` separators), its
    ``text`` (the first :data:`MAX_READ_BYTES` at most), its size in ``bytes`` and whether the
    read stopped before its end (``cut_on_read``)."""

    path: str
    text: str
    bytes: int
    cut_on_read: bool = False

    def metadata(self, counter: TokenCounter | None = None) -> dict[str, Any]:
        """What the stored user message records of it: path, bytes, and with a counter the
        tokens of the text read."""
        data: dict[str, Any] = {"path": self.path, "bytes": self.bytes}
        if counter is not None:
            data["tokens"] = counter.count_text(self.text)
        if self.cut_on_read:
            data["cut_on_read"] = True
        return data


@dataclass(frozen=True)
class AttachmentFigure:
    """One attachment in a prompt report: ``tokens`` of its block as inserted (exactly
    ``counter.count_text`` of that text), ``total_tokens`` of the whole text read, and
    ``truncated`` when the block holds less than that."""

    path: str
    tokens: int
    total_tokens: int
    truncated: bool


@dataclass(frozen=True)
class Resolution:
    """What :func:`resolve_attachments` found: the ``attachments`` (in mention order, each file
    once) and one-line ``notices`` for mentions left as text."""

    attachments: tuple[Attachment, ...] = ()
    notices: tuple[str, ...] = field(default_factory=tuple)


def mentions(text: str) -> list[str]:
    """The ``@path`` mentions of ``text`` in order (trailing sentence punctuation removed)."""
    found = []
    for match in MENTION_RE.finditer(text):
        path = match.group("path").rstrip(_TRAILING)
        if path:
            found.append(path)
    return found


def _shown(path: str) -> str:
    """A path as quoted in a notice: control characters replaced, at most 120 characters."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in path)
    return clean if len(clean) <= 120 else clean[:119] + "…"


def _read_text(path: Path, shown: str) -> Attachment:
    size = path.stat().st_size
    with path.open("rb") as handle:
        data = handle.read(MAX_READ_BYTES)
    if b"\0" in data:
        raise AttachmentRefused(
            f"@{shown} is a binary file (it contains NUL bytes): only text files can be attached; "
            "remove it from the message"
        )
    cut = size > len(data)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # final=False when the read stopped early: a character split at the cut is not an error.
        text = decoder.decode(data, final=not cut)
    except UnicodeDecodeError as exc:
        raise AttachmentRefused(
            f"@{shown} is not UTF-8 text (byte {exc.start} cannot be decoded): only text files can be "
            "attached; remove it from the message"
        ) from exc
    return Attachment(path=shown, text=text, bytes=size, cut_on_read=cut)


def resolve_attachments(text: str, root: str | os.PathLike[str]) -> Resolution:
    """The files ``text`` mentions with ``@path``, read from under ``root``.

    Blocking file I/O: run it in a thread from async code (``asyncio.to_thread``).

    Raises:
        AttachmentRefused: a mentioned path escapes ``root`` (``..``, absolute elsewhere, a
            symlink out of it) or names a binary / non-UTF-8 file. One line naming the file.
    """
    base = Path(root).resolve()
    found: list[Attachment] = []
    notices: list[str] = []
    seen: set[str] = set()
    for raw in mentions(text):
        shown = _shown(raw)
        candidate = Path(os.path.expanduser(raw)) if raw.startswith("~") else Path(raw)
        full = candidate if candidate.is_absolute() else base / candidate
        try:
            real = full.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            notices.append(f"@{shown}: cannot be resolved; sent as text")
            continue
        if not real.is_relative_to(base):
            if not full.exists() and not full.is_symlink():
                # Prose such as "@/dev/team" that names nothing: leave it be.
                notices.append(f"@{shown}: no such file; sent as text")
                continue
            raise AttachmentRefused(
                f"@{shown} is outside the working directory {base}: only files under it can be attached; "
                "remove it from the message"
            )
        if not real.exists():
            notices.append(f"@{shown}: no such file under {base}; sent as text")
            continue
        if not real.is_file():
            notices.append(f"@{shown}: not a file; sent as text")
            continue
        rel = real.relative_to(base).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        try:
            found.append(_read_text(real, rel))
        except PermissionError as exc:
            raise AttachmentRefused(f"@{shown} cannot be read (permission denied); remove it from the message") from exc
    return Resolution(tuple(found), tuple(notices))


def file_block(path: str, text: str) -> str:
    """One file as it is inserted into the prompt."""
    return f'<file path="{path}">\n{text}\n</file>'


def truncated_marker(shown: int, total: int) -> str:
    """The line that ends a cut file: how many of its tokens are shown."""
    return f"[… truncated: {shown:,} of {total:,} tokens shown]"


def _fit(counter: TokenCounter, attachment: Attachment, limit: int) -> tuple[str, AttachmentFigure] | None:
    """The block of ``attachment`` in at most ``limit`` tokens (its start kept, the marker
    ending it when cut), with its figure; None when not even the marker fits."""
    total = counter.count_text(attachment.text)
    label = f"{total:,}+" if attachment.cut_on_read else None
    whole = file_block(attachment.path, attachment.text)
    whole_tokens = counter.count_text(whole)
    if whole_tokens <= limit and not attachment.cut_on_read:
        return whole, AttachmentFigure(attachment.path, whole_tokens, total, False)
    tokens = counter.encode(attachment.text)
    keep = min(len(tokens), max(0, limit))
    while keep >= 0:
        head = counter.decode(tokens[:keep])
        marker = truncated_marker(keep, total)
        if label is not None:
            marker = marker.replace(f"of {total:,}", f"of {label}")
        block = file_block(attachment.path, f"{head}\n{marker}")
        cost = counter.count_text(block)
        if cost <= limit:
            return block, AttachmentFigure(attachment.path, cost, total, True)
        if keep == 0:
            return None
        keep = max(0, keep - max(1, cost - limit))
    return None


def attachments_section(
    counter: TokenCounter, attachments: Sequence[Attachment], room: int
) -> tuple[dict[str, Any] | None, tuple[AttachmentFigure, ...]]:
    """The prompt message carrying ``attachments`` in at most ``room`` tokens (the section's
    share), and one figure per file (a file with no room left is reported with 0 tokens,
    truncated). None when there is nothing to send."""
    if not attachments:
        return None, ()
    overhead = counter.count_openai_message({"role": "user", "content": SECTION_HEADER + "\n\n"})
    left = max(0, room - overhead)
    blocks: dict[int, tuple[str, AttachmentFigure]] = {}
    # Fair split: smallest first, each gets an equal part of what is left.
    order = sorted(range(len(attachments)), key=lambda i: len(attachments[i].text))
    for position, index in enumerate(order):
        part = left // (len(order) - position)
        fitted = _fit(counter, attachments[index], part)
        if fitted is None:
            total = counter.count_text(attachments[index].text)
            blocks[index] = ("", AttachmentFigure(attachments[index].path, 0, total, True))
            continue
        blocks[index] = fitted
        left -= fitted[1].tokens + 2  # the blank line joining blocks
    figures = tuple(blocks[i][1] for i in range(len(attachments)))
    texts = [blocks[i][0] for i in range(len(attachments)) if blocks[i][0]]
    if not texts:
        return None, figures
    return {"role": "user", "content": SECTION_HEADER + "\n\n" + "\n\n".join(texts)}, figures

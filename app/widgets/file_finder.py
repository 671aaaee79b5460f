"""The ``@`` file finder: a fuzzy list of the files under the working directory, shown above the
composer while an ``@mention`` is typed (see :class:`app.widgets.composer.Composer`).

Which files (:func:`list_files`, at most :data:`MAX_FILES`, run in a worker thread so a huge
directory never freezes the UI):

* inside a git work tree, ``git ls-files --cached --others --exclude-standard``: exactly git's
  own idea of what is ignored (every nested ``.gitignore``, ``.git/info/exclude``, the global
  excludes file), and fast because git keeps the index;
* elsewhere (or when git is missing), a walk that honours every ``.gitignore`` on the way with
  ``pathspec``'s :class:`~pathspec.GitIgnoreSpec` (git's wildmatch rules, maintained upstream).

Both leave out version-control directories (:data:`ALWAYS_SKIPPED`).

Matching is Textual's own fuzzy matcher (:class:`textual.fuzzy.Matcher`, the command palette's),
best score first, shorter paths first on a tie; filtering runs in a worker thread too. The list
shows paths as :class:`~textual.content.Content` (never markup): a file named ``[red]x`` shows
as it is.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pathspec
from textual import work
from textual.content import Content
from textual.fuzzy import Matcher
from textual.widgets import OptionList
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

#: At most this many files are listed (a home directory must not take minutes).
MAX_FILES = 20_000
#: Matches shown at once.
MAX_SHOWN = 50
#: Seconds a listing is reused before the next ``@`` lists again (files come and go).
LISTING_TTL = 10.0
#: Directories never walked, ignored or not.
ALWAYS_SKIPPED = frozenset({".git", ".hg", ".svn"})

_listings: dict[Path, tuple[float, list[str]]] = {}


def _vcs_path(path: bytes) -> bool:
    """True for a path inside a version-control directory (:data:`ALWAYS_SKIPPED`)."""
    return any(part.decode("utf-8", "surrogateescape") in ALWAYS_SKIPPED for part in path.split(b"/")[:-1])


def _git_files(root: Path, limit: int) -> list[str] | None:
    """The files git lists under ``root`` (relative, ``/``-separated), or None when ``root`` is
    not in a git work tree or git cannot run."""
    try:
        inside = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None
    files: list[str] = []
    with subprocess.Popen(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        pending = b""
        while len(files) < limit:
            chunk = proc.stdout.read(65536)
            if not chunk:
                break
            parts = (pending + chunk).split(b"\0")
            pending = parts.pop()
            files.extend(p.decode("utf-8", "surrogateescape") for p in parts if p and not _vcs_path(p))
        if proc.poll() is None:
            proc.kill()  # enough files: do not wait for the rest
    return sorted(dict.fromkeys(files[:limit]))


def _ignored(specs: list[tuple[str, pathspec.GitIgnoreSpec]], rel_dir: str, name: str, is_dir: bool) -> bool:
    """True when a ``.gitignore`` of ``rel_dir`` or above excludes ``name`` (in ``rel_dir``)."""
    rel = f"{rel_dir}/{name}" if rel_dir else name
    for base, spec in specs:
        inner = rel[len(base) + 1 :] if base else rel
        if spec.match_file(inner + "/" if is_dir else inner):
            return True
    return False


def _walk(root: Path, limit: int) -> Iterator[str]:
    """Files under ``root`` not ignored by a ``.gitignore`` on their way (pathspec)."""
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []  # (directory relative to root, its rules)
    count = 0
    for directory, dirs, files in os.walk(root):
        rel_dir = Path(directory).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        specs = [(d, s) for d, s in specs if not d or rel_dir == d or rel_dir.startswith(d + "/")]
        ignore_file = Path(directory) / ".gitignore"
        if ignore_file.is_file():
            try:
                lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines = []
            specs.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(lines)))

        dirs[:] = sorted(d for d in dirs if d not in ALWAYS_SKIPPED and not _ignored(specs, rel_dir, d, True))
        for name in sorted(files):
            if _ignored(specs, rel_dir, name, False):
                continue
            yield f"{rel_dir}/{name}" if rel_dir else name
            count += 1
            if count >= limit:
                return


def list_files(root: Path, limit: int = MAX_FILES) -> list[str]:
    """Files under ``root`` that ``.gitignore`` does not exclude, relative and ``/``-separated,
    at most ``limit``. Blocking: call it from a thread."""
    found = _git_files(root, limit)
    return found if found is not None else list(_walk(root, limit))


def ranked(query: str, files: list[str], limit: int = MAX_SHOWN) -> list[str]:
    """The ``limit`` best fuzzy matches of ``query`` among ``files`` (all, in order, when empty)."""
    if not query:
        return files[:limit]
    matcher = Matcher(query)
    scored = [(score, path) for path in files if (score := matcher.match(path)) > 0]
    scored.sort(key=lambda item: (-item[0], len(item[1]), item[1]))
    return [path for _, path in scored[:limit]]


class FileFinder(OptionList):
    """The list of matching files; the composer drives it (``filter``, ``move``, ``chosen``)."""

    DEFAULT_CSS = """
    FileFinder { height: auto; max-height: 8; border: round $accent; padding: 0 1; }
    """

    def __init__(self, root: Path, *, on_pick: Callable[[str], None] | None = None, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.can_focus = False  # typing stays in the composer; a click still picks
        self.root = root
        self.on_pick = on_pick
        self.border_title = "@ files"
        self.query_text = ""
        self.files: list[str] | None = None

    def on_mount(self) -> None:
        cached = _listings.get(self.root)
        if cached is not None and time.monotonic() - cached[0] < LISTING_TTL:
            self.files = cached[1]
            self.filter(self.query_text)
        else:
            self.set_options([Option("listing files…", disabled=True)])
            self._list()

    @work(thread=True, exclusive=True, group="file-listing")
    def _list(self) -> None:
        files = list_files(self.root)
        _listings[self.root] = (time.monotonic(), files)
        self.app.call_from_thread(self._listed, files)

    def _listed(self, files: list[str]) -> None:
        self.files = files
        self.filter(self.query_text)

    def filter(self, query: str) -> None:
        """Show the files matching ``query`` (in a worker thread; the list updates when done)."""
        self.query_text = query
        if self.files is not None:
            self._filter(query, self.files)

    @work(thread=True, exclusive=True, group="file-filter")
    def _filter(self, query: str, files: list[str]) -> None:
        shown = ranked(query, files)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, query, shown)

    def _show(self, query: str, shown: list[str]) -> None:
        if query != self.query_text:
            return
        if not shown:
            self.set_options([Option(f"no file matches {query!r}", disabled=True)])
            return
        matcher = Matcher(query) if query else None
        options = []
        for path in shown:
            # A file name is outside text: control characters (terminal escapes) never reach the screen.
            label = "".join(ch if ch.isprintable() else "?" for ch in path)
            options.append(Option(matcher.highlight(label) if matcher else Content(label), id=path))
        self.set_options(options)
        self.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """A click on a file picks it."""
        event.stop()
        if event.option.id and self.on_pick is not None:
            self.on_pick(event.option.id)

    def move(self, step: int) -> None:
        """Highlight the next (``step`` 1) or previous (-1) file."""
        if self.option_count:
            current = self.highlighted if self.highlighted is not None else -1
            self.highlighted = max(0, min(self.option_count - 1, current + step))

    @property
    def chosen(self) -> str | None:
        """The highlighted file's path, or None when nothing (or a placeholder line) is highlighted."""
        if self.highlighted is None or not self.option_count:
            return None
        option = self.get_option_at_index(self.highlighted)
        return option.id if not option.disabled else None

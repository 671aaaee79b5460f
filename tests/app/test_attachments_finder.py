"""Which files the ``@`` finder offers (app.widgets.file_finder.list_files): git's own list in a
git work tree, every ``.gitignore`` on the way elsewhere, version-control directories never, and
at most the limit; and the fuzzy ranking that orders them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.widgets.file_finder import list_files, ranked


def _tree(root: Path) -> None:
    for name in ("README.md", "src/app.py", "src/gen/out.js", "build/x.o", "debug.log", ".hg/store", "docs/a.md"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "src" / ".gitignore").write_text("gen/\n")


def test_outside_git_every_gitignore_on_the_way_is_honoured(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert list_files(tmp_path) == [".gitignore", "README.md", "docs/a.md", "src/.gitignore", "src/app.py"]


def test_in_a_git_work_tree_git_says_what_is_ignored(tmp_path: Path) -> None:
    _tree(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("docs/\n")  # git-only rules count too
    assert list_files(tmp_path) == [".gitignore", "README.md", "src/.gitignore", "src/app.py"]


def test_the_listing_stops_at_the_limit(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"f{i:02}.txt").write_text("x")
    assert len(list_files(tmp_path, limit=7)) == 7


@pytest.mark.parametrize(("query", "best"), [("rdme", "README.md"), ("srcapp", "src/app.py"), ("", "README.md")])
def test_ranked_puts_the_best_fuzzy_match_first(query: str, best: str) -> None:
    files = ["README.md", "docs/a.md", "src/app.py", "src/apple/pie.py"]
    assert ranked(query, files)[0] == best

"""Rules of the suite's own structure (issue 12): helpers are imported from ``tests/support``,
never from a conftest module, and no test reaches for ``sys.path`` to find them."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _test_modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__snapshots__" not in p.parts)


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def test_no_module_imports_a_conftest() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in _test_modules()
        for line, module in _imported_modules(ast.parse(path.read_text(), str(path)))
        if module == "conftest" or module.endswith(".conftest")
    ]
    assert offenders == [], "move shared helpers to tests/support/: " + "; ".join(offenders)


def test_no_module_edits_sys_path() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{node.lineno}"
        for path in _test_modules()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    ]
    assert offenders == [], "tests import helpers as tests.support.<module>: " + "; ".join(offenders)

"""How the tests are laid out: helpers live in tests/helpers/ and fixtures in
tests/conftest.py, so no test module imports another."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _imported_modules(path: Path) -> list[str]:
    """Every module `path` imports, at any depth (a function's imports too)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names.append(module)
            # `from tests import test_x` and `from . import test_x` import a module too.
            if module in ("tests", "."):
                names.extend(f"tests.{alias.name}" for alias in node.names)
    return names


def _is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name.startswith(("tests.", ".")) and last.startswith("test_")


def test_no_test_module_imports_another_test_module():
    found = [
        f"{path.relative_to(TESTS.parent)}: {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in _imported_modules(path)
        if _is_test_module(name)
    ]
    assert found == [], "move the helper to tests/helpers/ or the fixture to tests/conftest.py"

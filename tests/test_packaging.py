"""What the server's distribution declares, and what its light modules load."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "upgrade_server"

# Declared but never imported: the reason each one is still needed.
RUN_NOT_IMPORTED = {
    "gunicorn": "the server process (`upgrade-server serve` runs it)",
}

# Modules that raise the domain errors but must not cost a web framework: the
# storage backends (a bench or a tool may use them alone) and the pure rules.
FRAMEWORK_FREE = (
    "upgrade_server.errors",
    "upgrade_server.storage.base",
    "upgrade_server.storage.local",
    "upgrade_server.storage.s3",
    "upgrade_server.releases.versions",
    "upgrade_server.releases.metadata",
    "upgrade_server.signing.keys",
)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_top_names(tree: ast.AST) -> set[str]:
    """Absolute imports anywhere in a module (functions too), except those only
    for the type checker."""
    names: set[str] = set()

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    walk(other)
                continue
            if isinstance(child, ast.Import):
                names.update(alias.name.split(".")[0] for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names.add(child.module.split(".")[0])
            walk(child)

    walk(tree)
    return names


def _third_party_imports() -> dict[str, set[str]]:
    """Distribution (canonical name) -> the modules of upgrade_server importing it."""
    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in _imported_top_names(ast.parse(path.read_text(encoding="utf-8"))):
            if name in sys.stdlib_module_names or name == "upgrade_server":
                continue
            distributions = owners.get(name)
            assert distributions, f"{path.relative_to(ROOT)} imports {name}, installed by nothing"
            for distribution in distributions:
                found.setdefault(_canonical(distribution), set()).add(str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = set()
    for requirement in project["dependencies"]:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(_canonical(match.group(0)))
    return names


def test_pyproject_declares_exactly_what_the_server_imports():
    imported = _third_party_imports()
    declared = _declared()
    undeclared = {name: sorted(where) for name, where in imported.items() if name not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    unused = declared - imported.keys() - set(RUN_NOT_IMPORTED)
    assert not unused, f"declared in pyproject.toml but imported nowhere: {sorted(unused)}"


def test_requirements_pin_every_declared_dependency():
    pinned = set()
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==", line.strip())
        if match:
            pinned.add(_canonical(match.group(1)))
    assert _declared() <= pinned, sorted(_declared() - pinned)


def test_errors_and_storage_backends_load_without_flask():
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in FRAMEWORK_FREE)
        + "print(sorted(m for m in ('flask', 'werkzeug', 'apiflask') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout

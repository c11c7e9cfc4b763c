"""How the server's package is laid out: small modules, and a README that says
where everything is."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "upgrade_server"
MAX_LINES = 500


def test_no_module_of_the_server_is_over_500_lines():
    too_long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}, "split these along their sub-concepts (README, Development)"


def _readme_layout() -> dict[str, set[str]]:
    """The README's package layout: {package or module: its modules}, from the
    block under "### Package layout" (`name/ module module … — what it is`)."""
    text = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    block = text.split("### Package layout", 1)[1].split("```", 2)[1]
    layout: dict[str, set[str]] = {}
    for line in block.splitlines()[2:]:  # after "text" and "upgrade_server/"
        names = line.split("—", 1)[0].split()
        if names:
            layout[names[0]] = set(names[1:])
    return layout


def _tree() -> dict[str, set[str]]:
    """{module or package (subpackages as `package/sub/`): its modules}."""
    tree: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.iterdir()):
        if path.suffix == ".py":
            tree[path.name] = set()
        elif (path / "__init__.py").exists():
            for package in sorted(p.parent for p in path.rglob("__init__.py")):
                key = f"{package.relative_to(PACKAGE).as_posix()}/"
                tree[key] = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    return tree


def test_the_readme_names_every_package_and_module_of_the_server():
    assert _readme_layout() == _tree()

"""What the server's distribution declares, and what its light modules load."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.moto_server import free_port, wait_for_port

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
    "upgrade_server.rollouts.plan",
    "upgrade_server.rollouts.windows",
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


def test_the_distribution_lists_every_package_folder_and_the_migrations():
    """pyproject lists its packages (so that the top-level migrations/ can be
    installed inside the package): a new folder left off would be missing from
    an installed server."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in PACKAGE.rglob("__init__.py")
    }
    migrations = {"upgrade_server.migrations", "upgrade_server.migrations.versions"}
    assert set(setuptools["packages"]) == folders | migrations
    assert setuptools["package-dir"] == {"upgrade_server.migrations": "migrations"}
    assert (ROOT / "migrations" / "env.py").is_file()


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


# What a checkout holds besides the server's source: not part of what pip builds.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "instance", "*.egg-info", "__pycache__", ".*_cache",
    "tests", "bench",
)  # fmt: skip


def _user_env(**extra: str) -> dict[str, str]:
    """The environment of someone who only installed the package: none of the
    test run's settings, virtual environment or import path."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UPGRADE_SERVER_", "GUNICORN_", "TEST_", "PYTEST_"))
        and k not in ("DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    return {**kept, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only `pip install <the server>` in it
    (no requirements file); returns its bin folder."""
    here = tmp_path_factory.mktemp("installed")
    source = here / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    venv = here / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_user_env())
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        env=_user_env(),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return venv / "bin"


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def served_demo(installed: Path, scratch_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`upgrade-server demo`, then `upgrade-server serve`, in an empty folder on a
    fresh database of the suite's kind (SQLite, or PostgreSQL in its pass)."""
    folder = tmp_path / "site"
    folder.mkdir()
    port = free_port()
    env = _user_env(DATABASE_URL=scratch_url, GUNICORN_WORKERS="2")
    demo = subprocess.run(
        [str(installed / "upgrade-server"), "demo", "--port", str(port)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    admin = re.search(r"^\s*admin \S+\s+(usk_\S+)$", demo.stdout, re.MULTILINE)
    assert admin, demo.stdout
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(installed / "upgrade-server"), "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}", admin.group(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
@pytest.mark.own_app
def test_installed_package_alone_serves_the_demo(installed, served_demo):
    code = "import upgrade_server; print(upgrade_server.__file__)"
    where = subprocess.run(
        [str(installed / "python"), "-c", code],
        cwd=installed,
        env=_user_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(installed.parent)), "the checkout, not the install"
    url, admin_token = served_demo
    deadline = time.monotonic() + 30
    while (ready := _get(url + "/readyz"))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready[0] == 200
    assert {k: ready[1][k] for k in ("checks", "status")} == {
        "checks": {"database": "ok", "storage": "ok"},
        "status": "ready",
    }
    status, devices = _get(url + "/api/v1/devices", admin_token)
    assert status == 200, devices
    assert "DEMO-0001" in {device["serial"] for device in devices["items"]}

"""The device agent is its own distribution (agent/): a device installs it
alone, without the server's dependencies, and the installed package updates a
device from a live server."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.agent_helpers import installed, write_config
from tests.live import add_product, live_server
from tests.proxy import proxy_of
from upgrade_agent.fetcher import EnvironmentProxies
from upgrade_server.accounts.principal import Principal
from upgrade_server.cli.remote import remote_group
from upgrade_server.devices import provisioning
from upgrade_server.extensions import db
from upgrade_server.organisations import service as organisations

AGENT = Path(__file__).resolve().parent.parent / "agent"
SERVER_STACK = {"flask", "sqlalchemy", "boto3", "gunicorn", "weasyprint", "upgrade-server"}


def _imports(source: Path) -> set[str]:
    """The modules a file imports, absolute and dotted."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _third_party_imports() -> set[str]:
    return {
        name
        for source in (AGENT / "upgrade_agent").glob("*.py")
        for name in _imports(source)
        if name.split(".")[0] not in sys.stdlib_module_names | {"upgrade_agent", "__future__"}
    }


def test_the_agent_imports_only_public_modules_of_what_it_declares():
    declared = tomllib.loads((AGENT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {
        requirement.split(">")[0].split("<")[0].split("=")[0].strip().lower()
        for requirement in declared
    }
    imported = _third_party_imports()
    assert (
        {name.split(".")[0] for name in imported}
        == names
        == {
            "click",
            "semver",
            "tuf",
            "urllib3",
        }
    )
    private = sorted(name for name in imported if any(p.startswith("_") for p in name.split(".")))
    assert private == []


def test_no_proxy_hosts_and_domains_go_direct(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("all_proxy", "http://other.example:8080")
    monkeypatch.setenv("no_proxy", "localhost, .internal.example")
    proxies = EnvironmentProxies(headers={"Authorization": "Bearer t"})
    assert proxies.proxy_for("http://updates.example.com/tuf/") == "http://proxy.example:3128"
    assert proxies.proxy_for("https://updates.example.com/tuf/") == "http://other.example:8080"
    assert proxies.proxy_for("http://localhost:8000/tuf/") is None
    assert proxies.proxy_for("http://cdn.internal.example/tuf/") is None
    assert proxies.proxy_for("http://internal.example/tuf/") is None
    # One pool per proxy; the device token goes with every request.
    pool = proxies.pool_for("http://updates.example.com/")
    assert pool is proxies.pool_for("http://mirror.example.com/")
    assert pool.proxy is not None and pool.proxy.host == "proxy.example"
    assert proxies.pool_for("http://localhost/").headers == {"Authorization": "Bearer t"}


def _pip(venv: Path) -> list[str]:
    """This environment's pip, acting on the virtual environment `venv`."""
    python = str(venv / "bin" / "python")
    return [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"]


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory) -> Path:
    """A fresh virtual environment with only the agent's package installed
    (from a copy of agent/, so nothing is built inside the repository)."""
    root = tmp_path_factory.mktemp("agent-venv")
    source = root / "src"
    shutil.copytree(
        AGENT, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # This environment's pip installs into the new one (about 4 s from the pip cache).
    subprocess.run(
        [*_pip(venv), "install", "-q", str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return venv


def test_installing_the_agent_pulls_nothing_of_the_server(agent_venv):
    listed = subprocess.run(
        [*_pip(agent_venv), "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    packages = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert "upgrade-agent" in packages
    assert packages & SERVER_STACK == set()
    assert not any(name.startswith("flask") for name in packages)
    helped = subprocess.run(
        [str(agent_venv / "bin" / "upgrade-agent"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    assert "device agent" in helped.stdout
    where = subprocess.run(
        [
            str(agent_venv / "bin" / "python"),
            "-c",
            "import upgrade_agent; print(upgrade_agent.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=agent_venv,
    ).stdout
    assert Path(where.strip()).is_relative_to(agent_venv)


def _publish(live, folder: Path, version: str, *extra: str) -> None:
    artifact = folder / f"gw-{version}.bin"
    artifact.write_bytes(f"firmware {version}\n".encode() * 2000)
    args = ["publish", "gw", version, str(artifact), "--channel", "stable", *extra, "--no-progress"]
    result = CliRunner().invoke(
        remote_group,
        ["--server", live.url, *args],
        env={"UPGRADE_SERVER_TOKEN": live.admin_token},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output


@pytest.mark.own_app
def test_the_installed_agent_updates_a_device_through_the_environments_proxy(
    agent_venv, scratch_url, tmp_path
):
    with live_server(scratch_url, tmp_path / "instance") as live:
        add_product(live, "gw")
        _publish(live, tmp_path, "1.0.0")
        _publish(live, tmp_path, "1.1.0", "--min-from", "1.0.0")
        with live.app.app_context():
            organisations.create_organisation(db.session, Principal.cli(), slug="acme", name="ACME")
            token = provisioning.create_device(
                db.session,
                Principal.cli(),
                {"serial": "P-1", "product": "gw", "hardware_revision": "rev-a"}
                | {"organisation": "acme"},
            ).secret
            db.session.commit()
        root = urllib.request.urlopen(f"{live.url}/tuf/gw/metadata/1.root.json").read()
        home = tmp_path / "device"
        config = write_config(home, live.url, token, "rev-a", root)
        with proxy_of(live.url) as proxy:
            seen: list[tuple[str, str, str]] = []
            forward = proxy.forward

            def recording(environ):
                seen.append(
                    (
                        environ["PATH_INFO"],
                        environ.get("HTTP_AUTHORIZATION", ""),
                        environ.get("HTTP_USER_AGENT", ""),
                    )
                )
                return forward(environ)

            proxy.forward = recording
            env = {
                key: value
                for key, value in os.environ.items()
                if not key.lower().endswith("_proxy") and not key.startswith("PYTHON")
            }
            env["http_proxy"] = proxy.url
            agent = str(agent_venv / "bin" / "upgrade-agent")
            result = subprocess.run(
                [agent, "--config", str(config), "run", "--until-idle"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env=env,
            )
        assert result.returncode == 0, result.stderr
        assert installed(home) == ["1.0.0", "1.1.0"]
        state = json.loads((home / "state" / "state.json").read_text())
        assert state["current_version"] == "1.1.0"
        # The signed metadata came through the proxy, with the device token.
        metadata = [s for s in seen if s[0].startswith("/tuf/gw/metadata/")]
        paths = {path.rsplit("/", 1)[1] for path, _, _ in metadata}
        assert "timestamp.json" in paths
        assert any(path.endswith("targets.json") for path in paths)
        assert {auth for _, auth, _ in metadata} == {f"Bearer {token}"}
        assert all(ua.startswith("upgrade-agent") for _, _, ua in seen)
        assert any(ua.startswith("upgrade-agent python-tuf/") for _, _, ua in metadata)
        # So did the update check, the download and the install reports.
        calls = {path for path, _, _ in seen}
        assert "/api/device/v1/update-check" in calls and "/api/device/v1/installs" in calls
        assert any(path.endswith("/artifact") for path in calls)

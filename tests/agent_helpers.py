"""Agent configs for tests: a device with a state folder and an install command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The install command: records the installed file under state/installed/<version>.
INSTALLER = (
    "import os, shutil, sys; d = os.path.join(sys.argv[1], 'installed'); "
    "os.makedirs(d, exist_ok=True); shutil.copy(os.environ['UPGRADE_FILE'], "
    "os.path.join(d, os.environ['UPGRADE_VERSION']))"
)


def write_config(
    home: Path,
    server: str,
    token: str,
    revision: str,
    root: bytes,
    product: str = "gw",
    channel: str = "stable",
    initial_version: str | None = "0.9.0",
    extra: str = "",
    install_command: list[str] | None = None,
) -> Path:
    """An agent config; without `initial_version` the agent asks the server.
    The install command is INSTALLER unless another is given."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "root.json").write_bytes(root)
    state = home / "state"
    config = home / "agent.toml"
    command = json.dumps(install_command or [sys.executable, "-c", INSTALLER, str(home)])
    config.write_text(
        f'server = "{server}"\n'
        f'token = "{token}"\n'
        f'product = "{product}"\n'
        f'hardware_revision = "{revision}"\n'
        f'channel = "{channel}"\n'
        f'root = "{home / "root.json"}"\n'
        f'state_dir = "{state}"\n'
        f"install_command = {command}\n"
        + (f'initial_version = "{initial_version}"\n' if initial_version else "")
        + extra
    )
    return config


def installed(home: Path) -> list[str]:
    folder = home / "installed"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

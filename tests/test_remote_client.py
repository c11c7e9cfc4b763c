"""The publisher's client (`upgrade-server remote …`) creates no server state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import add_product, live_server

pytestmark = pytest.mark.own_app


def _upgrade_server(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from upgrade_server.cli.main import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _client_env(**extra: str) -> dict[str, str]:
    # Nothing of the test run's server settings: the client is on a publisher's machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPGRADE_SERVER_")}
    return {**env, **extra}


def test_remote_client_creates_no_files_in_its_folder(scratch_url, tmp_path):
    empty = tmp_path / "publisher"
    empty.mkdir()
    with live_server(scratch_url, tmp_path / "instance") as live:
        add_product(live, "gw")
        env = _client_env(UPGRADE_SERVER_URL=live.url, UPGRADE_SERVER_TOKEN=live.admin_token)

        helped = _upgrade_server(empty, "remote", "--help", env=env)
        assert helped.returncode == 0, helped.stderr
        assert "publish" in helped.stdout

        firmware = tmp_path / "fw.bin"
        firmware.write_bytes(b"firmware 1.0.0")
        published = _upgrade_server(
            empty, "remote", "publish", "gw", "1.0.0", str(firmware), "--no-progress", env=env
        )
        assert published.returncode == 0, published.stderr

        shown = _upgrade_server(empty, "remote", "show", "gw", "1.0.0", env=env)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["version"] == "1.0.0"

    assert list(empty.iterdir()) == []

"""End to end with gunicorn and agents as separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from click.testing import CliRunner

from tests.agent_helpers import installed, write_config
from tests.gunicorn_server import gunicorn, provision, seed_publisher
from upgrade_server.cli.remote import remote_group

pytestmark = [pytest.mark.own_app, pytest.mark.slow]


def _remote(url, token, *args):
    result = CliRunner().invoke(
        remote_group,
        ["--server", url, *args],
        env={"UPGRADE_SERVER_TOKEN": token},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_devices_walk_the_upgrade_path_by_themselves(scratch_url, tmp_path):
    instance = tmp_path / "instance"
    token, _ = seed_publisher(scratch_url, instance, revisions=("rev-a", "rev-b"))
    device_a = provision(scratch_url, instance, "gw", "rev-a", "A-1")
    device_b = provision(scratch_url, instance, "gw", "rev-b", "B-1")
    with gunicorn(scratch_url, instance, workers=2) as url:
        for version, extra in (
            ("1.0.0", []),
            ("1.1.0", ["--min-from", "1.0.0"]),
            ("2.0.0", ["--min-from", "1.1.0", "--hardware", "rev-a"]),
        ):
            artifact = tmp_path / f"gw-{version}.bin"
            artifact.write_bytes(f"firmware {version}\n".encode() * 5000)
            _remote(
                url,
                token,
                "publish",
                "gw",
                version,
                str(artifact),
                "--channel",
                "stable",
                *extra,
                "--no-progress",
            )
        root = urllib.request.urlopen(f"{url}/tuf/gw/metadata/1.root.json").read()
        homes = {}
        for name, secret, revision in (("a", device_a, "rev-a"), ("b", device_b, "rev-b")):
            homes[name] = tmp_path / f"device-{name}"
            config = write_config(homes[name], url, secret, revision, root)
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "upgrade_server.agent.cli",
                    "--config",
                    str(config),
                    "run",
                    "--until-idle",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, result.stderr
        assert installed(homes["a"]) == ["1.0.0", "1.1.0", "2.0.0"]
        assert installed(homes["b"]) == ["1.0.0", "1.1.0"]  # 2.0.0 excludes rev-b
        state_a = json.loads((homes["a"] / "state" / "state.json").read_text())
        assert state_a["current_version"] == "2.0.0"
        # The install log shows every step of every release.
        headers = {"Authorization": f"Bearer {token}"}
        devices = json.load(
            urllib.request.urlopen(
                urllib.request.Request(f"{url}/api/v1/devices?serial_prefix=A-", headers=headers)
            )
        )["items"]
        assert devices[0]["current_version"] == "2.0.0"
        log = json.load(
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{url}/api/v1/devices/{devices[0]['id']}/installs?limit=100", headers=headers
                )
            )
        )
        steps = [(e["version"], e["status"]) for e in log["items"]]
        expected = [
            (v, s)
            for v in ("1.0.0", "1.1.0", "2.0.0")
            for s in ("downloading", "downloaded", "verified", "installing", "installed")
        ]
        assert steps == expected

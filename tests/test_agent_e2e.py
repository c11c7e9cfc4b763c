"""End to end with gunicorn and agents as separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import timedelta

import pytest
from click.testing import CliRunner

from tests.agent_helpers import installed, write_config
from tests.clock import ZONE, ExpiredDevice
from tests.gunicorn_server import gunicorn, provision, seed_publisher
from upgrade_server.cli.remote import remote_group
from upgrade_server.clock import today_in

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


def _publish_firmware(url, token, folder, version, *extra):
    artifact = folder / f"gw-{version}.bin"
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
            _publish_firmware(url, token, tmp_path, version, *extra)
        root = urllib.request.urlopen(f"{url}/tuf/gw/metadata/1.root.json").read()
        homes = {}
        for name, secret, revision in (("a", device_a, "rev-a"), ("b", device_b, "rev-b")):
            homes[name] = tmp_path / f"device-{name}"
            config = write_config(homes[name], url, secret, revision, root)
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "upgrade_agent.cli",
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


def _agent(config, *command):
    result = subprocess.run(
        [sys.executable, "-m", "upgrade_agent.cli", "--config", str(config), *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_expired_device_stays_on_what_it_was_covered_for_until_a_contract(scratch_url, tmp_path):
    from sqlalchemy import create_engine, update

    from upgrade_server import create_app
    from upgrade_server.config import Settings
    from upgrade_server.extensions import db
    from upgrade_server.products.models import Product
    from upgrade_server.releases.models import Release

    instance = tmp_path / "instance"
    token, _ = seed_publisher(scratch_url, instance)
    # Upgrade coverage ended about a year ago; the server runs on the real
    # clock, so the dates are relative to the real today.
    dates = ExpiredDevice.relative_to(today_in(ZONE))
    secret = provision(
        scratch_url,
        instance,
        "gw",
        "rev-a",
        "X-1",
        delivered_on=dates.delivered_on.isoformat(),
        accepted_on=dates.accepted_on.isoformat(),
    )
    with gunicorn(scratch_url, instance, workers=2) as url:
        for version in ("1.0.0", "2.0.0"):
            _publish_firmware(url, token, tmp_path, version)
        # History: 1.0.0 came out while the device was covered.
        engine = create_engine(scratch_url)
        with engine.begin() as conn:
            conn.execute(
                update(Release)
                .where(Release.version == "1.0.0")
                .values(published_at=dates.covered_release)
            )
            conn.execute(update(Product).values(release_generation=Product.release_generation + 1))
        engine.dispose()
        root = urllib.request.urlopen(f"{url}/tuf/gw/metadata/1.root.json").read()
        home = tmp_path / "device"
        config = write_config(home, url, secret, "rev-a", root)
        _agent(config, "run", "--until-idle")
        assert installed(home) == ["1.0.0"]
        out = _agent(config, "check")
        assert "up to date (1.0.0)" in out
        assert f"2.0.0 is not covered: upgrade coverage ended on {dates.ended_on}" in out

        # The customer renews from the day after coverage ended, by the CLI.
        renewal = (dates.renewal_starts, today_in(ZONE) + timedelta(days=365))
        app = create_app({"SETTINGS": Settings(instance_path=instance, database_url=scratch_url)})
        with app.app_context():
            result = app.test_cli_runner().invoke(
                args=[
                    "coverage",
                    "add-contract",
                    "--device",
                    "X-1",
                    "--from",
                    renewal[0].isoformat(),
                    "--through",
                    renewal[1].isoformat(),
                    "--reference",
                    "SC-2025-117",
                ]
            )
            assert result.exit_code == 0, result.output
            shown = app.test_cli_runner().invoke(args=["coverage", "show", "X-1"])
            db.engine.dispose()
        assert f"upgrades covered through {renewal[1]}" in " ".join(shown.output.split())
        assert f"grant {renewal[0]}..{renewal[1]} contract SC-2025-117" in shown.output
        # Its next update check (the agent makes one at least every
        # full_check_seconds, whatever the static timestamp says) offers 2.0.0.
        assert "offered 2.0.0" in _agent(config, "check")
        _agent(config, "run", "--until-idle")
        assert installed(home) == ["1.0.0", "2.0.0"]


def _demo_agent_config(output: str) -> str:
    """The agent config the demo printed: the lines after its heading, up to
    the blank line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Agent config for "))
    config = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        config.append(line)
    return "\n".join(config) + "\n"


def test_the_agents_first_run_with_the_demos_config_keeps_the_version_the_server_knew(
    scratch_url, tmp_path
):
    import stat
    import tomllib

    from sqlalchemy import create_engine, select

    from upgrade_server import create_app
    from upgrade_server.config import Settings
    from upgrade_server.devices.models import Device
    from upgrade_server.extensions import db
    from upgrade_server.migrate import upgrade
    from upgrade_server.updates.models import InstallEvent

    instance = tmp_path / "instance"
    instance.mkdir()
    upgrade(scratch_url)
    engine = create_engine(scratch_url)

    def server_side() -> tuple[str | None, list[tuple[str, str]]]:
        with engine.connect() as conn:
            device = conn.execute(select(Device).where(Device.serial == "DEMO-0002")).one()
            steps = conn.execute(
                select(InstallEvent.version, InstallEvent.status)
                .where(InstallEvent.device_id == device.id)
                .order_by(InstallEvent.id)
            ).all()
        return device.current_version, [tuple(s) for s in steps]

    # Reports written in each request: what the server knows is read at once.
    with gunicorn(scratch_url, instance, workers=2, UPGRADE_SERVER_REPORT_BATCH_SECONDS="0") as url:
        app = create_app({"SETTINGS": Settings(instance_path=instance, database_url=scratch_url)})
        with app.app_context():
            demo = app.test_cli_runner().invoke(args=["demo", "--port", url.rsplit(":", 1)[1]])
            db.engine.dispose()
        assert demo.exit_code == 0, demo.output
        printed = _demo_agent_config(demo.output)
        settings = tomllib.loads(printed)
        assert settings["server"] == url
        assert {"token_file", "root", "product", "hardware_revision", "channel"} <= set(settings)
        assert "initial_version" not in settings
        token_file = instance / "demo-agent" / "DEMO-0002" / "token"
        assert settings["token_file"] == str(token_file)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert token_file.read_text().strip() not in demo.output
        assert server_side() == ("0.9.0", [])

        config = tmp_path / "agent.toml"
        config.write_text(printed)  # exactly what the demo printed
        command = [sys.executable, "-m", "upgrade_agent.cli", "--config", str(config)]
        first = subprocess.run(
            [*command, "run", "--until-idle"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert first.returncode == 0, first.stderr
        # The demo release changes the watchdog timeout, which needs the
        # operator: the device says so and waits, at the version the server knew.
        assert "installed version 0.9.0, as the server knows it" in first.stderr
        assert "1.0.0 waits for the operator" in first.stderr
        assert "watchdog_timeout: default 30 s -> 60 s" in first.stderr
        assert server_side() == ("0.9.0", [("1.0.0", "waiting")])

        _agent(config, "acknowledge", "1.0.0")
        _agent(config, "run", "--until-idle")
        version, steps = server_side()
        assert version == "1.0.0"
        assert steps[-1] == ("1.0.0", "installed")
    engine.dispose()

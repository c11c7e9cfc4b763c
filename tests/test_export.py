"""Signed metadata exported as static files, and devices idling on them."""

from __future__ import annotations

import urllib.request

import pytest
from flask import Flask, send_from_directory

from tests.agent_helpers import installed, write_config
from tests.helpers.serving import served
from tests.helpers.tuf import publish_file
from tests.live import add_product, live_server
from tests.proxy import proxy_of
from tests.tuf_client import Device
from upgrade_agent.config import AgentConfig
from upgrade_agent.core import Agent
from upgrade_server.accounts.principal import Principal
from upgrade_server.devices import provisioning
from upgrade_server.extensions import db

pytestmark = pytest.mark.own_app


class StaticServer:
    """What nginx or a CDN does with the export folder: files, ETags, 304s."""

    def __init__(self, root) -> None:
        app = Flask("static")

        @app.get("/<path:name>")
        def serve(name):
            return send_from_directory(root, name, max_age=0)

        self._serving = served(app)
        self.url = ""

    def __enter__(self):
        self.url = self._serving.__enter__()
        return self

    def __exit__(self, *exc):
        self._serving.__exit__(*exc)


@pytest.fixture
def exported(scratch_url, tmp_path):
    export = tmp_path / "export"
    with live_server(scratch_url, tmp_path / "instance", export_path=export) as live:
        add_product(live, "gw")
        with StaticServer(export) as static:
            yield {"live": live, "export": export, "static": static, "tmp": tmp_path}


def _publish(world, version):
    artifact = world["tmp"] / f"gw-{version}.bin"
    artifact.write_bytes(f"firmware {version}".encode() * 100)
    publish_file(world["live"], "gw", version, artifact)


def test_every_change_is_exported_and_the_stock_client_reads_it(exported):
    _publish(exported, "1.0.0")
    files = sorted(p.name for p in (exported["export"] / "gw" / "metadata").iterdir())
    assert "timestamp.json" in files and "1.root.json" in files
    static_meta = f"{exported['static'].url}/gw/metadata"
    served = urllib.request.urlopen(f"{exported['live'].url}/tuf/gw/metadata/timestamp.json")
    assert urllib.request.urlopen(f"{static_meta}/timestamp.json").read() == served.read()
    root = (exported["export"] / "gw" / "metadata" / "1.root.json").read_bytes()
    device = Device(exported["live"].url, "gw", root, exported["tmp"] / "device")
    device.metadata_url = f"{static_meta}/"  # metadata from the static copy only
    assert device.custom("1.0.0/gw-1.0.0.bin")["version"] == "1.0.0"
    _publish(exported, "1.1.0")
    assert device.custom("1.1.0/gw-1.1.0.bin")["version"] == "1.1.0"


def test_failed_publish_exports_nothing(exported):
    _publish(exported, "1.0.0")
    before = {p.name: p.read_bytes() for p in (exported["export"] / "gw" / "metadata").iterdir()}
    artifact = exported["tmp"] / "bad.bin"
    artifact.write_bytes(b"x")
    from click.testing import CliRunner

    from upgrade_server.cli.remote import remote_group

    result = CliRunner().invoke(
        remote_group,
        ["--server", exported["live"].url, "publish", "gw", "1.0.0", str(artifact)],
        env={"UPGRADE_SERVER_TOKEN": exported["live"].admin_token},
    )
    assert result.exit_code == 1  # same version, other bytes
    after = {p.name: p.read_bytes() for p in (exported["export"] / "gw" / "metadata").iterdir()}
    assert after == before


def test_idle_devices_poll_the_static_timestamp_only(exported):
    live = exported["live"]
    _publish(exported, "1.0.0")
    with live.app.app_context():
        from upgrade_server.organisations import service as organisations

        organisations.create_organisation(db.session, Principal.cli(), slug="acme", name="A")
        token = provisioning.create_device(
            db.session,
            Principal.cli(),
            {
                "serial": "IDLE-1",
                "product": "gw",
                "hardware_revision": "rev-a",
                "organisation": "acme",
            },
        ).secret
        db.session.commit()
    root = (exported["export"] / "gw" / "metadata" / "1.root.json").read_bytes()
    with proxy_of(live.url) as proxy:
        checks = []
        original = proxy.forward

        def counting(environ):
            if environ["PATH_INFO"].endswith("/update-check"):
                checks.append(1)
            return original(environ)

        proxy.forward = counting
        home = exported["tmp"] / "idle-device"
        config = write_config(home, proxy.url, token, "rev-a", root)
        with config.open("a") as f:
            f.write(f'metadata_url = "{exported["static"].url}/gw/metadata"\n')
        agent = Agent(AgentConfig.load(config), log=lambda m: None)
        assert agent.cycle().version == "1.0.0"  # installs, then...
        assert agent.cycle() is None  # ...asks once more: nothing
        calls = len(checks)
        for _ in range(5):
            assert agent.cycle() is None  # idle: static timestamp unchanged
        assert len(checks) == calls  # no update check reached the server
        _publish(exported, "1.1.0")
        assert agent.cycle().version == "1.1.0"  # the timestamp changed
        assert installed(home) == ["1.0.0", "1.1.0"]
        # After the long interval the device asks even without new metadata.
        agent.config.full_check_seconds = 0
        calls = len(checks)
        agent.cycle()
        assert len(checks) == calls + 1

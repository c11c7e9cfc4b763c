"""The fleet simulation script provisions devices and brings them up to date."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.helpers.tuf import publish_file
from tests.live import add_product, live_server
from upgrade_server.accounts.principal import Principal
from upgrade_server.extensions import db
from upgrade_server.organisations import service as organisations

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fleet_sim.py"


@pytest.mark.own_app
def test_fleet_simulation(scratch_url, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("fleet_sim", SCRIPT)
    fleet = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fleet)
    with live_server(scratch_url, tmp_path / "instance") as live:
        add_product(live, "gw")
        with live.app.app_context():
            organisations.create_organisation(db.session, Principal.cli(), slug="sim", name="S")
            db.session.commit()
        for version, extra in (("1.0.0", []), ("1.1.0", ["--min-from", "1.0.0"])):
            artifact = tmp_path / f"{version}.bin"
            artifact.write_bytes(version.encode() * 1000)
            publish_file(live, "gw", version, artifact, *extra)
        result = fleet.main(
            [
                "--server",
                live.url,
                "--token",
                live.admin_token,
                "--product",
                "gw",
                "--org",
                "sim",
                "--devices",
                "6",
                "--cycles",
                "2",
                "--jitter",
                "0",
                "--state",
                str(tmp_path / "fleet"),
            ]
        )
    assert result["outcomes"] == {"at 1.1.0": 6}
    assert "provisioned 6 devices" in capsys.readouterr().out

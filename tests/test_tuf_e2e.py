"""End to end: publish with the CLI, verify and download with the stock TUF client."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from click.testing import CliRunner

from tests.helpers.tuf import root_of, run_remote
from tests.live import add_product, live_server
from tests.tuf_client import Device
from upgrade_server.cli.remote import remote_group


@pytest.fixture
def live(scratch_url, tmp_path):
    with live_server(scratch_url, tmp_path / "instance") as server:
        yield server


@pytest.mark.own_app
def test_publish_then_stock_client_downloads(live, tmp_path):
    add_product(live, "gw")
    firmware = tmp_path / "gw-1.0.0.bin"
    firmware.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    notes = tmp_path / "notes.zh.md"
    notes.write_text("# 新版本\n修复了若干问题。", encoding="utf-8")
    out = run_remote(
        live,
        "publish",
        "gw",
        "1.0.0",
        str(firmware),
        "--channel",
        "beta",
        "--hardware",
        "rev-a",
        "--notes-zh",
        str(notes),
    )
    assert "published" in out
    device = Device(live.url, "gw", root_of(live, "gw"), tmp_path / "device")
    assert device.fetch("1.0.0/gw-1.0.0.bin") == firmware.read_bytes()
    custom = device.custom("1.0.0/gw-1.0.0.bin")
    assert custom["version"] == "1.0.0"
    assert custom["hardware_revisions"] == ["rev-a"]
    assert custom["channels"] == ["beta"]
    assert custom["product"] == "gw"

    # A promotion shows in the next refresh.
    run_remote(live, "promote", "gw", "1.0.0", "stable")
    assert device.custom("1.0.0/gw-1.0.0.bin")["channels"] == ["beta", "stable"]

    # A withdrawal too: the target is gone from the signed metadata.
    run_remote(live, "withdraw", "gw", "1.0.0", "--reason", "bricks rev-a units")
    assert device.custom("1.0.0/gw-1.0.0.bin") is None
    with pytest.raises(LookupError):
        device.fetch("1.0.0/gw-1.0.0.bin")


@pytest.mark.own_app
def test_republish_is_idempotent_and_other_bytes_conflict(live, tmp_path):
    add_product(live, "gw")
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(b"A" * 1000)
    run_remote(live, "publish", "gw", "2.0.0", str(firmware))
    run_remote(live, "publish", "gw", "2.0.0", str(firmware))
    firmware.write_bytes(b"B" * 1000)
    result = CliRunner().invoke(
        remote_group,
        ["--server", live.url, "publish", "gw", "2.0.0", str(firmware)],
        env={"UPGRADE_SERVER_TOKEN": live.admin_token},
    )
    assert result.exit_code == 1
    assert "409" in result.output and "never changes" in result.output
    listing = run_remote(live, "releases", "gw")
    assert listing.count("2.0.0") == 1


@pytest.mark.own_app
def test_every_root_version_stays_served(live, tmp_path):
    add_product(live, "gw")
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(b"x" * 10)
    run_remote(live, "publish", "gw", "1.0.0", str(firmware))
    device = Device(live.url, "gw", root_of(live, "gw"), tmp_path / "device")
    device.refresh()
    request = urllib.request.Request(
        f"{live.url}/api/v1/products/1/repository/rotate",
        data=json.dumps({"role": "root"}).encode(),
        headers={**live.headers, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as r:
        assert json.load(r)["versions"]["root"] == 2
    for version in (1, 2):
        with urllib.request.urlopen(f"{live.url}/tuf/gw/metadata/{version}.root.json") as r:
            assert json.load(r)["signed"]["version"] == version
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{live.url}/tuf/gw/metadata/3.root.json")
    assert missing.value.code == 404
    # A device holding root v1 walks to v2 and still verifies everything.
    assert device.fetch("1.0.0/fw.bin") == b"x" * 10
    trusted = json.loads((tmp_path / "device" / "metadata" / "root.json").read_bytes())
    assert trusted["signed"]["version"] == 2


@pytest.mark.own_app
def test_offline_targets_keys_with_the_cli(live, tmp_path):
    """Three publishers hold offline keys; two signatures publish; the stock
    client trusts the root.json the CLI wrote."""
    from upgrade_server.cli.keys import keys_group

    add_product(live, "gw")
    for name in ("alice", "bob", "carol"):
        result = CliRunner().invoke(keys_group, ["generate", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert oct((tmp_path / f"{name}.key").stat().st_mode & 0o777) == "0o600"
    run_remote(
        live,
        "init",
        "gw",
        "--bin-bits",
        "2",
        "--targets-threshold",
        "2",
        *[
            arg
            for n in ("alice", "bob", "carol")
            for arg in ("--targets-key", f"{tmp_path / n}.pub.pem")
        ],
    )
    run_remote(live, "sign", "gw", "--key", str(tmp_path / "alice.key"))
    out = run_remote(live, "sign", "gw", "--key", str(tmp_path / "bob.key"))
    assert "5 request(s) signed" in out
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(b"signed offline")
    assert "pending-signatures" in run_remote(
        live, "publish", "gw", "1.0.0", str(firmware), "--no-progress"
    )
    run_remote(live, "repository", "gw", "--root-out", str(tmp_path / "root.json"))
    device = Device(live.url, "gw", (tmp_path / "root.json").read_bytes(), tmp_path / "device")
    assert device.custom("1.0.0/fw.bin") is None
    signed = run_remote(live, "sign", "gw", "--key", str(tmp_path / "carol.key"))
    assert "target 1.0.0/fw.bin" in signed  # the holder sees what it signs
    assert device.custom("1.0.0/fw.bin") is None  # one of two
    run_remote(live, "sign", "gw", "--key", str(tmp_path / "alice.key"))
    assert device.fetch("1.0.0/fw.bin") == b"signed offline"
    assert "1.0.0\tpublished" in run_remote(live, "releases", "gw")

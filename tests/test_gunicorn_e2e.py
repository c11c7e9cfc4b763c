"""Against gunicorn with several workers: the publisher CLI, the stock client, and
timestamp re-signing that no two workers race on."""

from __future__ import annotations

import json
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from tests.gunicorn_server import gunicorn, seed_publisher
from tests.tuf_client import Device
from upgrade_server.cli.remote import remote_group
from upgrade_server.clock import utcnow
from upgrade_server.signing.models import MetadataFile

pytestmark = [pytest.mark.own_app, pytest.mark.slow]


@pytest.fixture
def served(scratch_url, tmp_path):
    instance = tmp_path / "instance"
    token, _ = seed_publisher(scratch_url, instance)
    with gunicorn(scratch_url, instance, workers=2) as url:
        yield {"url": url, "token": token, "db": scratch_url, "tmp": tmp_path}


def _remote(served, *args):
    result = CliRunner().invoke(
        remote_group,
        ["--server", served["url"], *args],
        env={"UPGRADE_SERVER_TOKEN": served["token"]},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url) as r:
        return r.read()


def test_cli_publish_and_stock_client_against_gunicorn(served):
    firmware = served["tmp"] / "gw.bin"
    firmware.write_bytes(os.urandom(5 * 1024 * 1024))
    assert "published" in _remote(served, "publish", "gw", "1.0.0", str(firmware), "--no-progress")
    root = _get(f"{served['url']}/tuf/gw/metadata/1.root.json")
    device = Device(served["url"], "gw", root, served["tmp"] / "device")
    assert device.fetch("1.0.0/gw.bin") == firmware.read_bytes()
    _remote(served, "promote", "gw", "1.0.0", "beta")
    assert device.custom("1.0.0/gw.bin")["channels"] == ["dev", "beta"]
    _remote(served, "withdraw", "gw", "1.0.0", "--reason", "recalled")
    assert device.custom("1.0.0/gw.bin") is None


def test_expiring_timestamp_is_resigned_once_across_workers(served):
    firmware = served["tmp"] / "gw.bin"
    firmware.write_bytes(b"fw")
    _remote(served, "publish", "gw", "1.0.0", str(firmware), "--no-progress")
    engine = create_engine(served["db"])
    with Session(engine) as s:
        latest = s.execute(
            select(MetadataFile)
            .where(MetadataFile.role == "timestamp")
            .order_by(MetadataFile.version.desc())
            .limit(1)
        ).scalar_one()
        before = latest.version
        # Time passes: the timestamp is into the second half of its validity.
        s.execute(
            update(MetadataFile)
            .where(MetadataFile.id == latest.id)
            .values(expires=utcnow() + timedelta(hours=2))
        )
        s.commit()
    url = f"{served['url']}/tuf/gw/metadata/timestamp.json"
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: json.loads(_get(url)), range(64)))
    versions = {a["signed"]["version"] for a in answers}
    assert versions <= {before, before + 1}
    assert answers[-1]["signed"]["version"] == before + 1
    with Session(engine) as s:
        stored = (
            s.execute(
                select(MetadataFile.version)
                .where(MetadataFile.role == "timestamp")
                .order_by(MetadataFile.version)
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert stored == list(range(1, before + 2))  # one new version, no gaps, no duplicates
    root = _get(f"{served['url']}/tuf/gw/metadata/1.root.json")
    device = Device(served["url"], "gw", root, served["tmp"] / "device")
    assert device.fetch("1.0.0/gw.bin") == b"fw"

"""Device reports written behind in batches, as in production."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from tests.faults import read_only_database, wait_until
from tests.gunicorn_server import provision, seed_publisher
from upgrade_server import background, create_app
from upgrade_server.clock import utcnow
from upgrade_server.config import Settings
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db
from upgrade_server.updates import reports
from upgrade_server.updates.reports import ReportWriter


def _devices(url, instance, count):
    seed_publisher(url, instance, revisions=("rev-a",))
    tokens = [provision(url, instance, "gw", "rev-a", f"R-{n}") for n in range(1, count + 1)]
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = conn.execute(select(Device.id).order_by(Device.id)).scalars().all()
    engine.dispose()
    return ids, tokens


def _seen(engine):
    with engine.connect() as conn:
        return conn.execute(select(Device.last_seen_at).order_by(Device.id)).scalars().all()


@pytest.mark.own_app
def test_reports_are_batched_newest_wins_and_survive_a_failed_flush(
    scratch_url, tmp_path, monkeypatch
):
    seed_publisher(scratch_url, tmp_path / "instance", revisions=("rev-a",))
    for serial in ("R-1", "R-2", "R-3"):
        provision(scratch_url, tmp_path / "instance", "gw", "rev-a", serial)
    # On PostgreSQL a group of devices is one statement per CHUNK of them.
    monkeypatch.setattr(reports, "CHUNK", 1)
    engine = create_engine(scratch_url)
    writer = ReportWriter(engine, interval=3600)  # flushed by hand below
    with engine.connect() as conn:
        ids = conn.execute(select(Device.id).order_by(Device.id)).scalars().all()
    early = datetime(2026, 1, 1, tzinfo=UTC)
    late = datetime(2026, 1, 2, tzinfo=UTC)
    writer.add(ids[0], {"last_seen_at": early, "current_version": "1.0.0"})
    writer.add(ids[0], {"last_seen_at": late})
    writer.add(ids[1], {"last_seen_at": early, "inventory": {"uptime": 5}, "channel": "beta"})
    writer.add(ids[2], {"last_seen_at": early, "current_version": "1.1.0"})  # as ids[0]'s
    with engine.connect() as conn:  # nothing written yet
        assert conn.execute(select(Device.last_seen_at)).scalars().all() == [None] * 3
    good_engine, writer.engine = writer.engine, create_engine("sqlite:////nonexistent/x.db")
    with pytest.raises(OperationalError):
        writer.flush()
    writer.engine = good_engine
    assert writer.flush() == 3
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Device.last_seen_at, Device.current_version, Device.channel, Device.inventory
            ).order_by(Device.id)
        ).all()
    assert rows[0] == (late, "1.0.0", "stable", {})
    assert rows[1] == (early, "0.9.0", "beta", {"uptime": 5})
    assert rows[2] == (early, "1.1.0", "stable", {})
    assert writer.flush() == 0
    engine.dispose()


@pytest.mark.own_app
def test_a_worker_writes_again_once_the_database_takes_writes(scratch_url, tmp_path):
    """Reports queued and writes refused while the database was read-only: once
    it is writable, the same process writes the reports and takes writes."""
    instance = tmp_path / "instance"
    (device_id,), (token,) = _devices(scratch_url, instance, 1)
    headers = {"Authorization": f"Bearer {token}"}
    outside = {"event_id": "evt-1", "status": "installed", "version": "1.0.5"}
    settings = Settings(
        instance_path=instance,
        database_url=scratch_url,
        log_level="CRITICAL",
        report_batch_seconds=0.05,
    )
    app = create_app({"SETTINGS": settings})  # it connects at its first request
    client = app.test_client()
    engine = create_engine(scratch_url)
    try:
        with read_only_database(scratch_url):
            check = client.post(
                "/api/device/v1/update-check",
                json={"current_version": "0.9.0", "attributes": {"uptime": 7}},
                headers=headers,
            )
            assert check.status_code == 204  # reads go on; the report waits
            refused = client.post("/api/device/v1/installs", json=outside, headers=headers)
            assert refused.status_code == 503, refused.get_json()
            assert refused.mimetype == "application/problem+json"

        taken = client.post("/api/device/v1/installs", json=outside, headers=headers)
        assert taken.status_code == 201, taken.get_json()

        def reported():
            with engine.connect() as conn:
                row = conn.execute(
                    select(Device.last_seen_at, Device.inventory).where(Device.id == device_id)
                ).one()
            return row.last_seen_at is not None and row.inventory == {"uptime": 7}

        wait_until(reported, what="the queued report is written")
    finally:
        background.stop(app)
        engine.dispose()
        with app.app_context():
            db.engine.dispose()


@pytest.mark.own_app
def test_a_report_the_database_refuses_is_dropped_alone(scratch_url, tmp_path, caplog):
    """A value no database takes (an unpaired surrogate cannot even be encoded)
    in one device's report: the others are written, that one is logged and
    dropped rather than failing every batch after it."""
    ids, _ = _devices(scratch_url, tmp_path / "instance", 3)
    engine = create_engine(scratch_url)
    writer = ReportWriter(engine, interval=3600)  # flushed by hand below
    seen = utcnow()
    writer.add(ids[0], {"last_seen_at": seen})
    writer.add(ids[1], {"last_seen_at": seen, "current_version": "1.0.0-\ud800"})
    writer.add(ids[2], {"last_seen_at": seen})
    with caplog.at_level(logging.WARNING, logger=reports.__name__):
        assert writer.flush() == 2
    assert _seen(engine) == [seen, None, seen]
    assert f"device {ids[1]}" in caplog.text
    assert writer.flush() == 0  # not retried
    engine.dispose()


@pytest.mark.own_app
def test_postgres_nan_infinity_or_nul_in_one_report_blocks_no_other(
    scratch_url, tmp_path, is_postgres, caplog, monkeypatch
):
    """PostgreSQL refuses NaN and Infinity in JSON and NUL in text (SQLite
    stores them); the devices that sent them lose their report, no one else."""
    if not is_postgres:
        pytest.skip("SQLite stores NaN, Infinity and NUL")
    monkeypatch.setattr(reports, "CHUNK", 2)  # good and bad rows across statements
    ids, _ = _devices(scratch_url, tmp_path / "instance", 6)
    engine = create_engine(scratch_url)
    writer = ReportWriter(engine, interval=3600)
    seen = utcnow()
    bad = {
        ids[1]: {"inventory": {"t": float("nan")}},
        ids[2]: {"inventory": {"t": float("inf")}},
        ids[3]: {"channel": "be\x00ta"},
        ids[4]: {"inventory": {"t": float("-inf")}},
    }
    for device_id in ids:
        writer.add(
            device_id, {"last_seen_at": seen, **bad.get(device_id, {"inventory": {"ok": 1}})}
        )
    with caplog.at_level(logging.WARNING, logger=reports.__name__):
        assert writer.flush() == 2
    assert _seen(engine) == [seen, None, None, None, None, seen]
    for device_id in bad:
        assert f"device {device_id}" in caplog.text
    assert writer.flush() == 0
    engine.dispose()


def test_csv_downloads_never_carry_a_formula_a_spreadsheet_would_run(app):
    """A text a customer typed ("=HYPERLINK(...)", "@SUM(...)") reads as text;
    numbers stay numbers."""
    from upgrade_server.csvfiles import csv_response

    with app.test_request_context():
        rows = [{"title": '=HYPERLINK("http://x")', "note": "@SUM(A1)", "late": -5, "ok": "fine"}]
        body = csv_response(rows, ["title", "note", "late", "ok"], "x.csv").get_data(as_text=True)
    assert body.splitlines()[1] == '"\'=HYPERLINK(""http://x"")",\'@SUM(A1),-5,fine'

"""Device reports written behind in batches, as in production."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from tests.gunicorn_server import provision, seed_publisher
from upgrade_server.devices.models import Device
from upgrade_server.updates import reports
from upgrade_server.updates.reports import ReportWriter


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

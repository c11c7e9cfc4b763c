"""Concurrent writers on one database: none fails, the audit chain stays whole."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from upgrade_server import create_app
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.audit.service import verify_chain
from upgrade_server.config import Settings
from upgrade_server.extensions import db
from upgrade_server.migrate import upgrade


@pytest.mark.own_app
def test_parallel_requests_extend_one_chain(tmp_path, scratch_url):
    url = scratch_url
    upgrade(url)
    app = create_app(
        {"SETTINGS": Settings(instance_path=tmp_path, database_url=url, log_level="CRITICAL")}
    )
    with app.app_context():
        user = accounts.create_user(
            db.session, Principal.cli(), email="a@example.test", name="A", role="admin"
        )
        token = accounts.create_api_token(
            db.session, Principal.cli(), name="t", user_id=user.id
        ).secret
        db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}

    def create(i: int) -> int:
        client = app.test_client()
        r = client.post(
            "/api/v1/organisations", json={"slug": f"c-{i}", "name": f"C {i}"}, headers=headers
        )
        client.get("/api/v1/organisations", headers=headers)
        return r.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(40)))
    assert statuses == [201] * 40
    with app.app_context():
        report = verify_chain(db.session, app.extensions["audit_checkpoints"])
        assert report.ok, report
        assert report.checked == 42  # user, token and 40 organisations
        # Each commit moved the checkpoint on, whichever thread came last.
        assert report.anchored == 42
        if url.startswith("sqlite"):
            mode = db.session.execute(text("PRAGMA journal_mode")).scalar_one()
            keys = db.session.execute(text("PRAGMA foreign_keys")).scalar_one()
            assert (mode, keys) == ("wal", 1)
    with app.app_context():
        db.engine.dispose()

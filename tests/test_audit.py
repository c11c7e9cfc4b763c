"""The audit log: who, what, when, before and after; hash-chained; append-only."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from upgrade_server.audit.service import verify_chain
from upgrade_server.extensions import db


def _entries(client, headers, **filters):
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return client.get(f"/api/v1/audit?limit=500&{query}", headers=headers).get_json()["items"]


def test_api_changes_record_who_what_before_after(client, factory):
    admin = factory.caller("admin")
    org = client.post(
        "/api/v1/organisations", json={"slug": "aud", "name": "Audited"}, headers=admin.headers
    ).get_json()
    client.patch(
        f"/api/v1/organisations/{org['id']}", json={"region": "beijing"}, headers=admin.headers
    )
    entries = _entries(client, admin.headers, object_type="organisations", object_id=org["id"])
    assert [e["action"] for e in entries] == ["organisation.create", "organisation.update"]
    update = entries[1]
    assert update["actor_label"] == admin.user.email
    assert update["actor_type"] == "user"
    assert update["before"]["region"] == "other"
    assert update["after"]["region"] == "beijing"
    assert entries[0]["before"] is None


def test_cli_changes_are_recorded_with_the_cli_actor(runner, client, factory):
    admin = factory.caller("admin")
    result = runner.invoke(args=["org", "create", "--slug", "cli-org", "--name", "CLI Org"])
    assert result.exit_code == 0, result.output
    entries = _entries(client, admin.headers, action="organisation.create")
    assert entries[-1]["actor_type"] == "cli"
    assert entries[-1]["actor_label"].startswith("cli:")


def test_no_secret_reaches_the_audit_log(client, factory):
    admin = factory.caller("admin")
    r = client.post(
        "/api/v1/users",
        json={
            "email": "pw@example.test",
            "name": "PW",
            "role": "viewer",
            "password": "a very long password",
        },
        headers=admin.headers,
    )
    assert r.status_code == 201
    token = client.post("/api/v1/tokens", json={"name": "n"}, headers=admin.headers).get_json()
    entries = str(_entries(client, admin.headers))
    assert "a very long password" not in entries
    assert "argon2" not in entries
    assert token["token"] not in entries


def test_chain_verifies_and_names_the_first_tampered_entry(factory, is_postgres):
    for _ in range(3):
        factory.organisation()
    db.session.flush()
    assert verify_chain(db.session).ok
    target = db.session.execute(text("SELECT max(id) - 1 FROM audit_log")).scalar_one()
    _disable_append_only(is_postgres)
    db.session.execute(
        text("UPDATE audit_log SET actor_label = 'someone else' WHERE id = :id"), {"id": target}
    )
    report = verify_chain(db.session)
    assert not report.ok
    assert report.first_bad_id == target
    assert "content" in report.reason


def test_deleting_an_entry_is_detected(factory, is_postgres):
    for _ in range(3):
        factory.organisation()
    db.session.flush()
    last = db.session.execute(text("SELECT max(id) FROM audit_log")).scalar_one()
    _disable_append_only(is_postgres)
    db.session.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": last - 1})
    report = verify_chain(db.session)
    assert not report.ok and report.first_bad_id == last - 1
    # Truncating the tail is detected too, through the head row.
    db.session.execute(text("DELETE FROM audit_log WHERE id >= :id"), {"id": last - 1})
    report = verify_chain(db.session)
    assert not report.ok and report.first_bad_id == last - 1


def test_the_database_refuses_update_and_delete(factory):
    factory.organisation()
    db.session.flush()
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError), db.session.begin_nested():
            db.session.execute(text(statement))


def test_cli_verify_reports_tampering(runner, factory, is_postgres):
    factory.organisation()
    db.session.commit()
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and "intact" in ok.output
    _disable_append_only(is_postgres)
    first = db.session.execute(text("SELECT min(id) FROM audit_log")).scalar_one()
    db.session.execute(text("UPDATE audit_log SET after = NULL WHERE id = :id"), {"id": first})
    db.session.commit()
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1
    assert f"broken at entry {first}" in bad.output


def test_audit_api_verify(client, factory):
    admin = factory.caller("admin")
    r = client.get("/api/v1/audit/verify", headers=admin.headers)
    assert r.get_json()["ok"] is True, r.get_json()
    assert r.get_json()["checked"] >= 2


def _disable_append_only(is_postgres: bool) -> None:
    """What an attacker with the database owner's rights could do (rolled back after)."""
    if is_postgres:
        db.session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    else:
        db.session.execute(text("DROP TRIGGER audit_log_no_update"))
        db.session.execute(text("DROP TRIGGER audit_log_no_delete"))

"""The audit log: who, what, when, before and after; hash-chained; append-only."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from upgrade_server.audit.checkpoints import CheckpointFile
from upgrade_server.audit.models import AuditEntry, AuditHead
from upgrade_server.audit.service import GENESIS_HASH, compute_hash, verify_chain
from upgrade_server.extensions import db


@pytest.fixture
def checkpoints(app) -> CheckpointFile:
    """This test's checkpoint file (tests/conftest.py gives each test its own)."""
    return app.extensions["audit_checkpoints"]


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


def test_chain_verifies_and_names_the_first_tampered_entry(factory, is_postgres, checkpoints):
    for _ in range(3):
        factory.organisation()
    db.session.flush()
    assert verify_chain(db.session, checkpoints).ok
    target = db.session.execute(text("SELECT max(id) - 1 FROM audit_log")).scalar_one()
    _disable_append_only(is_postgres)
    db.session.execute(
        text("UPDATE audit_log SET actor_label = 'someone else' WHERE id = :id"), {"id": target}
    )
    report = verify_chain(db.session, checkpoints)
    assert not report.ok
    assert report.first_bad_id == target
    assert "content" in report.reason


def test_deleting_an_entry_is_detected(factory, is_postgres, checkpoints):
    for _ in range(3):
        factory.organisation()
    db.session.flush()
    last = db.session.execute(text("SELECT max(id) FROM audit_log")).scalar_one()
    _disable_append_only(is_postgres)
    db.session.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": last - 1})
    report = verify_chain(db.session, checkpoints)
    assert not report.ok and report.first_bad_id == last - 1
    # Truncating the tail is detected too, through the head row.
    db.session.execute(text("DELETE FROM audit_log WHERE id >= :id"), {"id": last - 1})
    report = verify_chain(db.session, checkpoints)
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


def _commit_entries(factory, count: int) -> int:
    """`count` changes committed, each with its entry; returns the last entry's id."""
    for _ in range(count):
        factory.organisation()
        db.session.commit()
    return db.session.execute(text("SELECT max(id) FROM audit_log")).scalar_one()


def _move_head_to(last_id: int) -> None:
    entry = db.session.get(AuditEntry, last_id)
    head = db.session.get(AuditHead, 1)
    head.last_entry_id = last_id
    head.last_hash = entry.entry_hash if entry else GENESIS_HASH
    db.session.flush()


def _verify(client, runner, admin):
    api = client.get("/api/v1/audit/verify", headers=admin.headers).get_json()
    return api, runner.invoke(args=["audit", "verify"])


def test_an_untouched_chain_verifies_and_its_checkpoint_vouches_for_it(client, runner, factory):
    admin = factory.caller("admin")
    _commit_entries(factory, 3)
    api, cli = _verify(client, runner, admin)
    assert api["ok"] is True, api
    # Every committed entry, the admin's own creation included, is anchored.
    assert api["anchored"] == api["checked"] >= 5
    assert api["anchored_at"] is not None
    assert cli.exit_code == 0 and "intact" in cli.output and "vouches for" in cli.output


def test_cutting_the_tail_and_moving_the_head_back_is_detected(
    client, runner, factory, is_postgres
):
    admin = factory.caller("admin")
    last = _commit_entries(factory, 4)
    _disable_append_only(is_postgres)
    db.session.execute(text("DELETE FROM audit_log WHERE id > :id"), {"id": last - 2})
    _move_head_to(last - 2)
    db.session.commit()
    api, cli = _verify(client, runner, admin)
    assert api["ok"] is False
    assert api["first_bad_id"] == last - 1
    assert "removed" in api["reason"]
    assert cli.exit_code == 1 and f"broken at entry {last - 1}" in cli.output


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_rewriting_from_an_entry_on_with_the_plain_hashes_recomputed_is_detected(
    client, runner, factory, is_postgres, where
):
    admin = factory.caller("admin")
    last = _commit_entries(factory, 4)
    start = {"first": 1, "middle": last - 2, "last": last}[where]
    _disable_append_only(is_postgres)
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.id >= start).order_by(AuditEntry.id)
    ).all()
    entries[0].actor_label = "someone else"
    prev_hash = entries[0].prev_hash
    for entry in entries:
        entry.prev_hash = prev_hash
        entry.entry_hash = prev_hash = compute_hash(prev_hash, entry)
    _move_head_to(last)
    db.session.commit()
    api, cli = _verify(client, runner, admin)
    assert api["ok"] is False, api
    assert "rewritten" in api["reason"]
    assert cli.exit_code == 1 and "rewritten" in cli.output
    # The changes made since do not anchor the rewritten log: it still fails.
    _commit_entries(factory, 1)
    api, _ = _verify(client, runner, admin)
    assert api["ok"] is False and "rewritten" in api["reason"]


def test_an_altered_checkpoint_or_another_key_fails(factory, checkpoints):
    _commit_entries(factory, 2)
    assert verify_chain(db.session, checkpoints).ok
    stored = json.loads(checkpoints.path.read_text())
    checkpoints.path.write_text(json.dumps({**stored, "entries": stored["entries"] - 1}))
    report = verify_chain(db.session, checkpoints)
    assert not report.ok and "does not verify" in report.reason
    checkpoints.path.write_text(json.dumps(stored))
    assert verify_chain(db.session, checkpoints).ok
    other_key = CheckpointFile(checkpoints.path, b"another key")
    assert "another key" in verify_chain(db.session, other_key).reason


def test_entries_of_a_rolled_back_savepoint_are_not_anchored(factory, checkpoints):
    last = _commit_entries(factory, 1)
    with pytest.raises(RuntimeError), db.session.begin_nested():
        factory.organisation()
        raise RuntimeError("the change fails")
    db.session.commit()
    assert checkpoints.read().entries == last
    assert verify_chain(db.session, checkpoints).ok


def test_after_a_restore_the_operator_anchors_the_log_again(runner, factory, is_postgres):
    last = _commit_entries(factory, 3)
    # What restoring an older backup looks like: the last entries are gone.
    _disable_append_only(is_postgres)
    db.session.execute(text("DELETE FROM audit_log WHERE id > :id"), {"id": last - 1})
    _move_head_to(last - 1)
    db.session.commit()
    refused = runner.invoke(args=["audit", "checkpoint"])
    assert refused.exit_code == 1 and "removed" in refused.output
    replaced = runner.invoke(args=["audit", "checkpoint", "--replace"])
    assert replaced.exit_code == 0, replaced.output
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    # Who replaced the checkpoint, and what it held, is in the log itself.
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry.action == "audit.checkpoint.replace" and entry.actor_type == "cli"
    assert entry.before["entries"] == last and entry.after["entries"] == last - 1
    assert f"vouches for {last}" in verified.output

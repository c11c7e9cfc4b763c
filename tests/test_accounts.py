"""Users, passwords and tokens: shown once, stored hashed, expiring, revocable."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.orm import sessionmaker

from tests.helpers.problems import assert_problem
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.models import ApiToken, User
from upgrade_server.accounts.principal import Principal
from upgrade_server.clock import utcnow
from upgrade_server.config import Settings
from upgrade_server.errors import ConflictError
from upgrade_server.extensions import db
from upgrade_server.migrate import upgrade


def _database_text(session) -> str:
    """Every value of every table, as one string."""
    metadata = MetaData()
    metadata.reflect(bind=session.connection())
    chunks = []
    for table in metadata.sorted_tables:
        for row in session.execute(select(table)):
            chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


def test_raw_tokens_are_nowhere_in_the_database(client, factory):
    admin = factory.caller("admin")
    r = client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin.headers)
    api_secret = r.get_json()["token"]
    device, device_secret = factory.device()
    rotated = client.post(f"/api/v1/devices/{device.id}/token", headers=admin.headers)
    rotated_secret = rotated.get_json()["token"]
    db.session.commit()
    dump = _database_text(db.session)
    for secret in (admin.token, api_secret, device_secret, rotated_secret):
        assert secret not in dump
        assert secret[4:] not in dump
    assert len(dump) > 1000  # the dump did read the tables


def test_password_is_stored_as_argon2(factory):
    user = factory.user("viewer", password="correct horse battery")
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse battery" not in user.password_hash
    assert accounts.check_password(user, "correct horse battery")
    assert not accounts.check_password(user, "wrong horse battery")


def test_short_password_refused(client, factory):
    admin = factory.caller("admin")
    r = client.post(
        "/api/v1/users",
        json={"email": "p@example.test", "name": "P", "role": "viewer", "password": "short"},
        headers=admin.headers,
    )
    assert r.status_code == 422


def test_token_is_shown_once_and_listed_without_secret(client, factory):
    admin = factory.caller("admin")
    created = client.post(
        "/api/v1/tokens", json={"name": "laptop", "expires_in_days": 7}, headers=admin.headers
    ).get_json()
    assert created["token"].startswith("usk_")
    assert created["prefix"] == created["token"][:12]
    listed = client.get("/api/v1/tokens", headers=admin.headers).get_json()["items"]
    assert all("token" not in t for t in listed)
    assert created["id"] in [t["id"] for t in listed]
    lifetime = created["expires_at"]
    assert lifetime > (utcnow() + timedelta(days=6)).isoformat()
    assert lifetime < (utcnow() + timedelta(days=8)).isoformat()
    # The new token works.
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/users/me", headers=headers).get_json()["id"] == admin.user.id


def test_revoked_token_is_refused_at_once(client, factory):
    admin = factory.caller("admin")
    other = client.post("/api/v1/tokens", json={"name": "t"}, headers=admin.headers).get_json()
    headers = {"Authorization": f"Bearer {other['token']}"}
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/tokens/{other['id']}", headers=headers).status_code == 200
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401


def test_expired_token_is_refused(client, factory):
    admin = factory.caller("admin")
    token = db.session.execute(
        select(ApiToken).where(ApiToken.user_id == admin.user.id)
    ).scalar_one()
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/api/v1/users/me", headers=admin.headers).status_code == 401


def test_users_manage_only_their_own_tokens(client, factory):
    alice = factory.caller("viewer")
    bob = factory.caller("viewer")
    bob_token = db.session.execute(
        select(ApiToken).where(ApiToken.user_id == bob.user.id)
    ).scalar_one()
    assert client.delete(f"/api/v1/tokens/{bob_token.id}", headers=alice.headers).status_code == 404
    r = client.post(
        "/api/v1/tokens", json={"name": "x", "user_id": bob.user.id}, headers=alice.headers
    )
    assert r.status_code == 403
    ids = [t["id"] for t in client.get("/api/v1/tokens", headers=alice.headers).get_json()["items"]]
    assert bob_token.id not in ids


def test_admin_issues_token_for_another_user(client, factory):
    admin = factory.caller("admin")
    user = factory.user("support")
    db.session.commit()
    r = client.post(
        "/api/v1/tokens", json={"name": "for support", "user_id": user.id}, headers=admin.headers
    )
    assert r.status_code == 201
    headers = {"Authorization": f"Bearer {r.get_json()['token']}"}
    assert client.get("/api/v1/users/me", headers=headers).get_json()["role"] == "support"


def test_deactivating_a_user_revokes_its_tokens(client, factory):
    admin = factory.caller("admin")
    victim = factory.caller("publisher")
    assert client.get("/api/v1/users/me", headers=victim.headers).status_code == 200
    r = client.patch(
        f"/api/v1/users/{victim.user.id}", json={"active": False}, headers=admin.headers
    )
    assert r.status_code == 200
    assert client.get("/api/v1/users/me", headers=victim.headers).status_code == 401
    tokens = db.session.execute(
        select(ApiToken).where(ApiToken.user_id == victim.user.id)
    ).scalars()
    assert all(t.revoked_at is not None for t in tokens)


def test_admin_cannot_deactivate_itself(client, factory):
    admin = factory.caller("admin")
    r = client.patch(
        f"/api/v1/users/{admin.user.id}", json={"active": False}, headers=admin.headers
    )
    assert r.status_code == 409


def test_user_roles_and_organisations_must_match(client, factory):
    admin = factory.caller("admin")
    org = factory.organisation()
    db.session.commit()
    bad = [
        {"role": "customer-viewer"},  # no organisation
        {"role": "viewer", "organisation_id": org.id},  # vendor role in an organisation
        {"role": "customer-viewer", "organisation_id": 99999},
    ]
    for i, extra in enumerate(bad):
        body = {"email": f"m{i}@example.test", "name": "M", **extra}
        assert client.post("/api/v1/users", json=body, headers=admin.headers).status_code == 422


def test_email_is_unique_case_insensitively(client, factory):
    admin = factory.caller("admin")
    body = {"email": "Same@Example.test", "name": "S", "role": "viewer"}
    assert client.post("/api/v1/users", json=body, headers=admin.headers).status_code == 201
    body["email"] = "same@example.TEST"
    assert client.post("/api/v1/users", json=body, headers=admin.headers).status_code == 409


def test_device_token_rotation_and_revocation(client, factory):
    admin = factory.caller("admin")
    device, secret = factory.device()
    device_headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/device/v1/device", headers=device_headers).status_code == 200
    new = client.post(f"/api/v1/devices/{device.id}/token", headers=admin.headers).get_json()
    assert client.get("/api/device/v1/device", headers=device_headers).status_code == 401
    new_headers = {"Authorization": f"Bearer {new['token']}"}
    assert client.get("/api/device/v1/device", headers=new_headers).status_code == 200
    # The device rotates its own token.
    own = client.post("/api/device/v1/token", headers=new_headers).get_json()
    assert client.get("/api/device/v1/device", headers=new_headers).status_code == 401
    own_headers = {"Authorization": f"Bearer {own['token']}"}
    assert client.get("/api/device/v1/device", headers=own_headers).status_code == 200
    # Revocation locks it out.
    assert (
        client.delete(f"/api/v1/devices/{device.id}/token", headers=admin.headers).status_code
        == 204
    )
    assert client.get("/api/device/v1/device", headers=own_headers).status_code == 401


def test_device_call_marks_it_seen(client, factory):
    device, secret = factory.device()
    assert device.last_seen_at is None
    client.get("/api/device/v1/device", headers={"Authorization": f"Bearer {secret}"})
    db.session.expire_all()
    seen = db.session.execute(
        text("SELECT last_seen_at FROM devices WHERE id = :id"), {"id": device.id}
    ).scalar_one()
    assert seen is not None


def test_inactive_users_tokens_fail_even_if_not_revoked(client, factory):
    caller = factory.caller("viewer")
    db.session.get(User, caller.user.id).active = False
    db.session.commit()
    assert client.get("/api/v1/users/me", headers=caller.headers).status_code == 401


def test_the_last_active_admin_can_neither_step_down_nor_be_deactivated(client, factory):
    first = factory.caller("admin")
    second = factory.caller("admin")
    # With another active administrator, one may step down.
    r = client.patch(
        f"/api/v1/users/{second.user.id}", json={"role": "support"}, headers=second.headers
    )
    assert r.status_code == 200, r.get_json()
    # An inactive administrator does not count.
    dormant = factory.caller("admin")
    r = client.patch(
        f"/api/v1/users/{dormant.user.id}", json={"active": False}, headers=first.headers
    )
    assert r.status_code == 200, r.get_json()
    r = client.patch(
        f"/api/v1/users/{first.user.id}", json={"role": "viewer"}, headers=first.headers
    )
    body = assert_problem(r, 409, "conflict")
    assert "last active administrator" in body["detail"]
    # Nor from the command line's services, which act for no user.
    with pytest.raises(ConflictError):
        accounts.update_user(db.session, Principal.cli(), first.user.id, {"active": False})
    with pytest.raises(ConflictError):
        accounts.update_user(db.session, Principal.cli(), first.user.id, {"role": "publisher"})
    me = client.get("/api/v1/users/me", headers=first.headers)
    assert me.status_code == 200 and me.get_json()["role"] == "admin"


@pytest.mark.own_app
def test_two_admins_demoting_each_other_at_once_leave_one(scratch_url, is_postgres):
    if not is_postgres:
        pytest.skip("SQLite takes one writer at a time: the second starts after the first")
    upgrade(scratch_url)
    engine = create_engine(Settings(database_url=scratch_url).resolved_database_url())
    sessions = sessionmaker(engine)
    cli = Principal.cli()
    with sessions() as session:
        ids = [
            accounts.create_user(
                session, cli, email=f"{name}@example.test", name=name, role="admin"
            ).id
            for name in ("a", "b")
        ]
        session.commit()
    first, second = sessions(), sessions()
    try:
        accounts.update_user(first, cli, ids[1], {"role": "support"})
        with ThreadPoolExecutor(max_workers=1) as pool:
            other = pool.submit(accounts.update_user, second, cli, ids[0], {"role": "support"})
            # The second waits for the first's locks (or, unguarded, finishes).
            # Asked outside a transaction: within one, PostgreSQL answers
            # pg_stat_activity from the transaction's first snapshot.
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            deadline = time.monotonic() + 30
            watching = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                with watching as watcher:
                    while not other.done() and not watcher.execute(waiting).scalar_one():
                        assert time.monotonic() < deadline, "the second neither ran nor waited"
                        time.sleep(0.01)
            except BaseException:
                first.rollback()  # else the pool's exit waits for the second forever
                raise
            first.commit()
            with pytest.raises(ConflictError):
                other.result(timeout=30)
        second.rollback()
        with sessions() as session:
            roles = session.scalars(select(User.role).where(User.active).order_by(User.id)).all()
        assert roles == ["admin", "support"]
    finally:
        first.close()
        second.close()
        engine.dispose()

"""The update check on the connections it keeps in production (the rest of the
suite hands it the test's transaction instead)."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from semver import Version
from sqlalchemy import create_engine, text

from tests.gunicorn_server import provision, seed_publisher
from upgrade_server import create_app, tokens
from upgrade_server.accounts.principal import Principal
from upgrade_server.compiled_queries import compiled
from upgrade_server.config import Settings
from upgrade_server.device_edge import update_check
from upgrade_server.devices import service as devices
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db
from upgrade_server.releases import versions
from upgrade_server.updates import offers

CHECK = "/api/device/v1/update-check"


def _check(client, token: str):
    return client.post(
        CHECK, json={"current_version": "0.9.0"}, headers={"Authorization": f"Bearer {token}"}
    )


def _cut_kept_connection(app, database_url: str) -> None:
    """What a database restart does to the connection the check keeps."""
    if database_url.startswith("sqlite"):
        # The kept connection belongs to this thread: close it underneath.
        with app.extensions["hot_connection"]() as conn:
            conn.connection.dbapi_connection.close()
        return
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    admin.dispose()
    assert killed >= 1


@pytest.mark.own_app
def test_kept_connection_survives_a_restart_and_sees_revocation_at_once(scratch_url, tmp_path):
    instance = tmp_path / "instance"
    seed_publisher(scratch_url, instance)
    token = provision(scratch_url, instance, "gw", "rev-a", "K-1")
    # Reports written with each check, on the kept connection too.
    settings = Settings(
        instance_path=instance,
        database_url=scratch_url,
        log_level="CRITICAL",
        report_batch_seconds=0,
    )
    app = create_app({"SETTINGS": settings})
    client = app.test_client()
    assert _check(client, token).status_code == 204  # nothing published yet
    with app.app_context():
        assert db.session.scalars(db.select(Device.last_seen_at)).one() is not None

    _cut_kept_connection(app, scratch_url)
    # The device does not see the restart: the check reconnects and answers.
    assert _check(client, token).status_code == 204

    with app.app_context():
        device = db.session.scalars(db.select(Device)).one()
        devices.revoke_device_tokens(db.session, Principal.cli(), device)
        db.session.commit()
    r = _check(client, token)
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    with app.app_context():
        db.engine.dispose()


@pytest.mark.own_app
def test_unreachable_database_is_a_503_problem(tmp_path):
    settings = Settings(
        instance_path=tmp_path,
        database_url="postgresql://nobody@127.0.0.1:1/none",
        log_level="CRITICAL",
    )
    r = _check(create_app({"SETTINGS": settings}).test_client(), "usd_whatever")
    assert r.status_code == 503
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["type"].endswith("/problems/service-unavailable")
    assert "Traceback" not in r.get_data(as_text=True)


@pytest.mark.own_app
def test_postgres_prepared_statements_answer_as_the_driver_does(scratch_url, tmp_path):
    """On PostgreSQL the kept connections run the check's queries as prepared
    statements through libpq; rows, types and answers are the driver's own,
    and statements a proxy dropped (DISCARD ALL) are prepared again."""
    if not scratch_url.startswith("postgresql"):
        pytest.skip("the libpq path exists on PostgreSQL only")
    instance = tmp_path / "instance"
    publisher, product_id = seed_publisher(scratch_url, instance)
    token = provision(scratch_url, instance, "gw", "rev-a", "K-1")
    settings = Settings(
        instance_path=instance,
        database_url=scratch_url,
        log_level="CRITICAL",
        report_batch_seconds=0,  # no writer thread outliving this database
    )
    app = create_app({"SETTINGS": settings})
    client = app.test_client()
    metadata = {
        "version": "1.0.0",
        "channels": ["stable"],
        "security_fix": True,
        "parameters": [{"name": "mtu", "new_default": 9000, "operator_action": True}],
    }
    published = client.post(
        f"/api/v1/products/{product_id}/releases",
        data={"metadata": json.dumps(metadata), "artifact": (io.BytesIO(b"fw"), "fw.bin")},
        headers={"Authorization": f"Bearer {publisher}"},
        content_type="multipart/form-data",
    )
    assert published.status_code == 201, published.get_json()
    first = _check(client, token)
    assert first.status_code == 200
    assert first.get_json()["parameters"][0]["operator_action"] is True

    with app.extensions["hot_connection"]() as conn:
        names = conn.exec_driver_sql("SELECT name FROM pg_prepared_statements").scalars().all()
        assert sum(n.startswith("upgrade_server_hot_") for n in names) == 2
        device = update_check.find_device(conn, token)
        values = {
            "product_id": device.product_id,
            "channel": "stable",
            "current_key": versions.sort_key(versions.parse("0.9.0", "v")),
            "hardware_like": "%,rev-a,%",
        }
        for statement, params in (
            (update_check.DEVICE_BY_TOKEN, {"token_hash": tokens.hash_secret(token)}),
            (offers._RELEASE, values),
        ):
            native = compiled(statement, conn).rows(conn, params)
            driver = conn.execute(statement, params).all()
            assert native and [tuple(r) for r in native] == [tuple(r) for r in driver]
        assert native[0].published_at.tzinfo is not None
        conn.exec_driver_sql("DISCARD ALL")  # what a pooling proxy may do

    app.extensions["answer_cache"] = offers.AnswerCache()  # the release query runs again
    again = _check(client, token)
    assert again.status_code == 200
    assert again.get_data() == first.get_data()
    with app.extensions["hot_connection"]() as conn:
        names = conn.exec_driver_sql("SELECT name FROM pg_prepared_statements").scalars().all()
        assert sum(n.startswith("upgrade_server_hot_") for n in names) == 2
        known = conn.connection.info["upgrade_server_prepared"]
        known.clear()  # forgotten here but still prepared there: taken as prepared
    app.extensions["answer_cache"] = offers.AnswerCache()
    assert _check(client, token).get_data() == first.get_data()
    assert len(known) == 2
    with app.app_context():
        db.engine.dispose()


def test_update_check_takes_exactly_the_fields_its_schema_documents(client):
    """The body is specified once: the OpenAPI document shows the fields and
    limits the hot path's parser validates by; any other field is a 422, as on
    every device endpoint."""
    from upgrade_server.errors import InvalidInputError

    spec = client.get("/api/openapi.json").get_json()
    operation = spec["paths"][CHECK]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    documented = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert documented.keys() == update_check.BODY.keys()
    for name, field in update_check.BODY.items():
        assert documented[name].get("maxLength") == (field.limit or None), name
        assert documented[name]["description"] == field.description
    with pytest.raises(InvalidInputError) as refused:
        update_check.parse_body({"current_version": "1.0.0", "colour": "red"})
    assert refused.value.extra["errors"] == [
        {"field": "colour", "message": "not a field of the update check"}
    ]


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.from_regex(r"\A\d{1,3}\.\d{1,3}\.\d{1,3}([-+][0-9A-Za-z.+-]{0,12})?\Z"),
        st.text(alphabet="0123456789.-+aZ\n٣²", max_size=14),
    )
)
def test_the_hot_paths_version_check_agrees_with_the_semver_library(text):
    """The update check matches a version with its own expression (a tenth of
    the library's cost); it accepts exactly what semver.Version.parse does."""
    assert bool(update_check.SEMVER.match(text)) == Version.is_valid(text)

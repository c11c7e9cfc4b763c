"""Every API error is application/problem+json with a stable type; no stack trace."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from tests.helpers.problems import assert_problem
from upgrade_server import create_app
from upgrade_server.config import Settings
from upgrade_server.errors import HTTP_PROBLEMS, PROBLEMS


def test_400_malformed_json(client, factory):
    admin = factory.caller("admin")
    r = client.post(
        "/api/v1/organisations",
        data="{not json",
        content_type="application/json",
        headers=admin.headers,
    )
    assert_problem(r, 400, "bad-request")


def test_401_unknown_expired_or_malformed_token(client):
    for header in ("Bearer usk_nope", "Bearer", "Basic abc", "Bearer " + "x" * 5000):
        assert_problem(
            client.get("/api/v1/devices", headers={"Authorization": header}), 401, "unauthenticated"
        )


def test_401_has_www_authenticate(client):
    r = client.get("/api/v1/devices")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_403_role(client, factory):
    viewer = factory.caller("viewer")
    r = client.post(
        "/api/v1/organisations", json={"slug": "a", "name": "A"}, headers=viewer.headers
    )
    assert_problem(r, 403, "forbidden")


def test_404_unknown_path_and_object(client, factory):
    assert_problem(client.get("/api/v1/does-not-exist"), 404, "not-found")
    admin = factory.caller("admin")
    assert_problem(client.get("/api/v1/devices/424242", headers=admin.headers), 404, "not-found")


def test_405_lists_allowed_methods(client):
    r = client.put("/api/v1/devices")
    assert_problem(r, 405, "method-not-allowed")
    assert "GET" in r.headers["Allow"]


def test_409_duplicate(client, factory):
    admin = factory.caller("admin")
    body = {"slug": "dup-org", "name": "Dup"}
    assert client.post("/api/v1/organisations", json=body, headers=admin.headers).status_code == 201
    r = client.post("/api/v1/organisations", json=body, headers=admin.headers)
    assert_problem(r, 409, "conflict")


def test_413_request_too_large(client, factory, app):
    admin = factory.caller("admin")
    limit = app.config["MAX_CONTENT_LENGTH"]
    r = client.post(
        "/api/v1/devices/import",
        data=b"x" * (limit + 1),
        content_type="text/csv",
        headers=admin.headers,
    )
    assert_problem(r, 413, "payload-too-large")


def test_415_wrong_media_type(client, factory):
    admin = factory.caller("admin")
    r = client.post(
        "/api/v1/organisations", data="slug=a", content_type="text/plain", headers=admin.headers
    )
    assert_problem(r, 415, "unsupported-media-type")
    r = client.post("/api/v1/devices/import", json={"a": 1}, headers=admin.headers)
    assert_problem(r, 415, "unsupported-media-type")


def test_422_lists_each_field(client, factory):
    admin = factory.caller("admin")
    r = client.post(
        "/api/v1/organisations",
        json={"slug": "", "region": "mars", "timezone": "Asia/Shanghai"},
        headers=admin.headers,
    )
    body = assert_problem(r, 422, "invalid-input")
    fields = {e["field"] for e in body["errors"]}
    assert {"slug", "name", "region"} <= fields


def test_422_from_service_rule(client, factory):
    admin = factory.caller("admin")
    r = client.post(
        "/api/v1/organisations",
        json={"slug": "tz-org", "name": "TZ", "timezone": "Mars/Olympus"},
        headers=admin.headers,
    )
    body = assert_problem(r, 422, "invalid-input")
    assert body["errors"] == [
        {"field": "timezone", "message": "'Mars/Olympus' is not an IANA zone"}
    ]


@pytest.fixture
def fragile_app(tmp_path):
    """A separate app whose routes fail on purpose."""
    app = create_app(
        {
            "SETTINGS": Settings(
                instance_path=tmp_path,
                database_url=f"sqlite:///{tmp_path}/x.db",
                log_level="CRITICAL",
            )
        }
    )

    @app.get("/api/v1/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    @app.get("/api/v1/db-down")
    def db_down():
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    return app


@pytest.mark.own_app
def test_500_hides_the_error(fragile_app):
    r = fragile_app.test_client().get("/api/v1/boom")
    body = assert_problem(r, 500, "internal-error")
    assert "secret internal detail" not in r.get_data(as_text=True)
    assert r.headers["X-Request-ID"]
    assert body["instance"] == "/api/v1/boom"


@pytest.mark.own_app
def test_503_database_unreachable(fragile_app):
    assert_problem(fragile_app.test_client().get("/api/v1/db-down"), 503, "service-unavailable")


def test_every_problem_type_is_documented(client):
    slugs = {p.slug for p in PROBLEMS.values()} | {p.slug for p in HTTP_PROBLEMS.values()}
    for slug in slugs:
        r = client.get(f"/problems/{slug}")
        assert r.status_code == 200
        assert r.get_json()["type"] == f"/problems/{slug}"
    assert client.get("/problems/no-such-problem").status_code == 404

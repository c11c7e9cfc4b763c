"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import re

import pytest

from tests.faults import read_only_database
from upgrade_server import create_app
from upgrade_server.config import Settings
from upgrade_server.extensions import db
from upgrade_server.migrate import upgrade


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json()["checks"] == {"database": "ok", "storage": "ok"}


def _app(tmp_path, **settings):
    return create_app(
        {"SETTINGS": Settings(instance_path=tmp_path, log_level="CRITICAL", **settings)}
    )


@pytest.mark.own_app
def test_readyz_503_when_database_unreachable(tmp_path):
    app = _app(tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["checks"]["database"].startswith("unreachable")
    assert body["checks"]["storage"] == "ok"
    assert "database" in body["detail"]
    assert app.test_client().get("/healthz").status_code == 200


@pytest.mark.own_app
def test_readyz_503_when_storage_unusable(tmp_path):
    (tmp_path / "blocker").write_text("a file where the artifact folder should be")
    app = _app(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        storage_path=tmp_path / "blocker" / "artifacts",
    )
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.get_json()["checks"]["storage"].startswith("unusable")


@pytest.mark.own_app
def test_readyz_503_while_the_database_refuses_writes(scratch_url, tmp_path):
    """Reads alone would pass: readiness asks the database to take a write."""
    upgrade(scratch_url)
    with read_only_database(scratch_url):
        app = _app(tmp_path, database_url=scratch_url)  # a worker started meanwhile
        client = app.test_client()
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.mimetype == "application/problem+json"
        assert r.get_json()["checks"] == {"database": "read-only", "storage": "ok"}
        assert client.get("/healthz").status_code == 200
    # Writable again: the same worker is ready, without a restart.
    r = client.get("/readyz")
    assert r.status_code == 200, r.get_json()
    with app.app_context():
        db.engine.dispose()


def test_openapi_document_covers_every_api_route(client, app):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/v1", "/api/device")):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in documented
    schemes = spec["components"]["securitySchemes"]
    assert {"ApiToken", "DeviceToken"} <= set(schemes)
    # Errors are documented as problem documents.
    get_device = spec["paths"]["/api/v1/devices/{device_id}"]["get"]["responses"]
    assert "404" in get_device


def test_docs_page_uses_only_local_assets(client):
    page = client.get("/api/docs").get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls, "the page references its assets"
    for url in urls:
        assert not url.startswith(("http:", "https:", "//")), url
        assert client.get(url).status_code == 200, url

"""A publish broken at any step leaves database, storage and metadata as before."""

from __future__ import annotations

import io
import json

import pytest

from tests.helpers.publishing import publish, stored_state
from upgrade_server.errors import StorageError
from upgrade_server.extensions import db
from upgrade_server.storage.local import LocalStore


@pytest.fixture
def published(client, factory, app):
    """A product with one release already out, and its state."""
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    assert publish(client, publisher.headers, product.id, "1.0.0", b"first").status_code == 201
    return {"headers": publisher.headers, "product": product, "before": stored_state(app, product)}


def test_client_gone_mid_upload(client, published, app):
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
        + json.dumps({"version": "2.0.0"})
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="artifact"; '
        'filename="fw.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    sent = head + b"\x00" * (3 * 1024 * 1024)
    r = client.post(
        f"/api/v1/products/{published['product'].id}/releases",
        input_stream=io.BytesIO(sent),
        headers={
            **published["headers"],
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            # The client announced far more than it sent before going away.
            "Content-Length": str(len(sent) + 10 * 1024 * 1024),
        },
    )
    assert r.status_code == 400
    assert r.mimetype == "application/problem+json"
    assert stored_state(app, published["product"]) == published["before"]


def test_storage_write_fails(client, published, app, monkeypatch):
    def broken(self, data):
        raise StorageError("disk full")

    monkeypatch.setattr("upgrade_server.storage.local._LocalWriter._write", broken)
    r = publish(
        client, published["headers"], published["product"].id, "2.0.0", b"x" * 4096, expect=None
    )
    assert r.status_code == 503
    assert r.get_json()["type"] == "/problems/storage-unavailable"
    monkeypatch.undo()
    assert stored_state(app, published["product"]) == published["before"]


def test_storage_commit_fails(client, published, app, monkeypatch):
    def broken(self, staged):
        raise StorageError("rename failed")

    monkeypatch.setattr(LocalStore, "commit", broken)
    r = publish(
        client, published["headers"], published["product"].id, "2.0.0", b"y" * 4096, expect=None
    )
    assert r.status_code == 503
    monkeypatch.undo()
    assert stored_state(app, published["product"]) == published["before"]


def test_signing_fails(client, published, app):
    keys = app.config["SETTINGS"].resolved_keys_path() / published["product"].code
    hidden = {}
    for key_file in keys.glob("snapshot-*.pem"):
        hidden[key_file] = key_file.read_bytes()
        key_file.unlink()
    try:
        r = publish(
            client, published["headers"], published["product"].id, "2.0.0", b"z" * 99, expect=None
        )
        assert r.status_code == 503
        assert r.get_json()["type"] == "/problems/signing-unavailable"
        assert "PRIVATE" not in r.get_data(as_text=True)
    finally:
        for path, data in hidden.items():
            path.write_bytes(data)
            path.chmod(0o600)
    assert stored_state(app, published["product"]) == published["before"]


def test_database_commit_fails_after_the_file_was_stored(client, published, app, monkeypatch):
    """The last step: the artifact has its final name, then the commit fails."""
    from upgrade_server import transaction

    original = transaction.session

    class FailingCommit:
        def __init__(self, real):
            self.real = real

        def commit(self):
            raise RuntimeError("connection lost during COMMIT")

        def __getattr__(self, name):
            return getattr(self.real, name)

    monkeypatch.setattr(transaction, "session", lambda: FailingCommit(original()))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        r = publish(
            client, published["headers"], published["product"].id, "2.0.0", b"w" * 77, expect=None
        )
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
        monkeypatch.undo()
    assert r.status_code == 500
    assert stored_state(app, published["product"]) == published["before"]


def test_bad_metadata_stores_nothing(client, published, app):
    r = publish(
        client, published["headers"], published["product"].id, "not-a-version", b"v", expect=None
    )
    assert r.status_code == 422
    r = client.post(
        f"/api/v1/products/{published['product'].id}/releases",
        data={
            "metadata": json.dumps({"version": "2.0.0", "hardware_revisions": ["rev-q"]}),
            "artifact": (io.BytesIO(b"hw"), "fw.bin"),
        },
        headers=published["headers"],
        content_type="multipart/form-data",
    )
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["field"] == "hardware_revisions"
    assert stored_state(app, published["product"]) == published["before"]


def test_too_large_artifact_is_413_and_stores_nothing(client, published, app):
    settings = app.config["SETTINGS"]
    original = settings.max_artifact_bytes
    settings.max_artifact_bytes = 1024
    try:
        r = publish(
            client, published["headers"], published["product"].id, "2.0.0", b"L" * 5000, expect=None
        )
    finally:
        settings.max_artifact_bytes = original
    assert r.status_code == 413
    assert stored_state(app, published["product"]) == published["before"]


@pytest.mark.parametrize("field", ["version", "min_from_version"])
def test_a_version_longer_than_the_tables_keep_is_a_422_and_changes_nothing(
    client, published, app, field
):
    """A valid semantic version of 65 characters: every table keeps 64 (a 500
    on PostgreSQL before)."""
    long = "1.0.1-" + "a" * 59
    extra = {"min_from_version": long} if field == "min_from_version" else {}
    version = long if field == "version" else "1.0.2"
    r = publish(
        client, published["headers"], published["product"].id, version, b"x", expect=None, **extra
    )
    assert r.status_code == 422, r.get_data(as_text=True)
    assert any(e["field"] == field for e in r.get_json()["errors"])
    assert stored_state(app, published["product"]) == published["before"]

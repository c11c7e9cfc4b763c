"""What the server does for the agent: a device's known version is never
replaced by nothing, and an update may wait for the operator."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from upgrade_server.extensions import db

CHECK = "/api/device/v1/update-check"


@pytest.fixture
def release(client, factory):
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    r = client.post(
        f"/api/v1/products/{product.id}/releases",
        data={
            "metadata": json.dumps({"version": "1.0.0", "channels": ["stable"]}),
            "artifact": (io.BytesIO(b"fw"), "fw-1.0.0.bin"),
        },
        headers=publisher.headers,
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    return {"product": product, "id": r.get_json()["id"]}


def _device(factory, release, **kw):
    device, token = factory.device(product=release["product"], **kw)
    return device, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("body", [{}, {"current_version": None}, {"channel": "stable"}])
def test_a_check_without_a_version_keeps_and_uses_the_version_the_server_knows(
    client, factory, release, body
):
    device, headers = _device(factory, release, current_version="0.9.0")
    r = client.post(CHECK, json=body, headers=headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["version"] == "1.0.0"  # offered from 0.9.0
    db.session.refresh(device)
    assert device.current_version == "0.9.0"
    assert device.last_seen_at is not None
    # And from what it knows: nothing newer than 1.0.0.
    device.current_version = "1.0.0"
    db.session.commit()
    assert client.post(CHECK, json=body, headers=headers).status_code == 204
    db.session.refresh(device)
    assert device.current_version == "1.0.0"


def test_a_check_without_a_version_when_the_server_knows_none_is_a_problem(
    client, factory, release
):
    device, headers = _device(factory, release)
    r = client.post(CHECK, json={}, headers=headers)
    assert r.status_code == 422
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["errors"][0]["field"] == "current_version"
    db.session.refresh(device)
    assert device.current_version is None


def test_an_invalid_version_is_still_refused(client, factory, release):
    _, headers = _device(factory, release, current_version="0.9.0")
    for version in ("", "not-a-version", 7):
        r = client.post(CHECK, json={"current_version": version}, headers=headers)
        assert r.status_code == 422, version


def _report(client, headers, status, release_id, **extra):
    body = {"event_id": uuid.uuid4().hex, "status": status, "release_id": release_id, **extra}
    return client.post("/api/device/v1/installs", json=body, headers=headers)


def test_a_device_reports_that_an_update_waits_for_the_operator(client, factory, release):
    device, headers = _device(factory, release, current_version="0.9.0")
    rid = release["id"]
    assert _report(client, headers, "waiting", rid).status_code == 201
    assert _report(client, headers, "waiting", rid).status_code == 201  # still waiting
    for status in ("downloading", "downloaded", "verified", "installing", "installed"):
        assert _report(client, headers, status, rid).status_code == 201, status
    assert _report(client, headers, "waiting", rid).status_code == 409  # installed already
    db.session.refresh(device)
    assert device.current_version == "1.0.0"


def test_waiting_is_in_progress_and_reads_in_chinese(client, factory, release, app):
    from flask_babel import force_locale

    from upgrade_server.web.labels import LABELS

    _, headers = _device(factory, release, current_version="0.9.0")
    assert _report(client, headers, "waiting", release["id"]).status_code == 201
    admin = factory.caller("admin")
    outcomes = client.get(
        f"/api/v1/releases/{release['id']}/installs", headers=admin.headers
    ).get_json()["outcomes"]
    assert outcomes["in_progress"] == 1
    with app.test_request_context(), force_locale("zh_CN"):
        assert str(LABELS["install-status"]["waiting"]) == "等待操作人员确认"

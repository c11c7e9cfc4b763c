"""The device protocol: update check, download, install reports, install log."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.publishing import publish
from upgrade_server.extensions import db


@pytest.fixture
def fleet(client, factory):
    """1.0.0; 1.1.0 from >= 1.0.0; 2.0.0 from >= 1.1.0, rev-a only; 2.1.0-beta on beta."""
    publisher = factory.caller("publisher")
    org = factory.organisation()
    product = factory.product()
    db.session.commit()
    releases = {
        "1.0.0": publish(client, publisher.headers, product.id, "1.0.0", b"one").get_json(),
        "1.1.0": publish(
            client, publisher.headers, product.id, "1.1.0", b"one-one", min_from_version="1.0.0"
        ).get_json(),
        "2.0.0": publish(
            client,
            publisher.headers,
            product.id,
            "2.0.0",
            b"two" * 1000,
            min_from_version="1.1.0",
            hardware_revisions=["rev-a"],
        ).get_json(),
        "2.1.0-beta.1": publish(
            client,
            publisher.headers,
            product.id,
            "2.1.0-beta.1",
            b"beta",
            channels=["beta"],
            min_from_version="2.0.0",
        ).get_json(),
    }
    device_a, token_a = factory.device(organisation=org, product=product, hardware_revision="rev-a")
    device_b, token_b = factory.device(organisation=org, product=product, hardware_revision="rev-b")
    return {
        "publisher": publisher,
        "product": product,
        "releases": releases,
        "a": {"device": device_a, "headers": {"Authorization": f"Bearer {token_a}"}},
        "b": {"device": device_b, "headers": {"Authorization": f"Bearer {token_b}"}},
    }


def check(client, headers, version, channel="stable", **extra):
    return client.post(
        "/api/device/v1/update-check",
        json={"current_version": version, "channel": channel, **extra},
        headers=headers,
    )


@pytest.mark.parametrize(
    ("who", "version", "channel", "offered"),
    [
        ("a", "0.9.0", "stable", "1.0.0"),  # stepping stone first
        ("a", "1.0.0", "stable", "1.1.0"),
        ("a", "1.1.0", "stable", "2.0.0"),
        ("a", "2.0.0", "stable", None),
        ("a", "2.0.0", "beta", "2.1.0-beta.1"),  # beta takes beta and stable
        ("a", "1.1.0", "beta", "2.0.0"),  # 2.1.0-beta.1 needs 2.0.0 first
        ("a", "3.0.0", "stable", None),  # never a downgrade
        ("b", "0.9.0", "stable", "1.0.0"),
        ("b", "1.1.0", "stable", None),  # 2.0.0 excludes rev-b
        ("b", "1.1.0", "dev", None),
    ],
)
def test_update_check_answers(client, fleet, who, version, channel, offered):
    r = check(client, fleet[who]["headers"], version, channel)
    if offered is None:
        assert r.status_code == 204
        return
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    release = fleet["releases"][offered]
    assert body["version"] == offered
    assert body["release_id"] == release["id"]
    assert body["target_path"] == release["artifact"]["target_path"]
    assert body["length"] == release["artifact"]["size"]
    assert body["hashes"] == {"sha256": release["artifact"]["sha256"]}
    assert body["download_url"] == f"/api/device/v1/releases/{release['id']}/artifact"
    assert body["notes_url"] == f"/api/device/v1/releases/{release['id']}"
    assert body["poll_seconds"] == 1800


def test_withdrawn_release_is_offered_to_no_one(client, fleet):
    release = fleet["releases"]["1.1.0"]
    client.post(
        f"/api/v1/releases/{release['id']}/withdraw",
        json={"reason": "bad"},
        headers=fleet["publisher"].headers,
    )
    # 2.0.0 needs 1.1.0, which is gone: the device on 1.0.0 gets nothing.
    assert check(client, fleet["a"]["headers"], "1.0.0").status_code == 204
    r = client.get(
        f"/api/device/v1/releases/{release['id']}/artifact", headers=fleet["a"]["headers"]
    )
    assert r.status_code == 403


def test_etag_and_304(client, fleet):
    headers = fleet["a"]["headers"]
    first = check(client, headers, "1.0.0")
    tag = first.headers["ETag"]
    again = check(client, {**headers, "If-None-Match": tag}, "1.0.0")
    assert again.status_code == 304
    assert again.data == b""
    other = check(client, {**headers, "If-None-Match": tag}, "1.1.0")
    assert other.status_code == 200
    none = check(client, headers, "2.0.0")
    assert none.status_code == 204 and none.headers["ETag"]
    assert (
        check(client, {**headers, "If-None-Match": none.headers["ETag"]}, "2.0.0").status_code
        == 304
    )


def test_check_keeps_what_the_device_reports(client, fleet):
    headers = fleet["a"]["headers"]
    check(
        client,
        headers,
        "1.0.0",
        attributes={"uptime": 42, "disk_free_mb": 800},
        hardware_revision="rev-a",
    )
    device = fleet["a"]["device"]
    db.session.refresh(device)
    assert device.current_version == "1.0.0"
    assert device.last_seen_at is not None
    assert device.inventory == {"uptime": 42, "disk_free_mb": 800, "hardware_revision": "rev-a"}
    r = check(client, headers, "not-a-version")
    assert r.status_code == 422


def test_parameters_and_operator_action_in_the_offer(client, factory):
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    parameters = [
        {
            "name": "mtu",
            "old_default": "1500",
            "new_default": "9000",
            "unit": "B",
            "operator_action": True,
            "action": "Enable jumbo frames on the switch.",
        }
    ]
    publish(client, publisher.headers, product.id, "1.0.0", parameters=parameters)
    _, token = factory.device(product=product)
    body = check(client, {"Authorization": f"Bearer {token}"}, "0.1.0").get_json()
    assert body["parameters"] == parameters
    assert body["operator_action_required"] is True


class TestDownload:
    def test_full_and_ranges(self, client, fleet):
        release = fleet["releases"]["2.0.0"]
        url = f"/api/device/v1/releases/{release['id']}/artifact"
        headers = fleet["a"]["headers"]
        full = client.get(url, headers=headers)
        assert full.status_code == 200
        assert full.data == b"two" * 1000
        assert full.headers["Accept-Ranges"] == "bytes"
        assert full.headers["Content-Length"] == "3000"
        etag = full.headers["ETag"]
        part = client.get(url, headers={**headers, "Range": "bytes=1000-"})
        assert part.status_code == 206
        assert part.data == (b"two" * 1000)[1000:]
        assert part.headers["Content-Range"] == "bytes 1000-2999/3000"
        same = client.get(url, headers={**headers, "Range": "bytes=10-19", "If-Range": etag})
        assert same.status_code == 206 and len(same.data) == 10
        changed = client.get(url, headers={**headers, "Range": "bytes=10-19", "If-Range": '"x"'})
        assert changed.status_code == 200 and len(changed.data) == 3000
        bad = client.get(url, headers={**headers, "Range": "bytes=5000-"})
        assert bad.status_code == 416

    def test_downloads_are_counted_once_per_download(self, client, fleet):
        release = fleet["releases"]["1.0.0"]
        url = f"/api/device/v1/releases/{release['id']}/artifact"
        headers = fleet["a"]["headers"]
        client.get(url, headers=headers)
        client.get(url, headers={**headers, "Range": "bytes=0-1"})
        client.get(url, headers={**headers, "Range": "bytes=2-"})  # a resume
        log = client.get(
            f"/api/v1/releases/{release['id']}/installs", headers=fleet["publisher"].headers
        ).get_json()
        assert log["downloads"] == 2

    def test_other_hardware_is_403_other_product_is_404(self, client, fleet, factory):
        release = fleet["releases"]["2.0.0"]
        r = client.get(
            f"/api/device/v1/releases/{release['id']}/artifact", headers=fleet["b"]["headers"]
        )
        assert r.status_code == 403
        assert r.mimetype == "application/problem+json"
        _, stranger = factory.device()
        r = client.get(
            f"/api/device/v1/releases/{release['id']}/artifact",
            headers={"Authorization": f"Bearer {stranger}"},
        )
        assert r.status_code == 404
        r = client.get(
            f"/api/device/v1/releases/{release['id']}",
            headers={"Authorization": f"Bearer {stranger}"},
        )
        assert r.status_code == 404

    def test_revoked_token_is_refused_at_once(self, client, fleet, factory):
        admin = factory.caller("admin")
        device = fleet["a"]["device"]
        assert check(client, fleet["a"]["headers"], "1.0.0").status_code == 200
        client.delete(f"/api/v1/devices/{device.id}/token", headers=admin.headers)
        assert check(client, fleet["a"]["headers"], "1.0.0").status_code == 401


def _event(client, headers, status, release_id=None, **extra):
    body = {
        "event_id": extra.pop("event_id", uuid.uuid4().hex),
        "status": status,
        "release_id": release_id,
        **extra,
    }
    return client.post("/api/device/v1/installs", json=body, headers=headers)


class TestInstallReports:
    def test_a_full_install_sets_the_version_and_is_logged(self, client, fleet):
        headers = fleet["a"]["headers"]
        release = fleet["releases"]["1.0.0"]
        for status in ("downloading", "downloaded", "verified", "installing", "installed"):
            assert _event(client, headers, status, release["id"]).status_code == 201
        device = fleet["a"]["device"]
        db.session.refresh(device)
        assert device.current_version == "1.0.0"
        log = client.get(
            f"/api/v1/devices/{device.id}/installs", headers=fleet["publisher"].headers
        ).get_json()["items"]
        assert [e["status"] for e in log] == [
            "downloading",
            "downloaded",
            "verified",
            "installing",
            "installed",
        ]
        outcomes = client.get(
            f"/api/v1/releases/{release['id']}/installs", headers=fleet["publisher"].headers
        ).get_json()["outcomes"]
        assert outcomes == {"installed": 1, "failed": 0, "rolled_back": 0, "in_progress": 0}

    def test_a_retried_post_counts_once(self, client, fleet):
        headers = fleet["a"]["headers"]
        release = fleet["releases"]["1.0.0"]
        first = _event(client, headers, "downloading", release["id"], event_id="evt-1")
        again = _event(client, headers, "downloading", release["id"], event_id="evt-1")
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.get_json()["id"] == again.get_json()["id"]

    def test_impossible_transitions(self, client, fleet):
        headers = fleet["a"]["headers"]
        rid = fleet["releases"]["1.0.0"]["id"]
        assert _event(client, headers, "rolled_back", rid).status_code == 409
        assert _event(client, headers, "verified", rid).status_code == 201
        assert _event(client, headers, "downloaded", rid).status_code == 409  # backwards
        assert _event(client, headers, "failed", rid).status_code == 422  # no error code
        r = _event(client, headers, "failed", rid, error_code="E_HASH", error_text="bad hash")
        assert r.status_code == 201
        assert _event(client, headers, "installed", rid).status_code == 201  # a new attempt
        assert _event(client, headers, "installing", rid).status_code == 409
        assert _event(client, headers, "rolled_back", rid).status_code == 201
        outcomes = client.get(
            f"/api/v1/releases/{rid}/installs", headers=fleet["publisher"].headers
        ).get_json()["outcomes"]
        assert outcomes["rolled_back"] == 1

    def test_failures_are_counted(self, client, fleet):
        rid = fleet["releases"]["1.0.0"]["id"]
        _event(client, fleet["a"]["headers"], "failed", rid, error_code="E_SPACE")
        _event(client, fleet["b"]["headers"], "installed", rid)
        outcomes = client.get(
            f"/api/v1/releases/{rid}/installs", headers=fleet["publisher"].headers
        ).get_json()["outcomes"]
        assert outcomes == {"installed": 1, "failed": 1, "rolled_back": 0, "in_progress": 0}

    def test_outside_install(self, client, fleet):
        headers = fleet["a"]["headers"]
        r = _event(client, headers, "installed", version="1.0.5")
        assert r.status_code == 201 and r.get_json()["release_id"] is None
        device = fleet["a"]["device"]
        db.session.refresh(device)
        assert device.current_version == "1.0.5"
        assert _event(client, headers, "downloading", version="1.0.6").status_code == 422

    def test_another_products_release_is_404(self, client, fleet, factory):
        _, stranger = factory.device()
        rid = fleet["releases"]["1.0.0"]["id"]
        r = _event(client, {"Authorization": f"Bearer {stranger}"}, "downloading", rid)
        assert r.status_code == 404

    def test_device_logs_are_scoped_to_the_organisation(self, client, fleet, factory):
        other_customer = factory.caller("customer-admin")
        device = fleet["a"]["device"]
        r = client.get(f"/api/v1/devices/{device.id}/installs", headers=other_customer.headers)
        assert r.status_code == 404


class TestUpdateCheckErrors:
    """The fast path answers like the rest of the API: problem+json, stable types."""

    def test_bad_requests(self, client, fleet):
        headers = fleet["a"]["headers"]
        url = "/api/device/v1/update-check"
        cases = [
            (client.post(url, json={"current_version": "1.0.0"}), 401, "unauthenticated"),
            (
                client.post(url, data="{oops", content_type="application/json", headers=headers),
                400,
                "bad-request",
            ),
            (
                client.post(url, data="v=1", content_type="text/plain", headers=headers),
                415,
                "unsupported-media-type",
            ),
            (
                client.post(
                    url,
                    data=b"{" + b" " * 70000 + b"}",
                    content_type="application/json",
                    headers=headers,
                ),
                413,
                "payload-too-large",
            ),
            (client.post(url, json=["1.0.0"], headers=headers), 422, "invalid-input"),
            (
                client.post(url, json={"current_version": "1.0.0", "channel": 7}, headers=headers),
                422,
                "invalid-input",
            ),
        ]
        for response, status, slug in cases:
            assert response.status_code == status, response.data
            assert response.mimetype == "application/problem+json"
            assert response.get_json()["type"] == f"/problems/{slug}"
        assert cases[0][0].headers["WWW-Authenticate"].startswith("Bearer")

    def test_the_flask_view_answers_the_same(self, app, fleet):
        """With the fast path off, the documented view runs the same UpdateCheck."""
        from werkzeug.test import Client

        flask_only = Client(app.wsgi_app.app)
        body = {"current_version": "1.0.0", "channel": "stable"}
        via_flask = flask_only.post(
            "/api/device/v1/update-check", json=body, headers=fleet["a"]["headers"]
        )
        assert via_flask.status_code == 200
        assert via_flask.get_json()["version"] == "1.1.0"

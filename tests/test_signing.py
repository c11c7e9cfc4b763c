"""Offline threshold signing: nothing is visible until the threshold is met."""

from __future__ import annotations

import json

import pytest
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import CanonicalJSONSerializer

from tests.helpers.publishing import publish
from tests.helpers.signing import create_offline_repository, new_signer, sign_all
from upgrade_server.extensions import db
from upgrade_server.signing.keys import generate, private_pem, public_pem


@pytest.fixture
def offline_product(client, factory):
    """A product whose targets role needs 2 of 3 publishers' offline keys."""
    publisher = factory.caller("publisher")
    customer = factory.caller("customer-viewer")
    product = factory.product()
    db.session.commit()
    signers = [new_signer() for _ in range(3)]
    summary = create_offline_repository(client, publisher.headers, product.id, signers, 2, 2)
    assert summary["open_signing_requests"] == 5  # targets and 4 bins
    # Until the targets threshold signed the set-up, nothing is served.
    assert client.get(f"/tuf/{product.code}/metadata/timestamp.json").status_code == 404
    sign_all(client, publisher.headers, product.id, signers[0])
    assert client.get(f"/tuf/{product.code}/metadata/timestamp.json").status_code == 404
    sign_all(client, publisher.headers, product.id, signers[1])
    assert client.get(f"/tuf/{product.code}/metadata/timestamp.json").status_code == 200
    return {"product": product, "publisher": publisher, "customer": customer, "signers": signers}


def served_targets(client, code: str) -> dict:
    """Every target the served metadata lists, across the hash bins."""
    timestamp = json.loads(client.get(f"/tuf/{code}/metadata/timestamp.json").data)
    version = timestamp["signed"]["meta"]["snapshot.json"]["version"]
    snapshot = json.loads(client.get(f"/tuf/{code}/metadata/{version}.snapshot.json").data)
    targets = {}
    for name, meta in snapshot["signed"]["meta"].items():
        if name.startswith("bins-"):
            role = name.removesuffix(".json")
            url = f"/tuf/{code}/metadata/{meta['version']}.{role}.json"
            targets.update(json.loads(client.get(url).data)["signed"]["targets"])
    return targets


def _status(client, headers, release_id) -> str:
    return client.get(f"/api/v1/releases/{release_id}", headers=headers).get_json()["status"]


def test_one_signature_does_not_publish_the_second_does(client, offline_product):
    p = offline_product
    headers = p["publisher"].headers
    r = publish(client, headers, p["product"].id, "1.0.0", b"signed twice")
    assert r.status_code == 201
    release = r.get_json()
    assert release["status"] == "pending-signatures"
    assert "1.0.0/fw.bin" not in served_targets(client, p["product"].code)
    # Customers do not see a release waiting for signatures.
    customer = p["customer"].headers
    assert client.get(f"/api/v1/releases/{release['id']}", headers=customer).status_code == 404

    first = sign_all(client, headers, p["product"].id, p["signers"][2])
    assert [r["state"] for r in first] == ["open"]
    assert _status(client, headers, release["id"]) == "pending-signatures"
    assert "1.0.0/fw.bin" not in served_targets(client, p["product"].code)

    second = sign_all(client, headers, p["product"].id, p["signers"][0])
    assert [r["state"] for r in second] == ["done"]
    assert _status(client, headers, release["id"]) == "published"
    assert "1.0.0/fw.bin" in served_targets(client, p["product"].code)
    assert client.get(f"/api/v1/releases/{release['id']}", headers=customer).status_code == 200


def test_pending_releases_in_one_bin_share_one_request(client, offline_product):
    p = offline_product
    headers = p["publisher"].headers
    for i in range(6):
        r = publish(client, headers, p["product"].id, f"1.{i}.0", bytes([i]))
        assert r.status_code == 201
    open_requests = client.get(
        f"/api/v1/products/{p['product'].id}/signing-requests", headers=headers
    ).get_json()["items"]
    assert len(open_requests) <= 4  # one per bin at most, whatever the number of releases
    sign_all(client, headers, p["product"].id, p["signers"][0])
    sign_all(client, headers, p["product"].id, p["signers"][1])
    served = served_targets(client, p["product"].code)
    assert {f"1.{i}.0/fw.bin" for i in range(6)} <= set(served)


def test_bad_signatures_are_refused(client, offline_product):
    p = offline_product
    headers = p["publisher"].headers
    publish(client, headers, p["product"].id, "3.0.0")
    request = client.get(
        f"/api/v1/products/{p['product'].id}/signing-requests", headers=headers
    ).get_json()["items"][0]
    stranger = new_signer()
    md = Metadata.from_bytes(json.dumps(request["unsigned"]).encode())
    payload = CanonicalJSONSerializer().serialize(md.signed)
    sig = stranger.sign(payload)
    r = client.post(
        f"/api/v1/signing-requests/{request['id']}/signatures",
        json={"keyid": sig.keyid, "sig": sig.signature},
        headers=headers,
    )
    assert r.status_code == 422
    assert r.get_json()["type"] == "/problems/invalid-signature"
    # A real key signing other bytes is refused too.
    forged = p["signers"][0].sign(payload + b" ")
    r = client.post(
        f"/api/v1/signing-requests/{request['id']}/signatures",
        json={"keyid": forged.keyid, "sig": forged.signature},
        headers=headers,
    )
    assert r.status_code == 422


def test_no_private_key_is_kept_or_shown_for_offline_roles(client, offline_product, app):
    p = offline_product
    keys_dir = app.config["SETTINGS"].resolved_keys_path() / p["product"].code
    files = sorted(f.name.split("-")[0] for f in keys_dir.iterdir())
    assert files == ["root", "snapshot", "timestamp"]  # targets is offline
    for f in keys_dir.iterdir():
        assert oct(f.stat().st_mode & 0o777) == "0o600"
    summary = client.get(
        f"/api/v1/products/{p['product'].id}/repository", headers=p["publisher"].headers
    ).get_data(as_text=True)
    assert "PRIVATE" not in summary


@pytest.mark.parametrize(
    ("role", "keys"),
    [
        ("targets", ["not a PEM"]),
        ("targets", ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]),
        ("targets", ["private"]),
        ("targets", ["rsa"]),
        ("targets", ["same", "same"]),
        ("snapshot", ["ed25519"]),
    ],
    # A lone surrogate never reaches the key parser: the JSON layer refuses it
    # (tests/test_bad_input.py).
    ids=["garbage", "bad-base64", "private-key", "rsa", "repeated", "always-online"],
)
def test_rotation_with_bad_keys_is_an_invalid_input_problem(client, factory, role, keys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    r = client.post(f"/api/v1/products/{product.id}/repository", json={}, headers=publisher.headers)
    assert r.status_code == 201, r.get_json()
    ed25519 = public_pem(new_signer().public_key).decode()
    private, _ = generate()
    rsa_public = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    named = {
        "private": private_pem(private).decode(),
        "rsa": rsa_public,
        "same": ed25519,
        "ed25519": ed25519,
    }
    r = client.post(
        f"/api/v1/products/{product.id}/repository/rotate",
        json={"role": role, "keys": [named.get(k, k) for k in keys]},
        headers=publisher.headers,
    )
    assert r.status_code == 422, r.get_json()
    body = r.get_json()
    assert body["type"] == "/problems/invalid-input"
    assert body["errors"][0]["field"].startswith("keys")
    # Nothing changed: the root is still version 1.
    summary = client.get(f"/api/v1/products/{product.id}/repository", headers=publisher.headers)
    assert summary.get_json()["versions"]["root"] == 1


@pytest.mark.parametrize(
    "bin_bits",
    [0, 15, 2.5, 2.5890419884777833e-42, "8", True],
    ids=["zero", "too-many", "fraction", "tiny-fraction", "string", "boolean"],
)
def test_a_repository_with_bins_tuf_cannot_make_is_refused_and_none_is_made(
    client, factory, bin_bits
):
    # Found by the fuzz run: 2.6e-42 was rounded to 0 bins and TUF's refusal was a 500.
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    url = f"/api/v1/products/{product.id}/repository"
    r = client.post(url, json={"bin_bits": bin_bits}, headers=publisher.headers)
    assert r.status_code == 422, r.get_json()
    assert r.content_type == "application/problem+json"
    body = r.get_json()
    assert body["type"] == "/problems/invalid-input"
    assert [e["field"] for e in body["errors"]] == ["bin_bits"]
    assert client.get(url, headers=publisher.headers).status_code == 404
    # The product is still free for a repository, at the edges of the range.
    r = client.post(url, json={"bin_bits": 1}, headers=publisher.headers)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["bin_bits"] == 1


@pytest.mark.parametrize("value", ["0", "15", "2.5"])
def test_the_default_bins_are_checked_when_the_server_starts(monkeypatch, value):
    from pydantic import ValidationError

    from upgrade_server.config import Settings

    monkeypatch.setenv("UPGRADE_SERVER_TUF_BIN_BITS", value)
    with pytest.raises(ValidationError, match="tuf_bin_bits"):
        Settings()


def test_rotation_refuses_a_key_the_role_holds_or_retired(client, factory):
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    url = f"/api/v1/products/{product.id}/repository"
    assert client.post(url, json={}, headers=publisher.headers).status_code == 201
    first, second = (public_pem(new_signer().public_key).decode() for _ in range(2))

    def rotate(keys, keep_existing=False):
        return client.post(
            f"{url}/rotate",
            json={"role": "targets", "keys": keys, "keep_existing": keep_existing},
            headers=publisher.headers,
        )

    assert rotate([first]).status_code == 200
    held = rotate([first], keep_existing=True)
    assert held.status_code == 422, held.get_json()
    assert held.get_json()["errors"] == [
        {"field": "keys[0]", "message": "already a key of targets"}
    ]
    assert rotate([second]).status_code == 200
    retired = rotate([first])
    assert retired.status_code == 422, retired.get_json()
    assert "retired" in retired.get_json()["errors"][0]["message"]

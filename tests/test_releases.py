"""Releases through the API: fields, ordering, channels, visibility, private repositories."""

from __future__ import annotations

import io
import json
import re
import subprocess

import pytest

from tests.helpers.problems import assert_problem
from tests.helpers.publishing import publish, stored_state
from upgrade_server.extensions import db
from upgrade_server.releases.versions import sort_key


def test_semver_ordering_keeps_prereleases():
    ordered = ["1.2.0-alpha", "1.2.0-rc.1", "1.2.0-rc.2", "1.2.0-rc.10", "1.2.0", "1.10.0"]
    assert sorted(reversed(ordered), key=sort_key) == ordered
    assert sort_key("1.0.0+build.1") == sort_key("1.0.0+build.2")


def test_full_release_description_round_trips(client, factory):
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    metadata = {
        "version": "2.1.0-rc.1",
        "channels": ["beta"],
        "hardware_revisions": ["rev-b"],
        "requirements": [{"name": "bootloader", "value": ">= 2.0", "unit": ""}],
        "parameters": [
            {
                "name": "max_sessions",
                "old_default": "64",
                "new_default": "128",
                "unit": "",
                "operator_action": True,
                "action": "Raise the licence limit first.",
            }
        ],
        "min_from_version": "2.0.0",
        "security_fix": True,
        "notes": {"zh-CN": "## 说明", "en": "## Notes"},
        "guidance": {
            "installation": {"zh-CN": "安装", "en": "Install"},
            "operation": {"en": "Operate"},
            "maintenance": {"zh-CN": "维护"},
        },
    }
    r = client.post(
        f"/api/v1/products/{product.id}/releases",
        data={"metadata": json.dumps(metadata), "artifact": (io.BytesIO(b"abc"), "fw-2.1.bin")},
        headers=publisher.headers,
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    for key, value in metadata.items():
        assert body[key] == value, key
    assert body["artifact"] == {
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "size": 3,
        "filename": "fw-2.1.bin",
        "target_path": "2.1.0-rc.1/fw-2.1.bin",
    }
    assert body["status"] == "published"


def test_bad_release_descriptions(client, factory):
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    cases = {
        "version": {"version": "v1"},
        "channels": {"version": "1.0.0", "channels": ["nightly"]},
        "min_from_version": {"version": "1.0.0", "min_from_version": "1.0.0"},
        "notes": {"version": "1.0.0", "notes": {"fr": "bonjour"}},
        "guidance": {"version": "1.0.0", "guidance": {"cooking": {"en": "x"}}},
    }
    # Wrong types anywhere are refused at publish, not stored for the release
    # page, its PDF and the product's changelog to fail on later.
    wrong_types = {
        "notes": {"notes": {"en": 5}},
        "guidance": {"guidance": {"installation": ["x"]}},
        "security_fix": {"security_fix": "yes"},
        "channels": {"channels": "stable"},
        "hardware_revisions": {"hardware_revisions": [1]},
        "requirements": {"requirements": [{"name": 5, "value": {"x": 1}}]},
        "parameters": {"parameters": ["watchdog"]},
        "filename": {"filename": 7},
        "min_from_version": {"min_from_version": 1},
    }
    cases |= {f"{field} type": {"version": "1.0.0", **bad} for field, bad in wrong_types.items()}
    cases["version type"] = {"version": 1}
    for case, metadata in cases.items():
        field = case.split()[0]
        r = client.post(
            f"/api/v1/products/{product.id}/releases",
            data={"metadata": json.dumps(metadata), "artifact": (io.BytesIO(b"x"), "fw.bin")},
            headers=publisher.headers,
            content_type="multipart/form-data",
        )
        assert r.status_code == 422, (case, r.get_json())
        assert field in {re.split(r"[.\[]", e["field"])[0] for e in r.get_json()["errors"]}, case
    r = client.post(
        f"/api/v1/products/{product.id}/releases",
        data={"metadata": "[1, 2]", "artifact": (io.BytesIO(b"x"), "fw.bin")},
        headers=publisher.headers,
        content_type="multipart/form-data",
    )
    assert_problem(r, 422, "invalid-input")
    # Nothing of the refused publishes is left behind.
    r = client.get(f"/api/v1/products/{product.id}/releases", headers=publisher.headers)
    assert r.get_json()["items"] == []
    r = client.post(
        f"/api/v1/products/{product.id}/releases",
        data={"metadata": json.dumps({"version": "1.0.0"})},
        headers=publisher.headers,
        content_type="multipart/form-data",
    )
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["errors"][0]["field"] == "artifact"


def test_channels_are_configurable_per_product(client, factory):
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    url = f"/api/v1/products/{product.id}/channels"
    assert client.get(url, headers=publisher.headers).get_json()["channels"] == [
        "dev",
        "beta",
        "stable",
    ]
    r = client.put(
        url, json={"channels": ["nightly", "beta", "stable", "lts"]}, headers=publisher.headers
    )
    assert r.get_json()["channels"] == ["nightly", "beta", "stable", "lts"]
    assert publish(client, publisher.headers, product.id, "1.0.0").status_code == 201
    # A channel that holds a release cannot be dropped.
    r = client.put(url, json={"channels": ["beta", "lts"]}, headers=publisher.headers)
    assert r.status_code == 409


def test_promote_and_withdraw_are_audited_and_withdrawal_says_why(client, factory):
    publisher = factory.caller("publisher")
    admin = factory.caller("admin")
    product = factory.product()
    db.session.commit()
    release = publish(client, publisher.headers, product.id, "1.0.0").get_json()
    r = client.post(
        f"/api/v1/releases/{release['id']}/promote",
        json={"channel": "beta"},
        headers=publisher.headers,
    )
    assert r.get_json()["channels"] == ["beta", "stable"]
    r = client.post(
        f"/api/v1/releases/{release['id']}/withdraw",
        json={"reason": "corrupts the config on rev-a"},
        headers=publisher.headers,
    )
    assert r.get_json()["status"] == "withdrawn"
    assert r.get_json()["withdrawn_reason"] == "corrupts the config on rev-a"
    r = client.post(
        f"/api/v1/releases/{release['id']}/promote",
        json={"channel": "dev"},
        headers=publisher.headers,
    )
    assert r.status_code == 409
    actions = [
        e["action"]
        for e in client.get(
            f"/api/v1/audit?object_type=releases&object_id={release['id']}", headers=admin.headers
        ).get_json()["items"]
    ]
    assert actions == ["release.publish", "release.promote", "release.withdraw"]


def test_private_repository_needs_a_device_token_of_the_product(client, factory):
    publisher = factory.caller("publisher")
    product = factory.product()
    other = factory.product()
    db.session.commit()
    r = client.post(
        f"/api/v1/products/{product.id}/repository",
        json={"private": True},
        headers=publisher.headers,
    )
    assert r.status_code == 201
    url = f"/tuf/{product.code}/metadata/timestamp.json"
    assert client.get(url).status_code == 404
    _, own = factory.device(product=product)
    _, foreign = factory.device(product=other)
    assert client.get(url, headers={"Authorization": f"Bearer {foreign}"}).status_code == 404
    assert client.get(url, headers={"Authorization": f"Bearer {own}"}).status_code == 200


def test_timestamp_is_renewed_at_half_life(app, factory):
    from datetime import timedelta

    from upgrade_server.clock import utcnow
    from upgrade_server.signing.service import repository_for

    product = factory.product()
    repo = repository_for(db.session, product, app.config["SETTINGS"], create=True)
    timestamp = repo.latest_file("timestamp")
    snapshot = repo.latest_file("snapshot")
    assert repo.refresh_expiring() == []  # fresh: nothing to do
    assert repo.refresh_expiring(now=utcnow() + timedelta(hours=13)) == ["timestamp"]
    assert repo.latest_file("timestamp").version == timestamp.version + 1
    renewed = repo.refresh_expiring(now=utcnow() + timedelta(days=4))
    assert renewed == ["snapshot", "timestamp"]
    assert repo.latest_file("snapshot").version == snapshot.version + 1


def test_a_worker_that_saw_the_old_timestamp_does_not_resign_it_again(app, factory, monkeypatch):
    """Two workers notice the expiring timestamp; one re-signs it first. The
    other, whose look came before that commit, must not sign another one."""
    from datetime import timedelta

    from upgrade_server.clock import utcnow
    from upgrade_server.signing.service import repository_for

    product = factory.product()
    repo = repository_for(db.session, product, app.config["SETTINGS"], create=True)
    old = repo.latest_file("timestamp")
    old.expires = utcnow() + timedelta(hours=2)  # into the second half of its life
    db.session.flush()
    assert repo.refresh_expiring() == ["timestamp"]  # the first worker
    renewed = repo.latest_file("timestamp")
    assert renewed.version == old.version + 1

    look = repo.latest_file
    looked: list[str] = []

    def first_look_before_that_commit(role: str):
        if role == "timestamp" and not looked:
            looked.append(role)
            return old
        return look(role)

    monkeypatch.setattr(repo, "latest_file", first_look_before_that_commit)
    assert repo.refresh_expiring() == []  # the second worker
    assert looked
    assert look("timestamp").version == renewed.version


@pytest.mark.own_app
def test_background_upkeep_resigns_without_any_request(scratch_url, tmp_path):
    from datetime import timedelta

    from sqlalchemy import update

    from tests.helpers.tuf import publish_file
    from tests.live import add_product, live_server
    from upgrade_server.clock import utcnow
    from upgrade_server.signing.models import MetadataFile
    from upgrade_server.signing.upkeep import refresh_all

    with live_server(scratch_url, tmp_path / "instance") as live:
        add_product(live, "gw")
        artifact = tmp_path / "fw.bin"
        artifact.write_bytes(b"fw")
        publish_file(live, "gw", "1.0.0", artifact)
        assert refresh_all(live.app) == {}  # everything fresh
        with live.app.app_context():
            db.session.execute(
                update(MetadataFile)
                .where(MetadataFile.role == "timestamp")
                .values(expires=utcnow() + timedelta(hours=1))
            )
            db.session.commit()
        assert refresh_all(live.app) == {"gw": ["timestamp"]}
        assert refresh_all(live.app) == {}


def _publish_metadata(client, headers, product_id, metadata):
    return client.post(
        f"/api/v1/products/{product_id}/releases",
        data={"metadata": json.dumps(metadata), "artifact": (io.BytesIO(b"fw"), "fw.bin")},
        headers=headers,
        content_type="multipart/form-data",
    )


def test_unknown_metadata_fields_are_refused_by_their_json_path_and_leave_nothing(
    client, factory, app
):
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    before = stored_state(app, product)
    misspelt = {
        "version": "1.0.0",
        "secruity_fix": True,
        "parameters": [
            {"name": "ok", "operator_action": True},
            {"name": "x", "nme": "x", "operator_acton": "yes"},
        ],
        "requirements": [{"name": "memory", "vaule": 512}],
        "guidance": {"instalation": {"en": "Back up first."}},
        "notes": {"en": "fine", "de": "nein"},
    }
    r = _publish_metadata(client, publisher.headers, product.id, misspelt)
    body = assert_problem(r, 422, "invalid-input")
    named = {e["field"]: e["message"] for e in body["errors"]}
    assert set(named) == {
        "secruity_fix",
        "parameters[1].nme",
        "parameters[1].operator_acton",
        "requirements[0].vaule",
        "guidance.instalation",
        "notes.de",
    }, named
    assert named["parameters[1].nme"] == "unknown field"
    # Nothing of the refused publish is stored: no release, file, metadata or audit entry.
    assert stored_state(app, product) == before
    r = client.get(f"/api/v1/products/{product.id}/releases", headers=publisher.headers)
    assert r.get_json()["items"] == []


def test_translated_texts_need_known_languages(client, factory):
    publisher = factory.caller("publisher")
    product = factory.product()
    db.session.commit()
    cases = {
        "parameters[0].action": {"parameters": [{"name": "p", "action": {"fr": "agir"}}]},
        "requirements[0].name": {"requirements": [{"name": {}}]},
        "requirements[0].value": {"requirements": [{"name": "m", "value": {"en": 5}}]},
    }
    for field, bad in cases.items():
        r = _publish_metadata(client, publisher.headers, product.id, {"version": "1.0.0", **bad})
        body = assert_problem(r, 422, "invalid-input")
        assert [e["field"] for e in body["errors"]] == [field], body


def _pdf_text(data: bytes, tmp_path) -> str:
    (tmp_path / "notes.pdf").write_bytes(data)
    found = subprocess.run(
        ["pdftotext", str(tmp_path / "notes.pdf"), "-"], capture_output=True, text=True, check=True
    )
    return found.stdout


def test_translated_parameter_actions_and_requirements_render_in_the_readers_language(
    client, factory, tmp_path
):
    publisher = factory.caller("publisher")
    admin = factory.caller("admin")
    product = factory.product()
    db.session.commit()
    publish(client, publisher.headers, product.id, "1.0.0", b"one")
    release = publish(
        client,
        publisher.headers,
        product.id,
        "1.1.0",
        b"two",
        parameters=[
            {
                "name": "link.timeout",
                "old_default": 30,
                "new_default": 10,
                "operator_action": True,
                "action": {"zh-CN": "现场复核超时设置", "en": "Re-check the timeout on site"},
            }
        ],
        requirements=[{"name": {"zh-CN": "内存", "en": "Memory"}, "value": 512, "unit": "MiB"}],
    ).get_json()
    client.patch(
        f"/api/v1/products/{product.id}", json={"public_notes": True}, headers=admin.headers
    )
    page = f"/portal/releases/{release['id']}"
    changelog = f"/portal/products/{product.code}/changelog?from=1.0.0&to=1.1.0"
    for lang, words, other in (
        ("en", ("Re-check the timeout on site", "Memory"), "现场复核超时设置"),
        ("zh-CN", ("现场复核超时设置", "内存"), "Re-check the timeout on site"),
    ):
        for url in (f"{page}?lang={lang}", f"{changelog}&lang={lang}"):
            text = client.get(url).get_data(as_text=True)
            assert all(w in text for w in words), (url, text)
            assert other not in text and "{&#39;" not in text and "{'" not in text, url
        pdf = client.get(f"{page}/notes.pdf?lang={lang}")
        assert pdf.mimetype == "application/pdf"
        text = _pdf_text(pdf.data, tmp_path)
        assert all(w in text for w in words) and other not in text, text


def test_the_openapi_document_carries_the_release_metadata_schema(client):
    spec = client.get("/api/openapi.json").get_json()
    body = spec["paths"]["/api/v1/products/{product_id}/releases"]["post"]["requestBody"]
    part = body["content"]["multipart/form-data"]["schema"]["properties"]["metadata"]
    assert part == {"$ref": "#/components/schemas/ReleaseMetadata"}
    schemas = spec["components"]["schemas"]
    for name in ("ReleaseMetadata", "ParameterChange", "Requirement"):
        assert schemas[name]["additionalProperties"] is False, name
    assert {"name", "operator_action", "action"} <= set(schemas["ParameterChange"]["properties"])

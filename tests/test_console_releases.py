"""The console's releases: the list and its filters, publishing through the
form (with its file streamed, refusals that keep what was typed and leave
nothing), the notes preview, promote/withdraw/rollout confirmed with device
counts, pending offline signatures, and who may do what."""

from __future__ import annotations

import hashlib
import io
import re
from html import unescape
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers.console import Statements, as_staff, page
from tests.helpers.portal import GUIDANCE, csrf
from tests.helpers.publishing import publish, stored_state
from tests.helpers.signing import create_offline_repository, new_signer, sign_all
from upgrade_server.audit.models import AuditEntry
from upgrade_server.extensions import db
from upgrade_server.releases import versions
from upgrade_server.releases.models import Channel, Release
from upgrade_server.rollouts.models import Rollout
from upgrade_server.updates.models import InstallEvent

NOTES_ZH = "## 新功能\n\n支持**双链路备份**。\n\n<script>window.x = 1</script>"
NOTES_EN = "## New\n\nSupports **dual-link backup**.\n\n[bad](javascript:alert(1))"


def _text(html: str) -> str:
    """The page's visible text, roughly: tags dropped, entities read."""
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def _release_row(product: Any, version: str, channels: list[Channel], **kw: Any) -> Release:
    """A release row as a publish leaves it (no artifact needed by the list)."""
    release = Release(
        product=product,
        version=version,
        version_key=versions.sort_key(version),
        status=kw.pop("status", "published"),
        artifact_sha256=hashlib.sha256(version.encode()).hexdigest(),
        artifact_size=10,
        filename=f"{product.code}-{version}.bin",
        target_path=f"{version}/{product.code}-{version}.bin",
        hardware_revisions=["rev-a"],
        hardware_key=",rev-a,",
        created_by="test",
        channels=channels,
        **kw,
    )
    db.session.add(release)
    return release


def _channels(product: Any) -> dict[str, Channel]:
    from upgrade_server.releases.service import channels

    return {c.name: c for c in channels(db.session, product)}


def _form(client: Any, path: str) -> str:
    return csrf(page(client, path))


def _publish_form(token: str, version: str, data: bytes = b"firmware", **extra: Any) -> dict:
    form = {
        "csrf_token": token,
        "action": "publish",
        "version": version,
        "channels": ["beta"],
        "hardware_revisions": ["rev-a", "rev-b"],
        "security_fix": "1",
        "notes-zh-CN": NOTES_ZH,
        "notes-en": NOTES_EN,
        "guidance-installation-zh-CN": GUIDANCE["installation"]["zh-CN"],
        "guidance-installation-en": GUIDANCE["installation"]["en"],
        "requirement-0-name-zh-CN": "内存",
        "requirement-0-name-en": "Memory",
        "requirement-0-value": "512",
        "requirement-0-unit": "MiB",
        "parameter-0-name": "watchdog_timeout",
        "parameter-0-old": "30",
        "parameter-0-new": "60",
        "parameter-0-unit": "s",
        "parameter-0-operator": "1",
        "parameter-0-action-en": "Check the monitoring.",
        "artifact": (io.BytesIO(data), "gw build 1.bin"),
    }
    form.update(extra)
    return form


@pytest.fixture
def product(factory):
    product = factory.product()
    db.session.commit()
    return product


# --- the list ---------------------------------------------------------------------------------


def test_the_list_filters_and_pages_in_a_bounded_number_of_statements(client, factory, product):
    other = factory.product()
    ours, theirs = _channels(product), _channels(other)
    for n in range(3):
        _release_row(product, f"1.{n}.0", [ours["stable"]])
    _release_row(other, "7.0.0", [theirs["beta"]], status="withdrawn")
    db.session.commit()
    as_staff(client, factory, "viewer")

    def statements() -> int:
        with Statements() as sql:
            page(client, "/console/releases")
        return sql.count

    few = statements()
    for n in range(3, 30):
        _release_row(product, f"1.{n}.0", [ours["stable"], ours["beta"]])
    db.session.commit()
    assert statements() == few  # 30 rows: not one statement more

    html = page(client, f"/console/releases?product={other.id}")
    assert "7.0.0" in html and "1.2.0" not in html
    html = page(client, "/console/releases?status=withdrawn")
    assert "7.0.0" in html and "1.2.0" not in html
    html = page(client, "/console/releases?channel=beta&q=1.2")
    found = re.findall(r">(\d+\.\d+\.\d+)</a>", html)
    assert found == [f"1.{n}.0" for n in range(29, 19, -1)], found
    first = page(client, f"/console/releases?product={product.id}")
    assert "1.29.0" in first and "1.4.0<" not in first and 'rel="next"' in first
    second = page(client, f"/console/releases?product={product.id}&page=2")
    assert "1.4.0<" in second and 'rel="next"' not in second and 'rel="prev"' in second


def test_the_release_page_shows_notes_hardware_parameters_guidance_and_rollouts(
    client, factory, product
):
    publisher = factory.caller("publisher")
    r = publish(
        client,
        publisher.headers,
        product.id,
        "2.0.0",
        notes={"zh-CN": NOTES_ZH, "en": NOTES_EN},
        guidance=GUIDANCE,
        parameters=[{"name": "watchdog_timeout", "old_default": 30, "new_default": 60}],
        requirements=[{"name": {"zh-CN": "内存", "en": "Memory"}, "value": 512, "unit": "MiB"}],
    )
    release_id = r.get_json()["id"]
    factory.device(product=product, current_version="1.0.0")
    client.post(
        f"/api/v1/releases/{release_id}/rollouts",
        json={"channel": "stable", "waves": [{"share": 5000}, {"share": 10000}]},
        headers=publisher.headers,
    )
    as_staff(client, factory, "viewer")
    html = page(client, f"/console/releases/{release_id}")
    assert "<strong>双链路备份</strong>" in html and "<strong>dual-link backup</strong>" in html
    assert "<script>window.x" not in html and 'href="javascript' not in html
    assert "watchdog_timeout" in html and "Memory" in html and "512" in html
    assert GUIDANCE["maintenance"]["zh-CN"] in html and GUIDANCE["operation"]["en"] in html
    assert "running" in _text(html) and "1 of 2 (50 %)" in _text(html)


# --- publishing ------------------------------------------------------------------------------


def test_a_publisher_publishes_through_the_form_with_its_file(client, factory, product, app):
    member = as_staff(client, factory, "publisher")
    token = _form(client, f"/console/releases/new?product={product.id}")
    firmware = b"\x7fELF" + b"x" * 200_000
    r = client.post(
        f"/console/releases/new?product={product.id}",
        data=_publish_form(token, "3.1.0", firmware),
        content_type="multipart/form-data",
    )
    assert r.status_code == 303, r.get_data(as_text=True)[:3000]
    release = db.session.scalars(select(Release).where(Release.version == "3.1.0")).one()
    assert r.headers["Location"] == f"/console/releases/{release.id}"
    assert release.artifact_sha256 == hashlib.sha256(firmware).hexdigest()
    assert release.filename == "gw-build-1.bin" and release.channel_names == ["beta"]
    assert release.security_fix and release.hardware_revisions == ["rev-a", "rev-b"]
    assert release.notes == {"zh-CN": NOTES_ZH, "en": NOTES_EN}
    assert release.guidance == {"installation": GUIDANCE["installation"]}
    assert release.requirements == [
        {"name": {"zh-CN": "内存", "en": "Memory"}, "value": 512, "unit": "MiB"}
    ]
    assert release.parameters[0] | {"action": None} == {
        "name": "watchdog_timeout",
        "old_default": 30,
        "new_default": 60,
        "unit": "s",
        "operator_action": True,
        "action": None,
    }
    assert release.parameters[0]["action"] == {"en": "Check the monitoring."}
    store = app.extensions["artifact_store"]
    assert store.open(release.artifact_sha256).read() == firmware
    assert list((store.root / ".tmp").iterdir()) == []  # nothing left staged
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "release.publish")
    ).all()[-1]
    assert entry.actor_label == member.user.email
    html = page(client, r.headers["Location"])
    assert "<strong>dual-link backup</strong>" in html


def test_the_upload_script_gets_json_back(client, factory, product, app):
    as_staff(client, factory, "publisher")
    token = _form(client, f"/console/releases/new?product={product.id}")
    headers = {"X-Requested-With": "XMLHttpRequest"}
    r = client.post(
        f"/console/releases/new?product={product.id}",
        data=_publish_form(token, "3.2.0"),
        content_type="multipart/form-data",
        headers=headers,
    )
    assert r.status_code == 201 and r.get_json()["location"].startswith("/console/releases/")
    # A preview sent with its file (a browser without the script) keeps no byte of it.
    r = client.post(
        f"/console/releases/new?product={product.id}",
        data=_publish_form(token, "3.2.1", action="preview"),
        content_type="multipart/form-data",
    )
    assert r.status_code == 200 and "choose it again" in r.get_data(as_text=True)
    assert list((app.extensions["artifact_store"].root / ".tmp").iterdir()) == []
    r = client.post(
        f"/console/releases/new?product={product.id}",
        data=_publish_form(token, "3.2", b"other"),
        content_type="multipart/form-data",
        headers=headers,
    )
    assert r.status_code == 422
    body = r.get_json()
    assert body["message"] and body["fields"][0]["id"] == "version"


REFUSALS = [
    ({"version": "3.3"}, 422, "a semantic version"),
    ({"hardware_revisions": []}, 422, "at least one revision of this product"),
    ({"min_from_version": "9.0.0"}, 422, "below the release"),
    ({"version": "3.0.0"}, 409, "exists already with other bytes"),
    ({"artifact": (io.BytesIO(b""), "")}, 422, "choose the file to publish"),
]


def test_a_refused_publish_keeps_what_was_typed_and_leaves_nothing(client, factory, product, app):
    publisher = factory.caller("publisher")
    publish(client, publisher.headers, product.id, "3.0.0", b"the first bytes")
    as_staff(client, factory, "publisher")
    token = _form(client, f"/console/releases/new?product={product.id}")
    before = stored_state(app, product)
    for change, status, says in REFUSALS:
        r = client.post(
            f"/console/releases/new?product={product.id}",
            data={**_publish_form(token, "3.3.0", b"new bytes"), **change},
            content_type="multipart/form-data",
        )
        html = r.get_data(as_text=True)
        assert r.status_code == status, (change, html[:2000])
        assert says in unescape(html), change
        # No release, metadata, file, staged bytes or audit entry.
        assert stored_state(app, product) == before, change
        assert list((app.extensions["artifact_store"].root / ".tmp").iterdir()) == []
        # What was typed is there to correct.
        assert unescape(NOTES_ZH) in unescape(html) and 'value="watchdog_timeout"' in html
        assert 'value="512"' in html and "Check the monitoring." in html
        assert "choose it again" in html


def test_the_preview_renders_the_notes_as_the_portal_does(client, factory, product):
    as_staff(client, factory, "publisher")
    token = _form(client, f"/console/releases/new?product={product.id}")
    # Without JavaScript: the form comes back, filled in, with the preview.
    r = client.post(
        f"/console/releases/new?product={product.id}",
        data={
            "csrf_token": token,
            "action": "preview",
            "version": "4.0.0",
            "notes-zh-CN": NOTES_ZH,
            "notes-en": NOTES_EN,
            "guidance-operation-en": "Use the **menu**.",
        },
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'value="4.0.0"' in html
    assert "<strong>双链路备份</strong>" in html and "<strong>menu</strong>" in html
    assert "<script>window.x" not in html.split('id="preview"')[1]
    assert 'href="javascript' not in html.split('id="preview"')[1]
    assert db.session.scalars(select(Release).where(Release.version == "4.0.0")).first() is None
    # With it: the rendered fragment alone.
    r = client.post(
        "/console/releases/preview",
        data={"csrf_token": token, "notes-en": NOTES_EN},
    )
    assert r.status_code == 200 and "<strong>dual-link backup</strong>" in r.get_data(as_text=True)
    assert "<html" not in r.get_data(as_text=True)
    # More rows for parameters and requirements.
    r = client.post(
        f"/console/releases/new?product={product.id}",
        data={"csrf_token": token, "action": "more-rows", "parameter-0-name": "kept"},
    )
    html = r.get_data(as_text=True)
    assert 'id="parameter-3-name"' in html and 'value="kept"' in html


# --- promote, withdraw, rollout ---------------------------------------------------------------


@pytest.fixture
def fleet(client, factory, product):
    """1.1.0 published to dev for rev-a, from 1.0.0; devices of the product on
    several channels, versions and revisions, and one of another product."""
    publisher = factory.caller("publisher")
    publish(client, publisher.headers, product.id, "1.0.0", b"old", channels=["dev"])
    r = publish(
        client,
        publisher.headers,
        product.id,
        "1.1.0",
        b"new",
        channels=["dev"],
        hardware_revisions=["rev-a"],
        min_from_version="1.0.0",
    )
    organisation = factory.organisation()
    devices = {}
    for name, channel, version, revision in [
        ("stable-1", "stable", "1.0.0", "rev-a"),
        ("stable-2", "stable", "1.0.0", "rev-a"),
        ("stable-3", "stable", "1.0.5", "rev-a"),
        ("stable-rev-b", "stable", "1.0.0", "rev-b"),  # hardware it does not run on
        ("stable-old", "stable", "0.9.0", "rev-a"),  # below its lowest from-version
        ("stable-on-it", "stable", "1.1.0", "rev-a"),
        ("beta-1", "beta", "1.0.0", "rev-a"),
        ("dev-1", "dev", "1.0.0", "rev-a"),
        ("dev-2", "dev", "1.0.0", "rev-a"),
        ("unknown", "stable", None, "rev-a"),
    ]:
        kw = {"current_version": version} if version else {}
        devices[name] = factory.device(
            organisation, product, channel=channel, hardware_revision=revision, **kw
        )[0]
    factory.device(organisation, factory.product(), current_version="1.0.0")
    return {"release_id": r.get_json()["id"], "devices": devices}


def test_each_confirmation_says_how_many_devices(client, factory, fleet):
    release_id = fleet["release_id"]
    db.session.add(
        InstallEvent(
            device_id=fleet["devices"]["dev-1"].id,
            release_id=release_id,
            version="1.1.0",
            event_id="e1",
            status="downloading",
            occurred_at=db.session.get(Release, release_id).created_at,
        )
    )
    db.session.commit()
    as_staff(client, factory, "publisher")
    # dev devices take it now; stable would add beta-1 and stable-1..3.
    html = _text(page(client, f"/console/releases/{release_id}/promote?channel=stable"))
    assert "6 devices would be offered it in all" in html and "(4 more than now)" in html
    html = _text(page(client, f"/console/releases/{release_id}/promote?channel=beta"))
    assert "3 devices would be offered it in all" in html and "(1 more than now)" in html
    html = _text(page(client, f"/console/releases/{release_id}/withdraw"))
    assert "2 devices are offered it now" in html
    assert "1 device is part-way through installing it" in html
    html = _text(
        page(
            client,
            f"/console/releases/{release_id}/rollout?review=1&channel=stable"
            "&waves=50,100&soak_hours=1&min_success_percent=95&stop_failure_percent=5"
            "&auto_advance=1",
        )
    )
    assert "The first wave (50 %) offers it to about 3 devices" in html
    assert "of 6 devices that could take it" in html
    html = _text(
        page(
            client,
            f"/console/releases/{release_id}/rollout?review=1&channel=stable"
            "&waves=50,100&soak_hours=1&min_success_percent=95&stop_failure_percent=5"
            "&excluded_hardware=rev-a",
        )
    )
    assert "of 0 devices that could take it" in html


def test_promote_withdraw_and_rollout_are_done_by_the_confirmations_post(client, factory, fleet):
    release_id = fleet["release_id"]
    as_staff(client, factory, "publisher")
    token = _form(client, f"/console/releases/{release_id}/promote?channel=beta")
    r = client.post(
        f"/console/releases/{release_id}/promote", data={"csrf_token": token, "channel": "beta"}
    )
    assert r.status_code == 303
    assert db.session.get(Release, release_id).channel_names == ["dev", "beta"]

    page(client, f"/console/releases/{release_id}/rollout")  # the form, with defaults
    r = client.post(
        f"/console/releases/{release_id}/rollout",
        data={
            "csrf_token": token,
            "channel": "stable",
            "waves": "1, 10, 100",
            "soak_hours": "2",
            "min_success_percent": "90",
            "stop_failure_percent": "10",
            "auto_advance": "1",
        },
    )
    assert r.status_code == 303, r.get_data(as_text=True)[:2000]
    rollout = db.session.scalars(select(Rollout).where(Rollout.release_id == release_id)).one()
    assert rollout.state == "running" and rollout.channel.name == "stable"
    assert [w["share"] for w in rollout.waves] == [100, 1000, 10000]
    assert rollout.gates["min_soak_seconds"] == 7200 and rollout.gates["min_success_rate"] == 0.9
    assert db.session.get(Release, release_id).channel_names == ["dev", "beta", "stable"]
    html = _text(page(client, f"/console/releases/{release_id}"))
    assert "1 of 3 (1 %)" in html and "Start a rollout" not in html

    # A second one is refused with words, nothing started.
    r = client.post(
        f"/console/releases/{release_id}/rollout",
        data={
            "csrf_token": token,
            "channel": "stable",
            "waves": "100",
            "soak_hours": "1",
            "min_success_percent": "95",
            "stop_failure_percent": "5",
        },
    )
    assert r.status_code == 409 and "cannot be done in its current state" in unescape(
        r.get_data(as_text=True)
    )

    r = client.post(f"/console/releases/{release_id}/withdraw", data={"csrf_token": token})
    assert r.status_code == 422 and db.session.get(Release, release_id).status == "published"
    r = client.post(
        f"/console/releases/{release_id}/withdraw",
        data={"csrf_token": token, "reason": "rev-a units reboot"},
    )
    assert r.status_code == 303
    release = db.session.get(Release, release_id)
    assert release.status == "withdrawn" and release.withdrawn_reason == "rev-a units reboot"


def test_a_viewer_sees_no_write_action_and_is_refused_one(client, factory, fleet):
    release_id = fleet["release_id"]
    as_staff(client, factory, "viewer")
    listing = page(client, "/console/releases")
    assert "/console/releases/new" not in listing
    html = page(client, f"/console/releases/{release_id}")
    for path in ("promote", "withdraw", "rollout"):
        assert f"/console/releases/{release_id}/{path}" not in html
    assert "<form" not in html.split("</header>")[1]
    token = csrf(html)  # the logout form's
    page(client, "/console/releases/new", 403)
    page(client, f"/console/releases/{release_id}/promote?channel=stable", 403)
    for path, data in [
        ("promote", {"channel": "stable"}),
        ("withdraw", {"reason": "no"}),
        ("rollout", {"channel": "stable", "waves": "100"}),
    ]:
        r = client.post(
            f"/console/releases/{release_id}/{path}", data={"csrf_token": token, **data}
        )
        assert r.status_code == 403
    r = client.post(
        "/console/releases/new?product=1",
        data=_publish_form(token, "9.0.0"),
        content_type="multipart/form-data",
    )
    assert r.status_code == 403
    release = db.session.get(Release, release_id)
    assert release.status == "published" and release.channel_names == ["dev"]
    assert db.session.scalars(select(Release).where(Release.version == "9.0.0")).first() is None


def test_every_form_needs_its_token(client, factory, fleet, app, product):
    release_id = fleet["release_id"]
    as_staff(client, factory, "admin")
    for path, data in [
        ("promote", {"channel": "stable"}),
        ("withdraw", {"reason": "no"}),
        ("rollout", {"channel": "stable", "waves": "100"}),
    ]:
        assert client.post(f"/console/releases/{release_id}/{path}", data=data).status_code == 400
    assert client.post("/console/releases/preview", data={"notes-en": "x"}).status_code == 400
    form = _publish_form("", "9.1.0")
    del form["csrf_token"]
    r = client.post(
        f"/console/releases/new?product={product.id}", data=form, content_type="multipart/form-data"
    )
    assert r.status_code == 400
    assert list((app.extensions["artifact_store"].root / ".tmp").iterdir()) == []
    assert db.session.get(Release, release_id).channel_names == ["dev"]


# --- signatures and languages -------------------------------------------------------------------


def test_releases_waiting_for_signatures_say_who_still_has_to_sign(client, factory, product):
    publisher = factory.caller("publisher")
    signers = [new_signer() for _ in range(3)]
    create_offline_repository(client, publisher.headers, product.id, signers, 2, 2)
    for signer in signers[:2]:
        sign_all(client, publisher.headers, product.id, signer)
    r = publish(client, publisher.headers, product.id, "5.0.0", b"to sign")
    sign_all(client, publisher.headers, product.id, signers[2])
    as_staff(client, factory, "viewer")
    listing = _text(page(client, "/console/releases"))
    assert "1 release waits for offline signatures." in listing
    html = page(client, "/console/releases/signatures")
    text = _text(html)
    assert "5.0.0" in text and "1 more signature needed" in text and "threshold 2" in text
    rows = {
        signer: re.search(rf"{signer.public_key.keyid[:16]}.*?</tr>", html, re.S).group(0)
        for signer in signers
    }
    assert "still to sign" in rows[signers[0]] and "still to sign" in rows[signers[1]]
    assert "still to sign" not in rows[signers[2]] and "signed" in rows[signers[2]]
    detail = _text(page(client, f"/console/releases/{r.get_json()['id']}"))
    assert "Waiting for offline signatures" in detail


def test_chinese_pages_show_no_raw_codes(client, factory, fleet):
    release_id = fleet["release_id"]
    publisher = factory.caller("publisher")
    client.post(
        f"/api/v1/releases/{release_id}/rollouts",
        json={"channel": "dev", "waves": [{"share": 10000}]},
        headers=publisher.headers,
    )
    as_staff(client, factory, "publisher", lang="zh-CN")
    for path in (
        "/console/releases",
        f"/console/releases/{release_id}",
        f"/console/releases/{release_id}/withdraw",
        "/console/releases/signatures",
        f"/console/releases/new?product={db.session.get(Release, release_id).product_id}",
    ):
        text = _text(page(client, path))
        for code in ("published", "pending-signatures", "running", "withdrawn", "installation"):
            assert code not in text, (path, code)
        assert re.search(r"[\u4e00-\u9fff]", text)
        english = {"Release notes", "Version", "Publish", "Channels", "devices"}
        assert not [w for w in english if w in text], path


def test_odd_input_gets_words_never_a_server_error(client, factory, fleet, product, app):
    release_id = fleet["release_id"]
    as_staff(client, factory, "publisher")
    for query in (
        "product=99999999999999&page=0&status=xyz",
        "page=abc&channel=" + "x" * 100,
        "q=%25_%5C&page=99999",
    ):
        page(client, f"/console/releases?{query}")
    review = f"/console/releases/{release_id}/rollout?review=1&channel=stable"
    for odd in (
        "waves=1e400",
        "waves=abc",
        "waves=",
        "waves=50,100&soak_hours=1e308",
        "waves=100&soak_hours=nan",
        "waves=100&min_success_percent=inf",
        "waves=100&stop_failure_percent=-1",
        "waves=10,5,100",
    ):
        r = client.get(f"{review}&{odd}")
        assert r.status_code in (200, 422), (odd, r.status_code)
    page(client, f"/console/releases/{release_id}/promote?channel={'y' * 300}", 422)
    page(client, "/console/releases/new?product=99999", 404)
    chooser = page(client, "/console/releases/new")  # two products: which one?
    assert f'<option value="{product.id}">' in chooser and "Continue" in chooser
    page(client, "/console/releases/99999", 404)
    token = csrf(page(client, f"/console/releases/{release_id}/withdraw"))
    r = client.post(
        f"/console/releases/{release_id}/withdraw", data={"csrf_token": token, "reason": "x" * 3000}
    )
    assert r.status_code == 422 and db.session.get(Release, release_id).status == "published"
    r = client.post(
        f"/console/releases/new?product={product.id}",
        data=_publish_form(token, "6.0.0", **{"notes-en": "a\x00b"}),
        content_type="multipart/form-data",
    )
    assert r.status_code == 400 and 'value="6.0.0"' in r.get_data(as_text=True)
    assert db.session.scalars(select(Release).where(Release.version == "6.0.0")).first() is None
    assert list((app.extensions["artifact_store"].root / ".tmp").iterdir()) == []

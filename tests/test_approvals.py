"""Customer approval of updates: the setting, pending releases, approving for
all or chosen devices (with an installation session asked for), who may, the
loader the update check caches, and the portal page in both languages."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from tests.helpers.approvals import approval_world, need_approval
from tests.helpers.portal import csrf, login
from tests.helpers.problems import assert_problem
from upgrade_server.audit.models import AuditEntry
from upgrade_server.extensions import db
from upgrade_server.organisations.models import Organisation
from upgrade_server.rollouts import approvals
from upgrade_server.service.models import ServiceRequest


@pytest.fixture
def world(client, factory):
    return approval_world(client, factory)


def _url(world, tail="approvals"):
    return f"/api/v1/organisations/{world.organisation.id}/{tail}"


def _pending(client, world, caller=None):
    r = client.get(_url(world), headers=(caller or world.admin).headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def test_without_the_setting_nothing_waits_and_every_device_is_approved(client, world):
    body = _pending(client, world)
    assert body == {"updates_need_approval": False, "pending": [], "approved": []}
    release_id = world.update["id"]
    assert approvals.approved(db.session, world.organisation.id, release_id, world.devices[0].id)


def test_a_release_waits_until_approved_for_chosen_then_all_devices(client, world):
    need_approval(client, world)
    release_id = world.update["id"]
    first, second = world.devices
    body = _pending(client, world)
    assert body["updates_need_approval"] is True
    [waiting] = body["pending"]
    assert waiting["release_id"] == release_id and waiting["version"] == "1.1.0"
    assert waiting["notes_url"] == f"/portal/releases/{release_id}"
    assert sorted(d["serial"] for d in waiting["devices"]) == sorted(
        d.serial for d in world.devices
    )
    assert not approvals.approved(db.session, world.organisation.id, release_id, first.id)

    r = client.post(
        _url(world),
        json={"release_id": release_id, "device_ids": [first.id]},
        headers=world.admin.headers,
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["all_devices"] is False and r.get_json()["device_ids"] == [first.id]
    assert r.get_json()["service_request_id"] is None
    [waiting] = _pending(client, world)["pending"]
    assert [d["id"] for d in waiting["devices"]] == [second.id]
    assert approvals.approved(db.session, world.organisation.id, release_id, first.id)
    assert not approvals.approved(db.session, world.organisation.id, release_id, second.id)

    r = client.post(_url(world), json={"release_id": release_id}, headers=world.admin.headers)
    assert r.status_code == 201 and r.get_json()["all_devices"] is True
    body = _pending(client, world)
    assert body["pending"] == [] and len(body["approved"]) == 2
    assert approvals.approved(db.session, world.organisation.id, release_id, second.id)
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "release.approve")
    ).all()
    assert [e.after["all_devices"] for e in entries] == [False, True]
    assert all(e.organisation_id == world.organisation.id for e in entries)


def test_the_loader_reads_an_organisations_approvals_in_one_query(client, world):
    need_approval(client, world)
    release_id = world.update["id"]
    client.post(
        _url(world),
        json={"release_id": release_id, "device_ids": [world.devices[0].id]},
        headers=world.admin.headers,
    )
    organisation_id = world.organisation.id
    connection = db.session.connection()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(connection, "before_cursor_execute", listener)
    try:
        loaded = approvals.load_approvals(connection, organisation_id)
    finally:
        event.remove(connection, "before_cursor_execute", listener)
    assert len(statements) == 1
    assert loaded.needed and loaded.approved(release_id, world.devices[0].id)
    assert not loaded.approved(release_id, world.devices[1].id)
    # Every change moves the key a process caches the loaded approvals under.
    organisation = db.session.get(Organisation, world.organisation.id)
    assert organisation.update_settings_generation == 2  # the setting, the approval


def test_approving_can_request_an_upgrade_installation_session(client, world):
    need_approval(client, world)
    r = client.post(
        _url(world),
        json={"release_id": world.update["id"], "request_installation": True},
        headers=world.admin.headers,
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    request = db.session.get(ServiceRequest, r.get_json()["service_request_id"])
    assert request.organisation_id == world.organisation.id
    assert "1.1.0" in request.title and "Upgrade installation" in request.title
    assert sorted(d.id for d in request.devices) == sorted(d.id for d in world.devices)
    assert request.opened_via == "api"
    # The customer sees it among its service requests.
    r = client.get("/api/v1/service-requests", headers=world.viewer.headers)
    assert request.id in [item["id"] for item in r.get_json()["items"]]


def test_who_may_approve_and_change_the_setting(client, world, factory):
    need_approval(client, world)
    body = {"release_id": world.update["id"]}
    setting = {"updates_need_approval": False}
    # A customer-viewer reads, and may not approve or change the setting.
    assert client.get(_url(world), headers=world.viewer.headers).status_code == 200
    assert_problem(
        client.post(_url(world), json=body, headers=world.viewer.headers), 403, "forbidden"
    )
    r = client.put(_url(world, "update-approval"), json=setting, headers=world.viewer.headers)
    assert_problem(r, 403, "forbidden")
    # Another organisation's admin does not even see it.
    for r in (
        client.get(_url(world), headers=world.outsider.headers),
        client.post(_url(world), json=body, headers=world.outsider.headers),
        client.get(_url(world, "update-approval"), headers=world.outsider.headers),
        client.put(_url(world, "update-approval"), json=setting, headers=world.outsider.headers),
    ):
        assert_problem(r, 404, "not-found")
    # Vendor staff: an admin may, a publisher may not.
    publisher = factory.caller("publisher")
    assert_problem(client.post(_url(world), json=body, headers=publisher.headers), 403, "forbidden")
    assert client.post(_url(world), json=body, headers=world.vendor.headers).status_code == 201
    r = client.put(_url(world, "update-approval"), json=setting, headers=world.vendor.headers)
    assert r.status_code == 200 and r.get_json() == setting
    assert client.get(_url(world)).status_code == 401
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "organisation.update-approval.set")
    ).all()[-1]
    assert entry.before == {"updates_need_approval": True} and entry.after == setting


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"release_id": 999_999}, 404, "not-found"),
        ({"release_id": 2**40}, 422, "invalid-input"),
        ({"release_id": "one"}, 422, "invalid-input"),
        ({}, 422, "invalid-input"),
        ({"release_id": None, "device_ids": ["x"]}, 422, "invalid-input"),
    ],
)
def test_bad_approvals_are_refused(client, world, body, status, slug):
    assert_problem(client.post(_url(world), json=body, headers=world.admin.headers), status, slug)


def test_devices_of_another_organisation_are_refused(client, world, factory):
    stranger, _ = factory.device(organisation=world.other, product=world.product)
    body = {"release_id": world.update["id"], "device_ids": [world.devices[0].id, stranger.id]}
    problem = assert_problem(
        client.post(_url(world), json=body, headers=world.admin.headers), 422, "invalid-input"
    )
    assert problem["errors"][0]["field"] == "device_ids"
    assert (
        db.session.scalars(select(AuditEntry).where(AuditEntry.action == "release.approve")).all()
        == []
    )


# --- the portal page -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ["Waiting for approval", "Request an installation session", "all devices"]),
        ("zh-CN", ["等待批准", "申请安装服务", "全部设备"]),
    ],
)
def test_the_portal_page_lists_what_waits_in_both_languages(client, world, lang, words):
    need_approval(client, world)
    login(client, world.admin.user.email)
    page = client.get(f"/portal/approvals?lang={lang}").get_data(as_text=True)
    for word in words:
        assert word in page
    assert "Edge Gateway 1.1.0" in page
    assert f"/portal/releases/{world.update['id']}" in page
    assert all(d.serial in page for d in world.devices)
    # The stored codes never show.
    assert "updates_need_approval" not in page and "all_devices" not in page


def test_approving_in_the_portal_for_a_ticked_device_with_a_session(client, world):
    need_approval(client, world)
    login(client, world.admin.user.email)
    page = client.get("/portal/approvals?lang=zh-CN").get_data(as_text=True)
    first, second = world.devices
    url = f"/portal/approvals/{world.update['id']}"
    form = {"scope": "chosen", "device_ids": [str(first.id)], "request_installation": "yes"}
    assert client.post(url, data=form).status_code == 400  # no CSRF token
    r = client.post(url, data={**form, "csrf_token": csrf(page)})
    assert r.status_code == 302, r.get_data(as_text=True)
    assert approvals.approved(db.session, world.organisation.id, world.update["id"], first.id)
    assert not approvals.approved(db.session, world.organisation.id, world.update["id"], second.id)
    request = db.session.scalars(select(ServiceRequest)).all()[-1]
    assert request.opened_via == "portal" and "升级安装" in request.title
    assert [d.id for d in request.devices] == [first.id]
    page = client.get("/portal/approvals").get_data(as_text=True)
    assert "已批准" in page and first.serial in page


def test_a_customer_viewer_sees_the_page_without_the_form(client, world):
    need_approval(client, world)
    login(client, world.viewer.user.email)
    page = client.get("/portal/approvals?lang=en").get_data(as_text=True)
    assert "Edge Gateway 1.1.0" in page and "Request an installation session" not in page
    r = client.post(
        f"/portal/approvals/{world.update['id']}", data={"scope": "all", "csrf_token": csrf(page)}
    )
    assert r.status_code == 403
    assert not approvals.approved(
        db.session, world.organisation.id, world.update["id"], world.devices[0].id
    )


_TEXT = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["..", "%00", "9" * 40, "٣", "²", "\x00"]),
)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    release=st.one_of(_TEXT, st.just("")),
    form=st.fixed_dictionaries(
        {"scope": st.one_of(st.sampled_from(["all", "chosen"]), _TEXT)},
        optional={"device_ids": st.lists(_TEXT, max_size=3), "request_installation": _TEXT},
    ),
)
def test_the_approval_form_never_answers_a_server_error(client, world, release, form):
    login(client, world.admin.user.email)
    page = client.get("/portal/approvals").get_data(as_text=True)
    target = f"/portal/approvals/{quote(release or str(world.update['id']), safe='')}"
    r = client.post(target, data={**form, "csrf_token": csrf(page)})
    assert r.status_code < 500, r.get_data(as_text=True)[:500]

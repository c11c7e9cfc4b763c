"""The service record's promises (issue 14): a service request answered
within 24 hours, a request signed off only once its sessions are, the
written pre-installation notice, the customer's representatives and the
hotline change notice. Dates are relative to the pinned clock (tests/clock.py)."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.clock import NOW, at, today
from tests.helpers.problems import assert_problem
from upgrade_server.audit.models import AuditEntry
from upgrade_server.extensions import db
from upgrade_server.service.models import ServiceRequestBreach
from upgrade_server.tickets import notify


@pytest.fixture
def shop(client, factory):
    org = factory.organisation(contact_email="ops@customer.test")
    product = factory.product()
    device, _ = factory.device(organisation=org, product=product, site="Pudong DC")
    db.session.commit()
    return {
        "org": org,
        "product": product,
        "device": device,
        "support": factory.caller("support"),
        "customer": factory.caller("customer-viewer", org),
        "customer_admin": factory.caller("customer-admin", org),
        "stranger": factory.caller("customer-admin", factory.organisation()),
    }


def _call(client, caller, method, url, body=None, status=200):
    r = client.open(url, method=method, json=body, headers=caller.headers)
    assert r.status_code == status, r.get_json()
    return r.get_json()


def _post(client, caller, url, body=None, status=200):
    return _call(client, caller, "POST", url, body or {}, status)


def _deadline(request_json):
    (found,) = request_json["deadlines"]
    assert found["name"] == "response"
    return found


# --- 7: a service request is answered within 24 hours ---------------------------------------


def test_a_request_unanswered_after_24_hours_is_a_breach_swept_in_the_background(
    client, app, shop, clock
):
    opened = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "UI"}, 201)
    url = f"/api/v1/service-requests/{opened['id']}"
    due = _deadline(opened)
    assert due["met_at"] is None and due["late_minutes"] is None
    received = datetime.fromisoformat(opened["received_at"])
    assert datetime.fromisoformat(due["due_at"]) - received == timedelta(hours=24)
    clock.shift(timedelta(hours=25))
    late = _deadline(client.get(url, headers=shop["customer"].headers).get_json())
    assert 59 <= late["late_minutes"] <= 61
    # The background pass that sweeps the tickets' breaches keeps it as a row.
    notify.run_once(app)
    row = db.session.scalars(select(ServiceRequestBreach)).one()
    assert (row.request_id, row.deadline, row.met_at) == (opened["id"], "response", None)
    assert 59 <= row.late_minutes <= 61
    # The vendor answers two hours late: the breach is final, with how late.
    clock.shift(timedelta(hours=1))
    answered = _post(client, shop["support"], f"{url}/respond", {"response": "called back"})
    assert answered["responded_by"] == shop["support"].user.email
    assert answered["response"] == "called back"
    assert 119 <= _deadline(answered)["late_minutes"] <= 121
    db.session.refresh(row)
    assert row.met_at is not None and 119 <= row.late_minutes <= 121
    # One response counts; the customer does not answer for the vendor.
    assert_problem(
        client.post(f"{url}/respond", json={"response": "again"}, headers=shop["support"].headers),
        409,
        "conflict",
    )
    assert_problem(
        client.post(f"{url}/respond", json={"response": "x"}, headers=shop["customer"].headers),
        403,
        "forbidden",
    )
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.object_type == "service_requests")
    ).all()
    assert "service.request.respond" in actions


def test_the_start_of_work_or_a_planned_session_is_the_response(client, shop):
    first = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "a"}, 201)
    started = _post(client, shop["support"], f"/api/v1/service-requests/{first['id']}/start")
    assert started["responded_at"] == started["started_at"]
    assert _deadline(started)["late_minutes"] is None and _deadline(started)["met_at"]
    second = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "b"}, 201)
    body = {"kind": "follow-up", "organisation_id": shop["org"].id, "request_id": second["id"]}
    _post(client, shop["support"], "/api/v1/service-sessions", body, 201)
    found = client.get(
        f"/api/v1/service-requests/{second['id']}", headers=shop["customer"].headers
    ).get_json()
    assert found["responded_at"] is not None and found["response"] == ""


def test_a_phone_request_counts_from_when_the_call_came_in(client, shop):
    called = (NOW - timedelta(hours=30)).isoformat()
    phone = _post(
        client,
        shop["support"],
        "/api/v1/service-requests",
        {"title": "call", "organisation_id": shop["org"].id, "received_at": called},
        201,
    )
    assert phone["received_at"] == called
    assert 359 <= _deadline(phone)["late_minutes"] <= 361
    future = (NOW + timedelta(hours=2)).isoformat()
    r = client.post(
        "/api/v1/service-requests",
        json={"title": "call", "organisation_id": shop["org"].id, "received_at": future},
        headers=shop["support"].headers,
    )
    assert_problem(r, 422, "invalid-input")


def test_the_request_deadline_report_lists_met_and_missed_with_csv(client, shop):
    support = shop["support"]
    late = _post(
        client,
        support,
        "/api/v1/service-requests",
        {
            "title": "late one",
            "organisation_id": shop["org"].id,
            "received_at": (NOW - timedelta(hours=26)).isoformat(),
        },
        201,
    )
    kept = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "kept"}, 201)
    _post(client, support, f"/api/v1/service-requests/{kept['id']}/respond", {"response": "ok"})
    _post(client, shop["customer"], "/api/v1/service-requests", {"title": "not due"}, 201)
    query = {"from": str(today() - timedelta(days=3)), "to": str(today() + timedelta(days=2))}
    report = client.get(
        "/api/v1/service-requests/deadline-report",
        query_string=query,
        headers=shop["customer"].headers,
    ).get_json()
    assert (report["met"], report["missed"]) == (1, 1)
    rows = {r["request_id"]: r for r in report["items"]}
    assert set(rows) == {late["id"], kept["id"]}
    assert rows[late["id"]]["met"] is False and 119 <= rows[late["id"]]["late_minutes"] <= 121
    csv_text = client.get(
        "/api/v1/service-requests/deadline-report",
        query_string={**query, "format": "csv"},
        headers=support.headers,
    ).get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("request_id,organisation,title,deadline,received_at")
    assert len(csv_text.splitlines()) == 3
    # The tickets' deadline report has them as a section of its own.
    both = client.get(
        "/api/v1/tickets/deadline-report", query_string=query, headers=support.headers
    ).get_json()
    section = both["service_requests"]
    assert (section["met"], section["missed"]) == (1, 1)
    assert {r["request_id"] for r in section["items"]} == {late["id"], kept["id"]}
    stranger = client.get(
        "/api/v1/service-requests/deadline-report",
        query_string=query,
        headers=shop["stranger"].headers,
    ).get_json()
    assert stranger["items"] == []


# --- 9: a request is signed off only once its sessions are ------------------------------------


def test_a_request_is_not_signed_off_while_its_session_is_still_planned(client, shop):
    opened = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "x"}, 201)
    url = f"/api/v1/service-requests/{opened['id']}"
    body = {"kind": "follow-up", "organisation_id": shop["org"].id, "request_id": opened["id"]}
    visit = _post(client, shop["support"], "/api/v1/service-sessions", body, 201)
    _post(client, shop["support"], f"{url}/start", {"at": (NOW - timedelta(hours=2)).isoformat()})
    _post(client, shop["customer"], f"{url}/confirm-start")
    r = client.post(f"{url}/end", json={}, headers=shop["support"].headers)
    problem = assert_problem(r, 409, "conflict")
    assert f"session {visit['id']}" in problem["detail"] and "planned" in problem["detail"]
    assert problem["sessions"] == [{"id": visit["id"], "kind": "follow-up", "state": "planned"}]
    # The session done and signed off, the request ends and is signed off.
    session_url = f"/api/v1/service-sessions/{visit['id']}"
    _post(client, shop["support"], f"{session_url}/start")
    _post(client, shop["customer"], f"{session_url}/confirm-start")
    _post(client, shop["support"], f"{session_url}/end")
    _post(client, shop["support"], f"{url}/end")
    # A session planned for it after its end holds the sign-off back too.
    later = _post(client, shop["support"], "/api/v1/service-sessions", body, 201)
    r = client.post(f"{url}/confirm-end", headers=shop["customer"].headers)
    problem = assert_problem(r, 409, "conflict")
    assert {s["id"] for s in problem["sessions"]} == {visit["id"], later["id"]}
    assert problem["sessions"][0]["state"] == "ended"


def test_a_planned_session_that_will_not_happen_is_cancelled_and_no_longer_holds_the_request(
    client, shop
):
    opened = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "x"}, 201)
    url = f"/api/v1/service-requests/{opened['id']}"
    body = {"kind": "follow-up", "organisation_id": shop["org"].id, "request_id": opened["id"]}
    visit = _post(client, shop["support"], "/api/v1/service-sessions", body, 201)
    _post(client, shop["support"], f"{url}/start", {"at": (NOW - timedelta(hours=2)).isoformat()})
    _post(client, shop["customer"], f"{url}/confirm-start")
    session_url = f"/api/v1/service-sessions/{visit['id']}"
    # The customer cannot call the vendor's visit off; a reason is required.
    r = client.post(f"{session_url}/cancel", json={"reason": "x"}, headers=shop["customer"].headers)
    assert r.status_code == 403
    r = client.post(f"{session_url}/cancel", json={}, headers=shop["support"].headers)
    assert_problem(r, 422, "invalid-input")
    cancelled = _post(
        client, shop["support"], f"{session_url}/cancel", {"reason": "客户改为远程处理"}
    )
    assert cancelled["state"] == "cancelled" and cancelled["cancel_reason"] == "客户改为远程处理"
    # It no longer changes, and the request ends and is signed off without it.
    r = client.post(f"{session_url}/start", json={}, headers=shop["support"].headers)
    assert_problem(r, 409, "conflict")
    r = client.patch(session_url, json={"notes": "x"}, headers=shop["support"].headers)
    assert_problem(r, 409, "conflict")
    _post(client, shop["support"], f"{url}/end")
    assert _post(client, shop["customer"], f"{url}/confirm-end")["state"] == "signed-off"
    # A session that started is not cancelled: its end is recorded instead.
    started = _post(
        client, shop["support"], "/api/v1/service-sessions", body | {"request_id": None}, 201
    )
    _post(client, shop["support"], f"/api/v1/service-sessions/{started['id']}/start")
    r = client.post(
        f"/api/v1/service-sessions/{started['id']}/cancel",
        json={"reason": "x"},
        headers=shop["support"].headers,
    )
    assert_problem(r, 409, "conflict")
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.object_id == str(visit["id"]))
    ).all()
    assert "service.session.cancel" in actions


# --- 14: the written pre-installation notice --------------------------------------------------


def test_the_pre_installation_notice_is_sent_before_delivery_and_confirmed_by_the_customer(
    client, shop, factory
):
    device = shop["device"]
    expected = today() + timedelta(days=10)
    created = _post(
        client,
        shop["support"],
        "/api/v1/pre-installation-notices",
        {
            "organisation_id": shop["org"].id,
            "device_ids": [device.id],
            "expected_on": expected.isoformat(),
        },
        201,
    )
    assert created["state"] == "sent" and created["sent_via"] == "email"
    assert created["site"] == "Pudong DC" and created["late_device_ids"] == []
    assert "安装前期准备书面通知" in created["document"] and device.serial in created["document"]
    assert expected.isoformat() in created["document"]
    url = f"/api/v1/pre-installation-notices/{created['id']}"
    # The vendor does not confirm for the customer; another customer sees nothing.
    assert_problem(
        client.post(f"{url}/confirm-receipt", headers=shop["support"].headers), 403, "forbidden"
    )
    assert_problem(client.get(url, headers=shop["stranger"].headers), 404, "not-found")
    received = _post(client, shop["customer"], f"{url}/confirm-receipt")
    assert received["state"] == "received"
    assert received["received_by"] == shop["customer"].user.email
    assert_problem(
        client.post(f"{url}/confirm-receipt", headers=shop["customer"].headers), 409, "conflict"
    )
    pdf = client.get(f"{url}?format=pdf", headers=shop["customer"].headers)
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    # In the service record, its CSV and PDF.
    record = client.get(
        f"/api/v1/devices/{device.id}/service-record", headers=shop["customer"].headers
    ).get_json()
    (entry,) = [i for i in record["items"] if i["kind"] == "notice"]
    assert entry["state"] == "received" and device.serial in entry["devices"]
    csv_text = client.get(
        f"/api/v1/organisations/{shop['org'].id}/service-record?format=csv",
        headers=shop["customer"].headers,
    ).get_data(as_text=True)
    assert f"notice,pre-installation notice {created['id']}" in csv_text
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.object_type == "pre_installation_notices")
    ).all()
    assert actions == ["service.notice.send", "service.notice.confirm-receipt"]


def test_a_notice_keeps_its_letter_as_sent_until_the_customer_confirms_receipt(client, shop):
    created = _post(
        client,
        shop["support"],
        "/api/v1/pre-installation-notices",
        {"organisation_id": shop["org"].id, "device_ids": [shop["device"].id]},
        201,
    )
    url = f"/api/v1/pre-installation-notices/{created['id']}"

    def attach(name: str) -> Any:
        return client.post(
            f"{url}/attachments",
            data={"file": (io.BytesIO(b"site plan"), name)},
            headers=shop["support"].headers,
            content_type="multipart/form-data",
        )

    r = attach("plan.pdf")
    assert r.status_code == 201, r.get_json()
    (kept,) = r.get_json()["attachments"]
    got = client.get(f"{url}/attachments/{kept['sha256']}", headers=shop["customer"].headers)
    assert got.status_code == 200 and got.data == b"site plan" and got.mimetype == "application/pdf"
    missing = client.get(f"{url}/attachments/{'0' * 64}", headers=shop["customer"].headers)
    assert_problem(missing, 404, "not-found")
    _post(client, shop["customer"], f"{url}/confirm-receipt")
    assert_problem(attach("late.pdf"), 409, "conflict")


def test_a_delivered_device_without_a_notice_in_time_is_a_warning(client, shop, factory):
    delivered = today() - timedelta(days=5)
    support = shop["support"]
    none, _ = factory.device(
        organisation=shop["org"], product=shop["product"], delivered_on=delivered.isoformat()
    )
    late, _ = factory.device(
        organisation=shop["org"], product=shop["product"], delivered_on=delivered.isoformat()
    )
    timely, _ = factory.device(
        organisation=shop["org"], product=shop["product"], delivered_on=delivered.isoformat()
    )
    for device, sent in ((late, delivered), (timely, delivered - timedelta(days=7))):
        _post(
            client,
            support,
            "/api/v1/pre-installation-notices",
            {
                "organisation_id": shop["org"].id,
                "device_ids": [device.id],
                "sent_at": at(sent, 2).isoformat(),  # 10:00 in Shanghai
                "sent_via": "post",
            },
            201,
        )
    rows = client.get(
        "/api/v1/service/reminders/pre-installation-notices", headers=shop["customer"].headers
    ).get_json()["items"]
    assert [(r["serial"], r["problem"]) for r in rows] == [
        (none.serial, "none"),
        (late.serial, "late"),
    ]
    assert rows[0]["delivered_on"] == delivered.isoformat()
    record = client.get(
        f"/api/v1/devices/{none.id}/service-record", headers=shop["customer"].headers
    ).get_json()
    warning = next(i for i in record["items"] if i["kind"] == "warning")
    assert warning["state"] == "notice-none" and none.serial in warning["devices"]
    assert (
        client.get(
            "/api/v1/service/reminders/pre-installation-notices",
            headers=shop["stranger"].headers,
        ).get_json()["items"]
        == []
    )


# --- 15: representatives and the hotline change notice -----------------------------------------


def test_the_customer_admin_names_trained_representatives(client, shop):
    org_id = shop["org"].id
    url = f"/api/v1/organisations/{org_id}/representatives"
    training = _post(
        client,
        shop["support"],
        "/api/v1/service-sessions",
        {"kind": "training", "organisation_id": org_id, "training_days": 1.0},
        201,
    )
    admin = shop["customer_admin"]
    rep = _post(
        client,
        admin,
        url,
        {"name": "张伟", "phone": "+86 21 5555 0101", "training_session_id": training["id"]},
        201,
    )
    assert rep["trained"] == "planned" and rep["training_session_id"] == training["id"]
    # A viewer reads but does not name; another organisation sees nothing of it.
    assert_problem(
        client.post(url, json={"name": "x", "phone": "1"}, headers=shop["customer"].headers),
        403,
        "forbidden",
    )
    listed = client.get(url, headers=shop["customer"].headers).get_json()["items"]
    assert [r["name"] for r in listed] == ["张伟"]
    assert_problem(client.get(url, headers=shop["stranger"].headers), 404, "not-found")
    assert_problem(
        client.post(url, json={"name": "x", "phone": "1"}, headers=shop["stranger"].headers),
        404,
        "not-found",
    )
    # Only a training session of the organisation.
    other = _post(
        client,
        shop["support"],
        "/api/v1/service-sessions",
        {"kind": "inspection", "organisation_id": org_id},
        201,
    )
    r = client.post(
        url,
        json={"name": "y", "phone": "2", "training_session_id": other["id"]},
        headers=admin.headers,
    )
    assert_problem(r, 422, "invalid-input")
    changed = _call(client, admin, "PATCH", f"{url}/{rep['id']}", {"phone": "+86 21 5555 0102"})
    assert changed["phone"] == "+86 21 5555 0102"
    r = client.delete(f"{url}/{rep['id']}", headers=admin.headers)
    assert r.status_code == 204
    assert client.get(url, headers=admin.headers).get_json()["items"] == []
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.object_type == "customer_representatives")
    ).all()
    assert actions == [
        "service.representative.add",
        "service.representative.update",
        "service.representative.remove",
    ]


def test_every_customer_is_told_of_a_hotline_change_within_3_days(
    client,
    app,
    shop,
    factory,
    monkeypatch,
    mailbox,
    clock,
):
    box, port = mailbox
    settings = app.config["SETTINGS"]
    silent = factory.organisation()  # no contact e-mail: told by letter
    support = shop["support"]
    change = _post(
        client,
        support,
        "/api/v1/hotline-changes",
        {"number": "400-800-1234", "previous_number": "400-800-1000"},
        201,
    )
    url = f"/api/v1/hotline-changes/{change['id']}"
    statuses = {n["organisation_id"]: n["status"] for n in change["notices"]}
    assert statuses[shop["org"].id] == statuses[silent.id] == "pending"
    # No mail server: a 409 saying so, nobody marked as told.
    assert_problem(client.post(f"{url}/send-email", headers=support.headers), 409, "conflict")
    monkeypatch.setattr(settings, "smtp_host", "127.0.0.1")
    monkeypatch.setattr(settings, "smtp_port", port)
    monkeypatch.setattr(settings, "notify_timeout_seconds", 2.0)
    sent = _post(client, support, f"{url}/send-email")
    assert shop["org"].slug in sent["sent"] and silent.slug in sent["skipped"]
    (message,) = [m for m in box.messages if m.rcpt_tos == ["ops@customer.test"]]
    assert "400-800-1234" in message.content.decode()
    # Four days on, the one without an e-mail address is overdue until a letter is recorded.
    clock.shift(timedelta(days=4))
    pending = client.get("/api/v1/service/reminders/hotline", headers=support.headers).get_json()
    overdue = [r for r in pending["items"] if r["change_id"] == change["id"]]
    assert silent.slug in {r["organisation"] for r in overdue}
    assert shop["org"].slug not in {r["organisation"] for r in overdue}
    assert all(r["status"] == "overdue" for r in overdue)
    told = _post(
        client, support, f"{url}/notices", {"organisation_id": silent.id, "via": "post"}, 201
    )
    rows = {n["organisation_id"]: n for n in told["notices"]}
    assert rows[shop["org"].id]["status"] == "told" and rows[shop["org"].id]["told_via"] == "email"
    assert rows[silent.id]["status"] == "told-late"
    assert_problem(
        client.post(
            f"{url}/notices",
            json={"organisation_id": silent.id, "via": "post"},
            headers=support.headers,
        ),
        409,
        "conflict",
    )
    # A customer sees the change and only its own notice.
    seen = client.get(url, headers=shop["customer"].headers).get_json()
    assert [n["organisation_id"] for n in seen["notices"]] == [shop["org"].id]
    assert seen["notices"][0]["contact_email"] is None
    assert_problem(
        client.post(
            "/api/v1/hotline-changes", json={"number": "1"}, headers=shop["customer_admin"].headers
        ),
        403,
        "forbidden",
    )


# --- the portal ---------------------------------------------------------------------------------


def test_the_portal_shows_the_response_deadline_notices_and_representatives(client, shop, factory):
    from tests.helpers.portal import PASSWORD, csrf, login
    from upgrade_server.accounts import service as accounts

    admin = shop["customer_admin"].user
    admin.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    opened = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "链路"}, 201)
    notice = _post(
        client,
        shop["support"],
        "/api/v1/pre-installation-notices",
        {"organisation_id": shop["org"].id, "device_ids": [shop["device"].id]},
        201,
    )
    _post(client, shop["support"], "/api/v1/hotline-changes", {"number": "400-800-1234"}, 201)
    login(client, admin.email)
    page = client.get("/portal/service?lang=zh-CN").get_data(as_text=True)
    assert "响应期限" in page and "安装前期准备通知" in page and "400-800-1234" in page
    assert f"request-{opened['id']}" in page
    main = page.split("<main>")[1]
    assert ">sent<" not in main and ">email<" not in main  # words, not codes
    # The customer reads the notice and confirms it reached them.
    url = f"/portal/service/notices/{notice['id']}"
    shown = client.get(url).get_data(as_text=True)
    assert "安装前期准备书面通知" in shown and shop["device"].serial in shown
    r = client.post(f"{url}/confirm-receipt", data={"csrf_token": csrf(shown)})
    assert r.status_code == 302
    assert "已确认收到" in client.get(url).get_data(as_text=True)
    record = client.get(f"/portal/devices/{shop['device'].id}/record").get_data(as_text=True)
    assert "安装前期准备通知" in record and "Pudong DC" in record
    assert not re.search(r"(?<![\w-])(sent|received|email|notice|warning)(?![\w-])", record)
    # The customer's administrator names a representative.
    r = client.post(
        "/portal/service/representatives",
        data={"csrf_token": csrf(page), "name": "李娜", "phone": "+86 10 5555 0199"},
    )
    assert r.status_code == 302
    assert "李娜" in client.get("/portal/service").get_data(as_text=True)


def test_staff_respond_and_change_the_hotline_from_the_command_line(client, runner, shop):
    opened = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "cli"}, 201)
    result = runner.invoke(
        args=["service", "respond", str(opened["id"]), "--response", "called back"]
    )
    assert result.exit_code == 0, result.output
    assert f"request {opened['id']}: answered in time" in result.output
    found = client.get(
        f"/api/v1/service-requests/{opened['id']}", headers=shop["customer"].headers
    ).get_json()
    assert found["response"] == "called back" and found["responded_by"].startswith("cli:")
    result = runner.invoke(args=["service", "hotline-change", "400-800-5678"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["service", "reminders", "hotline"])
    assert shop["org"].slug in result.output and "pending" in result.output
    result = runner.invoke(args=["service", "hotline-email", "1"])
    assert result.exit_code != 0 and "no mail server" in result.output


def test_an_engineer_records_the_response_in_the_portal(client, shop):
    from tests.helpers.portal import PASSWORD, csrf, login
    from upgrade_server.accounts import service as accounts

    engineer = shop["support"].user
    engineer.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    opened = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "链路"}, 201)
    login(client, engineer.email)
    page = client.get("/portal/service?lang=zh-CN").get_data(as_text=True)
    assert "记录响应" in page
    r = client.post(
        f"/portal/service/requests/{opened['id']}/respond",
        data={"csrf_token": csrf(page), "response": "已电话回复"},
    )
    assert r.status_code == 302
    found = client.get(
        f"/api/v1/service-requests/{opened['id']}", headers=shop["customer"].headers
    ).get_json()
    assert found["response"] == "已电话回复" and found["responded_by"] == engineer.email
    assert "已电话回复" in client.get("/portal/service").get_data(as_text=True)


def test_a_late_response_by_the_start_of_work_or_a_planned_session_is_kept_as_a_breach(
    client, shop, clock
):
    """Answered late by planning a session or starting the work (not by the
    respond step), the missed deadline is still a row, with how late."""
    planned = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "a"}, 201)
    started = _post(client, shop["customer"], "/api/v1/service-requests", {"title": "b"}, 201)
    clock.shift(timedelta(hours=26))
    body = {"kind": "follow-up", "organisation_id": shop["org"].id, "request_id": planned["id"]}
    _post(client, shop["support"], "/api/v1/service-sessions", body, 201)
    _post(client, shop["support"], f"/api/v1/service-requests/{started['id']}/start")
    rows = {r.request_id: r for r in db.session.scalars(select(ServiceRequestBreach))}
    assert set(rows) == {planned["id"], started["id"]}
    for row in rows.values():
        assert row.met_at is not None and 119 <= row.late_minutes <= 121

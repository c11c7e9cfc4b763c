"""Sessions and service requests confirmed by both sides, the service record,
reminders."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.helpers.problems import assert_problem
from upgrade_server.accounts.principal import Principal
from upgrade_server.audit.models import AuditEntry
from upgrade_server.devices import service as devices
from upgrade_server.extensions import db


@pytest.fixture
def shop(client, factory):
    org = factory.organisation()
    product = factory.product()
    device, _ = factory.device(organisation=org, product=product, delivered_on="2026-02-10")
    db.session.commit()
    return {
        "org": org,
        "product": product,
        "device": device,
        "support": factory.caller("support"),
        "customer": factory.caller("customer-viewer", org),
        "stranger": factory.caller("customer-admin", factory.organisation()),
    }


def _post(client, caller, url, body=None, status=200):
    r = client.post(url, json=body or {}, headers=caller.headers)
    assert r.status_code == status, r.get_json()
    return r.get_json()


def _session(client, shop, **body):
    data = {
        "kind": "installation",
        "organisation_id": shop["org"].id,
        "device_ids": [shop["device"].id],
        "engineers": ["Wang Wei"],
        "customer_representative": "Li Na",
        **body,
    }
    return _post(client, shop["support"], "/api/v1/service-sessions", data, 201)


def _sign_off(client, shop, url, start, end, outcome="done"):
    _post(client, shop["support"], f"{url}/start", {"at": start})
    _post(client, shop["customer"], f"{url}/confirm-start")
    _post(client, shop["support"], f"{url}/end", {"at": end, "outcome": outcome})
    return _post(client, shop["customer"], f"{url}/confirm-end")


def test_both_sides_confirm_in_order_and_nothing_changes_after_sign_off(client, shop):
    created = _session(client, shop)
    url = f"/api/v1/service-sessions/{created['id']}"
    assert created["state"] == "planned" and created["timezone"] == "Asia/Shanghai"
    # The customer does not record the start; the vendor does not confirm it.
    assert_problem(
        client.post(f"{url}/start", json={}, headers=shop["customer"].headers), 403, "forbidden"
    )
    _post(client, shop["support"], f"{url}/start", {"at": "2026-03-01T01:00:00Z"})
    r = client.post(f"{url}/confirm-start", headers=shop["support"].headers)
    assert_problem(r, 403, "forbidden")
    # Out of order: the end needs a confirmed start; its confirmation needs an end.
    assert_problem(
        client.post(f"{url}/end", json={}, headers=shop["support"].headers), 409, "conflict"
    )
    assert_problem(
        client.post(f"{url}/confirm-end", headers=shop["customer"].headers), 409, "conflict"
    )
    confirmed = _post(client, shop["customer"], f"{url}/confirm-start")
    assert confirmed["state"] == "start-confirmed"
    assert confirmed["start_confirmed_by"] == shop["customer"].user.email
    r = client.post(
        f"{url}/end", json={"at": "2026-03-01T00:00:00Z"}, headers=shop["support"].headers
    )
    assert_problem(r, 422, "invalid-input")  # before the start
    _post(
        client,
        shop["support"],
        f"{url}/end",
        {"at": "2026-03-01T09:00:00Z", "outcome": "commissioned"},
    )
    signed = _post(client, shop["customer"], f"{url}/confirm-end")
    assert signed["state"] == "signed-off" and signed["outcome"] == "commissioned"

    # Signed off: no change, no step, no attachment.
    r = client.patch(url, json={"notes": "edited"}, headers=shop["support"].headers)
    assert_problem(r, 409, "conflict")
    assert_problem(
        client.post(f"{url}/start", json={}, headers=shop["support"].headers), 409, "conflict"
    )
    r = client.post(
        f"{url}/attachments",
        data={"file": (io.BytesIO(b"form"), "form.pdf")},
        headers=shop["support"].headers,
        content_type="multipart/form-data",
    )
    assert_problem(r, 409, "conflict")
    # A correction is a new entry pointing at the original, which stays as it was.
    correction = _post(
        client,
        shop["support"],
        f"{url}/corrections",
        {"outcome": "commissioned; cable replaced"},
        201,
    )
    assert correction["corrects_id"] == created["id"] and correction["state"] == "planned"
    original = client.get(url, headers=shop["customer"].headers).get_json()
    assert original["outcome"] == "commissioned" and original["state"] == "signed-off"
    unsigned = _session(client, shop)
    r = client.post(
        f"/api/v1/service-sessions/{unsigned['id']}/corrections",
        json={},
        headers=shop["support"].headers,
    )
    assert_problem(r, 409, "conflict")
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.object_type == "service_sessions")
    ).all()
    for action in ("create", "start", "confirm-start", "end", "confirm-end", "correct"):
        assert f"service.session.{action}" in actions


def test_signed_off_acceptance_sets_the_acceptance_date_and_coverage_follows(client, shop):
    created = _session(client, shop, kind="acceptance")
    url = f"/api/v1/service-sessions/{created['id']}"
    # Ends at 17:30 UTC on 1 March: already 2 March in Shanghai.
    _sign_off(client, shop, url, "2026-03-01T08:00:00Z", "2026-03-01T17:30:00Z")
    device = client.get(f"/api/v1/devices/{shop['device'].id}", headers=shop["support"].headers)
    assert device.get_json()["accepted_on"] == "2026-03-02"
    coverage = client.get(
        f"/api/v1/devices/{shop['device'].id}/coverage", headers=shop["customer"].headers
    ).get_json()
    kinds = {k["kind"]: k for k in coverage["kinds"]}
    assert kinds["warranty"]["covered_through"] == "2029-03-01"
    assert kinds["upgrades"]["covered_through"] == "2029-03-01"


def test_training_days_add_up_per_delivery(client, shop):
    urls = []
    for days in (1.5, 1.0):
        created = _session(client, shop, kind="training", training_days=days)
        assert created["delivery"] == "2026-02-10"  # the devices' delivery
        urls.append(f"/api/v1/service-sessions/{created['id']}")
    report = client.get("/api/v1/service/reminders/training", headers=shop["customer"].headers)
    row = report.get_json()["items"][0]
    assert (row["delivery"], row["days_used"], row["days_left"]) == ("2026-02-10", 2.5, 0.5)
    # The first was really two days: its correction replaces it in the count.
    _sign_off(client, shop, urls[0], "2026-03-03T01:00:00Z", "2026-03-03T09:00:00Z")
    _post(client, shop["support"], f"{urls[0]}/corrections", {"training_days": 2.0}, 201)
    row = client.get(
        "/api/v1/service/reminders/training?format=json", headers=shop["customer"].headers
    ).get_json()["items"][0]
    assert (row["days_used"], row["days_left"]) == (3.0, 0.0)
    csv_text = client.get(
        "/api/v1/service/reminders/training?format=csv", headers=shop["support"].headers
    ).get_data(as_text=True)
    assert csv_text.splitlines()[0] == "organisation,delivery,days_used,days_left"


def test_a_customer_sees_and_confirms_only_its_own(client, shop):
    created = _session(client, shop)
    url = f"/api/v1/service-sessions/{created['id']}"
    _post(client, shop["support"], f"{url}/start")
    stranger = shop["stranger"].headers
    assert_problem(client.get(url, headers=stranger), 404, "not-found")
    assert_problem(client.post(f"{url}/confirm-start", headers=stranger), 404, "not-found")
    assert client.get("/api/v1/service-sessions", headers=stranger).get_json()["items"] == []
    request = _post(
        client, shop["customer"], "/api/v1/service-requests", {"title": "Link down"}, 201
    )
    assert_problem(
        client.get(f"/api/v1/service-requests/{request['id']}", headers=stranger), 404, "not-found"
    )
    assert_problem(
        client.get(f"/api/v1/devices/{shop['device'].id}/service-record", headers=stranger),
        404,
        "not-found",
    )


def test_service_requests_link_sessions_and_show_the_wait(client, shop, clock):
    opened = _post(
        client,
        shop["customer"],
        "/api/v1/service-requests",
        {"title": "链路中断", "description": "主链路中断", "device_ids": [shop["device"].id]},
        201,
    )
    assert opened["opened_via"] == "api" and opened["organisation_id"] == shop["org"].id
    url = f"/api/v1/service-requests/{opened['id']}"
    start = datetime.fromisoformat(opened["received_at"]) + timedelta(hours=3)
    clock.shift(timedelta(hours=6))  # the work is recorded once done
    _sign_off(client, shop, url, start.isoformat(), (start + timedelta(hours=2)).isoformat())
    served = _session(client, shop, kind="follow-up", request_id=opened["id"])
    found = client.get(url, headers=shop["customer"].headers).get_json()
    assert found["state"] == "signed-off"
    assert found["session_ids"] == [served["id"]]
    assert found["waited_hours"] == pytest.approx(3.0, abs=0.01)
    # A phone call, opened by the vendor for the customer.
    phone = _post(
        client,
        shop["support"],
        "/api/v1/service-requests",
        {"title": "Question on backups", "organisation_id": shop["org"].id},
        201,
    )
    assert phone["opened_via"] == "phone"


def test_the_record_merges_installs_sessions_and_requests(client, shop):
    device = shop["device"]
    token = devices.rotate_device_token(db.session, Principal.cli(), device).secret
    db.session.commit()
    r = client.post(
        "/api/device/v1/installs",
        json={
            "event_id": "e-1",
            "status": "installed",
            "version": "0.9.1",
            "occurred_at": "2026-03-05T02:00:00Z",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code in (200, 201), r.get_json()
    created = _session(client, shop, kind="inspection", findings="fan dusty")
    _sign_off(
        client,
        shop,
        f"/api/v1/service-sessions/{created['id']}",
        "2026-03-04T01:00:00Z",
        "2026-03-04T03:00:00Z",
    )
    _post(
        client,
        shop["customer"],
        "/api/v1/service-requests",
        {"title": "Slow UI", "device_ids": [device.id]},
        201,
    )
    record = client.get(
        f"/api/v1/devices/{device.id}/service-record", headers=shop["customer"].headers
    ).get_json()
    kinds = [item["kind"] for item in record["items"]]
    # Delivered with no pre-installation notice on record: a warning at its delivery.
    assert kinds == ["warning", "session", "install", "request"]
    assert record["items"][0]["at"] == "2026-02-10 00:00"
    assert record["items"][1]["at"] == "2026-03-04 09:00"  # Shanghai time
    assert record["items"][1]["state"] == "signed-off"
    csv_text = client.get(
        f"/api/v1/devices/{device.id}/service-record?format=csv", headers=shop["customer"].headers
    ).get_data(as_text=True)
    assert "inspection" in csv_text and "0.9.1 installed" in csv_text
    pdf = client.get(
        f"/api/v1/organisations/{shop['org'].id}/service-record?format=pdf",
        headers=shop["customer"].headers,
    )
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")


def test_reminders_inspections_due_and_waiting_for_the_customer(client, shop, factory):
    today = datetime.now(UTC).date()
    accepted = today - timedelta(days=200)  # more than 6 months ago
    device, _ = factory.device(
        organisation=shop["org"], product=shop["product"], accepted_on=accepted.isoformat()
    )
    due = client.get(
        "/api/v1/service/reminders/inspections?days=0", headers=shop["customer"].headers
    ).get_json()["items"]
    assert [row["serial"] for row in due] == [device.serial]
    assert due[0]["overdue_days"] > 0
    inspection = _session(client, shop, kind="inspection", device_ids=[device.id])
    url = f"/api/v1/service-sessions/{inspection['id']}"
    now = datetime.now(UTC)
    _sign_off(client, shop, url, (now - timedelta(hours=2)).isoformat(), now.isoformat())
    due = client.get(
        "/api/v1/service/reminders/inspections?days=0", headers=shop["customer"].headers
    ).get_json()["items"]
    assert due == []
    waiting = _session(client, shop)
    _post(
        client,
        shop["support"],
        f"/api/v1/service-sessions/{waiting['id']}/start",
        {"at": (now - timedelta(hours=30)).isoformat()},
    )
    rows = client.get(
        "/api/v1/service/reminders/waiting?hours=24", headers=shop["support"].headers
    ).get_json()["items"]
    assert [(r["ref"], r["waiting_for"]) for r in rows] == [(f"session:{waiting['id']}", "start")]


def test_attachments_are_kept_in_the_store(client, shop):
    created = _session(client, shop)
    url = f"/api/v1/service-sessions/{created['id']}"
    r = client.post(
        f"{url}/attachments",
        data={"file": (io.BytesIO(b"signed form bytes"), "form.pdf")},
        headers=shop["support"].headers,
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    attachment = r.get_json()["attachments"][0]
    assert attachment["filename"] == "form.pdf" and attachment["size"] == 17
    got = client.get(f"{url}/attachments/{attachment['sha256']}", headers=shop["customer"].headers)
    assert got.status_code == 200 and got.data == b"signed form bytes"
    assert got.mimetype == "application/pdf" and "attachment" in got.headers["Content-Disposition"]
    # A page uploaded as HTML is never served as one.
    r = client.post(
        f"{url}/attachments",
        data={"file": (io.BytesIO(b"<script>alert(1)</script>"), "x.html", "text/html")},
        headers=shop["support"].headers,
        content_type="multipart/form-data",
    )
    html = r.get_json()["attachments"][-1]
    got = client.get(f"{url}/attachments/{html['sha256']}", headers=shop["customer"].headers)
    assert got.mimetype == "application/octet-stream"
    r = client.get(f"{url}/attachments/{'0' * 64}", headers=shop["customer"].headers)
    assert_problem(r, 404, "not-found")


def test_reminders_write_dates_and_times_in_iso_8601(client, shop, factory):
    from upgrade_server.entitlements.coverage import anniversary

    accepted = datetime.now(UTC).date() - timedelta(days=200)
    factory.device(organisation=shop["org"], product=shop["product"], accepted_on=str(accepted))
    row = client.get(
        "/api/v1/service/reminders/inspections?days=0", headers=shop["support"].headers
    ).get_json()["items"][0]
    assert row["due_on"] == anniversary(accepted, shop["product"].inspection_months).isoformat()
    assert row["last_inspection"] is None
    started = (datetime.now(UTC) - timedelta(hours=30)).replace(microsecond=0)
    waiting = _session(client, shop)
    url = f"/api/v1/service-sessions/{waiting['id']}/start"
    _post(client, shop["support"], url, {"at": started.isoformat()})
    row = client.get(
        "/api/v1/service/reminders/waiting?hours=24", headers=shop["support"].headers
    ).get_json()["items"][0]
    assert row["since"] == started.isoformat()  # "2026-…T…+00:00", with its offset

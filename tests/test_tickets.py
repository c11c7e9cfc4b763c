"""Alarms, tickets, deadlines, incident reports, through the API."""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers.problems import assert_problem
from upgrade_server.extensions import db
from upgrade_server.tickets import breaches
from upgrade_server.tickets.models import Alarm, Ticket, TicketBreach
from upgrade_server.workdays.service import Calendars


@pytest.fixture
def plant(client, factory):
    org = factory.organisation(region="beijing")
    device, token = factory.device(organisation=org)
    db.session.commit()
    return {
        "org": org,
        "device": device,
        "device_headers": {"Authorization": f"Bearer {token}"},
        "support": factory.caller("support"),
        "customer": factory.caller("customer-viewer", org),
        "stranger": factory.caller("customer-admin", factory.organisation()),
    }


def _alarm(client, plant, alarm_id, code="PSU_FAIL", level=1, **extra):
    return client.post(
        "/api/device/v1/alarms",
        json={
            "alarm_id": alarm_id,
            "code": code,
            "level": level,
            "message": "power supply failed",
            "occurred_at": "2026-03-02T02:00:00Z",
            **extra,
        },
        headers=plant["device_headers"],
    )


def _deadlines(ticket: dict) -> dict[str, dict]:
    return {d["name"]: d for d in ticket["deadlines"]}


def test_a_level_1_alarm_opens_a_ticket_with_the_emergency_deadlines(client, plant):
    r = _alarm(client, plant, "a-1")
    assert r.status_code == 201
    ticket_id = r.get_json()["ticket_id"]
    ticket = client.get(f"/api/v1/tickets/{ticket_id}", headers=plant["customer"].headers)
    body = ticket.get_json()
    opened = datetime.fromisoformat(body["opened_at"])
    due = _deadlines(body)
    assert datetime.fromisoformat(due["acknowledge"]["due_at"]) == opened + timedelta(minutes=10)
    assert datetime.fromisoformat(due["on_site"]["due_at"]) == opened + timedelta(hours=2)
    assert (body["level"], body["status"], body["alarm_count"]) == (1, "new", 1)
    # A retry of the same upload counts once; a new one of the same code adds to it.
    again = _alarm(client, plant, "a-1")
    assert again.status_code == 200 and again.get_json()["ticket_id"] == ticket_id
    more = _alarm(client, plant, "a-2")
    assert more.status_code == 201 and more.get_json()["ticket_id"] == ticket_id
    other = _alarm(client, plant, "b-1", code="FAN_SLOW", level=3)
    assert other.get_json()["ticket_id"] != ticket_id
    cleared = _alarm(client, plant, "a-3", event="clear")
    assert cleared.get_json()["ticket_id"] == ticket_id
    body = client.get(f"/api/v1/tickets/{ticket_id}", headers=plant["support"].headers).get_json()
    assert body["alarm_count"] == 2 and body["cleared_at"] is not None


def test_bad_alarms_are_refused_and_lose_nothing(client, plant):
    r = _alarm(client, plant, "x-1", level=7)
    assert_problem(r, 422, "invalid-input")
    r = client.post(
        "/api/device/v1/alarms",
        data="{",
        headers={**plant["device_headers"], "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert db.session.query(Alarm).count() == 0 and db.session.query(Ticket).count() == 0


def test_a_flapping_device_is_limited_but_every_alarm_counts(client, plant, app, monkeypatch):
    monkeypatch.setattr(app.config["SETTINGS"], "alarm_uploads_per_minute", 3)
    statuses = [_alarm(client, plant, f"f-{i}").status_code for i in range(6)]
    assert statuses == [201, 201, 201, 202, 202, 202]
    ticket = db.session.query(Ticket).one()
    assert ticket.alarm_count == 6
    assert db.session.query(Alarm).count() == 3


def test_a_ticket_is_worked_to_closed_with_its_report(client, plant):
    ticket_id = _alarm(client, plant, "a-1").get_json()["ticket_id"]
    url = f"/api/v1/tickets/{ticket_id}"
    support = plant["support"].headers
    for status in ("acknowledged", "on-the-way", "on-site", "resolved"):
        r = client.post(f"{url}/status", json={"status": status}, headers=support)
        assert r.status_code == 200 and r.get_json()["status"] == status
    assert_problem(
        client.post(f"{url}/status", json={"status": "on-site"}, headers=support), 409, "conflict"
    )
    assert_problem(
        client.post(f"{url}/status", json={"status": "closed"}, headers=support), 409, "conflict"
    )
    # Not yet written: the customer sees no report.
    assert_problem(client.get(f"{url}/report", headers=plant["customer"].headers), 404, "not-found")
    r = client.put(f"{url}/report", json={"symptoms": "no power"}, headers=support)
    assert r.status_code == 200
    r = client.post(f"{url}/report/deliver", headers=support)
    body = assert_problem(r, 422, "invalid-input")
    assert {e["field"] for e in body["errors"]} >= {"cause", "solution", "recovery_steps"}
    report = {
        "fault_started_at": "2026-03-02T02:00:00Z",
        "fault_ended_at": "2026-03-02T05:00:00Z",
        "symptoms": "设备断电",
        "cause": "power supply unit failed",
        "solution": "replaced the power supply unit",
        "recovery_steps": [
            {"at": "2026-03-02T04:00:00Z", "step": "replaced the PSU"},
            {"at": "2026-03-02T05:00:00Z", "step": "verified service"},
        ],
        "follow_up": "inspect the other PSUs within a month",
    }
    assert client.put(f"{url}/report", json=report, headers=support).status_code == 200
    delivered = client.post(f"{url}/report/deliver", headers=support)
    assert delivered.status_code == 200 and delivered.get_json()["delivered_at"]
    assert_problem(
        client.put(f"{url}/report", json={"symptoms": "x"}, headers=support), 409, "conflict"
    )
    r = client.post(f"{url}/status", json={"status": "closed"}, headers=support)
    assert r.get_json()["status"] == "closed"
    seen = client.get(f"{url}/report", headers=plant["customer"].headers).get_json()
    assert seen["symptoms"] == "设备断电" and len(seen["recovery_steps"]) == 2
    pdf = client.get(f"{url}/report?format=pdf", headers=plant["customer"].headers)
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert_problem(client.get(url, headers=plant["stranger"].headers), 404, "not-found")


def test_an_unacknowledged_ticket_is_breached_in_the_report(client, plant):
    ticket_id = _alarm(client, plant, "a-1").get_json()["ticket_id"]
    ticket = db.session.get(Ticket, ticket_id)
    ticket.opened_at = datetime.now(UTC) - timedelta(hours=1)  # an hour ago
    db.session.commit()
    start = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    end = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = client.get(
        "/api/v1/tickets/deadline-report",
        query_string={"from": start, "to": end},
        headers=plant["customer"].headers,
    )
    body = r.get_json()
    ack = next(row for row in body["items"] if row["deadline"] == "acknowledge")
    assert ack["met"] is False and 49 <= ack["late_minutes"] <= 51
    assert body["missed"] >= 1
    csv_text = client.get(
        "/api/v1/tickets/deadline-report",
        query_string={"from": start, "to": end, "format": "csv"},
        headers=plant["support"].headers,
    ).get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("ticket_id,organisation,level,deadline")
    # The board puts it first: its deadline is the nearest (already past).
    board = client.get("/api/v1/tickets", headers=plant["support"].headers).get_json()["items"]
    assert board[0]["id"] == ticket_id
    # The background pass keeps the breach as a row; acknowledging late settles it.
    breaches.sweep_breaches(db.session, Calendars(db.session))
    row = db.session.query(TicketBreach).one()
    assert (row.ticket_id, row.deadline, row.met_at) == (ticket_id, "acknowledge", None)
    assert 49 <= row.late_minutes <= 51
    r = client.post(
        f"/api/v1/tickets/{ticket_id}/status",
        json={"status": "acknowledged"},
        headers=plant["support"].headers,
    )
    assert r.status_code == 200
    db.session.refresh(row)
    assert row.met_at is not None and 49 <= row.late_minutes <= 51


def test_deadlines_hold_only_during_a_pause_the_customer_confirmed(client, plant):
    r = client.post(
        "/api/v1/tickets",
        json={"title": "Slow links", "level": 3, "device_ids": [plant["device"].id]},
        headers=plant["customer"].headers,
    )
    assert r.status_code == 201 and r.get_json()["source"] == "api"
    url = f"/api/v1/tickets/{r.get_json()['id']}"
    before = _deadlines(r.get_json())["on_site"]["due_at"]
    support = plant["support"].headers
    client.post(f"{url}/pause", json={"reason": "waiting for remote access"}, headers=support)
    # Not confirmed yet: no effect even once ended.
    assert _deadlines(client.get(url, headers=support).get_json())["on_site"]["due_at"] == before
    r = client.post(f"{url}/pause/confirm", headers=plant["customer"].headers)
    assert r.get_json()["pauses"][0]["confirmed_by"] == plant["customer"].user.email
    assert_problem(client.post(f"{url}/pause/confirm", headers=support), 403, "forbidden")
    ended = client.post(f"{url}/pause/end", headers=support).get_json()
    moved = _deadlines(ended)["on_site"]["due_at"]
    assert moved > before
    # Raising the level tightens the deadlines at once.
    raised = client.post(f"{url}/level", json={"level": 1}, headers=support).get_json()
    assert _deadlines(raised)["acknowledge"]["due_at"] < before


def test_staff_preview_a_draft_report_as_pdf_marked_draft_customers_do_not(client, plant):
    ticket_id = _alarm(client, plant, "d-1").get_json()["ticket_id"]
    url = f"/api/v1/tickets/{ticket_id}/report"
    support = plant["support"].headers
    # A draft with neither the fault's start nor its end yet.
    assert client.put(url, json={"symptoms": "no power"}, headers=support).status_code == 200
    pdf = client.get(f"{url}?format=pdf", headers={**support, "Accept-Language": "en"})
    assert pdf.status_code == 200, pdf.get_json()
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert f"incident-{ticket_id}-draft.pdf" in pdf.headers["Content-Disposition"]
    assert f"Draft: Incident report #{ticket_id}" in _pdf_titles(pdf.data)
    customer = plant["customer"].headers
    assert_problem(client.get(f"{url}?format=pdf", headers=customer), 404, "not-found")


def _pdf_titles(pdf: bytes) -> list[str]:
    """The document's title (its <title>) and its bookmarks' (its headings), as
    WeasyPrint writes them into compressed object streams."""
    titles = []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            titles += re.findall(rb"/Title \((.*?)\)", zlib.decompress(stream))
        except zlib.error:
            continue
    return [t.decode("latin-1") for t in titles]


# --- emergencies (issue 14, point 6) -----------------------------------------------------------


def _ack_due(ticket: dict) -> datetime:
    return datetime.fromisoformat(_deadlines(ticket)["acknowledge"]["due_at"])


def test_a_product_that_counts_level_2_as_an_emergency_gives_its_tickets_the_10_minute_reaction(
    client, plant, factory
):
    product = plant["device"].product
    url = f"/api/v1/products/{product.id}"
    assert client.get(url, headers=plant["support"].headers).get_json()["emergency_levels"] == [1]
    publisher = factory.caller("publisher")
    refused = client.patch(url, json={"emergency_levels": [1, 2]}, headers=publisher.headers)
    assert_problem(refused, 403, "forbidden")
    admin = factory.caller("admin")
    bad = client.patch(url, json={"emergency_levels": [5]}, headers=admin.headers)
    assert_problem(bad, 422, "invalid-input")
    r = client.patch(url, json={"emergency_levels": [2, 1]}, headers=admin.headers)
    assert r.status_code == 200 and r.get_json()["emergency_levels"] == [1, 2]

    ticket_id = _alarm(client, plant, "e-1", level=2).get_json()["ticket_id"]
    body = client.get(f"/api/v1/tickets/{ticket_id}", headers=plant["customer"].headers).get_json()
    opened = datetime.fromisoformat(body["opened_at"])
    assert body["emergency"] is True and body["emergency_levels"] == [1, 2]
    assert datetime.fromisoformat(body["emergency_since"]) == opened
    assert _ack_due(body) == opened + timedelta(minutes=10)
    # A product that keeps the default: level 2 is not an emergency.
    _, token = factory.device(organisation=plant["org"])
    r = client.post(
        "/api/device/v1/alarms",
        json={"alarm_id": "o-1", "code": "X", "level": 2, "occurred_at": "2026-03-02T02:00:00Z"},
        headers={"Authorization": f"Bearer {token}"},
    )
    plain = client.get(f"/api/v1/tickets/{r.get_json()['ticket_id']}", headers=admin.headers)
    assert plain.get_json()["emergency"] is False
    assert _ack_due(plain.get_json()) == datetime.fromisoformat(
        plain.get_json()["opened_at"]
    ) + timedelta(hours=24)


def test_staff_mark_a_ticket_an_emergency_and_unmark_it_with_a_reason_audited(client, plant, clock):
    from upgrade_server.audit.models import AuditEntry

    r = client.post(
        "/api/v1/tickets",
        json={"title": "Slow links", "level": 3, "device_ids": [plant["device"].id]},
        headers=plant["customer"].headers,
    )
    url = f"/api/v1/tickets/{r.get_json()['id']}"
    opened = datetime.fromisoformat(r.get_json()["opened_at"])
    assert r.get_json()["emergency"] is False
    assert _ack_due(r.get_json()) == opened + timedelta(hours=24)
    support = plant["support"].headers
    mark = {"emergency": True, "reason": "the hospital's link is down"}
    assert_problem(
        client.post(f"{url}/emergency", json=mark, headers=plant["customer"].headers),
        403,
        "forbidden",
    )
    assert_problem(
        client.post(f"{url}/emergency", json={"emergency": True}, headers=support),
        422,
        "invalid-input",
    )
    clock.shift(timedelta(hours=3))
    marked = client.post(f"{url}/emergency", json=mark, headers=support)
    assert marked.status_code == 200, marked.get_json()
    body = marked.get_json()
    since = datetime.fromisoformat(body["emergency_since"])
    assert body["emergency"] is True and since >= opened + timedelta(hours=3)
    assert _ack_due(body) == since + timedelta(minutes=10)  # from the moment it became one
    assert body["emergency_marks"][0]["reason"] == "the hospital's link is down"
    assert body["emergency_marks"][0]["by"] == plant["support"].user.email
    # The staff board says so.
    board = client.get("/api/v1/tickets", headers=support).get_json()["items"]
    assert next(t for t in board if t["id"] == body["id"])["emergency"] is True
    # A level change that does not cross the emergency levels keeps the staff's call.
    raised = client.post(f"{url}/level", json={"level": 2}, headers=support).get_json()
    assert raised["emergency"] is True and _ack_due(raised) == since + timedelta(minutes=10)
    cleared = client.post(
        f"{url}/emergency",
        json={"emergency": False, "reason": "a backup link carries it"},
        headers=support,
    ).get_json()
    assert cleared["emergency"] is False and cleared["emergency_since"] is None
    assert _ack_due(cleared) == opened + timedelta(hours=24)
    actions = [
        (e.action, e.after["emergency_marks"][-1]["reason"])
        for e in db.session.query(AuditEntry).filter(AuditEntry.action.like("ticket.emergency%"))
    ]
    assert actions == [
        ("ticket.emergency", "the hospital's link is down"),
        ("ticket.emergency-cleared", "a backup link carries it"),
    ]
    # Raised into the emergency levels: the rule decides again, from then.
    clock.shift(timedelta(minutes=30))
    again = client.post(f"{url}/level", json={"level": 1}, headers=support).get_json()
    assert again["emergency"] is True
    assert datetime.fromisoformat(again["emergency_since"]) >= since + timedelta(minutes=30)
    for status in ("acknowledged", "resolved"):
        client.post(f"{url}/status", json={"status": status}, headers=support)
    assert_problem(client.post(f"{url}/emergency", json=mark, headers=support), 409, "conflict")


def test_the_emergency_endpoint_and_fields_are_in_the_openapi_document(client):
    spec = client.get("/api/openapi.json").get_json()
    assert "post" in spec["paths"]["/api/v1/tickets/{ticket_id}/emergency"]
    fields = spec["components"]["schemas"]["TicketOut"]["properties"]
    assert {"emergency", "emergency_since", "emergency_levels", "emergency_marks"} <= set(fields)
    assert "emergency_levels" in spec["components"]["schemas"]["ProductPatch"]["properties"]


# --- the customer's ticket page (issue 14, point 8) ---------------------------------------------


def _text(page: str) -> str:
    """What a reader sees: the page without its tags."""
    from html import unescape

    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.fixture
def follower(client, plant, factory):
    """The plant's organisation with a customer who may log in to the portal."""
    from tests.helpers.portal import PASSWORD
    from upgrade_server.accounts import service as accounts

    user = factory.user("customer-viewer", plant["org"], email="noc@plant.test")
    user.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    return user


def test_customers_follow_a_tickets_progress_on_its_page(client, plant, follower, factory):
    from tests.helpers.portal import csrf, login

    ticket_id = _alarm(client, plant, "p-1", level=1).get_json()["ticket_id"]
    url = f"/api/v1/tickets/{ticket_id}"
    support = plant["support"].headers
    for status in ("acknowledged", "on-the-way"):
        client.post(f"{url}/status", json={"status": status}, headers=support)
    client.post(f"{url}/pause", json={"reason": "远程访问未开通"}, headers=support)
    login(client, follower.email)
    board = client.get("/portal/tickets?lang=en").get_data(as_text=True)
    assert f'href="/portal/tickets/{ticket_id}"' in board and "Emergency" in board

    page = client.get(f"/portal/tickets/{ticket_id}?lang=en")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = _text(page.get_data(as_text=True))
    assert "engineer on the way" in text and "Emergency" in text
    assert "acknowledgement" in text and "met" in text and "(Asia/Shanghai)" in text
    assert plant["device"].serial in text and "远程访问未开通" in text
    assert "not delivered yet" in text
    # The customer confirms the wait from the page.
    r = client.post(
        f"/portal/tickets/{ticket_id}/pause/confirm",
        data={"csrf_token": csrf(page.get_data(as_text=True))},
    )
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/portal/tickets/{ticket_id}")
    pause = db.session.get(Ticket, ticket_id).pauses[0]
    assert pause.confirmed_by == follower.email
    # In Chinese: words, never the stored codes.
    zh = _text(client.get(f"/portal/tickets/{ticket_id}?lang=zh-CN").get_data(as_text=True))
    assert "工程师在途" in zh and "已受理" in zh and "设备告警" in zh and "响应" in zh
    for code in ("on-the-way", "acknowledged", "acknowledge", "alarm", "on_site", "new"):
        assert not re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", zh), code
    # Another organisation's ticket is a page saying so, as a missing one.
    _, token = factory.device()
    other = client.post(
        "/api/device/v1/alarms",
        json={"alarm_id": "x", "code": "X", "level": 3, "occurred_at": "2026-03-02T02:00:00Z"},
        headers={"Authorization": f"Bearer {token}"},
    ).get_json()["ticket_id"]
    for missing in (other, 999_999):
        r = client.get(f"/portal/tickets/{missing}?lang=en")
        assert r.status_code == 404 and r.mimetype == "text/html"


def test_the_ticket_page_says_a_missed_deadline_and_links_the_delivered_report(
    client, plant, follower
):
    from tests.helpers.portal import login

    ticket_id = _alarm(client, plant, "m-1", level=1).get_json()["ticket_id"]
    ticket = db.session.get(Ticket, ticket_id)
    ticket.opened_at = ticket.opened_at - timedelta(hours=1)
    db.session.commit()
    login(client, follower.email)
    text = _text(client.get(f"/portal/tickets/{ticket_id}?lang=en").get_data(as_text=True))
    assert re.search(r"missed , (49|50|51) minutes late", text), text
    url = f"/api/v1/tickets/{ticket_id}"
    support = plant["support"].headers
    client.post(f"{url}/status", json={"status": "resolved"}, headers=support)
    report = {
        "fault_started_at": ticket.opened_at.isoformat(),
        "fault_ended_at": ticket.opened_at.isoformat(),
        "symptoms": "no power",
        "cause": "power supply",
        "solution": "replaced it",
        "recovery_steps": [{"at": ticket.opened_at.isoformat(), "step": "replaced the PSU"}],
        "follow_up": "none",
    }
    assert client.put(f"{url}/report", json=report, headers=support).status_code == 200
    assert client.post(f"{url}/report/deliver", headers=support).status_code == 200
    page = client.get(f"/portal/tickets/{ticket_id}?lang=en").get_data(as_text=True)
    assert f'href="/portal/tickets/{ticket_id}/report"' in page
    assert "report delivered" in _text(page) and "resolved" in _text(page)


def test_staff_mark_an_emergency_from_the_ticket_page(client, plant, factory):
    from tests.helpers.portal import PASSWORD, csrf, login
    from upgrade_server.accounts import service as accounts

    r = client.post(
        "/api/v1/tickets",
        json={"title": "Slow", "level": 3, "device_ids": [plant["device"].id]},
        headers=plant["customer"].headers,
    )
    ticket_id = r.get_json()["id"]
    engineer = factory.user("support", email="eng@vendor.test")
    engineer.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    login(client, engineer.email)
    page = client.get(f"/portal/tickets/{ticket_id}?lang=en").get_data(as_text=True)
    assert "Mark an emergency" in page
    form = {"csrf_token": csrf(page), "emergency": "1", "reason": "the hospital's link"}
    assert client.post(f"/portal/tickets/{ticket_id}/emergency", data=form).status_code == 302
    text = _text(client.get(f"/portal/tickets/{ticket_id}?lang=en").get_data(as_text=True))
    assert "Marked an emergency: the hospital's link" in text
    assert "to be acknowledged within 10 minutes" in text

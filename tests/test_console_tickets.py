"""The console's tickets: the board by status with its filters and countdowns,
a ticket's page where support staff work it, the incident report written and
delivered; what a viewer may not do, and the forms' token."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from tests.helpers.console import Statements, as_staff, page
from tests.helpers.portal import csrf
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Role
from upgrade_server.clock import utcnow
from upgrade_server.extensions import db
from upgrade_server.notes import documents
from upgrade_server.tickets import service as tickets
from upgrade_server.tickets import steps
from upgrade_server.tickets.models import IncidentReport, Ticket
from upgrade_server.web.labels import LABELS

ENGINEER = Principal(kind="user", id=None, label="eng@vendor.test", role=Role.SUPPORT)


def _ticket(
    factory: Any, level: int = 3, organisation: Any = None, product: Any = None, **kw: Any
) -> Ticket:
    organisation = organisation or factory.organisation(**kw)
    device, _ = factory.device(organisation, product)
    ticket = tickets.open_ticket(
        db.session,
        ENGINEER,
        {
            "title": f"链路中断 {device.serial}",
            "level": level,
            "organisation_id": organisation.id,
            "device_ids": [device.id],
        },
        via="phone",
    )
    db.session.commit()
    return ticket


def _post(client: Any, path: str, data: dict[str, Any], form_page: str) -> Any:
    return client.post(path, data={**data, "csrf_token": csrf(page(client, form_page))})


def _column(html: str, status: str) -> str:
    found = re.search(
        rf'<section class="board-column" id="column-{status}".*?</section>', html, re.S
    )
    assert found, status
    return found.group(0)


def test_the_board_shows_each_ticket_in_its_status_with_the_nearest_deadline_counting_down(
    client, factory
):
    as_staff(client, factory, "support")
    urgent = _ticket(factory, level=1, region="beijing")
    calm = _ticket(factory, level=4)
    steps.advance(db.session, ENGINEER, calm.id, "on-site")
    db.session.commit()
    html = page(client, "/console/tickets")
    new = _column(html, "new")
    assert urgent.organisation.name in new and urgent.devices[0].serial in new
    assert "Emergency" in new and "Level 1" in new
    # An emergency's acknowledgement is due 10 minutes after it opened.
    due = (urgent.opened_at + timedelta(minutes=10)).isoformat()
    assert f'data-deadline="{due}"' in new
    assert re.search(r"acknowledgement: <time[^>]*>(9|10) min \d\d s left</time>", new)
    on_site = _column(html, "on-site")
    assert f"#{calm.id} " in on_site and "Emergency" not in on_site
    assert "countdown.js" in html and "<script>" not in html


def test_the_board_filters_by_organisation_level_region_and_overdue(client, factory, clock):
    as_staff(client, factory, "viewer")
    beijing = _ticket(factory, level=2, region="beijing")
    elsewhere = _ticket(factory, level=3)
    html = page(client, f"/console/tickets?organisation_id={beijing.organisation_id}")
    assert f"#{beijing.id} " in html and f"#{elsewhere.id} " not in html
    html = page(client, "/console/tickets?level=3")
    assert f"#{beijing.id} " not in html and f"#{elsewhere.id} " in html
    html = page(client, "/console/tickets?region=beijing")
    assert f"#{beijing.id} " in html and f"#{elsewhere.id} " not in html
    # Beijing's level 2: on site within 2 hours; three hours later it is overdue.
    clock.shift(timedelta(hours=3))
    html = page(client, "/console/tickets?overdue=1")
    assert f"#{beijing.id} " in html and f"#{elsewhere.id} " not in html
    assert '<span class="muted">(1)</span>' in _column(html, "new")
    assert re.search(r"on site: <time[^>]*overdue[^>]*>overdue by 1 h \d\d min", html)


def test_the_board_runs_as_many_statements_for_30_tickets_as_for_3(client, factory):
    as_staff(client, factory, "admin")
    organisation, product = factory.organisation(), factory.product()
    for _ in range(3):
        _ticket(factory, organisation=organisation, product=product)
    with Statements() as few:
        page(client, "/console/tickets")
    for _ in range(27):
        _ticket(factory, organisation=organisation, product=product)
    with Statements() as many:
        html = page(client, "/console/tickets")
    assert html.count('class="ticket-card') == 30
    assert many.count == few.count <= 15, many.seen


def test_support_moves_a_ticket_forward_at_a_time_and_changes_its_level(client, factory):
    as_staff(client, factory, "support")
    ticket = _ticket(factory, level=3)
    path = f"/console/tickets/{ticket.id}"
    when = (ticket.opened_at + timedelta(minutes=1)).replace(second=0, microsecond=0)
    at = (when + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M")  # typed in Asia/Shanghai
    r = _post(client, f"{path}/status", {"status": "on-the-way", "at": at}, path)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"{path}#status")
    db.session.expire_all()
    assert ticket.status == "on-the-way" and ticket.acknowledged_at == when
    r = _post(client, f"{path}/level", {"level": "1"}, path)
    assert r.status_code == 302
    html = page(client, path)
    assert "raised from level 3" in html and "engineer on the way" in html
    # Backwards is refused on the page, saying why, and nothing changes.
    r = _post(client, f"{path}/status", {"status": "acknowledged"}, path)
    assert r.status_code == 409
    assert "This cannot be done in its current state" in r.get_data(as_text=True)
    # A time UTC cannot hold (year 1 in Shanghai) is the field's mistake, on the form.
    r = _post(client, f"{path}/status", {"status": "on-site", "at": "0001-01-01T00:00"}, path)
    assert r.status_code == 422 and 'id="status-at" name="at"' in r.text
    assert re.search(r'id="status-at"[^>]*aria-invalid="true"', r.text)
    r = _post(client, f"{path}/emergency", {"emergency": "1", "reason": "  "}, path)
    assert r.status_code == 422 and 'aria-invalid="true"' in r.get_data(as_text=True)


def test_an_incident_report_is_written_and_delivered(client, factory, monkeypatch):
    as_staff(client, factory, "support")
    ticket = _ticket(factory, level=2)
    steps.advance(db.session, ENGINEER, ticket.id, "resolved")
    db.session.commit()
    path = f"/console/tickets/{ticket.id}/report"
    start = (utcnow() + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M")
    end = (utcnow() + timedelta(hours=7)).strftime("%Y-%m-%dT%H:%M")
    parts = {
        "fault_started_at": start,
        "fault_ended_at": end,
        "symptoms": "链路中断",
        "cause": "光模块故障",
        "solution": "更换光模块",
        "follow_up": "每月巡检",
        "step_at": [end, start],
        "step": ["恢复业务", "到场排查"],
    }
    r = _post(client, path, {**parts, "follow_up": ""}, path)
    assert r.status_code == 302
    # Delivery needs every part: refused, saying so, the ticket unchanged.
    r = _post(client, f"{path}/deliver", {}, path)
    assert r.status_code == 422 and "Check the fields" in r.get_data(as_text=True)
    r = _post(client, path, parts, path)
    report = db.session.get(IncidentReport, ticket.id)
    assert [s["step"] for s in report.recovery_steps] == ["到场排查", "恢复业务"]
    r = _post(client, f"{path}/deliver", {}, path)
    assert r.status_code == 302
    db.session.expire_all()
    assert ticket.status == "report-delivered" and report.delivered_at is not None
    html = page(client, path)
    assert '<form method="post" action="/console/tickets' not in html
    assert "更换光模块" in html and "delivered" in html
    # The PDF is the portal's document of the report (WeasyPrint's part is tested there).
    monkeypatch.setattr(documents, "render_pdf", lambda html: html.encode())
    r = client.get(f"{path}.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert r.headers["Content-Disposition"] == f'attachment; filename="incident-{ticket.id}.pdf"'
    assert "更换光模块" in r.text and "Draft" not in r.text


def test_a_viewer_sees_no_write_action_and_is_refused_the_posts(client, factory):
    ticket = _ticket(factory)
    as_staff(client, factory, "viewer")
    path = f"/console/tickets/{ticket.id}"
    for url in ("/console/tickets", path, f"{path}/report"):
        html = page(client, url)
        assert html.count('method="post"') == 1, url  # logging out only
    token = csrf(page(client, path))
    for action, data in (
        ("status", {"status": "acknowledged"}),
        ("level", {"level": "1"}),
        ("emergency", {"emergency": "1", "reason": "x"}),
        ("repair", {}),
        ("pause", {"reason": "x"}),
        ("report", {"symptoms": "x"}),
        ("report/deliver", {}),
    ):
        r = client.post(f"{path}/{action}", data={**data, "csrf_token": token})
        assert r.status_code == 403, action
    db.session.expire_all()
    assert ticket.status == "new" and db.session.get(IncidentReport, ticket.id) is None


def test_a_form_without_its_token_is_refused(client, factory):
    as_staff(client, factory, "support")
    ticket = _ticket(factory)
    r = client.post(f"/console/tickets/{ticket.id}/status", data={"status": "acknowledged"})
    assert r.status_code == 400
    db.session.expire_all()
    assert ticket.status == "new"


def _visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


CODES = {
    c for domain in ("ticket-status", "deadline", "region", "ticket-source") for c in LABELS[domain]
}


def test_chinese_pages_show_no_raw_code(client, factory):
    ticket = _ticket(factory, level=1, region="beijing")
    tickets.mark_emergency(db.session, ENGINEER, ticket.id, False, "误报")
    steps.advance(db.session, ENGINEER, ticket.id, "resolved")
    db.session.commit()
    as_staff(client, factory, "support", lang="zh-CN")
    path = f"/console/tickets/{ticket.id}"
    for url in ("/console/tickets", path, f"{path}/report"):
        text = _visible_text(page(client, url))
        raw = sorted(c for c in CODES if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text))
        assert raw == [], url
        assert "剩余" in text or url.endswith("/report")


def test_the_overview_gets_open_tickets_by_their_nearest_deadline(app, factory):
    """What the overview lists: open tickets only, the soonest deadline first."""
    from upgrade_server.console.ticket_pages import open_tickets_by_deadline

    calm, urgent = _ticket(factory, level=4), _ticket(factory, level=1)
    done = _ticket(factory, level=1)
    steps.advance(db.session, ENGINEER, done.id, "resolved")
    with app.test_request_context():
        cards = open_tickets_by_deadline(db.session, 5, ENGINEER)
        assert [c.ticket.id for c in cards] == [urgent.id, calm.id]
        assert cards[0].emergency and cards[0].nearest.name == "acknowledge"
        assert [c.ticket.id for c in open_tickets_by_deadline(db.session, 1, ENGINEER)] == [
            urgent.id
        ]


def test_the_deadline_report_says_which_deadlines_were_missed_and_by_how_long(
    client, factory, clock
):
    as_staff(client, factory, "viewer")
    late = _ticket(factory, level=2, region="beijing")
    clock.shift(timedelta(hours=3))  # on site within 2 hours: missed by an hour
    html = page(client, f"/console/tickets/deadlines?organisation_id={late.organisation_id}")
    assert "deadlines: 0 met, 1 missed" in html
    assert re.search(r"on site</td>.*?missed</strong>, 60 minutes late", html, re.S)
    r = client.get(f"/console/tickets/deadlines?organisation_id={late.organisation_id}&format=csv")
    assert r.mimetype == "text/csv"
    assert r.text.splitlines()[1].startswith(f"{late.id},{late.organisation.slug},2,on_site,")
    assert 'href="/console/tickets/deadlines"' in page(client, "/console/tickets")

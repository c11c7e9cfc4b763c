"""A service manager (a support engineer) in a real browser, keyboard only:
records a session's start and end, watches the ticket board count down, works
a ticket to resolved and writes and delivers its incident report. axe-core
judges every page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.clock import at, today
from tests.helpers.browser import assert_accessible, browser_page, console_login, screenshot
from tests.helpers.portal import PASSWORD
from tests.live import Live, add_product, live_server
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Role
from upgrade_server.clock import utcnow
from upgrade_server.devices import provisioning
from upgrade_server.extensions import db
from upgrade_server.organisations import service as organisations
from upgrade_server.service import service as service_record
from upgrade_server.service import service_requests
from upgrade_server.service import sessions as service_sessions
from upgrade_server.service.models import ServiceSession
from upgrade_server.tickets import service as tickets
from upgrade_server.tickets import steps
from upgrade_server.tickets.models import IncidentReport, Ticket

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

MANAGER = "manager@vendor.test"
DAY = today() - timedelta(days=1)  # when the fault happened


@pytest.fixture
def world(scratch_url, tmp_path) -> Iterator[dict[str, Any]]:
    """An organisation in Beijing with a device, a planned installation, an
    emergency ticket and a calmer one; a support engineer who logs in."""
    with live_server(scratch_url, tmp_path / "instance") as live:
        add_product(live, "gw", ("rev-a",))
        with live.app.app_context():
            cli = Principal.cli()
            org = organisations.create_organisation(
                db.session, cli, slug="acme", name="Acme 电力", region="beijing"
            )
            device = provisioning.create_device(
                db.session,
                cli,
                {
                    "serial": "ACME-1",
                    "product": "gw",
                    "hardware_revision": "rev-a",
                    "organisation": "acme",
                },
            ).device
            accounts.create_user(
                db.session, cli, email=MANAGER, name="Manager", role="support", password=PASSWORD
            )
            engineer = Principal(kind="user", id=None, label=MANAGER, role=Role.SUPPORT)
            entry = service_sessions.create_session(
                db.session,
                engineer,
                {
                    "kind": "installation",
                    "organisation_id": org.id,
                    "device_ids": [device.id],
                    "engineers": ["王伟"],
                },
            )
            urgent = tickets.open_ticket(
                db.session,
                engineer,
                {
                    "title": "全网中断",
                    "level": 1,
                    "organisation_id": org.id,
                    "device_ids": [device.id],
                },
                via="phone",
            )
            tickets.open_ticket(
                db.session,
                engineer,
                {
                    "title": "告警灯闪烁",
                    "level": 4,
                    "organisation_id": org.id,
                    "device_ids": [device.id],
                },
                via="phone",
            )
            _busier(engineer, org.id, device.id)
            request = service_requests.open_request(
                db.session, engineer, {"organisation_id": org.id, "title": "培训申请"}, via="phone"
            )
            db.session.commit()
            ids = {"org": org.id, "session": entry.id, "ticket": urgent.id, "request": request.id}
        yield {"live": live, **ids}


def _busier(engineer: Principal, organisation_id: int, device_id: int) -> None:
    """More tickets for the board's picture: one acknowledged but late on
    site, one resolved and waiting for its report."""
    now = utcnow()
    for title, level, hours, status in (
        ("光口告警", 2, 3, "acknowledged"),
        ("风扇转速低", 3, 5, "resolved"),
    ):
        ticket = tickets.open_ticket(
            db.session,
            engineer,
            {
                "title": title,
                "level": level,
                "organisation_id": organisation_id,
                "device_ids": [device_id],
            },
            via="phone",
        )
        ticket.opened_at = now - timedelta(hours=hours)
        steps.advance(db.session, engineer, ticket.id, status, now - timedelta(hours=1))


def _confirm(live: Live, session_id: int, organisation_id: int, step: str) -> None:
    """The customer confirms a step on the portal (its own browser test's part)."""
    customer = Principal(
        kind="user",
        id=None,
        label="ops@acme.test",
        role=Role.CUSTOMER_ADMIN,
        organisation_id=organisation_id,
    )
    with live.app.app_context():
        service_record.advance(db.session, customer, ServiceSession, session_id, step)
        db.session.commit()


def _press(page: Any, selector: str, key: str = "Enter") -> None:
    """Move the focus to a control and press a key there."""
    page.locator(selector).focus()
    page.keyboard.press(key)


def _type(page: Any, selector: str, text: str) -> None:
    page.locator(selector).focus()
    page.keyboard.type(text)


def _submit(page: Any, selector: str) -> None:
    """Press a form's button with the keyboard and wait for the next page."""
    with page.expect_navigation():
        _press(page, selector)


def test_a_service_manager_records_a_session_and_delivers_an_incident_report(world, tmp_path):
    live, base = world["live"], world["live"].url
    with browser_page(viewport={"width": 1600, "height": 1000}) as page:
        console_login(page, base, MANAGER)
        with page.expect_navigation():
            _press(page, "nav a[href='/console/service']")
        assert_accessible(page)
        with page.expect_navigation():
            _press(page, f"#session-{world['session']} td:first-child a")
        assert_accessible(page)
        # The start, now; then the customer confirms it on the portal.
        _submit(page, "#start button[type=submit]")
        assert page.locator("#state").inner_text() == "started, waiting for the customer"
        assert_accessible(page)
        _confirm(live, world["session"], world["org"], "confirm-start")
        page.reload()
        _type(page, "#end-outcome", "安装调试完成")
        _submit(page, "#end button[type=submit]")
        assert page.locator("#state").inner_text() == "ended, waiting for the customer"
        assert page.locator("#step-ended td").nth(2).inner_text() == MANAGER

        # The ticket board: the emergency's acknowledgement counts down.
        with page.expect_navigation():
            _press(page, "nav a[href='/console/tickets']")
        assert_accessible(page)
        card = page.locator(f"#ticket-{world['ticket']}")
        countdown = card.locator("time.countdown")
        first = countdown.inner_text()
        assert first.endswith(" left") and " min " in first
        page.wait_for_function(
            "([el, first]) => el.textContent !== first",
            arg=[countdown.element_handle(), first],
        )
        screenshot(page, "tickets", tmp_path)

        with page.expect_navigation():
            _press(page, f"#ticket-{world['ticket']} h3 a")
        assert_accessible(page)
        # Straight to resolved (the steps between are recorded at the same time).
        page.locator("#status-to").focus()
        page.keyboard.type("resolved")
        _submit(page, "#status button[type=submit]")
        assert page.locator("dd.state").inner_text() == "resolved"

        with page.expect_navigation():
            _press(page, "#report-state a")
        assert_accessible(page)
        for selector, text in (
            ("#symptoms", "全网业务中断"),
            ("#cause", "主控板电源模块故障"),
            ("#solution", "更换电源模块"),
            ("#follow_up", "每季度巡检电源"),
            ("#step-1", "到场更换电源模块"),
        ):
            _type(page, selector, text)
        for selector in ("#fault_started_at", "#fault_ended_at", "#step_at-1"):
            page.locator(selector).focus()
            # The en locale's field: month, day, year; Tab to the time; hour, minute, AM.
            page.keyboard.type(f"{DAY:%m%d%Y}")
            page.keyboard.press("Tab")
            page.keyboard.type("0930A")
        _submit(page, "#report-form button[type=submit]")
        assert page.get_by_role("status").inner_text() == "The draft is saved."
        assert_accessible(page)
        _submit(page, "#deliver button[type=submit]")
        assert page.locator("dd.state").inner_text() == "report delivered"
        assert_accessible(page)

        # The pages not on the way, and the board in Chinese: accessible too.
        for path in (
            "/console/service/sessions/new",
            f"/console/service/sessions/new?organisation_id={world['org']}",
            f"/console/service/requests/{world['request']}",
            "/console/tickets/deadlines",
            f"/console/tickets/{world['ticket']}/report",  # delivered: read only
            "/console/service/requests?lang=zh-CN",
            "/console/tickets",
        ):
            page.goto(f"{base}{path}")
            assert_accessible(page)
        assert "剩余" in page.locator("main").inner_text()

    with live.app.app_context():
        ticket = db.session.get(Ticket, world["ticket"])
        report = db.session.get(IncidentReport, world["ticket"])
        assert ticket.status == "report-delivered" and report.delivered_by == MANAGER
        assert report.fault_started_at == at(DAY, 9, "Asia/Shanghai") + timedelta(minutes=30)
        entry = db.session.get(ServiceSession, world["session"])
        assert entry.outcome == "安装调试完成" and entry.state == "ended"

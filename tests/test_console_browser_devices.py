"""The console's devices in a real browser: a support engineer, keyboard
only, finds a device by its serial and reads its timeline; axe-core judges the
list and the device page in both languages (one server, one browser: the
journey and the Chinese pages in one test)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.clock import at, today
from tests.helpers.browser import assert_accessible, browser_page, console_login, screenshot
from tests.helpers.portal import PASSWORD
from tests.live import add_product, live_server
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.clock import utcnow
from upgrade_server.devices import provisioning
from upgrade_server.entitlements import contracts
from upgrade_server.extensions import db
from upgrade_server.organisations import service as organisations
from upgrade_server.service import sessions
from upgrade_server.tickets import service as tickets
from upgrade_server.tickets.models import Alarm
from upgrade_server.updates.models import InstallEvent

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

SUPPORT = "eng@vendor.test"
# How far each device's upgrade coverage has gone: every state of the list.
ACCEPTED = {
    "KX-4710": lambda day: {"accepted_on": (day - timedelta(days=3 * 365 - 12)).isoformat()},
    "KX-4711": lambda day: {"accepted_on": (day - timedelta(days=200)).isoformat()},
    "KX-4712": lambda day: {"accepted_on": (day - timedelta(days=4 * 365)).isoformat()},
    "HP-0001": lambda day: {"accepted_on": (day - timedelta(days=500)).isoformat()},
    "HP-0002": lambda day: {},
}


@pytest.fixture
def fleet(scratch_url, tmp_path) -> Iterator[dict[str, Any]]:
    """Two customers' devices; KX-4711 with something from every source."""
    with live_server(scratch_url, tmp_path / "instance") as live:
        add_product(live, "gw", ("rev-a", "rev-b"))
        day = today()
        with live.app.app_context():
            cli = Principal.cli()
            ids = {}
            for slug, name, serials in (
                ("kestrel", "Kestrel Water", ("KX-4710", "KX-4711", "KX-4712")),
                ("harbour", "Harbour Power", ("HP-0001", "HP-0002")),
            ):
                organisations.create_organisation(db.session, cli, slug=slug, name=name)
                for n, serial in enumerate(serials):
                    device = provisioning.create_device(
                        db.session,
                        cli,
                        {
                            "serial": serial,
                            "product": "gw",
                            "hardware_revision": "rev-a" if n % 2 else "rev-b",
                            "organisation": slug,
                            "current_version": f"1.{n}.0",
                            **ACCEPTED[serial](day),
                            "site": "Pump station 3" if n == 1 else "",
                        },
                    ).device
                    device.last_seen_at = utcnow() - timedelta(hours=5 * n + 1)
                    if serial == "HP-0001":
                        device.last_seen_at = utcnow() - timedelta(days=41)
                    db.session.flush()
                    ids[serial] = device
            target = ids["KX-4711"]
            db.session.add(
                InstallEvent(
                    device_id=target.id,
                    version="1.1.0",
                    event_id="e-1",
                    status="installed",
                    occurred_at=at(day - timedelta(days=6), 2),
                )
            )
            db.session.add(
                Alarm(
                    device_id=target.id,
                    alarm_id="a-1",
                    code="PUMP-PRESSURE",
                    level=2,
                    message="pressure low",
                    occurred_at=at(day - timedelta(days=5), 2),
                )
            )
            tickets.open_ticket(
                db.session,
                cli,
                {
                    "organisation_id": target.organisation_id,
                    "level": 2,
                    "title": "Pressure drops at night",
                    "device_ids": [target.id],
                },
                via="api",
            ).opened_at = at(day - timedelta(days=4), 2)
            sessions.create_session(
                db.session,
                cli,
                {
                    "organisation_id": target.organisation_id,
                    "kind": "inspection",
                    "mode": "on-site",
                    "device_ids": [target.id],
                    "planned_start": at(day - timedelta(days=3), 2),
                },
            )
            contracts.create_contract(
                db.session,
                cli,
                {
                    "device_id": target.id,
                    "kind": "upgrades",
                    "starts_on": day,
                    "ends_on": day + timedelta(days=365),
                    "reference": "KW-2027",
                },
            )
            accounts.create_user(
                db.session, cli, email=SUPPORT, name="Eng", role="support", password=PASSWORD
            )
            db.session.commit()
        yield {"live": live}


def test_support_finds_a_device_by_serial_and_reads_its_timeline(fleet, tmp_path):
    base = fleet["live"].url
    with browser_page("en") as page:
        console_login(page, base, SUPPORT)
        page.get_by_role("link", name="Devices", exact=True).focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/console/devices")
        assert_accessible(page)
        screenshot(page, "devices", tmp_path)

        page.locator("#q").focus()
        page.keyboard.type("kx-4711")
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: "q=kx-4711" in url)
        assert "organisation=" not in page.url  # empty fields left out of the address
        rows = page.locator("table.devices tbody tr")
        assert rows.count() == 1 and "Kestrel Water" in rows.first.inner_text()

        page.get_by_role("link", name="KX-4711").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: "/console/devices/" in url)
        assert page.get_by_role("heading", level=1).inner_text() == "Device KX-4711"
        entries = page.locator("ol.timeline li").all_inner_texts()
        joined = "\n".join(entries)
        assert "Contract KW-2027 added" in entries[0]
        for words in (
            "Service session",
            "Ticket #",
            "Pressure drops at night",
            "Alarm PUMP-PRESSURE raised",
            "Version 1.1.0: installed",
        ):
            assert words in joined, words
        # Newest first, in the organisation's zone.
        day = today()
        assert f"{day - timedelta(days=6)} 10:00 (Asia/Shanghai)" in entries[-1]
        assert_accessible(page)
        # A support engineer may move it to another channel.
        assert page.get_by_role("button", name="Change the channel").is_visible()

        # The same pages in Chinese.
        page.goto(f"{page.url.split('?')[0]}?lang=zh-CN")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert "设备 KX-4711" in page.get_by_role("heading", level=1).inner_text()
        assert_accessible(page)
        page.goto(f"{base}/console/devices?sort=seen&order=desc")
        assert_accessible(page)

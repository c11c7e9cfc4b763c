"""The console's organisations, accounts and audit pages in a real browser:
an administrator, with the keyboard only, adds a contract and sets a
maintenance window; a viewer walks every console page and finds no write
action; axe-core judges each page."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.clock import today
from tests.helpers.browser import assert_accessible, browser_page, console_login, screenshot
from tests.helpers.portal import PASSWORD
from tests.live import add_product, live_server
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.devices import provisioning
from upgrade_server.devices.models import Device
from upgrade_server.entitlements import contracts
from upgrade_server.extensions import db
from upgrade_server.organisations import service as organisations
from upgrade_server.rollouts import maintenance

pytestmark = [pytest.mark.own_app, pytest.mark.slow]


@pytest.fixture
def world(scratch_url, tmp_path) -> Iterator[dict[str, Any]]:
    with live_server(scratch_url, tmp_path / "instance") as live:
        product_id = add_product(live, "gw", ("rev-a",))
        with live.app.app_context():
            cli = Principal.cli()
            org = organisations.create_organisation(
                db.session, cli, slug="acme", name="Acme Power", region="beijing"
            )
            for n in range(1, 4):
                provisioning.create_device(
                    db.session,
                    cli,
                    {
                        "serial": f"ACME-{n:04d}",
                        "product": "gw",
                        "hardware_revision": "rev-a",
                        "organisation": "acme",
                        "site": "Chaoyang substation",
                        "accepted_on": (today() - timedelta(days=400)).isoformat(),
                    },
                )
            contracts.create_contract(
                db.session,
                cli,
                {
                    "kind": "support",
                    "organisation_id": org.id,
                    "starts_on": today() - timedelta(days=30),
                    "ends_on": today() + timedelta(days=700),
                    "reference": "C-2026-001",
                    "note": "extended support",
                },
            )
            maintenance.set_windows(
                db.session,
                cli,
                org.id,
                [{"kind": "weekly", "days": [6], "start": "01:00", "duration_minutes": 180}],
            )
            users = {}
            for role in ("admin", "viewer", "customer-admin"):
                users[role] = accounts.create_user(
                    db.session,
                    cli,
                    email=f"{role}@console.test",
                    name=f"{role.title()} Person",
                    role=role,
                    organisation_id=org.id if role.startswith("customer") else None,
                    password=PASSWORD,
                ).id
            db.session.commit()
            device = db.session.scalars(select(Device).order_by(Device.id)).first()
            device_id = device.id
        client = live.app.test_client()
        published = client.post(
            f"/api/v1/products/{product_id}/releases",
            data={
                "metadata": json.dumps({"version": "1.1.0", "channels": ["stable"]}),
                "artifact": (io.BytesIO(b"fw" * 100), "gw-1.1.0.bin"),
            },
            headers=live.headers,
            content_type="multipart/form-data",
        )
        assert published.status_code == 201, published.get_json()
        ticket = client.post(
            "/api/v1/tickets",
            json={
                "title": "Link down",
                "level": 2,
                "device_ids": [device_id],
                "organisation_id": org.id,
            },
            headers=live.headers,
        )
        assert ticket.status_code == 201, ticket.get_json()
        yield {
            "live": live,
            "organisation": org.id,
            "users": users,
            "device": device_id,
            "release": published.get_json()["id"],
            "ticket": ticket.get_json()["id"],
        }


def _type_into(page: Any, selector: str, text: str) -> None:
    page.locator(selector).focus()
    page.keyboard.type(text)


def test_an_admin_adds_a_contract_and_sets_a_window_with_the_keyboard(world, tmp_path):
    base, org = world["live"].url, world["organisation"]
    with browser_page("en", viewport={"width": 1280, "height": 900}) as page:
        console_login(page, base, "admin@console.test")
        page.goto(f"{base}/console/organisations")
        assert_accessible(page)
        page.locator("a", has_text="Acme Power").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/console/organisations/{org}")
        assert_accessible(page)
        screenshot(page, "organisation", tmp_path)

        # A contract for every device, through the disclosure, by keyboard.
        page.locator("#contracts summary").focus()
        page.keyboard.press("Enter")
        _type_into(page, "#contract-reference", "C-2026-017")
        page.locator("#contract-kind").focus()
        page.keyboard.type("Warr")  # the option's words select it
        starts, ends = today(), today() + timedelta(days=365)
        _type_into(page, "#contract-starts", starts.strftime("%m%d%Y"))
        _type_into(page, "#contract-ends", ends.strftime("%m%d%Y"))
        _type_into(page, "#contract-note", "bought at the fair")
        page.locator("#contract-serial").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/console/organisations/{org}#contracts")
        row = page.locator("#contracts tr", has_text="C-2026-017")
        assert "Warranty" in row.inner_text() and "every device" in row.inner_text()
        assert ends.isoformat() in row.inner_text()

        # A second weekly window, on Wednesdays, in the organisation's zone.
        page.locator("a", has_text="Edit the maintenance windows").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/console/organisations/{org}/windows")
        assert_accessible(page)
        page.locator("#kind-1").focus()
        page.keyboard.type("week")
        page.locator("input[name=days-1][value='3']").focus()
        page.keyboard.press("Space")
        _type_into(page, "#start-1", "22:30")
        _type_into(page, "#duration-1", "90")
        _type_into(page, "#label-1", "midweek")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/console/organisations/{org}#windows")
        text = page.inner_text("#approval")
        assert "Wednesday from 22:30, 1 h 30 min · midweek" in text
        assert "Saturday from 01:00" in text and "(Asia/Shanghai)" in text

        # The rest of the section, in both languages, for axe.
        for path in (
            "/console/accounts",
            f"/console/accounts/users/{world['users']['customer-admin']}",
            "/console/accounts/tokens",
            "/console/audit",
            "/console/audit/1",
            f"/console/organisations/{org}?lang=zh-CN",
            "/console/audit?lang=zh-CN",
        ):
            page.goto(base + path)
            assert_accessible(page)
        page.locator("button", has_text="立即校验哈希链").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/console/audit/verify")
        assert "哈希链完整。" in page.inner_text("main")
        assert_accessible(page)


# Every console page a viewer can open.
def _viewer_pages(world: dict[str, Any]) -> list[str]:
    org, users = world["organisation"], world["users"]
    return [
        "/console/",
        "/console/releases",
        f"/console/releases/{world['release']}",
        "/console/releases/signatures",
        "/console/devices",
        f"/console/devices/{world['device']}",
        "/console/service",
        "/console/service/requests",
        "/console/tickets",
        f"/console/tickets/{world['ticket']}",
        "/console/tickets/deadlines",
        "/console/organisations",
        f"/console/organisations/{org}",
        "/console/accounts",
        f"/console/accounts/users/{users['customer-admin']}",
        f"/console/accounts/users/{users['admin']}",
        "/console/accounts/tokens",
    ]


def test_a_viewer_walks_every_page_and_sees_no_write_action(world):
    base = world["live"].url
    with browser_page("zh-CN") as page:
        console_login(page, base, "viewer@console.test", lang="zh-CN")
        for path in _viewer_pages(world):
            page.goto(base + path)
            assert page.locator("main h1").count() == 1, path
            posts = page.eval_on_selector_all(
                "form", "fs => fs.filter(f => f.method === 'post').map(f => f.action)"
            )
            assert posts == [f"{base}/console/logout"], (path, posts)
            # No button, nor a link to a write step, outside the search forms.
            buttons = page.eval_on_selector_all(
                "main button, main .button, main input[type=submit]",
                "bs => bs.filter(b => !b.closest('form[method=get]')).map(b => b.textContent)",
            )
            assert buttons == [], (path, buttons)
            for write in ("/windows", "/active", "/revoke", "#new-user", "#new-token"):
                assert page.locator(f"main a[href*='{write}']").count() == 0, (path, write)
            nav = page.locator("header nav")
            assert nav.locator("a[href='/console/organisations']").count() == 1
            assert nav.locator("a[href='/console/audit']").count() == 0
            assert_accessible(page)
        for refused in ("/console/audit", "/console/releases/new", "/console/service/sessions/new"):
            response = page.goto(base + refused)
            assert response is not None and response.status == 403, refused
        assert_accessible(page)

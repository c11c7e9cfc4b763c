"""The console's overview in Debian's Chromium: reached with the keyboard
alone, accessible (axe-core) in both languages, no script refused by the
Content-Security-Policy, and a deadline's countdown that keeps time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.clock import today
from tests.helpers.browser import assert_accessible, browser_page, console_login, screenshot
from tests.helpers.portal import PASSWORD
from tests.live import add_product, live_server, publish
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.devices import provisioning
from upgrade_server.extensions import db
from upgrade_server.organisations import service as organisations

pytestmark = [pytest.mark.own_app, pytest.mark.slow]


@pytest.fixture
def busy(scratch_url, tmp_path) -> Iterator[dict[str, Any]]:
    """A fleet of 12 on two revisions, a release rolled out, an open ticket."""
    with live_server(scratch_url, tmp_path / "instance") as live:
        product_id = add_product(live, "gw", ("rev-a", "rev-b"))
        publish(live, product_id, "1.0.0")
        newest = publish(live, product_id, "1.1.0", channels=["beta"])
        with live.app.app_context():
            cli = Principal.cli()
            org = organisations.create_organisation(db.session, cli, slug="acme", name="Acme")
            devices = [
                provisioning.create_device(
                    db.session,
                    cli,
                    {
                        "serial": f"ACME-{n:02d}",
                        "product": "gw",
                        "hardware_revision": "rev-a" if n % 3 else "rev-b",
                        "organisation": "acme",
                        "current_version": "1.0.0",
                        "accepted_on": (today() - timedelta(days=300)).isoformat(),
                    },
                ).device
                for n in range(12)
            ]
            db.session.flush()
            device_ids = [d.id for d in devices]
            accounts.create_user(
                db.session,
                cli,
                email="lead@vendor.test",
                name="Lead",
                role="admin",
                password=PASSWORD,
            )
            org_id = org.id
            db.session.commit()
        client = live.app.test_client()
        r = client.post(
            f"/api/v1/releases/{newest}/rollouts",
            json={"channel": "stable", "waves": [{"share": 1000}, {"share": 10000}]},
            headers=live.headers,
        )
        assert r.status_code == 201, r.get_json()
        r = client.post(
            "/api/v1/tickets",
            json={
                "title": "Link down",
                "level": 1,
                "device_ids": device_ids[:1],
                "organisation_id": org_id,
            },
            headers=live.headers,
        )
        assert r.status_code == 201, r.get_json()
        yield {"live": live}


def test_the_overview_by_keyboard_accessible_in_both_languages(busy, tmp_path):
    base = busy["live"].url
    with browser_page() as page:
        refused: list[str] = []
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )
        console_login(page, base, "lead@vendor.test")
        assert page.url.rstrip("/").endswith("/console")
        assert page.get_by_role("heading", name="Overview", level=1).is_visible()
        assert page.locator("svg[role=img]").count() == 2  # the fleet and the adoption
        assert page.get_by_text("gw 1.1.0").first.is_visible()  # the rollout in progress
        assert_accessible(page)
        # The countdown keeps time in the browser (countdown.js, served by the app).
        countdown = page.locator("[data-deadline]").first
        first = countdown.text_content()
        page.wait_for_function(
            "([el, before]) => el.textContent !== before",
            arg=[countdown.element_handle(), first],
            timeout=10_000,
        )
        screenshot(page, "overview", tmp_path)
        # Keyboard only: the skip link, then the sections.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.goto(f"{base}/console/?lang=zh-CN")
        assert page.get_by_role("heading", name="总览", level=1).is_visible()
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        # Chinese is drawn with a CJK font (fonts-noto-cjk), not boxes.
        cdp = page.context.new_cdp_session(page)
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument")["root"]["nodeId"]
        heading = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "main h1"})
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": heading["nodeId"]})["fonts"]
        assert any("CJK" in f["familyName"] for f in fonts), fonts
        assert_accessible(page)
        assert refused == []

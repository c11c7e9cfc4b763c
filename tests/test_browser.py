"""The customer portal in a real browser: Playwright driving Debian's
Chromium (headless) against the app on a loopback port."""

from __future__ import annotations

import io
import itertools
import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.live import Live, add_product, live_server
from tests.test_portal import GUIDANCE, PASSWORD
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Role
from upgrade_server.devices import service as devices
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db
from upgrade_server.organisations import service as organisations
from upgrade_server.service import service as service_record
from upgrade_server.service.models import ServiceSession

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Notes that try every way of running script: none of them may.
HOSTILE_NOTES = {
    "zh-CN": "## 新功能\n\n支持**双链路备份**。\n\n<script>window.__pwned = 'script'</script>\n\n"
    "<img src=x onerror=\"window.__pwned = 'onerror'\">\n\n"
    "[点我](javascript:window.__pwned='link')\n\n"
    "<a href=\"javascript:window.__pwned='raw'\">raw</a>",
    "en": "## New\n\nSupports **dual-link backup**.",
}


def _publish(live: Live, product_id: int, version: str, **metadata: Any) -> int:
    client = live.app.test_client()
    r = client.post(
        f"/api/v1/products/{product_id}/releases",
        data={
            "metadata": json.dumps({"version": version, "channels": ["stable"], **metadata}),
            "artifact": (io.BytesIO(version.encode() * 100), f"gw-{version}.bin"),
        },
        headers=live.headers,
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    return int(r.get_json()["id"])


@pytest.fixture
def world(scratch_url, tmp_path) -> Iterator[dict[str, Any]]:
    with live_server(scratch_url, tmp_path / "instance") as live:
        product_id = add_product(live, "gw", ("rev-a",))
        _publish(live, product_id, "1.0.0")
        update_id = _publish(
            live,
            product_id,
            "1.1.0",
            notes=HOSTILE_NOTES,
            guidance=GUIDANCE,
            min_from_version="1.0.0",
        )
        with live.app.app_context():
            cli = Principal.cli()
            ids = {}
            for slug in ("acme", "globex"):
                org = organisations.create_organisation(db.session, cli, slug=slug, name=slug)
                device = devices.create_device(
                    db.session,
                    cli,
                    {
                        "serial": f"{slug.upper()}-1",
                        "product": "gw",
                        "hardware_revision": "rev-a",
                        "organisation": slug,
                        "current_version": "1.0.0",
                        "accepted_on": "2026-01-05",
                    },
                ).device
                db.session.flush()
                ids[slug] = device.id
                accounts.create_user(
                    db.session,
                    cli,
                    email=f"ops@{slug}.test",
                    name="Ops",
                    role="customer-viewer",
                    organisation_id=org.id,
                    password=PASSWORD,
                )
            db.session.commit()
        yield {"live": live, "devices": ids, "update_id": update_id}


@pytest.fixture
def page(world) -> Iterator[Any]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(accept_downloads=True, locale="zh-CN")
        page = context.new_page()
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        yield page
        context.close()
        browser.close()


def _accessible(page) -> None:
    """A lang attribute, a label for every field, headings in order."""
    assert page.locator("html").get_attribute("lang") in ("zh-CN", "en")
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(e => e.labels.length === 0).map(e => e.name)"
    )
    assert unlabelled == []
    levels = page.evaluate(
        "[...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1])"
    )
    assert levels and levels[0] == 1
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), levels


def _log_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/portal/login?lang=zh-CN")
    _accessible(page)
    page.get_by_label("电子邮箱").fill(email)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{base}/portal/devices")


def test_customer_reads_the_update_notes_in_both_languages_and_downloads_the_pdf(
    world, page, tmp_path
):
    base = world["live"].url
    _log_in(page, base, "ops@acme.test")
    _accessible(page)
    page.get_by_role("link", name="ACME-1").click()
    assert page.get_by_role("heading", level=1).inner_text() == "设备 ACME-1"
    _accessible(page)
    page.get_by_role("link", name="1.1.0 版本说明").click()
    page.wait_for_url(f"{base}/portal/releases/{world['update_id']}")
    _accessible(page)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "支持双链路备份" in page.locator(".notes").first.inner_text()
    assert "升级前请备份配置。" in page.inner_text("main")
    # No script ran, no handler fired, no javascript: link exists to click.
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator(".notes img, .notes script").count() == 0

    page.get_by_role("link", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Supports dual-link backup" in page.locator(".notes").first.inner_text()
    assert "Back up the configuration first." in page.inner_text("main")
    _accessible(page)

    page.get_by_role("link", name="中文").click()
    page.wait_for_load_state()
    with page.expect_download() as downloaded:
        page.get_by_role("link", name="版本说明（PDF）").click()
    pdf = tmp_path / "notes.pdf"
    downloaded.value.save_as(pdf)
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "1.1.0" in text
    assert "双链路备份" in text and "升级前请备份配置" in text
    assert page.evaluate("window.__pwned") is None


def test_another_organisations_device_is_a_404_page(world, page):
    base = world["live"].url
    _log_in(page, base, "ops@acme.test")
    response = page.goto(f"{base}/portal/devices/{world['devices']['globex']}")
    assert response is not None and response.status == 404
    assert "404" in page.get_by_role("heading", level=1).inner_text()
    assert "GLOBEX-1" not in page.content()
    _accessible(page)


def test_customer_confirms_the_end_of_a_session_and_the_record_shows_it_signed_off(world, page):
    live = world["live"]
    device_id = world["devices"]["acme"]
    with live.app.app_context():
        engineer = Principal(kind="user", id=None, label="eng@vendor.test", role=Role.SUPPORT)
        entry = service_record.create_session(
            db.session,
            engineer,
            {
                "kind": "installation",
                "organisation_id": db.session.get(Device, device_id).organisation_id,
                "device_ids": [device_id],
                "engineers": ["Wang Wei"],
            },
        )
        service_record.advance(db.session, engineer, ServiceSession, entry.id, "start")
        customer = Principal(
            kind="user",
            id=None,
            label="ops@acme.test",
            role=Role.CUSTOMER_VIEWER,
            organisation_id=entry.organisation_id,
        )
        service_record.advance(db.session, customer, ServiceSession, entry.id, "confirm-start")
        service_record.advance(db.session, engineer, ServiceSession, entry.id, "end")
        db.session.commit()
        session_id = entry.id
    base = live.url
    _log_in(page, base, "ops@acme.test")
    page.get_by_role("link", name="服务", exact=True).click()
    row = page.locator(f"#session-{session_id}")
    assert row.locator(".state").inner_text() == "已结束，待客户确认"
    _accessible(page)
    row.get_by_role("button", name="确认结束时间").click()
    page.wait_for_url(f"{base}/portal/service")
    assert page.locator(f"#session-{session_id} .state").inner_text() == "双方已确认"
    assert page.locator(f"#session-{session_id} button").count() == 0
    page.goto(f"{base}/portal/devices/{device_id}/record")
    _accessible(page)
    states = page.locator("td.state").all_inner_texts()
    assert states == ["signed-off"]

"""The customer portal in a real browser: Playwright driving Debian's
Chromium (headless) against the app on a loopback port."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.clock import at, today
from tests.helpers.portal import GUIDANCE, PASSWORD
from tests.live import add_product, live_server, publish
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Role
from upgrade_server.clock import utcnow
from upgrade_server.devices import provisioning
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db
from upgrade_server.organisations import service as organisations
from upgrade_server.service import service as service_record
from upgrade_server.service import sessions as service_sessions
from upgrade_server.service.models import RELEASE_KINDS, ServiceSession, SessionKind
from upgrade_server.updates.models import InstallEvent, InstallStatus

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


@pytest.fixture
def world(scratch_url, tmp_path) -> Iterator[dict[str, Any]]:
    with live_server(scratch_url, tmp_path / "instance") as live:
        product_id = add_product(live, "gw", ("rev-a",))
        publish(live, product_id, "1.0.0")
        update_id = publish(
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
                device = provisioning.create_device(
                    db.session,
                    cli,
                    {
                        "serial": f"{slug.upper()}-1",
                        "product": "gw",
                        "hardware_revision": "rev-a",
                        "organisation": slug,
                        "current_version": "1.0.0",
                        "accepted_on": (today() - timedelta(days=300)).isoformat(),
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
        entry = service_sessions.create_session(
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
    assert states == ["双方已确认"]


# --- no raw code on a Chinese page or PDF ---------------------------------------------


def _codes() -> set[str]:
    """Every stored code a page could show: the labels table's and the models'."""
    from upgrade_server.entitlements.coverage import Kind
    from upgrade_server.entitlements.service import STATUSES as COVERAGE_STATUSES
    from upgrade_server.notes.documents import GUIDANCE_KINDS
    from upgrade_server.releases.models import ReleaseStatus
    from upgrade_server.service.models import Mode, SessionKind
    from upgrade_server.tickets.models import STATUSES as TICKET_STATUSES
    from upgrade_server.updates.models import InstallStatus
    from upgrade_server.web.labels import LABELS

    # A number (an ISO weekday's code) is no word a page could leave untranslated.
    codes = {code for table in LABELS.values() for code in table if not code.isdigit()}
    for enum in (Kind, ReleaseStatus, Mode, SessionKind, InstallStatus):
        codes |= {member.value for member in enum}
    return codes | set(COVERAGE_STATUSES) | set(GUIDANCE_KINDS) | set(TICKET_STATUSES)


def _raw_codes(text: str, codes: set[str]) -> list[str]:
    """The codes that appear in `text` as a word of their own."""
    return sorted(c for c in codes if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text))


def _pdf_text(data: bytes, tmp_path, name: str) -> str:
    (tmp_path / name).write_bytes(data)
    return subprocess.run(
        ["pdftotext", str(tmp_path / name), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def busy(world) -> dict[str, Any]:
    """An organisation with a device in each coverage state, an install in
    each status, service sessions of every kind in every state, requests and
    tickets in several states; its customer and a support engineer log in."""
    live = world["live"]
    api = live.app.test_client()
    day = today()
    with live.app.app_context():
        cli = Principal.cli()
        org = organisations.create_organisation(db.session, cli, slug="initech", name="Initech")
        dates = {
            "INITECH-1": {"accepted_on": (day - timedelta(days=300)).isoformat()},
            "INITECH-2": {"delivered_on": (day - timedelta(days=20)).isoformat()},  # trial run
            "INITECH-3": {"accepted_on": (day - timedelta(days=4 * 366)).isoformat()},
            "INITECH-4": {},  # not delivered
        }
        ids = {}
        for serial, when in dates.items():
            ids[serial] = provisioning.create_device(
                db.session,
                cli,
                {
                    "serial": serial,
                    "product": "gw",
                    "hardware_revision": "rev-a",
                    "organisation": "initech",
                    "current_version": "1.0.0",
                    **when,
                },
            ).device.id
        for i, status in enumerate(InstallStatus):
            db.session.add(
                InstallEvent(
                    device_id=ids["INITECH-1"],
                    release_id=world["update_id"],
                    version="1.1.0",
                    event_id=f"e-{i}",
                    status=status.value,
                    error_code="E42" if status is InstallStatus.FAILED else None,
                    occurred_at=at(day - timedelta(days=2), 1 + i),
                )
            )
        users = {}
        for email, role, org_id in (
            ("ops@initech.test", "customer-admin", org.id),
            ("eng@vendor.test", "support", None),
        ):
            user = accounts.create_user(
                db.session,
                cli,
                email=email,
                name=email,
                role=role,
                organisation_id=org_id,
                password=PASSWORD,
            )
            users[role] = {
                "Authorization": "Bearer "
                + accounts.create_api_token(db.session, cli, name=email, user_id=user.id).secret
            }
        db.session.commit()
        org_id = org.id
    staff, customer = users["support"], users["customer-admin"]
    steps = [
        ("start", staff),
        ("confirm-start", customer),
        ("end", staff),
        ("confirm-end", customer),
    ]

    def post(url: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        r = api.post(url, json=body, headers=headers)
        assert r.status_code in (200, 201), (url, r.get_json())
        return dict(r.get_json())

    # Every kind of session, and every state among them.
    for i, kind in enumerate(SessionKind):
        body: dict[str, Any] = {
            "kind": kind.value,
            "organisation_id": org_id,
            "device_ids": [ids["INITECH-1"]],
            "engineers": ["Wang Wei"],
        }
        if kind in RELEASE_KINDS:
            body["release_id"] = world["update_id"]
        if kind is SessionKind.TRAINING:
            body["training_days"] = 3
        entry = post("/api/v1/service-sessions", staff, **body)
        for step, who in steps[: i % 5]:
            post(f"/api/v1/service-sessions/{entry['id']}/{step}", who)
    for i in range(5):
        entry = post(
            "/api/v1/service-requests", customer, title=f"申请 {i}", device_ids=[ids["INITECH-1"]]
        )
        for step, who in steps[:i]:
            post(f"/api/v1/service-requests/{entry['id']}/{step}", who)
    # Tickets, one in each status a ticket can be set to.
    for i in range(5):  # new, acknowledged, on-the-way, on-site, resolved
        ticket = post(
            "/api/v1/tickets",
            customer,
            title=f"故障 {i}",
            level=3,
            device_ids=[ids["INITECH-1"]],
        )
        path = ["acknowledged", "on-the-way", "on-site", "resolved"][:i]
        for step in path:
            post(f"/api/v1/tickets/{ticket['id']}/status", staff, status=step)
    # One ticket through its whole life: an emergency, a wait on the customer,
    # a repair notice, the incident report delivered, closed.
    ticket = post(
        "/api/v1/tickets", customer, title="全面中断", level=2, device_ids=[ids["INITECH-1"]]
    )
    url = f"/api/v1/tickets/{ticket['id']}"
    post(f"{url}/emergency", staff, emergency=True, reason="客户业务中断")
    post(f"{url}/status", staff, status="acknowledged")
    post(f"{url}/pause", staff, reason="等待客户开放远程访问")
    post(f"{url}/pause/confirm", customer)
    post(f"{url}/pause/end", staff)
    post(f"{url}/repair-notice", staff)
    post(f"{url}/status", staff, status="resolved")
    now = utcnow()
    report = {
        "fault_started_at": (now - timedelta(hours=3)).isoformat(),
        "fault_ended_at": (now - timedelta(minutes=5)).isoformat(),
        "symptoms": "设备断电",
        "cause": "电源故障",
        "solution": "更换电源",
        "recovery_steps": [{"at": (now - timedelta(minutes=30)).isoformat(), "step": "更换电源"}],
        "follow_up": "一个月内检查其余电源",
    }
    assert api.put(f"{url}/report", json=report, headers=staff).status_code == 200
    post(f"{url}/report/deliver", staff)
    post(f"{url}/status", staff, status="closed")
    # A pre-installation notice, confirmed by the customer.
    notice = post(
        "/api/v1/pre-installation-notices",
        staff,
        organisation_id=org_id,
        device_ids=[ids["INITECH-4"]],
        expected_on=(day + timedelta(days=10)).isoformat(),
    )
    post(f"/api/v1/pre-installation-notices/{notice['id']}/confirm-receipt", customer)
    tickets = api.get("/api/v1/tickets", headers=staff).get_json()["items"]
    return {
        **world,
        "initech": ids,
        "tickets": [t["id"] for t in tickets],
        "closed_ticket": ticket["id"],
        "notice": notice["id"],
    }


def test_chinese_pages_and_pdfs_show_no_raw_code(busy, page, tmp_path):
    base, ids = busy["live"].url, busy["initech"]
    codes = _codes()
    assert {"signed-off", "on-site", "installation", "rolled_back", "new", "closed"} <= codes
    _log_in(page, base, "ops@initech.test")
    pages = [
        "/portal/devices",
        *(f"/portal/devices/{i}" for i in ids.values()),
        f"/portal/devices/{ids['INITECH-1']}/record",
        "/portal/service",
        "/portal/tickets",
        "/portal/products/gw/releases",
        f"/portal/releases/{busy['update_id']}",
        "/portal/products/gw/changelog?from=0.9.0&to=1.1.0",
        f"/portal/devices/{busy['devices']['globex']}",  # another organisation's: a 404 page
        *(f"/portal/tickets/{i}" for i in busy["tickets"]),
        f"/portal/tickets/{busy['closed_ticket']}/report",
        f"/portal/service/notices/{busy['notice']}",
    ]
    shown = {}
    for path in pages:
        page.goto(base + path)
        assert page.locator("html").get_attribute("lang") == "zh-CN", path
        shown[path] = page.inner_text("body")
    device_page = shown[f"/portal/devices/{ids['INITECH-2']}"]
    assert "未开始（试运行中）" in device_page  # the warranty of a device in its trial run
    assert "(Asia/Shanghai)" in shown[f"/portal/devices/{ids['INITECH-1']}"]
    assert "已回滚" in shown[f"/portal/devices/{ids['INITECH-1']}"]
    assert "双方已确认" in shown["/portal/service"] and "待客户确认" in shown["/portal/service"]
    documents = {
        "notes.pdf": f"/portal/releases/{busy['update_id']}/notes.pdf",
        "changelog.pdf": "/portal/products/gw/changelog?from=0.9.0&to=1.1.0&format=pdf",
        "record.pdf": f"/portal/devices/{ids['INITECH-1']}/record?format=pdf",
        "report.pdf": f"/portal/tickets/{busy['closed_ticket']}/report.pdf",
        "notice.pdf": f"/portal/service/notices/{busy['notice']}/notice.pdf",
    }
    for name, path in documents.items():
        r = page.request.get(base + path)
        assert r.ok and r.headers["content-type"] == "application/pdf", path
        shown[name] = _pdf_text(r.body(), tmp_path, name)
    assert "(Asia/Shanghai)" in shown["record.pdf"] and "安装调试" in shown["record.pdf"]
    closed = shown[f"/portal/tickets/{busy['closed_ticket']}"]
    assert "已关闭" in closed and "紧急" in closed and "国家法定节假日安排" in closed
    assert "(Asia/Shanghai)" in shown["report.pdf"] and "更换电源" in shown["report.pdf"]
    assert "安装前期准备" in shown["notice.pdf"]

    # The support engineer's planning form names kinds and modes in Chinese too.
    context = page.context.browser.new_context(locale="zh-CN")
    staff = context.new_page()
    _log_in(staff, base, "eng@vendor.test")
    staff.goto(f"{base}/portal/staff/sessions")
    shown["staff sessions"] = staff.inner_text("body") + " ".join(
        staff.locator("option").all_inner_texts()
    )
    context.close()

    found = {where: _raw_codes(text, codes) for where, text in shown.items()}
    assert {where: raw for where, raw in found.items() if raw} == {}

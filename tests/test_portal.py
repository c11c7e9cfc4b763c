"""The customer portal through the test client: login, scoping, languages,
notes, documents. The browser tests (test_browser.py) drive the same pages
in Chromium."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import pytest
from argon2 import PasswordHasher

from tests.clock import first_of_month, today
from tests.helpers.portal import GUIDANCE, PASSWORD, csrf, login
from tests.helpers.publishing import publish
from upgrade_server.accounts import service as accounts
from upgrade_server.extensions import db
from upgrade_server.tickets.models import Ticket

NOTES = {
    "zh-CN": "## 新功能\n\n支持**双链路备份**。\n\n<script>alert(1)</script>"
    " [点我](javascript:alert(1)) <img src=x onerror=alert(1)>",
    "en": "## New\n\nSupports **dual-link backup**.",
}


@pytest.fixture
def portal(client, factory):
    """An organisation with a device on 1.0.0 and a customer who may log in;
    1.1.0 (with notes, guidance, a parameter change and a requirement) is
    its available update."""
    publisher = factory.caller("publisher")
    org = factory.organisation()
    product = factory.product()
    db.session.commit()
    first = publish(client, publisher.headers, product.id, "1.0.0", b"one").get_json()
    update = publish(
        client,
        publisher.headers,
        product.id,
        "1.1.0",
        b"one-one",
        notes=NOTES,
        guidance=GUIDANCE,
        min_from_version="1.0.0",
        parameters=[
            {
                "name": "link.timeout",
                "old_default": 30,
                "new_default": 10,
                "unit": "s",
                "operator_action": True,
                "action": "re-check the timeout on site",
            }
        ],
        requirements=[{"name": "memory", "value": 512, "unit": "MiB"}],
    ).get_json()
    device, _ = factory.device(
        organisation=org,
        product=product,
        current_version="1.0.0",
        accepted_on=first_of_month(today(), -11).isoformat(),
    )
    customer = factory.user("customer-viewer", org, email="ops@customer.test")
    customer.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    return {
        "org": org,
        "product": product,
        "device": device,
        "customer": customer,
        "first": first,
        "update": update,
    }


def test_login_logout_andcsrf(client, portal):
    assert client.get("/portal/devices").status_code == 302  # to the login page
    # A form without its CSRF token is refused.
    r = client.post("/portal/login", data={"email": "ops@customer.test", "password": PASSWORD})
    assert r.status_code == 400
    r = login(client, "ops@customer.test")
    assert r.status_code == 302 and r.headers["Location"].endswith("/portal/")
    page = client.get("/portal/devices", headers={"Accept-Language": "en"})
    assert portal["device"].serial in page.get_data(as_text=True)
    cookie = client.get_cookie("upgrade_server_session")
    assert cookie.http_only and cookie.same_site == "Lax"
    token = csrf(page.get_data(as_text=True))
    assert client.post("/portal/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/portal/devices").status_code == 302


def test_failed_logins_lock_the_account_for_a_while(client, portal, clock):
    for _ in range(accounts.MAX_FAILED_LOGINS):
        r = login(client, "ops@customer.test", "wrong password!")
        assert "电子邮箱或密码错误" in r.get_data(as_text=True)
    # Locked: even the right password is refused now, in the same words.
    r = login(client, "ops@customer.test")
    assert r.status_code == 200
    assert "电子邮箱或密码错误" in r.get_data(as_text=True)
    assert client.get("/portal/devices").status_code == 302
    # The lockout ends: the right password logs in.
    clock.shift(accounts.LOCKOUT + timedelta(seconds=1))
    assert login(client, "ops@customer.test").status_code == 302
    assert client.get("/portal/devices").status_code == 200
    # An unknown email answers like a wrong password.
    r = login(client, "nobody@customer.test")
    assert "电子邮箱或密码错误" in r.get_data(as_text=True)


def test_a_customer_sees_its_devices_only(client, portal, factory):
    other, _ = factory.device(product=portal["product"])
    login(client, "ops@customer.test")
    page = client.get("/portal/devices").get_data(as_text=True)
    assert portal["device"].serial in page and other.serial not in page
    r = client.get(f"/portal/devices/{other.id}")
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    assert 'lang="zh-CN"' in r.get_data(as_text=True)


def test_error_pages_say_what_went_wrong_in_the_readers_language(client, portal, factory):
    """Not the service's English detail ("no device 12"), nor werkzeug's or
    the CSRF check's: the problem type's sentence, in Chinese on a Chinese page."""
    r = client.post("/portal/login", data={"email": "ops@customer.test", "password": PASSWORD})
    assert r.status_code == 400
    assert "表单已过期" in r.get_data(as_text=True) and "CSRF" not in r.get_data(as_text=True)
    login(client, "ops@customer.test")
    other, _ = factory.device(product=portal["product"])
    r = client.get(f"/portal/devices/{other.id}?lang=zh-CN")
    body = r.get_data(as_text=True)
    assert r.status_code == 404 and "未找到" in body and "此处没有内容，或您无权查看" in body
    assert f"no device {other.id}" not in body
    r = client.get(f"/portal/products/{portal['product'].code}/changelog?from=x&to=1.1.0")
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and "填写的内容不符合要求" in body
    assert "versions are invalid" not in body
    # The same page in English says it in English.
    r = client.get(f"/portal/devices/{other.id}?lang=en")
    assert "Nothing is here, or nothing you may see." in r.get_data(as_text=True)


def test_device_page_shows_coverage_update_and_history(client, portal):
    login(client, "ops@customer.test")
    page = client.get(
        f"/portal/devices/{portal['device'].id}?lang=en", headers={"Accept-Language": "zh-CN"}
    ).get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Release notes of 1.1.0" in page
    # Accepted on the first of a month 11 months ago: covered through the last
    # day of the month before, three years on.
    assert (first_of_month(today(), 25) - timedelta(days=1)).isoformat() in page
    # The choice sticks for the session.
    page = client.get(f"/portal/devices/{portal['device'].id}").get_data(as_text=True)
    assert '<html lang="en">' in page


def test_notes_in_both_languages_sanitised_with_tables(client, portal):
    login(client, "ops@customer.test")
    url = f"/portal/releases/{portal['update']['id']}"
    zh = client.get(url + "?lang=zh-CN").get_data(as_text=True)
    assert "支持<strong>双链路备份</strong>" in zh
    assert "安装指导" in zh and "升级前请备份配置" in zh and "每月检查链路状态" in zh
    # Raw HTML is shown as text, never as a tag; the javascript: link is not a link.
    assert "<script" not in zh and "<img" not in zh and 'href="javascript' not in zh
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in zh
    policy = client.get(url).headers["Content-Security-Policy"]
    assert "script-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "link.timeout" in zh and "需运维人员操作" in zh and "512 MiB" in zh
    assert "1.0.0 或更高版本" in zh
    en = client.get(url + "?lang=en").get_data(as_text=True)
    assert "Supports <strong>dual-link backup</strong>" in en
    assert "Download the software" in en


def test_pdf_and_html_downloads(client, portal, tmp_path):
    login(client, "ops@customer.test")
    url = f"/portal/releases/{portal['update']['id']}"
    r = client.get(url + "/notes.pdf?lang=zh-CN")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert "attachment" in r.headers["Content-Disposition"]
    (tmp_path / "notes.pdf").write_bytes(r.data)
    text = subprocess.run(
        ["pdftotext", str(tmp_path / "notes.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "1.1.0" in text and "双链路备份" in text
    html = client.get(url + "/notes.html?lang=en")
    assert html.mimetype == "text/html"
    body = html.get_data(as_text=True)
    assert "dual-link backup" in body and "<link" not in body and "src=" not in body


def test_changelog_collects_parameters_and_requirements(client, portal, factory):
    publisher = factory.caller("publisher")
    publish(
        client,
        publisher.headers,
        portal["product"].id,
        "1.2.0",
        b"one-two",
        parameters=[{"name": "log.level", "old_default": "info", "new_default": "warn"}],
    )
    login(client, "ops@customer.test")
    url = f"/portal/products/{portal['product'].code}/changelog?from=1.0.0&to=1.2.0&lang=en"
    page = client.get(url).get_data(as_text=True)
    assert "link.timeout" in page and "log.level" in page and "memory" in page
    assert page.index(">1.1.0<") < page.index(">1.2.0<")
    pdf = client.get(url + "&format=pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    bad = client.get(f"/portal/products/{portal['product'].code}/changelog?from=x&to=1.2.0")
    assert bad.status_code == 422


def _pdf_text(data: bytes, tmp_path, name: str = "document.pdf") -> str:
    (tmp_path / name).write_bytes(data)
    return subprocess.run(
        ["pdftotext", str(tmp_path / name), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_changelog_page_and_its_pdf_state_the_same_range(client, portal, tmp_path, lang):
    """From the version asked for (what a device upgrades from), not from the
    first release listed, to the newest release listed."""
    login(client, "ops@customer.test")
    url = f"/portal/products/{portal['product'].code}/changelog?from=0.9.0&to=1.1.0&lang={lang}"
    heading = {"en": "from 0.9.0 to 1.1.0", "zh-CN": "从 0.9.0 到 1.1.0"}[lang]
    page = client.get(url).get_data(as_text=True)
    assert re.search(r"<h1>([^<]*)</h1>", page).group(1).endswith(heading)
    html = client.get(url + "&format=html").get_data(as_text=True)
    assert re.search(r"<h1>([^<]*)</h1>", html).group(1).endswith(heading)
    pdf = client.get(url + "&format=pdf")
    assert heading in _pdf_text(pdf.data, tmp_path)
    assert "0.9.0-to-1.1.0" in pdf.headers["Content-Disposition"]


def test_the_service_record_pdf_words_its_entries_in_chinese(client, portal, factory, tmp_path):
    """The record's PDF, from the portal or the API, says 安装调试 and 已计划
    where its CSV says installation and planned."""
    staff = factory.caller("support")
    r = client.post(
        "/api/v1/service-sessions",
        json={
            "kind": "installation",
            "organisation_id": portal["org"].id,
            "device_ids": [portal["device"].id],
        },
        headers=staff.headers,
    )
    assert r.status_code == 201, r.get_json()
    url = f"/api/v1/devices/{portal['device'].id}/service-record"
    customer = factory.caller("customer-viewer", portal["org"])
    pdf = client.get(url + "?format=pdf", headers={**customer.headers, "Accept-Language": "zh-CN"})
    text = _pdf_text(pdf.data, tmp_path, "api.pdf")
    assert "安装调试" in text and "(Asia/Shanghai)" in text
    assert not re.search(r"\b(installation|planned|session)\b", text)
    csv = client.get(url + "?format=csv", headers=customer.headers).get_data(as_text=True)
    assert "installation" in csv and "planned" in csv
    login(client, "ops@customer.test")
    page = client.get(f"/portal/devices/{portal['device'].id}/record?format=pdf&lang=zh-CN")
    assert "安装调试" in _pdf_text(page.data, tmp_path, "portal.pdf")


def test_download_button_follows_coverage(client, portal, factory):
    login(client, "ops@customer.test")
    url = f"/portal/releases/{portal['update']['id']}"
    assert client.get(url + "/artifact").data == b"one-one"
    # A customer whose devices' coverage ended before 1.1.0 came out.
    org = factory.organisation()
    factory.device(
        organisation=org,
        product=portal["product"],
        accepted_on=first_of_month(today(), -48).isoformat(),
    )
    expired = factory.user("customer-viewer", org, email="old@customer.test")
    expired.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    client.post("/portal/logout", data={"csrf_token": csrf(client.get(url).get_data(as_text=True))})
    login(client, "old@customer.test")
    page = client.get(url + "?lang=en").get_data(as_text=True)
    assert "Download the software" not in page
    assert "after your devices&#39; upgrade coverage ended" in page
    assert client.get(url + "/artifact").status_code == 403


def test_public_notes_need_no_login(client, portal, factory):
    url = f"/portal/releases/{portal['update']['id']}"
    assert client.get(url).status_code == 302  # to the login page
    admin = factory.caller("admin")
    r = client.patch(
        f"/api/v1/products/{portal['product'].id}",
        json={"public_notes": True},
        headers=admin.headers,
    )
    assert r.status_code == 200 and r.get_json()["public_notes"] is True
    page = client.get(url + "?lang=en")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "dual-link backup" in body and "Log in to download." in body
    assert client.get(url + "/artifact").status_code == 403


def test_customers_report_faults_and_read_delivered_reports_in_the_portal(client, portal, factory):
    login(client, "ops@customer.test")
    page = client.get("/portal/tickets/new?lang=en").get_data(as_text=True)
    r = client.post(
        "/portal/tickets/new",
        data={
            "csrf_token": csrf(page),
            "title": "链路中断",
            "level": "2",
            "device_ids": [str(portal["device"].id)],
        },
    )
    assert r.status_code == 302
    board = client.get("/portal/tickets?lang=zh-CN").get_data(as_text=True)
    assert "链路中断" in board and "故障工单" in board and "响应: " in board
    text = re.sub(r"<[^>]+>", " ", board.split("<main>")[1])
    assert not re.search(r"\b(new|acknowledge)\b", text)  # words, not codes
    ticket = db.session.query(Ticket).one()
    assert ticket.source == "portal" and ticket.level == 2
    # Not delivered: no report page for the customer.
    assert client.get(f"/portal/tickets/{ticket.id}/report").status_code == 404


# --- where a login sends the browser --------------------------------------------------


def _browser_target(location: str, base: str = "http://localhost/portal/login") -> str:
    """The URL a browser goes to for this Location: it drops tabs and newlines,
    trims spaces and control characters, and reads a backslash as a slash."""
    cleaned = "".join(c for c in location if c not in "\t\n\r").strip("\x00- ")
    return urljoin(base, cleaned.replace("\\", "/"))


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example/path",
        "/\n/evil.example",
        "/portal/\r\nSet-Cookie: stolen=1",
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/portal/..\\..\\evil.example",
        "https://evil.example/portal/",
        "javascript:alert(1)",
        " /\\evil.example",
        "%2F%2Fevil.example",
        "/\u3000/evil.example",
        "/\u2028/evil.example",
        "/\u200b/evil.example",
        "\x00//evil.example",
        "",
    ],
)
def test_login_never_sends_the_browser_off_the_site(client, portal, target):
    token = csrf(client.get("/portal/login").get_data(as_text=True))
    r = client.post(
        "/portal/login",
        query_string={"next": target},
        data={"email": "ops@customer.test", "password": PASSWORD, "csrf_token": token},
    )
    if "\x00" in target:  # no store takes NUL: the request is refused whole
        assert r.status_code == 400 and "Location" not in r.headers
        return
    assert r.status_code == 302
    assert r.headers["Location"] == "/portal/"


@pytest.mark.parametrize(
    "query", ["next=/%09/evil.example/path", "next=%2F%2Fevil.example", "next=/%0a/evil.example"]
)
def test_login_next_as_a_browser_sends_it(client, portal, query):
    token = csrf(client.get("/portal/login").get_data(as_text=True))
    r = client.post(
        f"/portal/login?{query}",
        data={"email": "ops@customer.test", "password": PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 302
    assert r.headers["Location"] == "/portal/"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/portal/devices?lang=en", "http://localhost/portal/devices?lang=en"),
        ("/portal/releases/1#notes", "http://localhost/portal/releases/1#notes"),
        ("/\uff0f\uff0fevil.example", None),  # fullwidth slashes: a path here, oddly named
    ],
)
def test_login_returns_to_a_page_of_the_site(client, portal, target, expected):
    token = csrf(client.get("/portal/login").get_data(as_text=True))
    r = client.post(
        "/portal/login",
        query_string={"next": target},
        data={"email": "ops@customer.test", "password": PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 302
    landing = _browser_target(r.headers["Location"])
    assert urlsplit(landing).netloc == "localhost"
    if expected:
        assert landing == expected


# --- when a portal session ends ---------------------------------------------------------

COOKIE = "upgrade_server_session"


def _logged_in_cookie(client) -> str:
    login(client, "ops@customer.test")
    assert client.get("/portal/devices").status_code == 200
    return client.get_cookie(COOKIE).value


def _replayed(app, cookie: str):
    """A request to the device list from another browser holding a copy of the cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie)
    return thief.get("/portal/devices")


def test_a_copied_session_cookie_dies_at_logout(app, client, portal):
    cookie = _logged_in_cookie(client)
    assert _replayed(app, cookie).status_code == 200
    page = client.get("/portal/devices").get_data(as_text=True)
    assert client.post("/portal/logout", data={"csrf_token": csrf(page)}).status_code == 302
    r = _replayed(app, cookie)
    assert r.status_code == 302 and "/portal/login" in r.headers["Location"]


def test_a_password_change_ends_the_users_sessions(app, client, portal, factory):
    cookie = _logged_in_cookie(client)
    admin = factory.caller("admin")
    r = client.patch(
        f"/api/v1/users/{portal['customer'].id}",
        json={"password": "a new password, long enough"},
        headers=admin.headers,
    )
    assert r.status_code == 200
    r = _replayed(app, cookie)
    assert r.status_code == 302 and "/portal/login" in r.headers["Location"]
    # The new password starts a session that holds.
    fresh = app.test_client()
    assert login(fresh, "ops@customer.test", "a new password, long enough").status_code == 302
    assert fresh.get("/portal/devices").status_code == 200


def test_a_password_set_outside_the_api_ends_the_sessions_too(app, client, portal):
    cookie = _logged_in_cookie(client)
    # As the demo command does: the hash assigned on the model.
    portal["customer"].password_hash = accounts.hash_password("another long password")
    db.session.commit()
    assert _replayed(app, cookie).status_code == 302


def test_deactivation_ends_the_users_sessions_for_good(app, client, portal, factory):
    cookie = _logged_in_cookie(client)
    admin = factory.caller("admin")
    url = f"/api/v1/users/{portal['customer'].id}"
    assert client.patch(url, json={"active": False}, headers=admin.headers).status_code == 200
    assert _replayed(app, cookie).status_code == 302
    # Reactivated, the user logs in again: the old cookie stays dead.
    assert client.patch(url, json={"active": True}, headers=admin.headers).status_code == 200
    r = _replayed(app, cookie)
    assert r.status_code == 302 and "/portal/login" in r.headers["Location"]


def test_another_users_password_change_leaves_a_session_alone(app, client, portal, factory):
    cookie = _logged_in_cookie(client)
    admin = factory.caller("admin")
    other = factory.user("customer-viewer", portal["org"])
    db.session.commit()
    r = client.patch(
        f"/api/v1/users/{other.id}",
        json={"password": "a new password, long enough"},
        headers=admin.headers,
    )
    assert r.status_code == 200
    assert _replayed(app, cookie).status_code == 200


# --- a failed login tells nothing about the account ---------------------------------------


def _refusal(client, email: str, password: str) -> tuple[int, str]:
    r = login(client, email, password)
    body = re.sub(r'name="csrf_token" value="[^"]+"', "", r.get_data(as_text=True))
    return r.status_code, body


def test_every_refused_login_answers_alike_after_the_same_hash_work(
    client, portal, factory, monkeypatch
):
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def counting_verify(self, hash, password):
        verified.append(password)
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    factory.user("customer-viewer", portal["org"], email="nopassword@customer.test")
    db.session.commit()
    answers = {}
    for case, email, password in [
        ("unknown", "nobody@customer.test", "wrong password!"),
        ("wrong password", "ops@customer.test", "wrong password!"),
        ("no password set", "nopassword@customer.test", "wrong password!"),
    ]:
        verified.clear()
        answers[case] = _refusal(client, email, password)
        assert verified == ["wrong password!"], case
    for _ in range(accounts.MAX_FAILED_LOGINS - 1):
        login(client, "ops@customer.test", "wrong password!")
    for case, password in [("locked", "wrong password!"), ("locked, right password", PASSWORD)]:
        verified.clear()
        answers[case] = _refusal(client, "ops@customer.test", password)
        assert verified == [password], case
    assert len(set(answers.values())) == 1, answers
    status, body = answers["unknown"]
    assert status == 200 and "电子邮箱或密码错误" in body


def test_a_database_that_cannot_be_reached_is_a_503_page_as_on_the_api(client, portal, monkeypatch):
    """One mapping of errors for every app (failures.answer_for): the portal
    answered anything but a domain error with the API's problem+json."""
    from sqlalchemy.exc import OperationalError

    from upgrade_server.web import views

    login(client, "ops@customer.test")

    def unreachable(*_args):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(views.entitlements, "coverage_of_each", unreachable)
    r = client.get("/portal/devices?lang=zh-CN")
    assert r.status_code == 503 and r.mimetype == "text/html"
    body = r.get_data(as_text=True)
    assert "服务暂时不可用" in body and "connection refused" not in body
    monkeypatch.setattr(views.entitlements, "coverage_of_each", lambda *_: 1 / 0)
    r = client.get("/portal/devices?lang=en")
    assert r.status_code == 500 and r.mimetype == "text/html"
    assert "Something went wrong." in r.get_data(as_text=True)
    assert "ZeroDivisionError" not in r.get_data(as_text=True)

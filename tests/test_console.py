"""The staff console's door: who gets in, its headers, login and logout."""

from __future__ import annotations

import pytest

from tests.helpers.console import as_staff, console_login, page, staff_member
from tests.helpers.portal import csrf


def test_a_visitor_is_sent_to_the_consoles_login_and_comes_back_after(client, factory):
    r = client.get("/console/?lang=en")
    assert r.status_code == 302 and r.headers["Location"].startswith("/console/login?next=")
    member = staff_member(factory, "support")
    token = csrf(client.get("/console/login").get_data(as_text=True))
    r = client.post(
        "/console/login?next=/console/%3Flang%3Dzh-CN",
        data={"email": member.user.email, "password": "wrong", "csrf_token": token},
    )
    assert r.status_code == 200 and "Wrong email or password." in r.get_data(as_text=True)
    r = console_login(client, member.user.email)
    assert r.status_code == 302 and r.headers["Location"] == "/console/"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"])
def test_login_never_sends_anyone_off_site(client, factory, target):
    member = staff_member(factory, "viewer")
    token = csrf(client.get("/console/login").get_data(as_text=True))
    r = client.post(
        "/console/login",
        query_string={"next": target},
        data={"email": member.user.email, "password": "correct horse battery", "csrf_token": token},
    )
    assert r.status_code == 302 and r.headers["Location"] == "/console/"


@pytest.mark.parametrize("role", ["customer-admin", "customer-viewer"])
def test_customers_are_refused_whatever_the_page(client, factory, role):
    organisation = factory.organisation()
    member = staff_member(factory, role, organisation)
    console_login(client, member.user.email)
    html = page(client, "/console/?lang=en", 403)
    assert "The console is for the vendor&#39;s staff" in html
    assert "Log out" in html  # and they may leave
    assert "/console/devices" not in html


def test_pages_forbid_framing_foreign_scripts_and_caching(client, factory):
    as_staff(client, factory, "viewer")
    r = client.get("/console/")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"


def test_login_and_logout_need_the_forms_token(client, factory):
    member = staff_member(factory, "admin")
    r = client.post(
        "/console/login",
        data={"email": member.user.email, "password": "correct horse battery"},
    )
    assert r.status_code == 400
    assert client.get("/console/").status_code == 302  # not logged in
    console_login(client, member.user.email)
    assert client.post("/console/logout").status_code == 400
    assert client.get("/console/").status_code == 200
    html = page(client, "/console/")
    assert client.post("/console/logout", data={"csrf_token": csrf(html)}).status_code == 302
    assert client.get("/console/").status_code == 302


def test_a_session_from_before_the_login_is_not_the_one_after(client, factory):
    """Session fixation: what an attacker planted before the login is gone after it."""
    member = staff_member(factory, "admin")
    with client.session_transaction() as planted:
        planted["user_id"] = 999_999
        planted["planted"] = "by an attacker"
    console_login(client, member.user.email)
    with client.session_transaction() as after:
        assert "planted" not in after and after["user_id"] == member.user.id


def test_a_logged_out_cookie_copy_is_refused(client, factory):
    as_staff(client, factory, "publisher")
    with client.session_transaction() as kept:
        copy = dict(kept)
    html = page(client, "/console/")
    client.post("/console/logout", data={"csrf_token": csrf(html)})
    with client.session_transaction() as replayed:
        replayed.update(copy)
    assert client.get("/console/").status_code == 302


def test_pages_in_both_languages(client, factory):
    as_staff(client, factory, "admin", lang="zh-CN")
    html = page(client, "/console/")
    assert '<html lang="zh-CN">' in html and "总览" in html and "管理员" in html
    html = page(client, "/console/?lang=en")
    assert '<html lang="en">' in html and "Overview" in html and "administrator" in html

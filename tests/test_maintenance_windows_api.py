"""An organisation's maintenance windows through the API and the portal: set,
read with whether one is open now (in the organisation's zone), validated,
who may, and what an emergency rollout may do outside them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.clock import NOW
from tests.helpers.approvals import approval_world
from tests.helpers.portal import login
from tests.helpers.problems import assert_problem
from upgrade_server.accounts.principal import Principal
from upgrade_server.audit.models import AuditEntry
from upgrade_server.extensions import db
from upgrade_server.rollouts import maintenance
from upgrade_server.rollouts.windows import WindowState

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def world(client, factory):
    return approval_world(client, factory)


def _url(world, organisation=None):
    return f"/api/v1/organisations/{(organisation or world.organisation).id}/maintenance-windows"


def _local_minute(offset: timedelta):
    """NOW + offset in Shanghai, to the minute: a window's start time."""
    return (NOW + offset).astimezone(SHANGHAI).replace(second=0, microsecond=0)


def _daily(at, minutes: int, **extra):
    return {
        "kind": "weekly",
        "days": [1, 2, 3, 4, 5, 6, 7],
        "start": at.strftime("%H:%M"),
        "duration_minutes": minutes,
        **extra,
    }


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _put(client, world, windows, caller=None):
    return client.put(
        _url(world), json={"windows": windows}, headers=(caller or world.admin).headers
    )


def test_no_windows_means_installs_may_start_any_time(client, world):
    body = client.get(_url(world), headers=world.viewer.headers).get_json()
    assert body == {
        "timezone": "Asia/Shanghai",
        "windows": [],
        "open": True,
        "opens_at": None,
        "closes_at": None,
    }


def test_a_window_later_today_is_closed_now_and_says_when_it_opens(client, world):
    start = _local_minute(timedelta(hours=2))
    r = _put(client, world, [_daily(start, 60, label="nightly")])
    assert r.status_code == 200, r.get_data(as_text=True)
    body = client.get(_url(world), headers=world.viewer.headers).get_json()
    assert body["open"] is False
    assert _instant(body["opens_at"]) == start
    assert _instant(body["closes_at"]) == start + timedelta(minutes=60)
    assert body["windows"] == [
        {
            "kind": "weekly",
            "days": [1, 2, 3, 4, 5, 6, 7],
            "start": start.strftime("%H:%M"),
            "cron": None,
            "duration_minutes": 60,
            "label": "nightly",
        }
    ]


def test_an_open_window_says_when_it_closes_and_replacing_is_audited(client, world):
    _put(client, world, [_daily(_local_minute(timedelta(hours=2)), 60)])
    start = _local_minute(-timedelta(minutes=30))
    # A cron window three days ahead (cron counts Sunday as 0): closed now.
    weekday = (NOW.astimezone(SHANGHAI) + timedelta(days=3)).isoweekday() % 7
    cron = {"kind": "cron", "cron": f"0 1 * * {weekday}", "duration_minutes": 240}
    r = _put(client, world, [_daily(start, 60), cron])
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["open"] is True and len(body["windows"]) == 2
    assert _instant(body["opens_at"]) == start
    assert _instant(body["closes_at"]) == start + timedelta(minutes=60)
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "organisation.maintenance-windows.set")
    ).all()
    assert len(entries) == 2
    assert len(entries[1].before["windows"]) == 1 and len(entries[1].after["windows"]) == 2
    assert entries[1].after["windows"][1]["cron"] == f"0 1 * * {weekday}"


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"kind": "cron", "cron": "every sunday", "duration_minutes": 60}, "windows[0].cron"),
        ({"kind": "cron", "cron": "0 0 31 2 *", "duration_minutes": 60}, "windows[0].cron"),
        ({"kind": "cron", "cron": "61 * * * *", "duration_minutes": 60}, "windows[0].cron"),
        # Starts 48 times a day: more than a maintenance slot.
        ({"kind": "cron", "cron": "*/30 * * * *", "duration_minutes": 15}, "windows[0].cron"),
        (
            {"kind": "weekly", "days": [], "start": "01:00", "duration_minutes": 60},
            "windows[0].days",
        ),
        (
            {"kind": "weekly", "days": [7], "start": "25:00", "duration_minutes": 60},
            "windows[0].start",
        ),
        ({"kind": "weekly", "days": [7], "duration_minutes": 60}, "windows[0].start"),
    ],
)
def test_a_window_that_breaks_a_rule_is_a_422_naming_it(client, world, window, field):
    problem = assert_problem(_put(client, world, [window]), 422, "invalid-input")
    assert field in [e["field"] for e in problem["errors"]]
    assert client.get(_url(world), headers=world.admin.headers).get_json()["windows"] == []


@pytest.mark.parametrize(
    "window",
    [
        {"kind": "weekly", "days": [7], "start": "01:00", "duration_minutes": 14},
        {"kind": "weekly", "days": [7], "start": "01:00", "duration_minutes": 24 * 60 + 1},
        {"kind": "weekly", "days": [8], "start": "01:00", "duration_minutes": 60},
        {"kind": "monthly", "days": [7], "start": "01:00", "duration_minutes": 60},
        {"kind": "cron", "cron": "0 1 * * 0"},
    ],
)
def test_a_window_the_schema_refuses_is_a_422(client, world, window):
    assert_problem(_put(client, world, [window]), 422, "invalid-input")


def test_who_may_set_windows(client, world, factory):
    windows = [_daily(_local_minute(timedelta(hours=1)), 30)]
    assert_problem(_put(client, world, windows, world.viewer), 403, "forbidden")
    assert_problem(_put(client, world, windows, factory.caller("support")), 403, "forbidden")
    # Another organisation's admin neither reads nor sets them.
    assert_problem(client.get(_url(world), headers=world.outsider.headers), 404, "not-found")
    assert_problem(_put(client, world, windows, world.outsider), 404, "not-found")
    # Its own organisation's are its own business.
    r = client.put(
        _url(world, world.other), json={"windows": windows}, headers=world.outsider.headers
    )
    assert r.status_code == 200
    assert _put(client, world, windows, world.vendor).status_code == 200
    assert client.get(_url(world), headers=world.viewer.headers).get_json()["windows"] != []


def test_the_loader_and_an_emergency_outside_the_window(client, world):
    _put(client, world, [_daily(_local_minute(timedelta(hours=3)), 60)])
    windows = maintenance.load_windows(db.session.connection(), world.organisation.id)
    assert len(windows) == 1 and windows[0].duration == timedelta(minutes=60)
    organisation, rows = maintenance.list_windows(
        db.session, Principal.cli(), world.organisation.id
    )
    state = maintenance.state_of(organisation, rows, NOW)
    assert state.open is False
    assert maintenance.may_install_now(state, emergency=False) is False
    assert maintenance.may_install_now(state, emergency=True) is True
    assert maintenance.may_install_now(WindowState(True, None, None), emergency=False) is True


WEEKDAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "zh-CN": ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"],
}


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "en",
            ["Maintenance windows", "{day} from 01:00", "4 h 0 min", "The next window opens at"],
        ),
        ("zh-CN", ["维护窗口", "{day} 01:00 起", "4 小时 0 分钟", "下一个窗口"]),
    ],
)
def test_the_portal_shows_the_windows_in_the_organisations_zone(client, world, lang, words):
    # Three days ahead in Shanghai: closed now, whenever the test runs.
    day = (NOW.astimezone(SHANGHAI) + timedelta(days=3)).isoweekday()
    window = {"kind": "weekly", "days": [day], "start": "01:00", "duration_minutes": 240}
    assert _put(client, world, [window]).status_code == 200
    opens = _instant(client.get(_url(world), headers=world.admin.headers).get_json()["opens_at"])
    login(client, world.viewer.user.email)
    page = client.get(f"/portal/approvals?lang={lang}").get_data(as_text=True)
    for word in words:
        assert word.format(day=WEEKDAYS[lang][day - 1]) in page, word
    assert f"{opens.astimezone(SHANGHAI):%Y-%m-%d %H:%M} (Asia/Shanghai)" in page
    assert "weekly" not in page

"""Working days: China's official calendar with its make-up working days (调休),
staff exceptions, the fallback where the calendar has no data, and which
calendar a deadline says it used.

The official-calendar tests are about the years the State Council published
(2025 and 2026): their literal dates are the point. Everything else is
relative to tests/clock.py.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests import clock
from tests.helpers.problems import assert_problem
from upgrade_server.audit.models import AuditEntry
from upgrade_server.extensions import db
from upgrade_server.tickets.deadlines import PART_ON_SITE, Facts, add_working_days, deadlines
from upgrade_server.workdays.calendar import (
    LIBRARY_VERSION,
    DayException,
    Kind,
    Scope,
    WorkingCalendar,
    has_official_year,
)
from upgrade_server.workdays.service import Calendars

SHANGHAI = ZoneInfo("Asia/Shanghai")
OFFICIAL = WorkingCalendar()
WEEKENDS = WorkingCalendar(Kind.WEEKENDS)


def _due(notice_local: datetime, calendar: WorkingCalendar = OFFICIAL) -> datetime:
    """The part-on-site deadline of a repair notice given at a Shanghai time."""
    notice = notice_local.replace(tzinfo=SHANGHAI).astimezone(UTC)
    facts = Facts(notice, 3, "other", zone="Asia/Shanghai", is_working=calendar)
    facts.repair_notice_at = notice
    return deadlines(facts)[PART_ON_SITE].astimezone(SHANGHAI).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("notice", "official_due", "weekends_due"),
    [
        # 2025 Spring Festival: off 28 Jan - 4 Feb; Sunday 26 Jan and Saturday 8 Feb worked.
        # The Friday before: the make-up Sunday is the first working day, Monday the second.
        (datetime(2025, 1, 24, 15), datetime(2025, 1, 27, 15), datetime(2025, 1, 28, 15)),
        # The last day before the holiday: the deadline lands after it.
        (datetime(2025, 1, 27, 15), datetime(2025, 2, 6, 15), datetime(2025, 1, 29, 15)),
        # The make-up Saturday counts.
        (datetime(2025, 2, 6, 10), datetime(2025, 2, 8, 10), datetime(2025, 2, 10, 10)),
        # 2025 National Day (with Mid-autumn): off 1-8 Oct; Sunday 28 Sep and Saturday 11 Oct
        # worked.
        (datetime(2025, 9, 26, 9), datetime(2025, 9, 29, 9), datetime(2025, 9, 30, 9)),
        (datetime(2025, 9, 30, 9), datetime(2025, 10, 10, 9), datetime(2025, 10, 2, 9)),
        (datetime(2025, 10, 9, 9), datetime(2025, 10, 11, 9), datetime(2025, 10, 13, 9)),
        # 2026 Spring Festival: off 15-23 Feb; Saturdays 14 and 28 Feb worked.
        # The Friday before: the make-up Saturday, then the first day after the holiday.
        (datetime(2026, 2, 13, 15), datetime(2026, 2, 24, 15), datetime(2026, 2, 17, 15)),
        (datetime(2026, 2, 26, 11), datetime(2026, 2, 28, 11), datetime(2026, 3, 2, 11)),
        # 2026 National Day: off 1-7 Oct; Sunday 20 Sep and Saturday 10 Oct worked.
        (datetime(2026, 9, 18, 16), datetime(2026, 9, 21, 16), datetime(2026, 9, 22, 16)),
        (datetime(2026, 9, 30, 16), datetime(2026, 10, 9, 16), datetime(2026, 10, 2, 16)),
        (datetime(2026, 10, 9, 16), datetime(2026, 10, 12, 16), datetime(2026, 10, 13, 16)),
    ],
)
def test_part_on_site_follows_the_official_calendar_with_make_up_days(
    notice, official_due, weekends_due
):
    assert _due(notice) == official_due
    assert _due(notice, WEEKENDS) == weekends_due


def test_the_official_calendar_is_named_with_the_library_version():
    used = OFFICIAL.used(date(2026, 2, 14), date(2026, 2, 24))
    assert used.summary == f"CN official calendar (chinesecalendar {LIBRARY_VERSION})"
    assert WEEKENDS.used(date(2026, 2, 14), date(2026, 2, 24)).summary == "weekends only"


def _first_unpublished_year() -> int:
    return next(y for y in itertools.count(2004) if not has_official_year(y))


def test_a_year_the_library_lacks_falls_back_to_weekends_and_says_so():
    year = _first_unpublished_year()
    # A Friday in that year: no crash, the weekend is skipped, Tuesday is due.
    friday = date(year, 3, 1) + timedelta(days=(4 - date(year, 3, 1).weekday()) % 7)
    due = _due(datetime.combine(friday, datetime.min.time()).replace(hour=15))
    assert due.date() == friday + timedelta(days=4)
    used = OFFICIAL.used(friday + timedelta(days=1), due.date())
    assert used.summary == f"weekends only: no official calendar for {year} yet"
    # Across the year end, the published year is named as such.
    across = OFFICIAL.used(date(year - 1, 12, 30), date(year, 1, 2))
    assert across.summary.startswith(f"CN official calendar (chinesecalendar {LIBRARY_VERSION});")
    assert f"weekends only in {year}" in across.summary


def test_staff_exceptions_come_before_the_official_calendar():
    # 2026-02-24 (Tuesday) off for this organisation; 2026-02-22 (Sunday, in the
    # holiday) worked for everyone; the organisation's exception beats the global one.
    calendars = Calendars(None, configured_holidays=(date(2026, 2, 25),))
    organisation = calendars.of(7)
    organisation_exceptions = {
        date(2026, 2, 24): DayException(date(2026, 2, 24), False, "site move", Scope.ORGANISATION),
        date(2026, 2, 22): DayException(date(2026, 2, 22), True, "stock-take", Scope.GLOBAL),
    }
    merged = WorkingCalendar(
        Kind.CN_OFFICIAL, {**organisation.exceptions, **organisation_exceptions}
    )
    notice = datetime(2026, 2, 13, 15)
    # Make-up Saturday 14th, the worked Sunday 22nd.
    assert _due(notice, merged) == datetime(2026, 2, 22, 15)
    # After the worked Sunday: Monday 23rd is in the holiday, the 24th is the
    # organisation's day off, the 25th a configured holiday: the 26th.
    assert _due(datetime(2026, 2, 22, 9), merged) == datetime(2026, 2, 27, 9)
    used = merged.used(date(2026, 2, 23), date(2026, 2, 27))
    assert used.summary.endswith("+ 1 staff exception + 1 configured holiday")
    assert add_working_days(
        datetime(2026, 2, 22, 1, tzinfo=UTC), 1, "Asia/Shanghai", merged
    ) == datetime(2026, 2, 26, 1, tzinfo=UTC)


# --- through the API: relative to the pinned clock ---------------------------------------------


@pytest.fixture
def people(factory):
    org = factory.organisation()
    other = factory.organisation()
    db.session.commit()
    return {
        "org": org,
        "other": other,
        "support": factory.caller("support"),
        "customer": factory.caller("customer-admin", org),
        "stranger": factory.caller("customer-viewer", other),
    }


def _add(client, caller, **body):
    return client.post("/api/v1/working-days/exceptions", json=body, headers=caller.headers)


def test_staff_add_and_remove_exceptions_audited_and_scoped(client, people):
    tomorrow = clock.today() + timedelta(days=1)
    r = _add(
        client,
        people["support"],
        day=tomorrow.isoformat(),
        working=False,
        reason="office move",
        organisation_id=people["org"].id,
    )
    assert r.status_code == 201, r.get_json()
    own = r.get_json()
    assert (own["working"], own["organisation_id"]) == (False, people["org"].id)
    everyone = _add(
        client, people["support"], day=tomorrow.isoformat(), working=True, reason="stock-take"
    )
    assert everyone.status_code == 201 and everyone.get_json()["organisation_id"] is None
    # One a day for each: a second is a conflict.
    again = _add(client, people["support"], day=tomorrow.isoformat(), working=True, reason="x")
    assert_problem(again, 409, "conflict")
    # Customers read the global ones and their own, and may not add any.
    assert_problem(
        _add(client, people["customer"], day=tomorrow.isoformat(), working=True, reason="x"),
        403,
        "forbidden",
    )
    seen = client.get("/api/v1/working-days/exceptions", headers=people["stranger"].headers)
    assert [e["organisation_id"] for e in seen.get_json()["items"]] == [None]
    mine = client.get("/api/v1/working-days/exceptions", headers=people["customer"].headers)
    assert {e["organisation_id"] for e in mine.get_json()["items"]} == {None, people["org"].id}
    # The calendar shows the organisation's exception winning over the global one.
    days = client.get(
        "/api/v1/working-days",
        query_string={"from": tomorrow.isoformat(), "to": (tomorrow + timedelta(1)).isoformat()},
        headers=people["customer"].headers,
    ).get_json()
    assert days["days"] == [
        {"day": tomorrow.isoformat(), "working": False, "exception": "office move"}
    ]
    assert days["calendar"].endswith("+ 1 staff exception")
    gone = client.delete(
        f"/api/v1/working-days/exceptions/{own['id']}", headers=people["support"].headers
    )
    assert gone.status_code == 204
    actions = db.session.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.object_type == "working_day_exceptions")
        .order_by(AuditEntry.id)
    ).all()
    assert actions[-3:] == ["working-day.create", "working-day.create", "working-day.delete"]
    assert_problem(
        _add(client, people["support"], day="2026-13-01", working=True, reason="x"),
        422,
        "invalid-input",
    )


def test_a_ticket_says_which_calendar_its_part_deadline_used(client, people, factory):
    device, _ = factory.device(organisation=people["org"])
    support = people["support"]
    # The next three local days: off, worked, worked (exceptions decide, whatever the year).
    today = clock.today()
    for n, working in ((1, False), (2, True), (3, True)):
        day = (today + timedelta(days=n)).isoformat()
        r = _add(
            client,
            support,
            day=day,
            working=working,
            reason=f"day {n}",
            organisation_id=people["org"].id,
        )
        assert r.status_code == 201
    ticket = client.post(
        "/api/v1/tickets",
        json={
            "title": "fan",
            "level": 3,
            "device_ids": [device.id],
            "organisation_id": people["org"].id,
        },
        headers=support.headers,
    ).get_json()
    body = client.post(
        f"/api/v1/tickets/{ticket['id']}/repair-notice", headers=support.headers
    ).get_json()
    part = next(d for d in body["deadlines"] if d["name"] == PART_ON_SITE)
    notice = datetime.fromisoformat(body["repair_notice_at"])
    zone = ZoneInfo(body["timezone"])
    due = datetime.fromisoformat(part["due_at"]).astimezone(zone)
    assert due.date() == today + timedelta(days=3)
    assert due.timetz() == notice.astimezone(zone).timetz()
    assert part["calendar"].endswith("+ 3 staff exceptions")  # the days it looked at
    others = [d for d in body["deadlines"] if d["name"] != PART_ON_SITE]
    assert all(d["calendar"] is None for d in others)
    # The deadline report says so too, once the part is on site.
    client.post(f"/api/v1/tickets/{ticket['id']}/part-on-site", headers=support.headers)
    report = client.get(
        "/api/v1/tickets/deadline-report",
        query_string={
            "from": (clock.NOW - timedelta(days=1)).isoformat(),
            "to": (clock.NOW + timedelta(days=1)).isoformat(),
        },
        headers=support.headers,
    ).get_json()
    row = next(r for r in report["items"] if r["deadline"] == PART_ON_SITE)
    assert row["calendar"] == part["calendar"] and row["timezone"] == body["timezone"]


def test_the_calendar_view_refuses_bad_ranges_and_any_year(client, people):
    headers = people["customer"].headers
    for start, end in (("2026-01-02", "2026-01-01"), ("2026-01-01", "2027-06-01")):
        r = client.get(
            "/api/v1/working-days", query_string={"from": start, "to": end}, headers=headers
        )
        assert_problem(r, 422, "invalid-input")
    # The ends of the calendar: no official data, no overflow.
    for start, end in (("9999-12-01", "9999-12-31"), ("0001-01-01", "0001-01-08")):
        r = client.get(
            "/api/v1/working-days", query_string={"from": start, "to": end}, headers=headers
        )
        assert r.status_code == 200 and r.get_json()["calendar"].startswith("weekends only")

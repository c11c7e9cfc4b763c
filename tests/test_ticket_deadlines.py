"""The promised deadlines of a fault ticket, table-driven (tickets/deadlines.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from upgrade_server.tickets.deadlines import (
    ACK,
    ON_SITE,
    PART_ON_SITE,
    REPORT,
    Facts,
    add_working_days,
    deadlines,
    most_urgent_region,
)

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("level", "region", "ack", "on_site"),
    [
        (1, "beijing", timedelta(minutes=10), 2 * H),  # the 10-minute emergency reaction
        (1, "other", timedelta(minutes=10), 24 * H),
        (2, "beijing", 24 * H, 2 * H),
        (2, "other", 24 * H, 24 * H),
        (3, "beijing", 24 * H, 4 * H),
        (3, "other", 24 * H, 48 * H),
        (4, "beijing", 24 * H, 4 * H),
        (4, "other", 24 * H, 48 * H),
    ],
)
def test_each_level_and_region(level, region, ack, on_site):
    due = deadlines(Facts(T0, level, region))
    assert due == {ACK: T0 + ack, ON_SITE: T0 + on_site}


@pytest.mark.parametrize(
    ("notice_local", "holidays", "due_local"),
    [
        # Friday 15:00 in Shanghai: the weekend does not count.
        (datetime(2026, 3, 6, 15, 0), (), datetime(2026, 3, 10, 15, 0)),
        # ... nor does a Monday holiday.
        (datetime(2026, 3, 6, 15, 0), (date(2026, 3, 9),), datetime(2026, 3, 11, 15, 0)),
        # Tuesday: Thursday.
        (datetime(2026, 3, 3, 9, 30), (), datetime(2026, 3, 5, 9, 30)),
        # Saturday: Monday is the first working day, Tuesday the second.
        (datetime(2026, 3, 7, 11, 0), (), datetime(2026, 3, 10, 11, 0)),
    ],
)
def test_part_replacement_within_two_working_days(notice_local, holidays, due_local):
    zone = ZoneInfo("Asia/Shanghai")
    notice = notice_local.replace(tzinfo=zone).astimezone(UTC)

    def is_working(day: date) -> bool:
        return day.weekday() < 5 and day not in holidays

    facts = Facts(T0, 3, "other", is_working=is_working, repair_notice_at=notice)
    assert deadlines(facts)[PART_ON_SITE] == due_local.replace(tzinfo=zone).astimezone(UTC)
    due = add_working_days(notice, 2, "Asia/Shanghai", is_working)
    assert due == deadlines(facts)[PART_ON_SITE]


def test_the_working_days_are_counted_in_the_sites_zone():
    # Friday 23:30 UTC is already Saturday 07:30 in Shanghai: Monday, Tuesday.
    notice = datetime(2026, 3, 6, 23, 30, tzinfo=UTC)
    shanghai = add_working_days(notice, 2, "Asia/Shanghai")
    utc = add_working_days(notice, 2, "UTC")
    assert shanghai == datetime(2026, 3, 9, 23, 30, tzinfo=UTC)  # Tuesday 07:30 there
    assert utc == datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # Friday -> Monday -> Tuesday


def test_a_level_raised_midway_tightens_a_lowered_one_relaxes():
    raised_at = T0 + 6 * H
    raised = deadlines(Facts(T0, 3, "other", level_changes=[(raised_at, 1)]))
    assert raised[ACK] == raised_at + timedelta(minutes=10)
    assert raised[ON_SITE] == raised_at + 24 * H  # sooner than T0 + 48 h
    # Raised late, the old deadline is already the sooner one.
    late = T0 + 40 * H
    assert deadlines(Facts(T0, 3, "other", level_changes=[(late, 2)]))[ON_SITE] == T0 + 48 * H
    lowered = deadlines(Facts(T0, 1, "beijing", level_changes=[(T0 + H, 4)]))
    assert lowered[ON_SITE] == T0 + 4 * H and lowered[ACK] == T0 + 24 * H


def test_a_confirmed_pause_moves_the_deadlines_still_ahead():
    resolved = T0 + 30 * H
    pause = (T0 + 10 * H, T0 + 16 * H)
    due = deadlines(Facts(T0, 3, "other", resolved_at=resolved, pauses=[pause]))
    assert due[ACK] == T0 + 24 * H + 6 * H
    assert due[ON_SITE] == T0 + 48 * H + 6 * H
    assert due[REPORT] == resolved + 48 * H  # the pause came before it began
    # A deadline already past when the pause began does not move.
    early = deadlines(Facts(T0, 1, "beijing", pauses=[pause]))
    assert early[ACK] == T0 + timedelta(minutes=10)
    # A pause still open moves them by its length so far.
    now = T0 + 12 * H
    open_pause = deadlines(Facts(T0, 3, "other", pauses=[(T0 + 10 * H, None)]), now=now)
    assert open_pause[ACK] == T0 + 26 * H


def test_report_within_48_hours_of_resolution():
    resolved = T0 + 5 * H
    assert deadlines(Facts(T0, 2, "other", resolved_at=resolved))[REPORT] == resolved + 48 * H


def test_a_ticket_at_several_sites_takes_the_most_urgent_region():
    assert most_urgent_region(["other", "beijing", "other"], "other") == "beijing"
    assert most_urgent_region(["other"], "beijing") == "other"  # the site's, not the default
    assert most_urgent_region([], "beijing") == "beijing"  # no site: the organisation's

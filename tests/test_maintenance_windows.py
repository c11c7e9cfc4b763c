"""Maintenance windows in an organisation's time zone (pure functions).

Days are found relative to the pinned NOW (the next Saturday, the next DST
change of a zone), so the table reads the same whatever day the suite runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.clock import NOW
from upgrade_server.rollouts.windows import (
    MaintenanceWindow,
    WindowState,
    cron_is_valid,
    window_state,
)

SHANGHAI = "Asia/Shanghai"
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
EVERY_DAY = frozenset(range(1, 8))


def weekly(days, start: str, hours: float) -> MaintenanceWindow:
    return MaintenanceWindow(
        days=frozenset(days), start=time.fromisoformat(start), duration=timedelta(hours=hours)
    )


def cron(expression: str, hours: float) -> MaintenanceWindow:
    return MaintenanceWindow(cron=expression, duration=timedelta(hours=hours))


def local(day: date, clock: str, zone: str, fold: int = 0) -> datetime:
    """A wall time in a zone, as the UTC instant it is."""
    wall = datetime.combine(day, time.fromisoformat(clock), tzinfo=ZoneInfo(zone))
    return wall.replace(fold=fold).astimezone(UTC)


def wall(instant: datetime | None, zone: str) -> str | None:
    """An instant as the zone's wall clock, with its weekday: "Sun 01:00"."""
    return None if instant is None else instant.astimezone(ZoneInfo(zone)).strftime("%a %H:%M")


def next_weekday(day: date, iso_weekday: int) -> date:
    return day + timedelta(days=(iso_weekday - day.isoweekday()) % 7)


def clock_change(zone: str, day: date) -> int:
    """+1 if `zone` moves its clocks forward on `day`, -1 if back, 0 if neither."""
    tz = ZoneInfo(zone)
    before = datetime.combine(day, time(0), tzinfo=tz).utcoffset()
    after = datetime.combine(day, time(23, 59), tzinfo=tz).utcoffset()
    assert before is not None and after is not None
    return (after > before) - (after < before)


def dst_change(zone: str, forward: bool) -> date:
    """The next day after NOW on which `zone` moves its clocks forward (or back)."""
    day = NOW.date() + timedelta(days=1)
    for _ in range(400):
        if clock_change(zone, day) == (1 if forward else -1):
            return day
        day += timedelta(days=1)
    raise AssertionError(f"{zone} has no DST change within a year")


def ordinary_saturday() -> date:
    """The next Saturday after NOW whose weekend changes no clocks (DST has its own tests)."""
    saturday = next_weekday(NOW.date() + timedelta(days=1), 6)
    while any(
        clock_change(zone, day)
        for zone in (BERLIN, NEW_YORK)
        for day in (saturday, saturday + timedelta(days=1))
    ):
        saturday += timedelta(days=7)
    return saturday


SAT = ordinary_saturday()
SUN = SAT + timedelta(days=1)
WED = SAT + timedelta(days=4)


def test_no_windows_is_always_open():
    assert window_state([], SHANGHAI, NOW) == WindowState(open=True, opens_at=None, closes_at=None)


# Sunday 01:00-05:00 in Shanghai (UTC+8 all year), as a weekly window and as cron.
SUNDAY_NIGHT = [weekly([7], "01:00", 4)]
SUNDAY_NIGHT_CRON = [cron("0 1 * * 0", 4)]


@pytest.mark.parametrize("windows", [SUNDAY_NIGHT, SUNDAY_NIGHT_CRON], ids=["weekly", "cron"])
@pytest.mark.parametrize(
    ("now", "is_open", "opens", "closes"),
    [
        ((SUN, "00:59"), False, "Sun 01:00", "Sun 05:00"),
        ((SUN, "01:00"), True, "Sun 01:00", "Sun 05:00"),
        ((SUN, "04:59"), True, "Sun 01:00", "Sun 05:00"),
        ((SUN, "05:00"), False, "Sun 01:00", "Sun 05:00"),
        ((WED, "12:00"), False, "Sun 01:00", "Sun 05:00"),
        ((SAT, "23:59"), False, "Sun 01:00", "Sun 05:00"),
    ],
)
def test_a_sunday_night_window_in_shanghai(windows, now, is_open, opens, closes):
    state = window_state(windows, SHANGHAI, local(*now, SHANGHAI))
    assert (state.open, wall(state.opens_at, SHANGHAI), wall(state.closes_at, SHANGHAI)) == (
        is_open,
        opens,
        closes,
    )
    assert state.closes_at is not None and state.opens_at is not None
    assert state.closes_at - state.opens_at == timedelta(hours=4)
    assert state.opens_at.utcoffset() == timedelta(0)  # UTC, for the device and the API
    if not is_open:  # told to wait until the next opening, never a past one
        assert state.opens_at > local(*now, SHANGHAI)


def test_shanghai_windows_are_eight_hours_ahead_of_utc():
    state = window_state(SUNDAY_NIGHT, SHANGHAI, local(WED, "12:00", SHANGHAI))
    saturday = SAT + timedelta(days=7)  # the eve of the Sunday after WED
    assert state.opens_at == datetime.combine(saturday, time(17), tzinfo=UTC)
    assert state.closes_at == datetime.combine(saturday, time(21), tzinfo=UTC)


# Saturday 23:00 for four hours: across midnight into Sunday.
ACROSS_MIDNIGHT = [weekly([6], "23:00", 4)]


@pytest.mark.parametrize("zone", [SHANGHAI, BERLIN, NEW_YORK])
@pytest.mark.parametrize(
    ("now", "is_open", "opens", "closes"),
    [
        ((SAT, "22:59"), False, "Sat 23:00", "Sun 03:00"),
        ((SAT, "23:30"), True, "Sat 23:00", "Sun 03:00"),
        ((SUN, "00:00"), True, "Sat 23:00", "Sun 03:00"),
        ((SUN, "02:59"), True, "Sat 23:00", "Sun 03:00"),
        ((SUN, "03:00"), False, "Sat 23:00", "Sun 03:00"),
    ],
)
def test_a_window_across_midnight(zone, now, is_open, opens, closes):
    instant = local(*now, zone)
    state = window_state(ACROSS_MIDNIGHT, zone, instant)
    assert (state.open, wall(state.opens_at, zone), wall(state.closes_at, zone)) == (
        is_open,
        opens,
        closes,
    )
    if not is_open:
        assert state.opens_at is not None and state.opens_at > instant


@pytest.mark.parametrize(
    ("windows", "zone", "now", "is_open", "opens", "closes"),
    [
        # Weeknights 22:00 for 8 hours, by cron: Friday night runs into Saturday.
        ([cron("0 22 * * 1-5", 8)], BERLIN, (SAT, "05:59"), True, "Fri 22:00", "Sat 06:00"),
        ([cron("0 22 * * 1-5", 8)], BERLIN, (SAT, "06:00"), False, "Mon 22:00", "Tue 06:00"),
        # Every quarter hour for five minutes.
        ([cron("*/15 * * * *", 5 / 60)], SHANGHAI, (WED, "10:04"), True, "Wed 10:00", "Wed 10:05"),
        ([cron("*/15 * * * *", 5 / 60)], SHANGHAI, (WED, "10:07"), False, "Wed 10:15", "Wed 10:20"),
        # Two windows that touch are one opening.
        (
            [weekly([6], "22:00", 2), weekly([7], "00:00", 2)],
            SHANGHAI,
            (SAT, "23:00"),
            True,
            "Sat 22:00",
            "Sun 02:00",
        ),
        (
            [weekly([6], "22:00", 2), weekly([7], "00:00", 2)],
            SHANGHAI,
            (SAT, "21:00"),
            False,
            "Sat 22:00",
            "Sun 02:00",
        ),
        # Overlapping windows: the opening lasts until the last of them closes.
        (
            [weekly([3], "09:00", 3), cron("0 11 * * 3", 2)],
            SHANGHAI,
            (WED, "10:00"),
            True,
            "Wed 09:00",
            "Wed 13:00",
        ),
        # Of two windows, the sooner is next.
        (
            [weekly([7], "01:00", 4), weekly([4], "20:00", 1)],
            SHANGHAI,
            (WED, "12:00"),
            False,
            "Thu 20:00",
            "Thu 21:00",
        ),
    ],
)
def test_cron_and_several_windows(windows, zone, now, is_open, opens, closes):
    state = window_state(windows, zone, local(*now, zone))
    assert (state.open, wall(state.opens_at, zone), wall(state.closes_at, zone)) == (
        is_open,
        opens,
        closes,
    )


# --- DST: a window at 02:30, the hour that spring-forward days skip -------------


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK])
@pytest.mark.parametrize("windows", [[weekly(EVERY_DAY, "02:30", 3)], [cron("30 2 * * *", 3)]])
def test_a_window_at_a_skipped_time_starts_after_the_jump_and_lasts_its_hours(zone, windows):
    day = dst_change(zone, forward=True)
    # 02:30 does not exist that day: the window starts when 02:30 would have been
    # before the change, 03:30 local, and lasts three hours of elapsed time.
    before = window_state(windows, zone, local(day, "03:15", zone))
    assert (before.open, wall(before.opens_at, zone)) == (False, day.strftime("%a") + " 03:30")
    during = window_state(windows, zone, local(day, "03:45", zone))
    assert during.open
    assert during.opens_at == before.opens_at
    assert during.closes_at is not None and during.opens_at is not None
    assert during.closes_at - during.opens_at == timedelta(hours=3)
    assert wall(during.closes_at, zone) == day.strftime("%a") + " 06:30"
    # The day before and the day after, 02:30 is an ordinary time again.
    for other in (day - timedelta(days=1), day + timedelta(days=1)):
        state = window_state(windows, zone, local(other, "02:45", zone))
        assert state.open
        assert wall(state.opens_at, zone) == other.strftime("%a") + " 02:30"
        assert wall(state.closes_at, zone) == other.strftime("%a") + " 05:30"


@pytest.mark.parametrize("windows", [[weekly(EVERY_DAY, "01:30", 1)], [cron("30 1 * * *", 1)]])
def test_a_window_at_a_repeated_time_opens_at_the_first(windows):
    day = dst_change(NEW_YORK, forward=False)  # 01:00-02:00 happens twice
    first = window_state(windows, NEW_YORK, local(day, "01:45", NEW_YORK, fold=0))
    assert first.open
    assert first.opens_at == local(day, "01:30", NEW_YORK, fold=0)
    # One hour of elapsed time: it closes at the second 01:30.
    assert first.closes_at == local(day, "01:30", NEW_YORK, fold=1)
    second = window_state(windows, NEW_YORK, local(day, "01:45", NEW_YORK, fold=1))
    assert not second.open
    assert wall(second.opens_at, NEW_YORK) == (day + timedelta(days=1)).strftime("%a") + " 01:30"


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK])
def test_a_window_across_the_fall_back_lasts_its_hours(zone):
    day = dst_change(zone, forward=False)
    windows = [weekly([(day - timedelta(days=1)).isoweekday()], "23:00", 4)]
    state = window_state(windows, zone, local(day, "00:30", zone))
    assert state.open
    assert state.opens_at is not None and state.closes_at is not None
    assert state.closes_at - state.opens_at == timedelta(hours=4)
    assert wall(state.closes_at, zone) == day.strftime("%a") + " 02:00"  # the clocks went back


def test_shanghai_has_no_dst():
    with pytest.raises(AssertionError, match="no DST change"):
        dst_change(SHANGHAI, forward=True)
    windows = [weekly(EVERY_DAY, "02:30", 3)]
    for day in (dst_change(BERLIN, True), dst_change(NEW_YORK, True)):
        state = window_state(windows, SHANGHAI, local(day, "02:45", SHANGHAI))
        assert state.open
        assert state.closes_at is not None and state.opens_at is not None
        assert state.closes_at - state.opens_at == timedelta(hours=3)


# --- checks ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "valid"),
    [
        ("0 1 * * 0", True),
        ("*/15 * * * *", True),
        ("0 22 * * 1-5", True),
        ("0 0 31 2 *", False),  # parses, never happens
        ("0 0 1 * * *", False),  # six fields
        ("61 * * * *", False),
        ("every sunday", False),
        ("", False),
    ],
)
def test_cron_expressions_are_checked(expression, valid):
    assert cron_is_valid(expression) is valid


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"duration": timedelta(0), "days": frozenset({1}), "start": time(1)}, "more than nothing"),
        ({"duration": timedelta(days=8), "cron": "0 1 * * 0"}, "at most 7 days"),
        ({"duration": timedelta(hours=1), "cron": "nope"}, "not a cron expression"),
        ({"duration": timedelta(hours=1), "cron": "0 1 * * 0", "days": frozenset({1})}, "not both"),
        ({"duration": timedelta(hours=1), "days": frozenset({1})}, "needs days and a start"),
        (
            {"duration": timedelta(hours=1), "days": frozenset({8}), "start": time(1)},
            "1 \\(Monday\\)",
        ),
        (
            {"duration": timedelta(hours=1), "days": frozenset({1}), "start": time(1, tzinfo=UTC)},
            "local time",
        ),
    ],
)
def test_bad_windows_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        MaintenanceWindow(**arguments)


def test_now_must_carry_its_zone():
    with pytest.raises(ValueError, match="aware"):
        window_state(SUNDAY_NIGHT, SHANGHAI, datetime(2030, 1, 1, 12))

"""Maintenance windows: when an organisation's devices may install, in its time zone.

Pure functions: no database, no Flask, no clock (the caller passes `now`).

A window is weekly (ISO weekdays and a local start time) or a cron expression
(read by croniter, in local wall time), and lasts `duration` of elapsed time,
so a window across a DST change is as long as any other. A start time that a
spring-forward day skips (02:30 in Europe/Berlin or America/New_York) falls on
the instant that time would have had before the change (03:30 local, the
clocks having jumped); a start time that a fall-back day has twice is the
first of them. Windows that touch or overlap are one opening.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

MAX_DURATION = timedelta(days=7)
_SLACK = timedelta(hours=2)  # more than any DST change moves a wall time


@dataclass(frozen=True)
class MaintenanceWindow:
    """One recurring window: weekly (`days`, `start`) or `cron`, and a `duration`.

    `days` are ISO weekdays (1 = Monday .. 7 = Sunday).
    """

    duration: timedelta
    days: frozenset[int] = field(default_factory=frozenset)
    start: time | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if not timedelta(0) < self.duration <= MAX_DURATION:
            raise ValueError("a maintenance window lasts more than nothing and at most 7 days")
        if self.cron is not None:
            if self.days or self.start is not None:
                raise ValueError("a maintenance window is weekly or cron, not both")
            if not cron_is_valid(self.cron):
                raise ValueError(f"not a cron expression: {self.cron!r}")
        else:
            if self.start is None or not self.days:
                raise ValueError("a weekly maintenance window needs days and a start time")
            if not self.days <= frozenset(range(1, 8)):
                raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
            if self.start.tzinfo is not None:
                raise ValueError("a window's start is a local time, without a zone")


@dataclass(frozen=True)
class WindowState:
    """Whether a window is open now, and the opening now or next (UTC).

    Open: `opens_at` is when the current opening began, `closes_at` when it ends.
    Closed: `opens_at` and `closes_at` bound the next opening (None if there is none).
    With no windows at all the state is open with no bounds.
    """

    open: bool
    opens_at: datetime | None
    closes_at: datetime | None


def cron_is_valid(expression: str) -> bool:
    """Whether croniter reads `expression` as a five-field cron expression."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        return False
    try:  # "0 0 31 2 *" parses but never happens
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except Exception:  # croniter's errors for dates that never come
        return False
    return True


def _localise(wall: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: a skipped wall time takes the offset from before the change (it
    # lands after the jump), a repeated one is its first occurrence.
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _weekly_starts(
    window: MaintenanceWindow, zone: ZoneInfo, around: datetime
) -> Iterator[datetime]:
    assert window.start is not None
    local_day = around.astimezone(zone).date()
    for offset in range(-8, 9):
        day: date = local_day + timedelta(days=offset)
        if day.isoweekday() in window.days:
            yield _localise(datetime.combine(day, window.start), zone)


def _cron_starts(window: MaintenanceWindow, zone: ZoneInfo, around: datetime) -> Iterator[datetime]:
    # Walk the expression in local wall time, so that a skipped or repeated
    # hour is placed by _localise like a weekly start. Starting _SLACK either
    # side of the wall time catches starts that a DST change moved past it.
    wall = around.astimezone(zone).replace(tzinfo=None)
    before = croniter(window.cron, wall + _SLACK)
    while True:
        start = _localise(before.get_prev(datetime), zone)
        yield start
        if start < around - _SLACK:
            break
    after = croniter(window.cron, wall - _SLACK)
    while True:
        start = _localise(after.get_next(datetime), zone)
        yield start
        if start > around + _SLACK:
            break


def _starts(window: MaintenanceWindow, zone: ZoneInfo, around: datetime) -> Iterator[datetime]:
    if window.cron is not None:
        return _cron_starts(window, zone, around)
    return _weekly_starts(window, zone, around)


def _covering(
    windows: Sequence[MaintenanceWindow], zone: ZoneInfo, instant: datetime
) -> tuple[datetime, datetime] | None:
    """The earliest start and latest end of openings covering `instant` (start <= instant < end)."""
    spans = [
        (start, start + window.duration)
        for window in windows
        for start in _starts(window, zone, instant)
        if start <= instant < start + window.duration
    ]
    if not spans:
        return None
    return min(s for s, _ in spans), max(e for _, e in spans)


def _opening(
    windows: Sequence[MaintenanceWindow], zone: ZoneInfo, begin: datetime, end: datetime
) -> tuple[datetime, datetime]:
    """Extend an opening while another window starts before it ends (touching counts)."""
    for _ in range(100):
        following = _covering(windows, zone, end)
        if following is None or following[1] <= end:
            break
        end = following[1]
    return begin, end


def window_state(windows: Sequence[MaintenanceWindow], zone: str, now: datetime) -> WindowState:
    """Whether installs may start at `now` (aware) under an organisation's windows in `zone`."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if not windows:
        return WindowState(open=True, opens_at=None, closes_at=None)
    tz = ZoneInfo(zone)
    now = now.astimezone(UTC)
    current = _covering(windows, tz, now)
    if current is not None:
        begin, end = _opening(windows, tz, *current)
        return WindowState(open=True, opens_at=begin, closes_at=end)
    upcoming = [start for window in windows for start in _starts(window, tz, now) if start > now]
    if not upcoming:
        return WindowState(open=False, opens_at=None, closes_at=None)
    first = min(upcoming)
    covering = _covering(windows, tz, first)
    assert covering is not None  # the window that starts at `first` covers it
    begin, end = _opening(windows, tz, first, covering[1])
    return WindowState(open=False, opens_at=begin, closes_at=end)

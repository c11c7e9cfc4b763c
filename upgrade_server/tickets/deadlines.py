"""The promised deadlines of a fault ticket (../shared/domain/, Faults), as
pure functions of what happened to the ticket.

- Acknowledgement: within 24 hours; within 10 minutes for level 1 (the
  emergency reaction).
- On site, by level and region: levels 1-2 within 2 hours in Beijing and 24
  hours elsewhere; levels 3-4 within 4 and 48 hours.
- On site within 2 working days of a repair notice when a part must be
  replaced (working days skip weekends and the configured holidays, on the
  organisation's calendar).
- The incident report within 48 hours of resolution.

A level change at time t: raised, each deadline becomes the sooner of the
old one and t plus the new level's window; lowered, it is the opening plus
the new level's window (never sooner than before). A pause that both sides
confirmed moves every deadline still ahead of it by its length.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

ACK = "acknowledge"
ON_SITE = "on_site"
PART_ON_SITE = "part_on_site"
REPORT = "report"

REPORT_WITHIN = timedelta(hours=48)
PART_WORKING_DAYS = 2


def ack_window(level: int) -> timedelta:
    return timedelta(minutes=10) if level == 1 else timedelta(hours=24)


def on_site_window(level: int, region: str) -> timedelta:
    beijing = region == "beijing"
    if level <= 2:
        return timedelta(hours=2 if beijing else 24)
    return timedelta(hours=4 if beijing else 48)


def add_working_days(start: datetime, days: int, zone: str, holidays: Iterable[date]) -> datetime:
    """`start` moved on by `days` working days on the organisation's calendar
    (weekends and holidays skipped), at the same time of day."""
    tz = ZoneInfo(zone)
    off = set(holidays)
    local = start.astimezone(tz)
    moved = 0
    while moved < days:
        local = local + timedelta(days=1)
        if local.weekday() < 5 and local.date() not in off:
            moved += 1
    return local.astimezone(start.tzinfo)


@dataclass
class Facts:
    opened_at: datetime
    opened_level: int
    region: str
    zone: str = "Asia/Shanghai"
    holidays: tuple[date, ...] = ()
    # (when, new level), in order
    level_changes: list[tuple[datetime, int]] = field(default_factory=list)
    repair_notice_at: datetime | None = None
    resolved_at: datetime | None = None
    # pauses both sides confirmed: (start, end); end None: still paused
    pauses: list[tuple[datetime, datetime | None]] = field(default_factory=list)


def deadlines(facts: Facts, now: datetime | None = None) -> dict[str, datetime]:
    """Each deadline that applies, by name."""
    level = facts.opened_level
    due = {
        ACK: facts.opened_at + ack_window(level),
        ON_SITE: facts.opened_at + on_site_window(level, facts.region),
    }
    for at, new_level in facts.level_changes:
        windows = {ACK: ack_window(new_level), ON_SITE: on_site_window(new_level, facts.region)}
        for name, window in windows.items():
            if new_level < level:  # raised: more urgent, from the change
                due[name] = min(due[name], at + window)
            else:  # lowered: the lenient window, from the opening
                due[name] = facts.opened_at + window
        level = new_level
    clock = {ACK: facts.opened_at, ON_SITE: facts.opened_at}
    if facts.repair_notice_at is not None:
        due[PART_ON_SITE] = add_working_days(
            facts.repair_notice_at, PART_WORKING_DAYS, facts.zone, facts.holidays
        )
        clock[PART_ON_SITE] = facts.repair_notice_at
    if facts.resolved_at is not None:
        due[REPORT] = facts.resolved_at + REPORT_WITHIN
        clock[REPORT] = facts.resolved_at
    return {name: _after_pauses(when, clock[name], facts.pauses, now) for name, when in due.items()}


def _after_pauses(
    due: datetime,
    clock_start: datetime,
    pauses: list[tuple[datetime, datetime | None]],
    now: datetime | None,
) -> datetime:
    """A deadline moves by the part of each confirmed pause that fell while
    its clock ran and before it was due (an open pause: its length so far)."""
    for start, end in pauses:
        start = max(start, clock_start)
        stop = end or now or start
        if start < due and stop > start:
            due += stop - start
    return due

"""The promised deadlines of a fault ticket (../shared/domain/, Faults), as
pure functions of what happened to the ticket.

- Acknowledgement: within 24 hours; an emergency within 10 minutes of the
  moment it became one (the promise's emergency reaction). A ticket is an
  emergency while its level is one of its product's emergency levels (level 1
  unless the product says otherwise), or when staff marked it one; staff may
  also unmark it. A level change that crosses into or out of the emergency
  levels decides again; one that does not leaves the staff's decision.
- On site, by level and region: levels 1-2 within 2 hours in Beijing and 24
  hours elsewhere; levels 3-4 within 4 and 48 hours.
- On site within 2 working days of a repair notice when a part must be
  replaced. Which days are working days is the caller's to say (a predicate,
  e.g. the official calendar with staff exceptions: workdays/calendar.py),
  counted in the time zone of the ticket's site.
- The incident report within 48 hours of resolution.

A level change at time t: raised, each deadline becomes the sooner of the
old one and t plus the new level's window; lowered, it is the opening plus
the new level's window (never sooner than before). A pause that both sides
confirmed moves every deadline still ahead of it by its length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

ACK = "acknowledge"
ON_SITE = "on_site"
PART_ON_SITE = "part_on_site"
REPORT = "report"

REPORT_WITHIN = timedelta(hours=48)
PART_WORKING_DAYS = 2


ACK_WITHIN = timedelta(hours=24)
EMERGENCY_ACK_WITHIN = timedelta(minutes=10)
EMERGENCY_LEVELS = (1,)


def on_site_window(level: int, region: str) -> timedelta:
    beijing = region == "beijing"
    if level <= 2:
        return timedelta(hours=2 if beijing else 24)
    return timedelta(hours=4 if beijing else 48)


def most_urgent_region(regions: Iterable[str], default: str) -> str:
    """Of the regions of a ticket's sites, the one with the soonest on-site
    deadlines (`default` when there are none)."""
    return min(
        regions,
        key=lambda region: (on_site_window(1, region), on_site_window(3, region)),
        default=default,
    )


WorkingDay = Callable[[date], bool]


def weekdays(day: date) -> bool:
    """Monday to Friday: the calendar when no other is given."""
    return day.weekday() < 5


def add_working_days(
    start: datetime, days: int, zone: str, is_working: WorkingDay = weekdays
) -> datetime:
    """`start` moved on by `days` working days, at the same time of day in
    `zone` (the calendar days are that zone's)."""
    tz = ZoneInfo(zone)
    local = start.astimezone(tz)
    moved = 0
    while moved < days:
        # Wall-clock arithmetic: the same local time on the next day.
        local = local + timedelta(days=1)
        if is_working(local.date()):
            moved += 1
    return local.astimezone(start.tzinfo)


@dataclass
class Facts:
    opened_at: datetime
    opened_level: int
    region: str
    zone: str = "Asia/Shanghai"
    is_working: WorkingDay = weekdays
    # (when, new level), in order
    level_changes: list[tuple[datetime, int]] = field(default_factory=list)
    repair_notice_at: datetime | None = None
    resolved_at: datetime | None = None
    # pauses both sides confirmed: (start, end); end None: still paused
    pauses: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    # The product's rule when the ticket opened, and staff's (when, is an
    # emergency) decisions, in order.
    emergency_levels: tuple[int, ...] = EMERGENCY_LEVELS
    emergency_marks: list[tuple[datetime, bool]] = field(default_factory=list)


def emergency_since(facts: Facts) -> datetime | None:
    """When the ticket's current emergency began; None: it is not one."""
    rule = set(facts.emergency_levels)
    events: list[tuple[datetime, int, int]] = [
        *((at, 0, level) for at, level in facts.level_changes),
        *((at, 1, int(marked)) for at, marked in facts.emergency_marks),
    ]
    level = facts.opened_level
    since = facts.opened_at if level in rule else None
    for at, kind, value in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 0:  # a level change: the rule decides only when crossed
            crossed = (int(value) in rule) != (level in rule)
            level, emergency = int(value), int(value) in rule
            if not crossed:
                continue
        else:
            emergency = bool(value)
        if emergency and since is None:
            since = at
        elif not emergency:
            since = None
    return since


def deadlines(facts: Facts, now: datetime | None = None) -> dict[str, datetime]:
    """Each deadline that applies, by name."""
    level = facts.opened_level
    due = {
        ACK: facts.opened_at + ACK_WITHIN,
        ON_SITE: facts.opened_at + on_site_window(level, facts.region),
    }
    for at, new_level in facts.level_changes:
        window = on_site_window(new_level, facts.region)
        if new_level < level:  # raised: more urgent, from the change
            due[ON_SITE] = min(due[ON_SITE], at + window)
        else:  # lowered: the lenient window, from the opening
            due[ON_SITE] = facts.opened_at + window
        level = new_level
    clock = {ACK: facts.opened_at, ON_SITE: facts.opened_at}
    since = emergency_since(facts)
    if since is not None and since + EMERGENCY_ACK_WITHIN < due[ACK]:
        # The emergency's own clock: a pause before it does not move it.
        due[ACK], clock[ACK] = since + EMERGENCY_ACK_WITHIN, since
    if facts.repair_notice_at is not None:
        due[PART_ON_SITE] = add_working_days(
            facts.repair_notice_at, PART_WORKING_DAYS, facts.zone, facts.is_working
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

"""The tests' clock: every test starts at one pinned instant, NOW.

NOW is `TEST_NOW` (ISO 8601, e.g. `2027-12-31T23:30:00+00:00`) when it is set,
else the process's own time when the run starts, so a run under libfaketime
is a run at the date faketime gives. CI runs the date-rule tests at several
pinned dates (scripts/test.sh). Tests write dates relative to NOW with the
helpers here, never as calendar literals that age.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _pinned() -> datetime:
    given = os.environ.get("TEST_NOW")
    if not given:
        return datetime.now(UTC).replace(microsecond=0)
    pinned = datetime.fromisoformat(given)
    return (pinned if pinned.tzinfo else pinned.replace(tzinfo=UTC)).astimezone(UTC)


NOW = _pinned()
# The organisations the factories make live here unless a test says otherwise.
ZONE = "Asia/Shanghai"


def today(zone: str = ZONE) -> date:
    """NOW's calendar day in a zone: what the server calls today there."""
    return NOW.astimezone(ZoneInfo(zone)).date()


def first_of_month(day: date, months: int = 0) -> date:
    """The first day of the month `months` after (or before, if negative) `day`'s."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def at(day: date, hour: int = 8, zone: str = "UTC") -> datetime:
    """An instant on a calendar day (08:00 UTC unless told)."""
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(zone)).astimezone(UTC)


@dataclass(frozen=True)
class ExpiredDevice:
    """A device whose three years of upgrades ended about a year before today.

    Accepted on the first of a month four years ago, so coverage ends on the
    last day of a month (no anniversary of a day the year lacks), delivered
    eleven days before acceptance (its trial run). `covered_release` came out
    while it was covered, `gap_release` three weeks after coverage ended.
    """

    delivered_on: date
    accepted_on: date
    ended_on: date
    support_through: date
    covered_release: datetime
    gap_release: datetime

    @classmethod
    def relative_to(cls, day: date) -> ExpiredDevice:
        accepted = first_of_month(day, -48)
        ended = first_of_month(day, -12) - timedelta(days=1)
        delivered = accepted - timedelta(days=11)
        return cls(
            delivered_on=delivered,
            accepted_on=accepted,
            ended_on=ended,
            # delivered on the 18th-21st: its anniversary exists in every month
            support_through=delivered.replace(year=delivered.year + 3) - timedelta(days=1),
            covered_release=at(ended - timedelta(days=180)),
            gap_release=at(ended + timedelta(days=20)),
        )

    @property
    def renewal_starts(self) -> date:
        return self.ended_on + timedelta(days=1)

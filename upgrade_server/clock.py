"""The server's one clock: now (UTC), and today in a time zone.

Every date rule asks here, never `datetime.now()` or `date.today()` directly,
so one place decides what "now" is (tests pin it; see tests/clock.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def local_day(at: datetime, zone: str) -> date:
    """The calendar day an instant falls on in a time zone."""
    return at.astimezone(ZoneInfo(zone)).date()


def today_in(zone: str, now: datetime | None = None) -> date:
    """Today in a time zone (an organisation's or a site's)."""
    return local_day(now or utcnow(), zone)

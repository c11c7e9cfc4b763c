"""Which days are working days, and how to say which calendar decided.

China's working days follow the State Council's yearly notice: public holidays
off, and some weekend days made working days in exchange (调休). The
`chinesecalendar` package carries those notices for the years published so
far; it raises NotImplementedError for a year it has no data for (one not yet
published, or before 2004). Such a year falls back to Monday-Friday, and the
calendar says so. Exceptions recorded by staff (and the days of the
UPGRADE_SERVER_HOLIDAYS setting) come before both.

Pure: no database, no Flask. tickets/deadlines.py takes `is_working`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import lru_cache
from importlib.metadata import version

import chinese_calendar

LIBRARY = "chinesecalendar"
LIBRARY_VERSION = version(LIBRARY)
OFFICIAL_SOURCE = f"CN official calendar ({LIBRARY} {LIBRARY_VERSION})"


class Kind(StrEnum):
    """Which calendar the working days follow (UPGRADE_SERVER_WORKING_CALENDAR)."""

    CN_OFFICIAL = "cn-official"
    WEEKENDS = "weekends"


class Scope(StrEnum):
    """Where an exception comes from; the narrower one wins on the same day."""

    ORGANISATION = "organisation"
    GLOBAL = "global"
    SETTING = "setting"  # UPGRADE_SERVER_HOLIDAYS: days off for everyone


@dataclass(frozen=True)
class DayException:
    day: date
    working: bool  # True: made a working day; False: a day off
    reason: str
    scope: Scope


@lru_cache(maxsize=256)
def has_official_year(year: int) -> bool:
    """Whether the library holds the official calendar of `year`."""
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


def _official_working(day: date) -> bool | None:
    """The official answer for `day`, None outside the library's years."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


@dataclass(frozen=True)
class WorkingCalendar:
    """One organisation's working days: exceptions first, then the official
    calendar where it is published, else Monday to Friday."""

    kind: Kind = Kind.CN_OFFICIAL
    exceptions: Mapping[date, DayException] = field(default_factory=dict)

    def is_working(self, day: date) -> bool:
        exception = self.exceptions.get(day)
        if exception is not None:
            return exception.working
        if self.kind is Kind.CN_OFFICIAL:
            official = _official_working(day)
            if official is not None:
                return official
        return day.weekday() < 5

    __call__ = is_working

    def used(self, first: date, last: date) -> CalendarUsed:
        """Which calendar decided the days from `first` to `last` (inclusive)."""
        years = list(range(first.year, last.year + 1))
        official = self.kind is Kind.CN_OFFICIAL
        exceptions = sorted(
            (e for e in self.exceptions.values() if first <= e.day <= last), key=lambda e: e.day
        )
        return CalendarUsed(
            official=OFFICIAL_SOURCE if official else None,
            years=years,
            weekends_only_years=[y for y in years if not (official and has_official_year(y))],
            exceptions=exceptions,
        )


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


# The library's data begins with 2004; a later year it lacks is not published yet.
_FIRST_OFFICIAL_YEAR = 2004


@dataclass(frozen=True)
class CalendarUsed:
    """What decided a working-day deadline, in words and in parts."""

    official: str | None  # the official calendar's source, None when not asked for
    years: list[int]  # the years the deadline's days fell in
    weekends_only_years: list[int]  # of those, the ones counted Monday to Friday
    exceptions: list[DayException]  # the exceptions that fell among the days

    @property
    def summary(self) -> str:
        """E.g. "CN official calendar (chinesecalendar 1.11.0) + 1 staff
        exception", "weekends only: no official calendar for 2028 yet"."""
        missing = self.weekends_only_years
        named = ", ".join(str(y) for y in missing)
        yet = " yet" if missing and min(missing) > _FIRST_OFFICIAL_YEAR else ""
        if self.official is None:
            text = "weekends only"
        elif not missing:
            text = self.official
        elif missing == self.years:
            text = f"weekends only: no official calendar for {named}{yet}"
        else:
            text = f"{self.official}; weekends only in {named}: no official calendar{yet}"
        staff = sum(1 for e in self.exceptions if e.scope is not Scope.SETTING)
        configured = len(self.exceptions) - staff
        if staff:
            text += f" + {_count(staff, 'staff exception')}"
        if configured:
            text += f" + {_count(configured, 'configured holiday')}"
        return text

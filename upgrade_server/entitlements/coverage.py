"""What the vendor's promise, contracts and overrides cover, by calendar day.

Pure functions over dates; the service feeds them from the database. The rules
(../shared/domain/): free software upgrades and warranty for 3 years from
acceptance, technical support for 3 years from delivery; a device in its trial
run (delivered, not yet accepted) is covered for upgrades. Coverage runs
through the day before the anniversary: accepted on 29 Feb 2024, covered
through 28 Feb 2027 (the anniversary of a day a year lacks is the day after
that month ends).

A device may install any release published while it had upgrade coverage, and
anything published before its coverage began (what it was delivered with);
releases published in a gap or after coverage ended are not its to install.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

ONE_DAY = timedelta(days=1)


class Kind(StrEnum):
    UPGRADES = "upgrades"
    WARRANTY = "warranty"
    SUPPORT = "support"


class StartsFrom(StrEnum):
    DELIVERY = "delivery"
    ACCEPTANCE = "acceptance"


@dataclass(frozen=True)
class Terms:
    months: int
    starts_from: StartsFrom


DEFAULT_TERMS = {
    Kind.UPGRADES: Terms(36, StartsFrom.ACCEPTANCE),
    Kind.WARRANTY: Terms(36, StartsFrom.ACCEPTANCE),
    Kind.SUPPORT: Terms(36, StartsFrom.DELIVERY),
}


@dataclass(frozen=True)
class Grant:
    """A stretch of days that adds coverage (or, `deny`, takes it away)."""

    start: date
    end: date | None  # the last covered day; None: open-ended
    source: str  # promise, trial, contract, override
    reference: str = ""
    deny: bool = False


@dataclass(frozen=True)
class Window:
    start: date
    end: date | None  # inclusive; None: open-ended

    def contains(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


def anniversary(start: date, months: int) -> date:
    """`start` moved on by `months`; a day the month lacks becomes the 1st of the next."""
    years, month_index = divmod(start.month - 1 + months, 12)
    year, month = start.year + years, month_index + 1
    try:
        return start.replace(year=year, month=month)
    except ValueError:
        return date(year + month // 12, month % 12 + 1, 1)


def promise(
    kind: Kind, terms: Terms, delivered_on: date | None, accepted_on: date | None
) -> list[Grant]:
    """What the promise itself grants a device for one kind of coverage."""
    grants = []
    if kind is Kind.UPGRADES and delivered_on and (not accepted_on or delivered_on < accepted_on):
        trial_end = accepted_on - ONE_DAY if accepted_on else None
        grants.append(Grant(delivered_on, trial_end, "trial"))
    if terms.starts_from is StartsFrom.ACCEPTANCE:
        start = accepted_on
    else:  # an accepted device was delivered, whether or not the date was recorded
        start = delivered_on or accepted_on
    if start is not None:
        grants.append(Grant(start, anniversary(start, terms.months) - ONE_DAY, "promise"))
    return grants


def windows(grants: Iterable[Grant]) -> list[Window]:
    """The covered days as sorted, disjoint windows: grants merged (adjacent
    days join), denials cut out."""
    merged: list[Window] = []
    for grant in sorted((g for g in grants if not g.deny), key=lambda g: g.start):
        last = merged[-1] if merged else None
        if last and (last.end is None or grant.start <= last.end + ONE_DAY):
            if last.end is not None and (grant.end is None or grant.end > last.end):
                merged[-1] = Window(last.start, grant.end)
        else:
            merged.append(Window(grant.start, grant.end))
    for denial in (g for g in grants if g.deny):
        merged = [piece for window in merged for piece in _cut(window, denial)]
    return merged


def _cut(window: Window, denial: Grant) -> list[Window]:
    if (denial.end is not None and denial.end < window.start) or (
        window.end is not None and denial.start > window.end
    ):
        return [window]
    pieces = []
    if denial.start > window.start:
        pieces.append(Window(window.start, denial.start - ONE_DAY))
    if denial.end is not None and (window.end is None or denial.end < window.end):
        pieces.append(Window(denial.end + ONE_DAY, window.end))
    return pieces


def covered_on(covered: list[Window], day: date) -> bool:
    return any(w.contains(day) for w in covered)


def release_entitled(covered: list[Window], published_on: date) -> bool:
    """May a device with these upgrade windows install a release published that day?"""
    if not covered:
        return False
    return published_on < covered[0].start or covered_on(covered, published_on)


def to_instants(covered: list[Window], zone: str) -> list[list[float | None]]:
    """Upgrade windows as [from, until) POSIX seconds in the organisation's
    time zone, the first open towards the past (releases from before coverage
    began): what the update check compares publication times with."""
    tz = ZoneInfo(zone)

    def midnight(day: date) -> float:
        return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC).timestamp()

    return [
        [
            None if i == 0 else midnight(w.start),
            None if w.end is None else midnight(w.end + ONE_DAY),
        ]
        for i, w in enumerate(covered)
    ]


def instant_entitled(instants: list[list[float | None]], published: float) -> bool:
    """release_entitled, on to_instants' form."""
    return any(
        (start is None or start <= published) and (until is None or published < until)
        for start, until in instants
    )


def stored_form(covered: list[Window], zone: str) -> dict[str, Any]:
    """What a device keeps for the update check: its windows as instants, and
    the last covered day (None: open-ended, or never covered)."""
    last = covered[-1].end if covered else None
    return {"windows": to_instants(covered, zone), "through": last.isoformat() if last else None}


def release_allowed(
    stored: dict[str, Any] | None, published: float, security_fix: bool, fixes_free: bool
) -> bool:
    """The rule, on what a device keeps (stored_form; None: not delivered,
    not restricted): a release published at `published` (POSIX seconds)."""
    if stored is None or (security_fix and fixes_free):
        return True
    return instant_entitled(stored["windows"], published)

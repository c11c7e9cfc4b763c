"""The coverage rules over dates, table-driven (entitlements/coverage.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from upgrade_server.clock import local_day
from upgrade_server.entitlements import coverage
from upgrade_server.entitlements.coverage import (
    DEFAULT_TERMS,
    Grant,
    Kind,
    StartsFrom,
    Terms,
    Window,
)

D = date


@pytest.mark.parametrize(
    ("start", "months", "anniversary"),
    [
        (D(2024, 3, 15), 36, D(2027, 3, 15)),
        (D(2024, 2, 29), 36, D(2027, 3, 1)),  # the leap day's anniversary
        (D(2024, 2, 29), 48, D(2028, 2, 29)),  # a leap year again
        (D(2023, 1, 31), 1, D(2023, 3, 1)),  # no 31 February
        (D(2023, 12, 31), 12, D(2024, 12, 31)),
        (D(2023, 11, 30), 3, D(2024, 3, 1)),  # no 30 February either
        (D(2023, 12, 15), 1, D(2024, 1, 15)),  # across a year end
    ],
)
def test_anniversary(start, months, anniversary):
    assert coverage.anniversary(start, months) == anniversary


def _upgrades(delivered, accepted, extra=()):
    grants = coverage.promise(Kind.UPGRADES, DEFAULT_TERMS[Kind.UPGRADES], delivered, accepted)
    return coverage.windows([*grants, *extra])


@pytest.mark.parametrize(
    ("delivered", "accepted", "day", "covered"),
    [
        # Accepted 29 Feb 2024: covered through 28 Feb 2027.
        (D(2024, 2, 1), D(2024, 2, 29), D(2027, 2, 28), True),
        (D(2024, 2, 1), D(2024, 2, 29), D(2027, 3, 1), False),
        # The day before the third anniversary is the last covered day.
        (D(2024, 3, 1), D(2024, 3, 15), D(2027, 3, 14), True),
        (D(2024, 3, 1), D(2024, 3, 15), D(2027, 3, 15), False),
        # In the trial run (delivered, not accepted): covered.
        (D(2024, 3, 1), None, D(2024, 3, 1), True),
        (D(2024, 3, 1), None, D(2031, 1, 1), True),
        # Before delivery: not yet.
        (D(2024, 3, 1), None, D(2024, 2, 29), False),
        # Between delivery and acceptance the trial covers it, seamlessly.
        (D(2024, 3, 1), D(2024, 6, 1), D(2024, 5, 31), True),
        (D(2024, 3, 1), D(2024, 6, 1), D(2024, 6, 1), True),
    ],
)
def test_promise_upgrade_days(delivered, accepted, day, covered):
    assert coverage.covered_on(_upgrades(delivered, accepted), day) is covered


def test_kinds_start_from_their_own_event():
    delivered, accepted = D(2024, 1, 10), D(2024, 4, 20)
    support = coverage.windows(
        coverage.promise(Kind.SUPPORT, DEFAULT_TERMS[Kind.SUPPORT], delivered, accepted)
    )
    warranty = coverage.windows(
        coverage.promise(Kind.WARRANTY, DEFAULT_TERMS[Kind.WARRANTY], delivered, accepted)
    )
    assert support == [Window(D(2024, 1, 10), D(2027, 1, 9))]  # from delivery
    assert warranty == [Window(D(2024, 4, 20), D(2027, 4, 19))]  # from acceptance
    # Warranty does not start in the trial run; upgrades do.
    assert coverage.promise(Kind.WARRANTY, DEFAULT_TERMS[Kind.WARRANTY], delivered, None) == []
    # A product's own terms: 5 years of upgrades from delivery.
    five = coverage.windows(
        coverage.promise(Kind.UPGRADES, Terms(60, StartsFrom.DELIVERY), delivered, accepted)
    )
    assert five == [Window(D(2024, 1, 10), D(2029, 1, 9))]


def _contract(start, end):
    return Grant(start, end, "contract", "C-1")


@pytest.mark.parametrize(
    ("contracts", "expected"),
    [
        # A renewal right after coverage ends: one window.
        (
            [_contract(D(2027, 3, 1), D(2028, 2, 29))],
            [Window(D(2024, 2, 29), D(2028, 2, 29))],
        ),
        # Overlapping the promise and each other: still one window.
        (
            [_contract(D(2026, 1, 1), D(2027, 12, 31)), _contract(D(2027, 6, 1), D(2028, 6, 30))],
            [Window(D(2024, 2, 29), D(2028, 6, 30))],
        ),
        # A gap of a month: two windows.
        (
            [_contract(D(2027, 4, 1), D(2028, 3, 31))],
            [Window(D(2024, 2, 29), D(2027, 2, 28)), Window(D(2027, 4, 1), D(2028, 3, 31))],
        ),
        # A contract wholly inside the promise changes nothing.
        ([_contract(D(2025, 1, 1), D(2025, 12, 31))], [Window(D(2024, 2, 29), D(2027, 2, 28))]),
    ],
)
def test_contracts_merge_with_gaps_and_overlaps(contracts, expected):
    assert _upgrades(None, D(2024, 2, 29), contracts) == expected


def test_a_deny_override_cuts_coverage_out():
    deny = Grant(D(2025, 1, 1), D(2025, 6, 30), "override", "unpaid", deny=True)
    assert _upgrades(None, D(2024, 2, 29), [deny]) == [
        Window(D(2024, 2, 29), D(2024, 12, 31)),
        Window(D(2025, 7, 1), D(2027, 2, 28)),
    ]
    forever = Grant(D(2026, 1, 1), None, "override", "stolen device", deny=True)
    assert _upgrades(None, D(2024, 2, 29), [forever]) == [Window(D(2024, 2, 29), D(2025, 12, 31))]


@pytest.mark.parametrize(
    ("published", "entitled"),
    [
        (D(2020, 1, 1), True),  # before coverage began: what it was delivered with
        (D(2024, 2, 29), True),
        (D(2027, 2, 28), True),  # the last covered day
        (D(2027, 3, 1), False),  # the day after
        (D(2027, 3, 15), False),  # in the gap
        (D(2027, 4, 1), True),  # under the later contract
        (D(2028, 4, 1), False),  # after everything
    ],
)
def test_release_entitlement_by_publication_day(published, entitled):
    covered = _upgrades(None, D(2024, 2, 29), [_contract(D(2027, 4, 1), D(2028, 3, 31))])
    assert coverage.release_entitled(covered, published) is entitled


@pytest.mark.parametrize(
    ("published_utc", "zone", "entitled"),
    [
        # 28 Feb 2027 is the last covered day in Shanghai (UTC+8).
        (datetime(2027, 2, 28, 15, 59, tzinfo=UTC), "Asia/Shanghai", True),  # 23:59 there
        # 23:30 UTC on the last covered day is 07:30 the next day in Shanghai.
        (datetime(2027, 2, 28, 23, 30, tzinfo=UTC), "Asia/Shanghai", False),
        # The same instant is still 28 Feb in UTC and in New York.
        (datetime(2027, 2, 28, 23, 30, tzinfo=UTC), "UTC", True),
        (datetime(2027, 2, 28, 23, 30, tzinfo=UTC), "America/New_York", True),
        (datetime(2027, 3, 1, 5, 0, tzinfo=UTC), "America/New_York", False),  # 00:00 there
    ],
)
def test_publication_instant_against_the_organisations_calendar(published_utc, zone, entitled):
    covered = _upgrades(None, D(2024, 2, 29))
    stored = coverage.stored_form(covered, zone)
    assert stored["through"] == "2027-02-28"
    assert coverage.instant_entitled(stored["windows"], published_utc.timestamp()) is entitled
    # The day-based rule agrees once the instant is read on that calendar.
    day = local_day(published_utc, zone)
    assert coverage.release_entitled(covered, day) is entitled


def test_no_coverage_entitles_nothing():
    assert coverage.release_entitled([], D(2020, 1, 1)) is False
    assert coverage.instant_entitled([], 0.0) is False


_DENIED_2026 = Grant(D(2026, 1, 1), None, "override", "reported stolen", deny=True)
_GOODWILL = Grant(D(2027, 3, 1), D(2027, 8, 31), "override", "goodwill")


@pytest.mark.parametrize(
    ("delivered", "accepted", "extra", "published", "security_fix", "fixes_free", "allowed"),
    [
        # Covered, expired, the security-fix setting.
        (D(2024, 2, 1), D(2024, 2, 29), (), D(2026, 6, 1), False, False, True),
        (D(2024, 2, 1), D(2024, 2, 29), (), D(2027, 6, 1), False, False, False),
        (D(2024, 2, 1), D(2024, 2, 29), (), D(2027, 6, 1), True, False, False),
        (D(2024, 2, 1), D(2024, 2, 29), (), D(2027, 6, 1), True, True, True),
        (D(2024, 2, 1), D(2024, 2, 29), (), D(2027, 6, 1), False, True, False),
        # A manual override: a grant after expiry, a denial while covered.
        (D(2024, 2, 1), D(2024, 2, 29), (_GOODWILL,), D(2027, 6, 1), False, False, True),
        (D(2024, 2, 1), D(2024, 2, 29), (_GOODWILL,), D(2027, 9, 1), False, False, False),
        (D(2024, 2, 1), D(2024, 2, 29), (_DENIED_2026,), D(2026, 6, 1), False, False, False),
        (D(2024, 2, 1), D(2024, 2, 29), (_DENIED_2026,), D(2025, 6, 1), False, False, True),
        # In the trial run, and before acceptance was recorded at all.
        (D(2024, 2, 1), None, (), D(2030, 1, 1), False, False, True),
        # Not delivered: the vendor's stock, not restricted.
        (None, None, (), D(2030, 1, 1), False, False, True),
    ],
)
def test_the_rule(delivered, accepted, extra, published, security_fix, fixes_free, allowed):
    terms = DEFAULT_TERMS[Kind.UPGRADES]
    if delivered is None and accepted is None:
        stored = None
    else:
        grants = [*coverage.promise(Kind.UPGRADES, terms, delivered, accepted), *extra]
        stored = coverage.stored_form(coverage.windows(grants), "Asia/Shanghai")
    # Noon in Shanghai on the day of publication.
    instant = datetime(published.year, published.month, published.day, 4, tzinfo=UTC)
    found = coverage.release_allowed(stored, instant.timestamp(), security_fix, fixes_free)
    assert found is allowed

"""What the overview shows, from a fixed number of set-based queries (never
one per device, release or ticket): a fleet of 100,000 devices renders in
well under 300 ms (bench/console.py).

- the fleet of one product by version and hardware revision;
- adoption of its newest release: devices that installed it, day by day;
- rollouts in progress, with their wave and the gates' latest word;
- upgrade coverage ending in the next 30 and 90 days;
- open fault tickets, nearest deadline first, and this month's deadlines met
  or missed;
- devices silent for longer than their poll interval allows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.clock import today_in
from upgrade_server.console.charts import Line, StackedBars, line_over_days, stacked_bars
from upgrade_server.devices.models import Device
from upgrade_server.products.models import HardwareRevision, Product
from upgrade_server.releases.models import Release, ReleaseStatus
from upgrade_server.releases.versions import sort_key
from upgrade_server.rollouts.models import ACTIVE_STATES, Rollout, RolloutDecision
from upgrade_server.tickets.models import Ticket
from upgrade_server.tickets.reports import board, deadline_report
from upgrade_server.tickets.service import Deadline
from upgrade_server.updates.models import InstallEvent, InstallStatus
from upgrade_server.workdays.service import Calendars

ADOPTION_DAYS = 30
TICKETS_SHOWN = 10
# A device that has not checked in for this many poll intervals is silent.
SILENT_AFTER_POLLS = 3
VERSIONS_SHOWN = 12  # the most common; the rest together as "other"


@dataclass(frozen=True)
class FleetChart:
    product: Product | None
    products: list[tuple[Product, int]]  # every product with its device count
    bars: StackedBars
    table: list[tuple[str, dict[str, int], int]]  # version, per revision, total
    revisions: tuple[str, ...]


@dataclass(frozen=True)
class Adoption:
    release: Release | None
    line: Line
    installed: int  # devices that installed it so far
    fleet: int  # devices of the product


@dataclass(frozen=True)
class RolloutRow:
    rollout: Rollout
    counts: dict[str, int]  # install steps reported for its release, by status
    decision: RolloutDecision | None  # the latest


@dataclass(frozen=True)
class OpenTicket:
    ticket: Ticket
    nearest: Deadline | None  # the nearest deadline not met yet


def fleet_chart(session: Session, product_id: int | None) -> FleetChart:
    # Grouped from ix_devices_product_version_hardware alone; the revisions'
    # codes (a few rows) joined in Python.
    codes = dict(session.execute(select(HardwareRevision.id, HardwareRevision.code)).all())
    counts = [
        (pid, version, codes.get(revision, "?"), n)
        for pid, version, revision, n in session.execute(
            select(
                Device.product_id, Device.current_version, Device.hardware_revision_id, func.count()
            ).group_by(Device.product_id, Device.current_version, Device.hardware_revision_id)
        )
    ]
    per_product: dict[int, int] = defaultdict(int)
    for pid, _, _, n in counts:
        per_product[pid] += n
    products = {p.id: p for p in session.scalars(select(Product).order_by(Product.code))}
    listed = [(products[pid], per_product.get(pid, 0)) for pid in products]
    if product_id not in products:
        product_id = max(per_product, key=lambda pid: per_product[pid], default=None)
    product = products.get(product_id) if product_id is not None else None
    by_version: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    revisions: set[str] = set()
    for pid, version, revision, n in counts:
        if pid == product_id:
            by_version[version or "?"][revision] += n
            revisions.add(revision)
    ranked = sorted(by_version, key=lambda v: -sum(by_version[v].values()))
    shown = set(ranked[:VERSIONS_SHOWN])
    rows: dict[str, dict[str, int]] = {}
    for version, values in by_version.items():
        label = version if version in shown else "other"
        target = rows.setdefault(label, defaultdict(int))
        for revision, n in values.items():
            target[revision] += n

    def newest_first(label: str) -> tuple[int, bytes]:
        if label in ("other", "?"):
            return (1, b"")
        return (0, bytes(255 - b for b in sort_key(label)))

    ordered = sorted(rows, key=newest_first)
    series = tuple(sorted(revisions))
    table = [(v, dict(rows[v]), sum(rows[v].values())) for v in ordered]
    bars = stacked_bars([(v, dict(rows[v])) for v in ordered], series)
    return FleetChart(product, listed, bars, table, series)


def adoption(session: Session, product: Product | None, fleet: int, today: date) -> Adoption:
    """Devices that installed the product's newest published release, per day
    (cumulative) over the last ADOPTION_DAYS days (UTC days)."""
    if product is None:
        return Adoption(None, line_over_days([]), 0, fleet)
    releases = session.scalars(
        select(Release).where(
            Release.product_id == product.id,
            Release.status == ReleaseStatus.PUBLISHED.value,
        )
    ).all()
    if not releases:
        return Adoption(None, line_over_days([]), 0, fleet)
    newest = max(releases, key=lambda r: sort_key(r.version))
    first_install = (
        select(InstallEvent.device_id, func.min(InstallEvent.occurred_at).label("at"))
        .where(
            InstallEvent.release_id == newest.id,
            InstallEvent.status == InstallStatus.INSTALLED.value,
        )
        .group_by(InstallEvent.device_id)
        .subquery()
    )
    per_day = session.execute(
        select(func.date(first_install.c.at), func.count()).group_by(func.date(first_install.c.at))
    ).all()
    start = today - timedelta(days=ADOPTION_DAYS - 1)
    before = 0
    daily: dict[date, int] = {}
    for day, n in per_day:
        day = day if isinstance(day, date) else date.fromisoformat(str(day)[:10])
        if day < start:
            before += n
        else:
            daily[day] = daily.get(day, 0) + n
    running, values = before, []
    for offset in range(ADOPTION_DAYS):
        day = start + timedelta(days=offset)
        running += daily.get(day, 0)
        values.append((day, running))
    return Adoption(newest, line_over_days(values), running, fleet)


def rollouts_in_progress(session: Session) -> list[RolloutRow]:
    found = list(
        session.scalars(
            select(Rollout)
            .where(Rollout.state.in_([s.value for s in ACTIVE_STATES]))
            .order_by(Rollout.id)
        )
    )
    if not found:
        return []
    ids = [r.id for r in found]
    releases = [r.release_id for r in found]
    latest_step = (
        select(
            InstallEvent.device_id, InstallEvent.release_id, func.max(InstallEvent.id).label("id")
        )
        .where(InstallEvent.release_id.in_(releases))
        .group_by(InstallEvent.device_id, InstallEvent.release_id)
        .subquery()
    )
    counts: dict[int | None, dict[str, int]] = defaultdict(dict)
    for release_id, status, n in session.execute(
        select(InstallEvent.release_id, InstallEvent.status, func.count())
        .join(latest_step, latest_step.c.id == InstallEvent.id)
        .group_by(InstallEvent.release_id, InstallEvent.status)
    ):
        counts[release_id][status] = n
    newest = (
        select(func.max(RolloutDecision.id))
        .where(RolloutDecision.rollout_id.in_(ids))
        .group_by(RolloutDecision.rollout_id)
    )
    decisions = {
        d.rollout_id: d
        for d in session.scalars(select(RolloutDecision).where(RolloutDecision.id.in_(newest)))
    }
    return [RolloutRow(r, counts.get(r.release_id, {}), decisions.get(r.id)) for r in found]


def coverage_ending(session: Session, today: date) -> dict[int, int]:
    """Devices whose upgrade coverage ends within 30 and within 90 days (one
    range of ix_devices_upgrade_through)."""
    ending = session.execute(
        select(Device.upgrade_through).where(
            Device.upgrade_through >= today, Device.upgrade_through <= today + timedelta(days=90)
        )
    ).scalars()
    soon = today + timedelta(days=30)
    days = [day for day in ending if day is not None]
    return {30: sum(1 for day in days if day <= soon), 90: len(days)}


def open_tickets(
    session: Session, actor: Principal, calendars: Calendars, now: datetime
) -> tuple[list[OpenTicket], int]:
    """The open tickets nearest their next deadline (at most TICKETS_SHOWN),
    and how many are open."""
    rows = board(session, actor, calendars, now)
    shown = []
    for ticket, deadlines in rows[:TICKETS_SHOWN]:
        pending = [d for d in deadlines if d.met_at is None]
        shown.append(OpenTicket(ticket, pending[0] if pending else None))
    return shown, len(rows)


def deadlines_this_month(
    session: Session, actor: Principal, calendars: Calendars, now: datetime, zone: str
) -> dict[str, int]:
    """Deadlines of tickets opened this month (in `zone`) met and missed so far."""
    first = today_in(zone, now).replace(day=1)
    start = datetime.combine(first, datetime.min.time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    rows = deadline_report(session, actor, calendars, start, now + timedelta(seconds=1), None, now)
    met = sum(1 for r in rows if r["met"])
    return {"met": met, "missed": len(rows) - met}


def silent_devices(session: Session, now: datetime, poll_seconds: int) -> tuple[int, list[Device]]:
    """Devices not seen for SILENT_AFTER_POLLS poll intervals: how many, and a
    few of them (last_seen_at has no index: every update check writes it, so
    this is one scan, and the few are the first found, not sorted)."""
    cutoff = now - timedelta(seconds=poll_seconds * SILENT_AFTER_POLLS)
    silent = Device.last_seen_at < cutoff
    count = session.scalar(select(func.count()).select_from(Device).where(silent)) or 0
    sample = list(session.scalars(select(Device).where(silent).limit(5))) if count else []
    return int(count), sample


def summary(rows: list[RolloutRow]) -> list[dict[str, Any]]:
    """Each rollout's figures as the page shows them."""
    out = []
    for row in rows:
        rollout = row.rollout
        waves = rollout.waves or []
        share = waves[rollout.current_wave]["share"] / 100 if waves else 0
        out.append(
            {
                "rollout": rollout,
                "wave": rollout.current_wave + 1,
                "waves": len(waves),
                "share": share,
                "installed": row.counts.get(InstallStatus.INSTALLED.value, 0),
                "failed": row.counts.get(InstallStatus.FAILED.value, 0)
                + row.counts.get(InstallStatus.ROLLED_BACK.value, 0),
                "in_progress": sum(
                    n
                    for status, n in row.counts.items()
                    if status
                    not in (
                        InstallStatus.INSTALLED.value,
                        InstallStatus.FAILED.value,
                        InstallStatus.ROLLED_BACK.value,
                    )
                ),
                "decision": row.decision,
            }
        )
    return out

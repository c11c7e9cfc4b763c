"""Coverage of devices: computed from the promise, contracts and overrides;
kept on each device in the form the update check reads (`upgrade_windows`).
Contracts and overrides are created and deleted in contracts.py.

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError,
NotEntitledError.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import local_day, today_in, utcnow
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import get_device, visible_devices
from upgrade_server.entitlements import coverage
from upgrade_server.entitlements.coverage import Grant, Kind, StartsFrom, Terms, Window
from upgrade_server.entitlements.models import Contract, CoverageOverride
from upgrade_server.errors import (
    InvalidInputError,
    NotEntitledError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import Product
from upgrade_server.releases.models import Release

# Product columns per coverage kind.
_COLUMN = {Kind.UPGRADES: "upgrade", Kind.WARRANTY: "warranty", Kind.SUPPORT: "support"}


def terms(product: Product, kind: Kind) -> Terms:
    prefix = _COLUMN[kind]
    return Terms(
        getattr(product, f"{prefix}_months"), StartsFrom(getattr(product, f"{prefix}_starts_from"))
    )


def _require_manage(actor: Principal) -> None:
    if not actor.may(Permission.COVERAGE_MANAGE):
        raise PermissionDeniedError("you may not manage coverage")


# --- computing ---------------------------------------------------------------


def _contract_grant(contract: Contract) -> Grant:
    return Grant(contract.starts_on, contract.ends_on, "contract", contract.reference)


def _override_grant(override: CoverageOverride) -> Grant:
    return Grant(
        override.starts_on,
        override.ends_on,
        "override",
        override.reason,
        deny=override.effect == "deny",
    )


def _contracts_for(session: Session, devices: list[Device]) -> dict[int, list[Contract]]:
    """Contracts that apply to each device: its own, and its organisation's
    for all its products or for its product."""
    if not devices:
        return {}
    organisations = {d.organisation_id for d in devices}
    found = session.scalars(
        select(Contract).where(Contract.organisation_id.in_(organisations))
    ).all()
    by_device: dict[int, list[Contract]] = defaultdict(list)
    for device in devices:
        by_device[device.id] = [
            c
            for c in found
            if c.organisation_id == device.organisation_id
            and (c.device_id == device.id or c.device_id is None)
            and (c.product_id is None or c.product_id == device.product_id)
        ]
    return by_device


def _overrides_for(session: Session, device_ids: list[int]) -> dict[int, list[CoverageOverride]]:
    by_device: dict[int, list[CoverageOverride]] = defaultdict(list)
    for chunk in _chunks(device_ids):
        for override in session.scalars(
            select(CoverageOverride).where(CoverageOverride.device_id.in_(chunk))
        ):
            by_device[override.device_id].append(override)
    return by_device


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def grants(
    device: Device, kind: Kind, contracts: list[Contract], overrides: list[CoverageOverride]
) -> list[Grant]:
    found = coverage.promise(
        kind, terms(device.product, kind), device.delivered_on, device.accepted_on
    )
    found += [_contract_grant(c) for c in contracts if c.kind == kind]
    found += [_override_grant(o) for o in overrides if o.kind == kind]
    return found


def undelivered(device: Device) -> bool:
    """No delivery or acceptance recorded: still the vendor's stock, not restricted."""
    return device.delivered_on is None and device.accepted_on is None


def upgrade_windows(
    device: Device, contracts: list[Contract], overrides: list[CoverageOverride]
) -> dict[str, Any] | None:
    if undelivered(device) and not contracts and not overrides:
        return None
    covered = coverage.windows(grants(device, Kind.UPGRADES, contracts, overrides))
    return coverage.stored_form(covered, device.organisation.timezone)


def refresh(session: Session, devices: list[Device]) -> None:
    """Store the upgrade windows of these devices, after any change to what
    they depend on (dates, contracts, overrides, time zone, product terms)."""
    session.flush()
    contracts = _contracts_for(session, devices)
    overrides = _overrides_for(session, [d.id for d in devices])
    rows = []
    for d in devices:
        stored = upgrade_windows(d, contracts[d.id], overrides[d.id])
        rows.append({"_id": d.id, "w": stored, "t": through_of(stored)})
    if rows:
        stmt = (
            update(Device)
            .where(Device.id == bindparam("_id"))
            .values(upgrade_windows=bindparam("w"), upgrade_through=bindparam("t"))
            .execution_options(synchronize_session=False)
        )
        session.connection().execute(stmt, rows)
        for device in devices:
            session.expire(device, ["upgrade_windows", "upgrade_through"])


def through_of(stored: dict[str, Any] | None) -> date | None:
    """The last covered day of stored upgrade windows (None: open-ended or none)."""
    through = (stored or {}).get("through")
    return date.fromisoformat(through) if through else None


def refresh_where(session: Session, *criteria: Any, batch: int = 2000) -> int:
    """refresh() every device matching the criteria (an organisation, a
    product; none: all), a batch at a time."""
    ids = list(session.scalars(select(Device.id).where(*criteria).order_by(Device.id)))
    for chunk in _chunks(ids, batch):
        devices = list(session.scalars(select(Device).where(Device.id.in_(chunk))))
        refresh(session, devices)
    return len(ids)


# --- the rule, at download ---------------------------------------------------


def check_release(device: Device, release: Release) -> None:
    """Raise NotEntitledError unless the device may install this release."""
    stored = device.upgrade_windows
    published = release.published_at.timestamp() if release.published_at else 0.0
    fixes_free = device.product.security_fixes_free
    if coverage.release_allowed(stored, published, release.security_fix, fixes_free):
        return
    through = stored["through"] if stored else None
    day = local_day(release.published_at or utcnow(), device.organisation.timezone)
    ended = f"ended on {through}" if through else "does not include it"
    raise NotEntitledError(
        f"release {release.version} was published on {day.isoformat()}; this "
        f"device's upgrade coverage {ended}",
        coverage_ends_on=through,
        published_on=day.isoformat(),
    )


# --- reading -----------------------------------------------------------------


# What describe() says of one kind of coverage today, in the order the summary counts them.
STATUSES = ("covered", "trial", "awaiting-acceptance", "expired", "not-started", "undelivered")


@dataclass(frozen=True)
class KindCoverage:
    kind: Kind
    status: str  # one of STATUSES
    covered_through: date | None
    windows: list[Window]
    grants: list[Grant]


def in_trial_run(device: Device, today: date) -> bool:
    """Delivered and not yet accepted: the trial run, before which nothing that
    starts from acceptance (warranty, upgrades after the trial) has begun."""
    delivered, accepted = device.delivered_on, device.accepted_on
    return delivered is not None and delivered <= today and (accepted is None or accepted > today)


def describe(
    device: Device,
    contracts: list[Contract],
    overrides: list[CoverageOverride],
    today: date,
) -> list[KindCoverage]:
    result = []
    for kind in Kind:
        found = grants(device, kind, contracts, overrides)
        covered = coverage.windows(found)
        current = next((w for w in covered if w.contains(today)), None)
        if current is not None:
            in_trial = any(
                g.source == "trial" and Window(g.start, g.end).contains(today) for g in found
            ) and not any(
                g.source != "trial" and not g.deny and Window(g.start, g.end).contains(today)
                for g in found
            )
            status = "trial" if in_trial else "covered"
            through = current.end
        elif undelivered(device) and not covered:
            status, through = "undelivered", None
        elif in_trial_run(device, today) and terms(device.product, kind).starts_from is (
            StartsFrom.ACCEPTANCE
        ):
            # Not expired: it starts when the trial run ends in acceptance.
            upcoming = [w for w in covered if w.start > today]
            status, through = "awaiting-acceptance", upcoming[0].end if upcoming else None
        elif covered and covered[0].start > today:
            status, through = "not-started", covered[0].end
        else:
            past = [w for w in covered if w.end is not None and w.end < today]
            status, through = "expired", past[-1].end if past else None
        result.append(KindCoverage(kind, status, through, covered, found))
    return result


def device_coverage(session: Session, actor: Principal, device_id: int) -> dict[str, Any]:
    device = get_device(session, actor, device_id)
    return coverage_of(session, device)


def coverage_of(session: Session, device: Device, now: datetime | None = None) -> dict[str, Any]:
    return coverage_of_each(session, [device], now)[device.id]


def coverage_of_each(
    session: Session, devices: list[Device], now: datetime | None = None
) -> dict[int, dict[str, Any]]:
    """coverage_of for many devices, with one query for their contracts and
    one for their overrides."""
    contracts = _contracts_for(session, devices)
    overrides = _overrides_for(session, [d.id for d in devices])
    return {d.id: _coverage_view(d, contracts[d.id], overrides[d.id], now) for d in devices}


def _coverage_view(
    device: Device,
    contracts: list[Contract],
    overrides: list[CoverageOverride],
    now: datetime | None,
) -> dict[str, Any]:
    today = today_in(device.organisation.timezone, now)
    kinds = describe(device, contracts, overrides, today)
    return {
        "device_id": device.id,
        "serial": device.serial,
        "timezone": device.organisation.timezone,
        "today": today,
        "security_fixes_free": device.product.security_fixes_free,
        "kinds": [
            {
                "kind": k.kind.value,
                "status": k.status,
                "covered_through": k.covered_through,
                "windows": [{"starts_on": w.start, "ends_on": w.end} for w in k.windows],
                "grants": [
                    {
                        "source": g.source,
                        "reference": g.reference,
                        "starts_on": g.start,
                        "ends_on": g.end,
                        "effect": "deny" if g.deny else "grant",
                    }
                    for g in k.grants
                ],
            }
            for k in kinds
        ],
    }


def expiring(
    session: Session,
    actor: Principal,
    days: int,
    kind: Kind,
    organisation_id: int | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Devices whose coverage of `kind` ends within `days` days (by their
    organisation's calendar), soonest first."""
    if not 0 <= days <= 3660:
        raise InvalidInputError("days must be 0 to 3660", [{"field": "days", "message": "range"}])
    stmt = visible_devices(actor)
    if organisation_id is not None:
        stmt = stmt.where(Device.organisation_id == organisation_id)
    devices = list(session.scalars(stmt.order_by(Device.id)))
    contracts = _contracts_for(session, devices)
    overrides = _overrides_for(session, [d.id for d in devices])
    rows = []
    for device in devices:
        today = today_in(device.organisation.timezone, now)
        found = grants(device, kind, contracts[device.id], overrides[device.id])
        current = next((w for w in coverage.windows(found) if w.contains(today)), None)
        if current is None or current.end is None:
            continue
        if current.end <= today + timedelta(days=days):
            rows.append(
                {
                    "device_id": device.id,
                    "serial": device.serial,
                    "organisation": device.organisation.slug,
                    "product": device.product.code,
                    "site": device.site,
                    "kind": kind.value,
                    "covered_through": current.end,
                    "days_left": (current.end - today).days,
                }
            )
    rows.sort(key=lambda r: (r["covered_through"], r["device_id"]))
    return rows


def summary(
    session: Session, actor: Principal, organisation_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Per kind, how many of an organisation's devices are in each status, and
    how many covered ones end within 90 days."""
    organisation = session.get(Organisation, organisation_id)
    if organisation is None or not actor.sees_organisation(organisation_id):
        raise NotFoundError(f"no organisation {organisation_id}")
    devices = list(
        session.scalars(visible_devices(actor).where(Device.organisation_id == organisation_id))
    )
    contracts = _contracts_for(session, devices)
    overrides = _overrides_for(session, [d.id for d in devices])
    today = today_in(organisation.timezone, now)
    counts: dict[str, dict[str, int]] = {
        k.value: {s: 0 for s in (*STATUSES, "ending_90_days")} for k in Kind
    }
    for device in devices:
        for k in describe(device, contracts[device.id], overrides[device.id], today):
            counts[k.kind.value][k.status] += 1
            if (
                k.status in ("covered", "trial")
                and k.covered_through is not None
                and k.covered_through <= today + timedelta(days=90)
            ):
                counts[k.kind.value]["ending_90_days"] += 1
    return {
        "organisation_id": organisation_id,
        "today": today,
        "devices": len(devices),
        "kinds": counts,
    }

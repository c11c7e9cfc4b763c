"""Reminders drawn from the service record: periodic inspections due, training
days left per delivery, and entries waiting for the customer's confirmation."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.clock import local_day, today_in, utcnow
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import visible_devices
from upgrade_server.entitlements import coverage
from upgrade_server.entitlements import service as entitlements
from upgrade_server.service.access import visible
from upgrade_server.service.models import ServiceRequest, ServiceSession, SessionKind
from upgrade_server.service.service import TRAINING_DAYS_PER_DELIVERY, noun


def inspections_due(
    session: Session, actor: Principal, days: int = 30, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Devices under warranty whose next periodic inspection (every
    `inspection_months` of their product, from acceptance or the last signed-off
    inspection) falls within `days` days or is overdue."""
    rows = []
    devices = list(session.scalars(visible_devices(actor).order_by(Device.id)))
    last: dict[int, date] = {}
    for entry in session.scalars(
        select(ServiceSession).where(ServiceSession.kind == SessionKind.INSPECTION.value)
    ):
        if entry.signed_off and entry.ended_at:
            day = local_day(entry.ended_at, entry.organisation.timezone)
            for device in entry.devices:
                last[device.id] = max(last.get(device.id, day), day)
    for device in devices:
        if device.accepted_on is None:
            continue
        today = today_in(device.organisation.timezone, now)
        terms = entitlements.terms(device.product, coverage.Kind.WARRANTY)
        grants = coverage.promise(
            coverage.Kind.WARRANTY, terms, device.delivered_on, device.accepted_on
        )
        if not coverage.covered_on(coverage.windows(grants), today):
            continue
        since = last.get(device.id, device.accepted_on)
        due = coverage.anniversary(since, device.product.inspection_months)
        if due <= today + timedelta(days=days):
            rows.append(
                {
                    "device_id": device.id,
                    "serial": device.serial,
                    "organisation": device.organisation.slug,
                    "site": device.site,
                    "last_inspection": last.get(device.id),
                    "due_on": due,
                    "overdue_days": max(0, (today - due).days),
                }
            )
    rows.sort(key=lambda r: (r["due_on"], r["device_id"]))
    return rows


def training_left(session: Session, actor: Principal) -> list[dict[str, Any]]:
    """Training days used and left per organisation and delivery (3 each).
    A correction replaces the session it corrects."""
    sessions = list(
        session.scalars(
            visible(actor, ServiceSession).where(ServiceSession.kind == SessionKind.TRAINING.value)
        )
    )
    corrected = {s.corrects_id for s in sessions if s.corrects_id}
    used: dict[tuple[int, str], float] = {}
    names: dict[int, str] = {}
    for entry in sessions:
        if entry.id in corrected:
            continue
        key = (entry.organisation_id, entry.delivery or "unspecified")
        used[key] = used.get(key, 0.0) + (entry.training_days or 0.0)
        names[entry.organisation_id] = entry.organisation.slug
    return [
        {
            "organisation": names[org],
            "delivery": delivery,
            "days_used": days,
            "days_left": max(0.0, TRAINING_DAYS_PER_DELIVERY - days),
        }
        for (org, delivery), days in sorted(used.items())
    ]


def waiting_for_customer(
    session: Session, actor: Principal, hours: int = 24, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Sessions and requests whose start or end the customer has not
    confirmed for more than `hours` hours."""
    now = now or utcnow()
    limit = timedelta(hours=hours)
    rows = []
    entries: list[ServiceSession | ServiceRequest] = [
        *session.scalars(visible(actor, ServiceSession)),
        *session.scalars(visible(actor, ServiceRequest)),
    ]
    for entry in entries:
        since = {"started": entry.started_at, "ended": entry.ended_at}.get(entry.state)
        if since is not None and now - since > limit:
            rows.append(
                {
                    "ref": f"{noun(entry)}:{entry.id}",
                    "organisation": entry.organisation.slug,
                    "waiting_for": "start" if entry.state == "started" else "end",
                    "since": since,
                    "hours": round((now - since).total_seconds() / 3600, 1),
                }
            )
    rows.sort(key=lambda r: r["since"])
    return rows

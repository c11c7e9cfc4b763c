"""Alarms uploaded by devices: a raise opens a ticket (or adds to the open one of
the same code); a retried upload counts once; beyond a rate only counted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.audit.service import record_change
from upgrade_server.clock import utcnow
from upgrade_server.devices.models import Device
from upgrade_server.tickets.models import (
    Alarm,
    Ticket,
)
from upgrade_server.tickets.service import (
    OPEN,
    _change_level,
    _urgency_changed,
    emergency_levels_of,
    place_of,
)


@dataclass(frozen=True)
class AlarmResult:
    ticket: Ticket | None
    created: bool  # a new upload (not a retry)
    stored: bool  # kept as its own row (not only counted: rate limit)


def receive_alarm(
    session: Session,
    device: Device,
    data: dict[str, Any],
    per_minute: int,
    now: datetime | None = None,
) -> AlarmResult:
    """An alarm (or its clearing) uploaded by a device. A retried upload (same
    alarm id) counts once. A raise opens a ticket, or adds to the open ticket
    of the same code. Beyond `per_minute` uploads a minute, an alarm is only
    counted on its ticket, not kept as a row."""
    now = now or utcnow()
    existing = session.scalars(
        select(Alarm).where(Alarm.device_id == device.id, Alarm.alarm_id == data["alarm_id"])
    ).first()
    if existing is not None:
        ticket = session.get(Ticket, existing.ticket_id) if existing.ticket_id else None
        return AlarmResult(ticket, created=False, stored=True)
    ticket = _open_ticket_for(session, device, data["code"])
    if data.get("event", "raise") == "clear":
        if ticket is not None:
            ticket.cleared_at = data["occurred_at"]
        stored = _store(session, device, data, ticket, now, per_minute)
        return AlarmResult(ticket, created=True, stored=stored)
    if ticket is None:
        region, zone = place_of([device], device.organisation)
        ticket = Ticket(
            organisation_id=device.organisation_id,
            region=region,
            timezone=zone,
            level=data["level"],
            opened_level=data["level"],
            title=f"{data['code']}: {data.get('message', '')}"[:200],
            source="alarm",
            alarm_code=data["code"],
            opened_at=now,
            opened_by=f"device:{device.serial}",
            devices=[device],
            emergency_levels=emergency_levels_of([device]),
        )
        session.add(ticket)
        session.flush()
        record_change(
            session,
            Principal(kind="device", id=device.id, label=f"device:{device.serial}"),
            "ticket.open",
            ticket,
            None,
            organisation_id=ticket.organisation_id,
        )
        _urgency_changed(session, ticket)
    elif data["level"] < ticket.level:  # the fault got worse
        _change_level(ticket, data["level"], now)
        _urgency_changed(session, ticket)
    ticket.alarm_count += 1
    ticket.last_alarm_at = data["occurred_at"]
    stored = _store(session, device, data, ticket, now, per_minute)
    return AlarmResult(ticket, created=True, stored=stored)


def _open_ticket_for(session: Session, device: Device, code: str) -> Ticket | None:
    return session.scalars(
        select(Ticket)
        .join(Ticket.devices)
        .where(Device.id == device.id, Ticket.alarm_code == code, Ticket.status.in_(OPEN))
        .order_by(Ticket.id.desc())
    ).first()


def _store(
    session: Session,
    device: Device,
    data: dict[str, Any],
    ticket: Ticket | None,
    now: datetime,
    per_minute: int,
) -> bool:
    recent = session.scalar(
        select(func.count())
        .select_from(Alarm)
        .where(Alarm.device_id == device.id, Alarm.received_at > now - timedelta(minutes=1))
    )
    if recent is not None and recent >= per_minute:
        session.flush()
        return False
    session.add(
        Alarm(
            device_id=device.id,
            alarm_id=data["alarm_id"],
            event=data.get("event", "raise"),
            code=data["code"],
            level=data["level"],
            message=data.get("message", ""),
            details=data.get("details") or {},
            occurred_at=data["occurred_at"],
            received_at=now,
            ticket_id=ticket.id if ticket else None,
        )
    )
    session.flush()
    return True

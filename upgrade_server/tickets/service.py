"""Tickets: who sees them, their deadlines, opening one by hand, its level and
emergencies. Alarms open tickets (alarms.py); tickets are worked to closed
against the promised deadlines (steps.py, incident_report.py); breaches are
recorded (breaches.py) and reported (reports.py).

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError,
ConflictError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from upgrade_server import events
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import local_day, utcnow
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import visible_devices
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.tickets import deadlines as rules
from upgrade_server.tickets.models import (
    Ticket,
)
from upgrade_server.workdays.calendar import CalendarUsed
from upgrade_server.workdays.service import Calendars

OPEN = ("new", "acknowledged", "on-the-way", "on-site")
# What meets each deadline.
_MET_BY = {
    rules.ACK: "acknowledged_at",
    rules.ON_SITE: "on_site_at",
    rules.PART_ON_SITE: "part_on_site_at",
    rules.REPORT: "report_delivered_at",
}


def _require(actor: Principal, permission: Permission, what: str) -> None:
    if not actor.may(permission):
        raise PermissionDeniedError(f"you may not {what}")


def visible_tickets(actor: Principal) -> Select[Ticket]:
    stmt = select(Ticket)
    if not actor.is_vendor:
        stmt = stmt.where(Ticket.organisation_id == actor.organisation_id)
    return stmt


def get_ticket(session: Session, actor: Principal, ticket_id: int) -> Ticket:
    found = session.scalars(visible_tickets(actor).where(Ticket.id == ticket_id)).first()
    if found is None:
        raise NotFoundError(f"no ticket {ticket_id}")
    return found


# --- deadlines ------------------------------------------------------------------------------


def facts(ticket: Ticket, calendars: Calendars) -> rules.Facts:
    return rules.Facts(
        opened_at=ticket.opened_at,
        opened_level=ticket.opened_level,
        region=ticket.region,
        zone=ticket.timezone,
        is_working=calendars.of(ticket.organisation_id),
        level_changes=[(datetime.fromisoformat(at), level) for at, level in ticket.level_changes],
        repair_notice_at=ticket.repair_notice_at,
        resolved_at=ticket.resolved_at,
        pauses=[(p.started_at, p.ended_at) for p in ticket.pauses if p.confirmed_at],
        **_emergency_facts(ticket),
    )


def _emergency_facts(ticket: Ticket) -> dict[str, Any]:
    return {
        "emergency_levels": tuple(ticket.emergency_levels),
        "emergency_marks": [
            (datetime.fromisoformat(m["at"]), bool(m["emergency"])) for m in ticket.emergency_marks
        ],
    }


def emergency_since(ticket: Ticket) -> datetime | None:
    """When the ticket's current emergency began (None: it is not one)."""
    return rules.emergency_since(
        rules.Facts(
            opened_at=ticket.opened_at,
            opened_level=ticket.opened_level,
            region=ticket.region,
            level_changes=[(datetime.fromisoformat(at), lv) for at, lv in ticket.level_changes],
            **_emergency_facts(ticket),
        )
    )


def emergency_levels_of(devices: list[Device]) -> list[int]:
    """The levels that make a ticket on these devices an emergency: those of
    any of their products (level 1 when the ticket names no device)."""
    if not devices:
        return list(rules.EMERGENCY_LEVELS)
    return sorted({level for d in devices for level in d.product.emergency_levels})


@dataclass(frozen=True)
class Deadline:
    name: str
    due_at: datetime
    met_at: datetime | None
    late: timedelta | None  # None: met in time or not due yet
    calendar: str | None = None  # which calendar counted its working days

    @property
    def breached(self) -> bool:
        return self.late is not None


def deadlines_of(ticket: Ticket, calendars: Calendars, now: datetime) -> list[Deadline]:
    found = []
    for name, due in rules.deadlines(facts(ticket, calendars), now).items():
        met = getattr(ticket, _MET_BY[name])
        if met is not None:
            late = met - due if met > due else None
        else:
            late = now - due if now > due and ticket.status != "closed" else None
        used = calendar_used(ticket, calendars) if name == rules.PART_ON_SITE else None
        found.append(Deadline(name, due, met, late, used))
    return sorted(found, key=lambda d: d.due_at)


def calendar_used(ticket: Ticket, calendars: Calendars) -> str | None:
    """Which calendar decided the working days of the part-on-site deadline,
    e.g. "CN official calendar (chinesecalendar 1.11.0) + 1 staff exception"."""
    used = calendar_parts(ticket, calendars)
    return used.summary if used is not None else None


def calendar_parts(ticket: Ticket, calendars: Calendars) -> CalendarUsed | None:
    """The parts of `calendar_used`, for a page to word in its reader's language."""
    if ticket.repair_notice_at is None:
        return None
    working = calendars.of(ticket.organisation_id)
    notice = ticket.repair_notice_at
    due = rules.add_working_days(notice, rules.PART_WORKING_DAYS, ticket.timezone, working)
    first = local_day(notice, ticket.timezone) + timedelta(days=1)
    return working.used(first, local_day(due, ticket.timezone))


def place_of(devices: list[Device], organisation: Organisation) -> tuple[str, str]:
    """The region and time zone a new ticket's deadlines use: its devices'
    sites' (of several, the most urgent region, and that site's zone), else the
    organisation's."""
    places = [(d.site_region, d.site_timezone) for d in devices]
    region = rules.most_urgent_region((r for r, _ in places), organisation.region)
    zone = next((z for r, z in places if r == region), organisation.timezone)
    return region, zone


# --- tickets by hand, their level and emergencies --------------------------------------


def open_ticket(session: Session, actor: Principal, data: dict[str, Any], via: str) -> Ticket:
    """A customer (portal, API) or a support engineer (a phone call) opens one."""
    _require(actor, Permission.SERVICE_REQUEST, "open tickets")
    organisation_id = data.get("organisation_id") if actor.is_vendor else actor.organisation_id
    organisation = session.get(Organisation, organisation_id) if organisation_id else None
    if organisation is None:
        raise InvalidInputError(
            "the ticket is invalid", [{"field": "organisation_id", "message": "whose fault"}]
        )
    ids = list(data.get("device_ids") or [])
    devices = list(session.scalars(visible_devices(actor).where(Device.id.in_(ids)))) if ids else []
    if len(devices) != len(set(ids)) or any(d.organisation_id != organisation.id for d in devices):
        raise InvalidInputError(
            "the ticket is invalid", [{"field": "device_ids", "message": "its devices"}]
        )
    region, zone = place_of(devices, organisation)
    ticket = Ticket(
        organisation_id=organisation.id,
        region=region,
        timezone=zone,
        level=data["level"],
        opened_level=data["level"],
        title=data["title"],
        description=data.get("description", ""),
        source="phone" if actor.is_vendor else via,
        opened_by=actor.label,
        opened_at=utcnow(),
        devices=devices,
        emergency_levels=emergency_levels_of(devices),
    )
    session.add(ticket)
    session.flush()
    record_change(session, actor, "ticket.open", ticket, None, organisation_id=organisation.id)
    _urgency_changed(session, ticket)
    return ticket


def _urgency_changed(session: Session, ticket: Ticket) -> None:
    """Publish the change; the notification outbox listens (an urgent ticket is sent)."""
    session.flush()
    events.ticket_urgency_changed.send(session, ticket=ticket)


def _change_level(ticket: Ticket, level: int, at: datetime) -> None:
    ticket.level_changes = [*ticket.level_changes, [at.isoformat(), level]]
    ticket.level = level


def change_level(session: Session, actor: Principal, ticket_id: int, level: int) -> Ticket:
    _require(actor, Permission.SERVICE_MANAGE, "change a ticket's level")
    ticket = get_ticket(session, actor, ticket_id)
    if ticket.status not in OPEN:
        raise ConflictError(f"the ticket is {ticket.status}")
    before = ticket.audit_view()
    if level != ticket.level:
        _change_level(ticket, level, utcnow())
        _urgency_changed(session, ticket)
    session.flush()
    record_change(
        session, actor, "ticket.level", ticket, before, organisation_id=ticket.organisation_id
    )
    return ticket


def mark_emergency(
    session: Session, actor: Principal, ticket_id: int, emergency: bool, reason: str
) -> Ticket:
    """Staff mark an open ticket an emergency (the 10-minute reaction from
    now), or unmark it, saying why; audited. Marking what already is so
    changes nothing."""
    _require(actor, Permission.SERVICE_MANAGE, "mark emergencies")
    ticket = get_ticket(session, actor, ticket_id)
    if ticket.status not in OPEN:
        raise ConflictError(f"the ticket is {ticket.status}")
    if not reason.strip():
        raise InvalidInputError("a reason is required", [{"field": "reason", "message": "why"}])
    if (emergency_since(ticket) is not None) == emergency:
        return ticket
    before = ticket.audit_view()
    mark = {"at": utcnow().isoformat(), "emergency": emergency, "by": actor.label, "reason": reason}
    ticket.emergency_marks = [*ticket.emergency_marks, mark]
    session.flush()
    record_change(
        session,
        actor,
        "ticket.emergency" if emergency else "ticket.emergency-cleared",
        ticket,
        before,
        organisation_id=ticket.organisation_id,
    )
    if emergency:
        _urgency_changed(session, ticket)
    return ticket

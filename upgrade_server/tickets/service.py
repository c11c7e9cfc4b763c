"""Alarms open tickets; tickets are worked to closed against the promised
deadlines; breaches are reported.

Status order: new → acknowledged → on-the-way → on-site → resolved →
report-delivered → closed (a step may be skipped forward, never back).

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError,
ConflictError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

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
    STATUSES,
    Alarm,
    IncidentReport,
    Ticket,
    TicketBreach,
    TicketPause,
)
from upgrade_server.workdays.calendar import CalendarUsed
from upgrade_server.workdays.service import Calendars

OPEN = ("new", "acknowledged", "on-the-way", "on-site")
_STEP_TIME = {
    "acknowledged": "acknowledged_at",
    "on-the-way": "on_the_way_at",
    "on-site": "on_site_at",
    "resolved": "resolved_at",
    "closed": "closed_at",
}
# What meets each deadline.
_MET_BY = {
    rules.ACK: "acknowledged_at",
    rules.ON_SITE: "on_site_at",
    rules.PART_ON_SITE: "part_on_site_at",
    rules.REPORT: "report_delivered_at",
}
REPORT_PARTS = ("fault_started_at", "fault_ended_at", "symptoms", "cause", "solution", "follow_up")


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


def record_breaches(
    session: Session, tickets: list[Ticket], calendars: Calendars, now: datetime
) -> int:
    """Keep a row for every missed deadline of these tickets, with how late
    (updated while it stays unmet, final once met); returns how many changed."""
    changed = 0
    for ticket in tickets:
        for deadline in deadlines_of(ticket, calendars, now):
            if deadline.late is None:
                continue
            row = session.scalars(
                select(TicketBreach).where(
                    TicketBreach.ticket_id == ticket.id, TicketBreach.deadline == deadline.name
                )
            ).first()
            late = round(deadline.late.total_seconds() / 60)
            if row is None:
                row = TicketBreach(ticket_id=ticket.id, deadline=deadline.name, late_minutes=0)
                session.add(row)
            if (row.late_minutes, row.met_at, row.due_at) != (
                late,
                deadline.met_at,
                deadline.due_at,
            ):
                row.due_at, row.met_at, row.late_minutes = deadline.due_at, deadline.met_at, late
                changed += 1
    session.flush()
    return changed


def sweep_breaches(session: Session, calendars: Calendars, now: datetime | None = None) -> int:
    """record_breaches for every ticket still open (run in the background)."""
    open_tickets = list(session.scalars(select(Ticket).where(Ticket.status.in_(OPEN))))
    return record_breaches(session, open_tickets, calendars, now or utcnow())


# --- alarms ---------------------------------------------------------------------------------


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
        _notify(session, ticket)
    elif data["level"] < ticket.level:  # the fault got worse
        _change_level(ticket, data["level"], now)
        _notify(session, ticket)
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


# --- tickets by hand and their steps ---------------------------------------------------------


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
    _notify(session, ticket)
    return ticket


def _notify(session: Session, ticket: Ticket) -> None:
    """An urgent ticket (level 1-2) goes into the notification outbox."""
    from upgrade_server.tickets import notify  # notify builds on this module

    session.flush()
    notify.ticket_opened(session, ticket)


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
        _notify(session, ticket)
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
        _notify(session, ticket)
    return ticket


def advance(
    session: Session, actor: Principal, ticket_id: int, status: str, at: datetime | None = None
) -> Ticket:
    """Move a ticket forward (vendor staff). `report-delivered` is reached by
    delivering the incident report."""
    _require(actor, Permission.SERVICE_MANAGE, "work tickets")
    ticket = get_ticket(session, actor, ticket_id)
    if status not in _STEP_TIME:
        raise InvalidInputError(
            "no such step", [{"field": "status", "message": ", ".join(_STEP_TIME)}]
        )
    if STATUSES.index(status) <= STATUSES.index(ticket.status):
        raise ConflictError(f"the ticket is already {ticket.status}")
    if status == "closed" and ticket.status != "report-delivered":
        raise ConflictError("a ticket closes after its incident report was delivered")
    if status in ("report-delivered",):
        raise ConflictError("deliver the incident report instead")
    when = at or utcnow()
    _not_before_last_step(ticket, when)
    before = ticket.audit_view()
    for step in STATUSES[STATUSES.index(ticket.status) + 1 : STATUSES.index(status) + 1]:
        column = _STEP_TIME.get(step)
        if column and getattr(ticket, column) is None:
            setattr(ticket, column, when)
    ticket.status = status
    if status == "resolved":
        for pause in ticket.pauses:
            pause.ended_at = pause.ended_at or when
    session.flush()
    record_change(
        session, actor, f"ticket.{status}", ticket, before, organisation_id=ticket.organisation_id
    )
    return ticket


def _not_before_last_step(ticket: Ticket, when: datetime) -> None:
    """A step happens after the opening and after every step already recorded."""
    columns = [*_STEP_TIME.values(), "report_delivered_at"]
    times = [ticket.opened_at] + [
        t for t in (getattr(ticket, column) for column in columns) if t is not None
    ]
    last = max(times)
    if when < last:
        raise InvalidInputError(
            "a step cannot happen before the ticket's last recorded step",
            [{"field": "at", "message": f"not before {last.isoformat()}"}],
        )


def repair_notice(session: Session, actor: Principal, ticket_id: int) -> Ticket:
    """A part must be replaced: on site with it within 2 working days."""
    _require(actor, Permission.SERVICE_MANAGE, "work tickets")
    ticket = get_ticket(session, actor, ticket_id)
    if ticket.status not in OPEN:
        raise ConflictError(f"the ticket is {ticket.status}")
    ticket.repair_notice_at = ticket.repair_notice_at or utcnow()
    session.flush()
    return ticket


def part_on_site(session: Session, actor: Principal, ticket_id: int) -> Ticket:
    _require(actor, Permission.SERVICE_MANAGE, "work tickets")
    ticket = get_ticket(session, actor, ticket_id)
    if ticket.repair_notice_at is None:
        raise ConflictError("no repair notice was given")
    ticket.part_on_site_at = ticket.part_on_site_at or utcnow()
    session.flush()
    return ticket


# --- pauses: both sides confirm ------------------------------------------------------------------


def request_pause(session: Session, actor: Principal, ticket_id: int, reason: str) -> TicketPause:
    _require(actor, Permission.SERVICE_MANAGE, "pause tickets")
    ticket = get_ticket(session, actor, ticket_id)
    if ticket.status not in OPEN or any(p.ended_at is None for p in ticket.pauses):
        raise ConflictError("the ticket is not open, or is already paused")
    pause = TicketPause(ticket=ticket, reason=reason, started_at=utcnow(), requested_by=actor.label)
    session.add(pause)
    session.flush()
    return pause


def _pause(ticket: Ticket) -> TicketPause:
    found = next((p for p in ticket.pauses if p.ended_at is None), None)
    if found is None:
        raise ConflictError("the ticket is not paused")
    return found


def confirm_pause(session: Session, actor: Principal, ticket_id: int) -> TicketPause:
    """The customer agrees the ticket waits on it: only then deadlines hold."""
    _require(actor, Permission.SERVICE_CONFIRM, "confirm a pause")
    pause = _pause(get_ticket(session, actor, ticket_id))
    if pause.confirmed_at is None:
        pause.confirmed_at, pause.confirmed_by = utcnow(), actor.label
    session.flush()
    return pause


def end_pause(session: Session, actor: Principal, ticket_id: int) -> TicketPause:
    _require(actor, Permission.SERVICE_MANAGE, "resume tickets")
    pause = _pause(get_ticket(session, actor, ticket_id))
    pause.ended_at = utcnow()
    session.flush()
    return pause


# --- the incident report --------------------------------------------------------------------------


def save_report(
    session: Session, actor: Principal, ticket_id: int, data: dict[str, Any]
) -> IncidentReport:
    _require(actor, Permission.SERVICE_MANAGE, "write incident reports")
    ticket = get_ticket(session, actor, ticket_id)
    report = session.get(IncidentReport, ticket.id) or IncidentReport(ticket_id=ticket.id)
    if report.delivered_at is not None:
        raise ConflictError("the report was delivered: it is read-only")
    for name in REPORT_PARTS:
        if name in data:
            setattr(report, name, data[name])
    if "recovery_steps" in data:  # times in UTC, so that their order is their text's
        report.recovery_steps = [
            {"at": s["at"].astimezone(UTC).isoformat(), "step": s["step"]}
            for s in data["recovery_steps"]
        ]
    session.add(report)
    session.flush()
    return report


def deliver_report(session: Session, actor: Principal, ticket_id: int) -> IncidentReport:
    """Deliver the report to the customer: every part present, the ticket resolved."""
    _require(actor, Permission.SERVICE_MANAGE, "deliver incident reports")
    ticket = get_ticket(session, actor, ticket_id)
    report = session.get(IncidentReport, ticket.id)
    if ticket.status != "resolved":
        raise ConflictError("the report is delivered once the ticket is resolved")
    missing = [
        name
        for name in (*REPORT_PARTS, "recovery_steps")
        if report is None or not getattr(report, name)
    ]
    if missing or report is None:
        raise InvalidInputError(
            "the report is incomplete",
            [{"field": name, "message": "required before delivery"} for name in missing],
        )
    steps = report.recovery_steps
    if any(not (s.get("at") and s.get("step")) for s in steps) or [
        s["at"] for s in steps
    ] != sorted(s["at"] for s in steps):
        raise InvalidInputError(
            "the report is incomplete",
            [{"field": "recovery_steps", "message": "each with its time, in time order"}],
        )
    now = utcnow()
    report.delivered_at, report.delivered_by = now, actor.label
    before = ticket.audit_view()
    ticket.report_delivered_at = now
    ticket.status = "report-delivered"
    session.flush()
    record_change(
        session,
        actor,
        "ticket.report-delivered",
        ticket,
        before,
        organisation_id=ticket.organisation_id,
    )
    return report


def report_of(session: Session, actor: Principal, ticket_id: int) -> IncidentReport:
    """The incident report: customers see it once delivered."""
    ticket = get_ticket(session, actor, ticket_id)
    report = session.get(IncidentReport, ticket.id)
    if report is None or (not actor.is_vendor and report.delivered_at is None):
        raise NotFoundError(f"no incident report for ticket {ticket_id}")
    return report


# --- reports ------------------------------------------------------------------------------------


def board(
    session: Session, actor: Principal, calendars: Calendars, now: datetime | None = None
) -> list[tuple[Ticket, list[Deadline]]]:
    """Open tickets, nearest unmet deadline first."""
    now = now or utcnow()
    rows = []
    for ticket in session.scalars(visible_tickets(actor).where(Ticket.status.in_(OPEN))):
        found = deadlines_of(ticket, calendars, now)
        rows.append((ticket, found))

    def nearest(row: tuple[Ticket, list[Deadline]]) -> datetime:
        pending = [d.due_at for d in row[1] if d.met_at is None]
        return min(pending) if pending else datetime.max.replace(tzinfo=now.tzinfo)

    return sorted(rows, key=nearest)


def deadline_report(
    session: Session,
    actor: Principal,
    calendars: Calendars,
    start: datetime,
    end: datetime,
    organisation_id: int | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every deadline of the tickets opened in [start, end): met or missed,
    and by how long."""
    now = now or utcnow()
    stmt = visible_tickets(actor).where(Ticket.opened_at >= start, Ticket.opened_at < end)
    if organisation_id is not None:
        stmt = stmt.where(Ticket.organisation_id == organisation_id)
    rows = []
    for ticket in session.scalars(stmt.order_by(Ticket.id)):
        for deadline in deadlines_of(ticket, calendars, now):
            if deadline.met_at is None and not deadline.breached:
                continue  # not due yet
            rows.append(
                {
                    "ticket_id": ticket.id,
                    "organisation": ticket.organisation.slug,
                    "level": ticket.level,
                    "deadline": deadline.name,
                    "due_at": deadline.due_at.isoformat(),
                    "met_at": deadline.met_at.isoformat() if deadline.met_at else None,
                    "met": not deadline.breached,
                    "late_minutes": (
                        round(deadline.late.total_seconds() / 60) if deadline.late else 0
                    ),
                    "region": ticket.region,
                    "timezone": ticket.timezone,
                    "calendar": deadline.calendar,
                }
            )
    return rows

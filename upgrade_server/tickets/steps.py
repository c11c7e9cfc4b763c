"""A ticket's steps forward (vendor staff) and its pauses, which both sides confirm.

Status order: new → acknowledged → on-the-way → on-site → resolved →
report-delivered → closed (a step may be skipped forward, never back)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import utcnow
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
)
from upgrade_server.tickets.models import (
    STATUSES,
    Ticket,
    TicketPause,
)
from upgrade_server.tickets.service import OPEN, _require, get_ticket

_STEP_TIME = {
    "acknowledged": "acknowledged_at",
    "on-the-way": "on_the_way_at",
    "on-site": "on_site_at",
    "resolved": "resolved_at",
    "closed": "closed_at",
}


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

"""Missed deadlines kept as rows: recorded as tickets change, swept in the background."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.clock import utcnow
from upgrade_server.tickets.models import (
    Ticket,
    TicketBreach,
)
from upgrade_server.tickets.service import OPEN, deadlines_of
from upgrade_server.workdays.service import Calendars


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

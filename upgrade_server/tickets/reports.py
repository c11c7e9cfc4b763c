"""The board of open tickets and the deadline report (met or missed, and by how long)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.clock import utcnow
from upgrade_server.tickets.models import (
    Ticket,
)
from upgrade_server.tickets.service import OPEN, Deadline, deadlines_of, visible_tickets
from upgrade_server.workdays.service import Calendars


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

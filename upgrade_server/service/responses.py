"""The response deadline of a technical service request: the vendor answers
within 24 hours of receiving it (在24小时内对用户服务要求做出响应).

The response is the first of: the vendor recording its answer (`respond`,
with what was said), the start of work (`start`), or a session planned for
the request. A missed deadline is kept as a row with how late
(ServiceRequestBreach, as TicketBreach for tickets): recorded when the
response comes late, and by the background pass that sweeps the tickets'
breaches while it stays unmet.

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError,
ConflictError.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import utcnow
from upgrade_server.errors import ConflictError, InvalidInputError, PermissionDeniedError
from upgrade_server.service import access
from upgrade_server.service.models import ServiceRequest, ServiceRequestBreach
from upgrade_server.tickets.service import Deadline

RESPONSE = "response"
RESPONSE_WITHIN = timedelta(hours=24)


def response_deadline(request: ServiceRequest, now: datetime) -> Deadline:
    """Due 24 hours after the request was received; met by the response."""
    due = request.received_at + RESPONSE_WITHIN
    met = request.responded_at
    if met is not None:
        late = met - due if met > due else None
    else:
        late = now - due if now > due else None
    return Deadline(RESPONSE, due, met, late)


def mark_responded(request: ServiceRequest, at: datetime, by: str, what: str = "") -> None:
    """The first response counts; later ones change nothing. `what` is the
    answer the vendor recorded; empty when the start of work or a planned
    session was the response (the request's times and sessions say which)."""
    if request.responded_at is None:
        request.responded_at, request.responded_by, request.response = at, by, what[:2000]


def respond(
    session: Session,
    actor: Principal,
    request_id: int,
    response: str,
    at: datetime | None = None,
) -> ServiceRequest:
    """The vendor records its answer to a request (a call back, an e-mail):
    `at` (default now) is neither in the future nor before it was received."""
    if not actor.may(Permission.SERVICE_MANAGE):
        raise PermissionDeniedError("respond is for the vendor to do")
    request = access.get(session, actor, ServiceRequest, request_id)
    if request.responded_at is not None:
        raise ConflictError(
            f"the request was answered at {request.responded_at.isoformat()}"
            f" by {request.responded_by}"
        )
    now = utcnow()
    when = at or now
    check_time(when, now, not_before=request.received_at, field="at")
    before = request.audit_view()
    mark_responded(request, when, actor.label, response)
    session.flush()
    record_change(
        session,
        actor,
        "service.request.respond",
        request,
        before,
        organisation_id=request.organisation_id,
    )
    record_breaches(session, [request], now)
    return request


def check_time(
    when: datetime, now: datetime, *, not_before: datetime | None = None, field: str = "at"
) -> None:
    """A time someone records: with its zone, not in the future, not before
    what it follows."""
    if when.tzinfo is None:
        raise InvalidInputError(
            "the time has no UTC offset",
            [{"field": field, "message": "e.g. 2026-03-01T09:00+08:00"}],
        )
    if when > now + timedelta(minutes=1):
        raise InvalidInputError(
            "the time is in the future", [{"field": field, "message": "not after now"}]
        )
    if not_before is not None and when < not_before:
        raise InvalidInputError(
            "the time is too early",
            [{"field": field, "message": f"not before {not_before.isoformat()}"}],
        )


def record_breaches(session: Session, requests: list[ServiceRequest], now: datetime) -> int:
    """Keep a row for every missed response deadline of these requests, with
    how late (updated while it stays unmet, final once met); returns how many
    changed."""
    changed = 0
    for request in requests:
        deadline = response_deadline(request, now)
        if deadline.late is None:
            continue
        row = session.scalars(
            select(ServiceRequestBreach).where(
                ServiceRequestBreach.request_id == request.id,
                ServiceRequestBreach.deadline == deadline.name,
            )
        ).first()
        late = round(deadline.late.total_seconds() / 60)
        if row is None:
            row = ServiceRequestBreach(
                request_id=request.id, deadline=deadline.name, late_minutes=0
            )
            session.add(row)
        if (row.late_minutes, row.met_at, row.due_at) != (late, deadline.met_at, deadline.due_at):
            row.due_at, row.met_at, row.late_minutes = deadline.due_at, deadline.met_at, late
            changed += 1
    session.flush()
    return changed


def sweep_breaches(session: Session, now: datetime | None = None) -> int:
    """record_breaches for every request still waiting for its response (the
    background pass, with the tickets')."""
    waiting = list(
        session.scalars(select(ServiceRequest).where(ServiceRequest.responded_at.is_(None)))
    )
    return record_breaches(session, waiting, now or utcnow())


def response_report(
    session: Session,
    actor: Principal,
    start: datetime,
    end: datetime,
    organisation_id: int | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The response deadline of every request received in [start, end): met
    or missed, and by how long (one not yet due is left out, as for tickets)."""
    now = now or utcnow()
    stmt = access.visible(actor, ServiceRequest).where(
        ServiceRequest.received_at >= start, ServiceRequest.received_at < end
    )
    if organisation_id is not None:
        stmt = stmt.where(ServiceRequest.organisation_id == organisation_id)
    rows = []
    for request in session.scalars(stmt.order_by(ServiceRequest.id)):
        deadline = response_deadline(request, now)
        if deadline.met_at is None and not deadline.breached:
            continue  # not due yet
        rows.append(
            {
                "request_id": request.id,
                "organisation": request.organisation.slug,
                "title": request.title,
                "deadline": deadline.name,
                "received_at": request.received_at.isoformat(),
                "due_at": deadline.due_at.isoformat(),
                "met_at": deadline.met_at.isoformat() if deadline.met_at else None,
                "met": not deadline.breached,
                "late_minutes": round(deadline.late.total_seconds() / 60) if deadline.late else 0,
            }
        )
    return rows

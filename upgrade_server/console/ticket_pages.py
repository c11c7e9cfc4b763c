"""The console's tickets: the board of every organisation's tickets by status,
each card with its nearest open deadline counting down and how far it was
escalated (level, emergency, the notifications sent); a ticket's page with its
history and deadlines, where support staff move it forward, change its level,
mark an emergency, and give the repair notice or a wait on the customer. The
incident report is written and delivered on incident_report_pages.py.

Everything a form does is the tickets' service, with the reader as the actor
(tickets/service.py, steps.py): the same checks, the same audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import utcnow
from upgrade_server.console.service_forms import (
    countdown_words,
    local_input,
    number,
    parse_local,
    refusal,
    remaining,
    text,
)
from upgrade_server.console.views import bp, require, staff
from upgrade_server.errors import ConflictError, InvalidInputError
from upgrade_server.extensions import current_settings
from upgrade_server.extensions import session as db_session
from upgrade_server.organisations.models import Organisation, Region
from upgrade_server.service import responses
from upgrade_server.tickets import breaches, steps
from upgrade_server.tickets import service as ticket_service
from upgrade_server.tickets.models import STATUSES, IncidentReport, Ticket
from upgrade_server.tickets.notify import Notification
from upgrade_server.web.ticket_pages import _calendar_of as calendar_of
from upgrade_server.web.ticket_pages import _history as history_of
from upgrade_server.workdays.service import Calendars, working_calendars

# A deadline may still be pending up to the incident report's delivery.
ACTIVE = (*ticket_service.OPEN, "resolved")
ACTIVE_LIMIT = 500
DONE_SHOWN = 20
REFUSED = (InvalidInputError, ConflictError)


@dataclass(frozen=True)
class Card:
    """A ticket as the board shows it."""

    ticket: Ticket
    deadlines: list[ticket_service.Deadline]
    emergency: bool
    notified: Notification | None  # the latest notification about it

    @property
    def nearest(self) -> ticket_service.Deadline | None:
        """The soonest deadline not met yet."""
        return next((d for d in self.deadlines if d.met_at is None), None)

    @property
    def overdue(self) -> bool:
        return any(d.met_at is None and d.breached for d in self.deadlines)

    @property
    def raised(self) -> bool:
        return self.ticket.level < self.ticket.opened_level


def _calendars() -> Calendars:
    return working_calendars(db_session(), current_settings())


def _cards(
    session: Session, found: list[Ticket], calendars: Calendars, now: datetime
) -> list[Card]:
    """Cards of `found`, with one query for their notifications."""
    ids = [t.id for t in found]
    latest: dict[int, Notification] = {}
    if ids:
        notes = session.scalars(
            select(Notification).where(Notification.ticket_id.in_(ids)).order_by(Notification.id)
        )
        latest = {n.ticket_id: n for n in notes if n.ticket_id is not None}
    return [
        Card(
            t,
            ticket_service.deadlines_of(t, calendars, now),
            ticket_service.emergency_since(t) is not None,
            latest.get(t.id),
        )
        for t in found
    ]


def _by_nearest(cards: list[Card]) -> list[Card]:
    def key(card: Card) -> tuple[int, datetime | int]:
        nearest = card.nearest
        return (0, nearest.due_at) if nearest else (1, -card.ticket.id)

    return sorted(cards, key=key)


def open_tickets_by_deadline(
    session: Session, limit: int, actor: Principal | None = None
) -> list[Card]:
    """Open tickets of every organisation the reader sees, the nearest unmet
    deadline first (the overview's list; render each with
    console/tickets/_card.html). A bounded number of statements."""
    stmt = ticket_service.visible_tickets(actor or staff()).where(
        Ticket.status.in_(ticket_service.OPEN)
    )
    found = list(session.scalars(stmt.order_by(Ticket.id).limit(ACTIVE_LIMIT)))
    return _by_nearest(_cards(session, found, _calendars(), utcnow()))[:limit]


# --- the board ---------------------------------------------------------------------------


def _filters() -> dict[str, Any]:
    args = request.args
    level = args.get("level", "")
    region = args.get("region", "")
    return {
        "organisation_id": number(args.get("organisation_id")),
        "level": int(level) if level in ("1", "2", "3", "4") else None,
        "region": region if region in {r.value for r in Region} else None,
        "overdue": args.get("overdue") == "1",
    }


@bp.get("/tickets")
def tickets() -> str:
    """Every status a column; open ones by the nearest deadline, the report
    delivered and closed ones newest first (the last few)."""
    session, actor, now = db_session(), staff(), utcnow()
    chosen = _filters()
    stmt = ticket_service.visible_tickets(actor)
    if chosen["organisation_id"]:
        stmt = stmt.where(Ticket.organisation_id == chosen["organisation_id"])
    if chosen["level"]:
        stmt = stmt.where(Ticket.level == chosen["level"])
    if chosen["region"]:
        stmt = stmt.where(Ticket.region == chosen["region"])
    active = list(
        session.scalars(
            stmt.where(Ticket.status.in_(ACTIVE)).order_by(Ticket.id).limit(ACTIVE_LIMIT)
        )
    )
    done: list[Ticket] = []
    if not chosen["overdue"]:
        for status in ("report-delivered", "closed"):
            latest = stmt.where(Ticket.status == status).order_by(Ticket.id.desc())
            done += session.scalars(latest.limit(DONE_SHOWN))
    cards = _by_nearest(_cards(session, active + done, _calendars(), now))
    if chosen["overdue"]:
        cards = [c for c in cards if c.overdue]
    counts = dict(
        session.execute(
            stmt.with_only_columns(Ticket.status, func.count()).group_by(Ticket.status)
        ).all()
    )
    columns = []
    for status in STATUSES:
        shown = [c for c in cards if c.ticket.status == status]
        # Overdue only: the column's count is what it shows.
        columns.append((status, shown, len(shown) if chosen["overdue"] else counts.get(status, 0)))
    organisations = session.scalars(select(Organisation).order_by(Organisation.name))
    return render_template(
        "console/tickets/board.html",
        columns=columns,
        chosen=chosen,
        organisations=list(organisations),
        regions=[r.value for r in Region],
        shown=DONE_SHOWN,
        now=now,
    )


# --- one ticket --------------------------------------------------------------------------


def _next_statuses(ticket: Ticket) -> list[str]:
    """What the ticket may be moved forward to (steps.advance's rule): any later
    status but report-delivered (delivering the report does that), closed only
    after it."""
    later = STATUSES[STATUSES.index(ticket.status) + 1 :]
    if ticket.status == "report-delivered":
        return ["closed"]
    return [s for s in later if s not in ("report-delivered", "closed")]


def _detail(ticket_id: int, error: str | None = None, fields: tuple[str, ...] = ()) -> str:
    session, actor = db_session(), staff()
    ticket = ticket_service.get_ticket(session, actor, ticket_id)
    calendars = _calendars()
    now = utcnow()
    notes = list(
        session.scalars(
            select(Notification)
            .where(Notification.ticket_id == ticket.id)
            .order_by(Notification.id)
        )
    )
    return render_template(
        "console/tickets/detail.html",
        ticket=ticket,
        zone=ticket.timezone,
        card=Card(
            ticket,
            ticket_service.deadlines_of(ticket, calendars, now),
            ticket_service.emergency_since(ticket) is not None,
            notes[-1] if notes else None,
        ),
        emergency_since=ticket_service.emergency_since(ticket),
        history=history_of(ticket),
        calendar=calendar_of(ticket),
        notifications=notes,
        report=session.get(IncidentReport, ticket.id),
        waiting=next((p for p in ticket.pauses if p.ended_at is None), None),
        next_statuses=_next_statuses(ticket),
        is_open=ticket.status in ticket_service.OPEN,
        now=now,
        now_input=local_input(now, ticket.timezone),
        error=error,
        fields=fields,
    )


@bp.get("/tickets/<int:ticket_id>")
def tickets_detail(ticket_id: int) -> str:
    return _detail(ticket_id)


def _act(ticket_id: int, do: Callable[[Principal], Any], anchor: str) -> Any:
    """Do a ticket's step as the reader (support staff), record any deadline it
    met late as a breach at once (as the API does), and come back to the
    ticket; a refusal shows the ticket with the reason."""
    actor = require(Permission.SERVICE_MANAGE)
    try:
        do(actor)
        ticket = ticket_service.get_ticket(db_session(), actor, ticket_id)
        breaches.record_breaches(db_session(), [ticket], _calendars(), utcnow())
    except REFUSED as error:
        sentence, status, fields = refusal(error)
        return _detail(ticket_id, sentence, tuple(fields)), status
    return redirect(url_for("console.tickets_detail", ticket_id=ticket_id) + anchor)


@bp.post("/tickets/<int:ticket_id>/status")
def tickets_status(ticket_id: int) -> BaseResponse | Any:
    """Move the ticket forward, at a time typed in the ticket's zone (default now)."""
    zone = ticket_service.get_ticket(db_session(), staff(), ticket_id).timezone

    def do(actor: Principal) -> None:
        status = request.form.get("status", "")
        at = parse_local(request.form.get("at"), zone, "at")
        if at is not None:  # as the API: not later than now
            responses.check_time(at, utcnow(), field="at")
        steps.advance(db_session(), actor, ticket_id, status, at)

    return _act(ticket_id, do, "#status")


@bp.post("/tickets/<int:ticket_id>/level")
def tickets_level(ticket_id: int) -> BaseResponse | Any:
    def do(actor: Principal) -> None:
        level = request.form.get("level", "")
        if level not in ("1", "2", "3", "4"):
            raise InvalidInputError("no such level", [{"field": "level", "message": "1-4"}])
        ticket_service.change_level(db_session(), actor, ticket_id, int(level))

    return _act(ticket_id, do, "#level")


@bp.post("/tickets/<int:ticket_id>/emergency")
def tickets_emergency(ticket_id: int) -> BaseResponse | Any:
    """Mark an emergency, or unmark it, saying why."""

    def do(actor: Principal) -> None:
        emergency = request.form.get("emergency") == "1"
        reason = text("reason", 2000)
        ticket_service.mark_emergency(db_session(), actor, ticket_id, emergency, reason)

    return _act(ticket_id, do, "#emergency")


@bp.post("/tickets/<int:ticket_id>/repair")
def tickets_repair(ticket_id: int) -> BaseResponse | Any:
    """A part must be replaced (the 2-working-day deadline starts), or it is on site."""

    def do(actor: Principal) -> None:
        if request.form.get("step") == "part-on-site":
            steps.part_on_site(db_session(), actor, ticket_id)
        else:
            steps.repair_notice(db_session(), actor, ticket_id)

    return _act(ticket_id, do, "#repair")


@bp.post("/tickets/<int:ticket_id>/pause")
def tickets_pause(ticket_id: int) -> BaseResponse | Any:
    """The ticket waits on the customer (who confirms it on the portal), or resumes."""

    def do(actor: Principal) -> None:
        if request.form.get("step") == "end":
            steps.end_pause(db_session(), actor, ticket_id)
            return
        reason = text("reason", 2000)
        if not reason:
            raise InvalidInputError("a reason is required", [{"field": "reason", "message": ""}])
        steps.request_pause(db_session(), actor, ticket_id, reason)

    return _act(ticket_id, do, "#pause")


@bp.context_processor
def _countdowns() -> dict[str, Any]:
    # Any console page may show a deadline counting down (the overview too).
    return {"remaining": remaining, "countdown_words": countdown_words}

"""The portal's fault tickets: the board, reporting a fault, a ticket's page
as its organisation follows it (status, deadlines, waits, the incident report),
and the staff's emergency mark. Routes of the portal blueprint (views.bp)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import utcnow
from upgrade_server.devices import service as devices
from upgrade_server.devices.models import Device
from upgrade_server.extensions import current_settings
from upgrade_server.extensions import session as db_session
from upgrade_server.tickets import incident_report as tickets_incident_report
from upgrade_server.tickets import reports
from upgrade_server.tickets import service as tickets
from upgrade_server.tickets import steps as tickets_steps
from upgrade_server.tickets.models import IncidentReport, Ticket
from upgrade_server.web.calendar_words import calendar_words
from upgrade_server.web.labels import label
from upgrade_server.web.views import (
    bp,
    current_user,
    document_response,
    local_time,
    picked_device_ids,
    require_login,
)
from upgrade_server.workdays.service import working_calendars

# --- fault tickets ---------------------------------------------------------------------


@bp.get("/tickets")
def ticket_list() -> str:
    """Open tickets first, by the nearest deadline (the staff board), then the rest."""
    actor = require_login()
    calendars = working_calendars(db_session(), current_settings())
    board = reports.board(db_session(), actor, calendars)
    done = list(
        db_session().scalars(
            tickets.visible_tickets(actor)
            .where(Ticket.status.not_in(tickets.OPEN))
            .order_by(Ticket.id.desc())
            .limit(200)
        )
    )
    return render_template(
        "portal/tickets.html",
        board=board,
        emergencies={t.id for t, _found in board if tickets.emergency_since(t) is not None},
        done=done,
        local=local_time,
        may_open=actor.may(Permission.SERVICE_REQUEST),
        user=current_user(),
    )


@bp.route("/tickets/new", methods=["GET", "POST"])
def new_ticket() -> Any:
    actor = require_login()
    own = list(db_session().scalars(devices.visible_devices(actor).order_by(Device.serial)))
    error = None
    if request.method == "POST":
        title = request.form.get("title", "").strip()
        level = request.form.get("level", "")
        if title and level in ("1", "2", "3", "4"):
            ticket = tickets.open_ticket(
                db_session(),
                actor,
                {
                    "title": title,
                    "description": request.form.get("description", ""),
                    "level": int(level),
                    "device_ids": picked_device_ids(),
                    "organisation_id": own[0].organisation_id if own else None,
                },
                via="portal",
            )
            return redirect(url_for("portal.ticket_page", ticket_id=ticket.id))
        error = _("A title and a level are required.")
    return render_template("portal/new_ticket.html", devices=own, error=error, user=current_user())


@bp.get("/tickets/<int:ticket_id>/report")
@bp.get("/tickets/<int:ticket_id>/report.<fmt>")
def ticket_report(ticket_id: int, fmt: str = "") -> Any:
    """The incident report as a page, or `report.pdf` to keep."""
    actor = require_login()
    report = tickets_incident_report.report_of(db_session(), actor, ticket_id)
    ticket = tickets.get_ticket(db_session(), actor, ticket_id)
    html = render_template("portal/incident_report.html", ticket=ticket, report=report)
    return document_response(html, fmt, f"incident-{ticket_id}") if fmt else html


# --- one ticket, as its organisation follows it ----------------------------------------

# The steps a ticket goes through and the column that says when.
_STEPS = (
    ("acknowledged", "acknowledged_at"),
    ("on-the-way", "on_the_way_at"),
    ("on-site", "on_site_at"),
    ("resolved", "resolved_at"),
    ("report-delivered", "report_delivered_at"),
    ("closed", "closed_at"),
)


def _ticket_deadlines(ticket: Ticket) -> list[tickets.Deadline]:
    calendars = working_calendars(db_session(), current_settings())
    return tickets.deadlines_of(ticket, calendars, utcnow())


def _calendar_of(ticket: Ticket) -> str | None:
    """The working-day calendar of the part-on-site deadline, in the reader's words."""
    calendars = working_calendars(db_session(), current_settings())
    used = tickets.calendar_parts(ticket, calendars)
    return calendar_words(used) if used is not None else None


def _history(ticket: Ticket) -> list[tuple[datetime, str]]:
    """What happened to the ticket, in time order, in the reader's words."""
    source = label(ticket.source, "ticket-source")
    events = [(ticket.opened_at, _("Reported (%(source)s)", source=source))]
    for at, level in ticket.level_changes:
        events.append((datetime.fromisoformat(at), _("Level changed to %(level)s", level=level)))
    for mark in ticket.emergency_marks:
        reason = mark["reason"]
        text = (
            _("Marked an emergency: %(reason)s", reason=reason)
            if mark["emergency"]
            else _("No longer an emergency: %(reason)s", reason=reason)
        )
        events.append((datetime.fromisoformat(mark["at"]), text))
    for status, column in _STEPS:
        at = getattr(ticket, column)
        if at is not None:
            events.append((at, label(status, "ticket-status")))
    if ticket.repair_notice_at is not None:
        events.append((ticket.repair_notice_at, _("A part must be replaced")))
    if ticket.part_on_site_at is not None:
        events.append((ticket.part_on_site_at, _("The replacement part is on site")))
    if ticket.cleared_at is not None:
        events.append((ticket.cleared_at, _("The device cleared its alarm")))
    for pause in ticket.pauses:
        waiting = _("Waiting on the customer: %(reason)s", reason=pause.reason)
        events.append((pause.started_at, waiting))
        if pause.confirmed_at is not None:
            who = pause.confirmed_by or ""
            events.append((pause.confirmed_at, _("The wait confirmed by %(who)s", who=who)))
        if pause.ended_at is not None:
            events.append((pause.ended_at, _("Work resumed")))
    return sorted(events, key=lambda event: event[0])


@bp.get("/tickets/<int:ticket_id>")
def ticket_page(ticket_id: int) -> str:
    """A ticket's progress: its status and history, each deadline met or
    missed, pauses, devices, and the incident report once delivered. Another
    organisation's ticket is a 404, as one that does not exist."""
    actor = require_login()
    ticket = tickets.get_ticket(db_session(), actor, ticket_id)
    report = db_session().get(IncidentReport, ticket.id)
    return render_template(
        "portal/ticket.html",
        ticket=ticket,
        zone=ticket.timezone,
        history=_history(ticket),
        deadlines=_ticket_deadlines(ticket),
        calendar=_calendar_of(ticket),
        emergency_since=tickets.emergency_since(ticket),
        report_delivered=report is not None and report.delivered_at is not None,
        waiting=next((p for p in ticket.pauses if p.ended_at is None), None),
        may_confirm=actor.may(Permission.SERVICE_CONFIRM),
        may_manage=actor.may(Permission.SERVICE_MANAGE) and ticket.status in tickets.OPEN,
        local=local_time,
        user=current_user(),
    )


@bp.post("/tickets/<int:ticket_id>/pause/confirm")
def ticket_confirm_pause(ticket_id: int) -> BaseResponse:
    """The customer agrees the ticket waits on it."""
    tickets_steps.confirm_pause(db_session(), require_login(), ticket_id)
    return redirect(url_for("portal.ticket_page", ticket_id=ticket_id))


@bp.post("/tickets/<int:ticket_id>/emergency")
def ticket_emergency(ticket_id: int) -> BaseResponse:
    """Staff mark the ticket an emergency, or unmark it, saying why."""
    actor = require_login()
    reason = request.form.get("reason", "").strip()[:2000]
    if not reason:
        abort(400, _("Say why."))
    emergency = request.form.get("emergency") == "1"
    tickets.mark_emergency(db_session(), actor, ticket_id, emergency, reason)
    return redirect(url_for("portal.ticket_page", ticket_id=ticket_id))

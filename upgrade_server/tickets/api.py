"""Tickets, incident reports and deadline reports on the management API
(a device uploads its alarms through the device edge: device_edge/alarms.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import Response, render_template

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.clock import utcnow
from upgrade_server.csvfiles import csv_response
from upgrade_server.extensions import current_settings, session
from upgrade_server.organisations.models import Organisation
from upgrade_server.routing import MAX_ID
from upgrade_server.schemas import DEFAULT_ZONE, DayOrTimestamp, Timestamp, instant
from upgrade_server.service import responses as service_responses
from upgrade_server.tickets import breaches, service, steps
from upgrade_server.tickets import incident_report as tickets_incident_report
from upgrade_server.tickets import reports as tickets_reports
from upgrade_server.tickets.models import Ticket
from upgrade_server.workdays.service import Calendars, working_calendars

bp = APIBlueprint("tickets", __name__, url_prefix="/api/v1", tag="Tickets")

READ = roles_for(Permission.DEVICE_READ)
MANAGE = roles_for(Permission.SERVICE_MANAGE)


class DeadlineOut(Schema):
    name = String()
    due_at = DateTime()
    met_at = DateTime(allow_none=True)
    late_minutes = Integer(allow_none=True)
    calendar = String(
        allow_none=True,
        metadata={
            "description": "which calendar counted its working days (part_on_site), e.g."
            " 'CN official calendar (chinesecalendar 1.11.0) + 1 staff exception'"
        },
    )


class PauseOut(Schema):
    id = Integer()
    reason = String()
    started_at = DateTime()
    requested_by = String()
    confirmed_at = DateTime(allow_none=True)
    confirmed_by = String(allow_none=True)
    ended_at = DateTime(allow_none=True)


class EmergencyMarkOut(Schema):
    at = DateTime()
    emergency = Boolean(metadata={"description": "marked (true) or unmarked (false)"})
    by = String()
    reason = String()


class TicketOut(Schema):
    id = Integer()
    organisation_id = Integer()
    region = String(
        metadata={"description": "its deadlines' region: its devices' sites' (the most urgent)"}
    )
    timezone = String(metadata={"description": "the zone its working days are counted in"})
    level = Integer()
    status = String()
    title = String()
    description = String()
    source = String()
    alarm_code = String(allow_none=True)
    alarm_count = Integer()
    last_alarm_at = DateTime(allow_none=True)
    cleared_at = DateTime(allow_none=True)
    opened_at = DateTime()
    acknowledged_at = DateTime(allow_none=True)
    on_the_way_at = DateTime(allow_none=True)
    on_site_at = DateTime(allow_none=True)
    repair_notice_at = DateTime(allow_none=True)
    part_on_site_at = DateTime(allow_none=True)
    resolved_at = DateTime(allow_none=True)
    report_delivered_at = DateTime(allow_none=True)
    closed_at = DateTime(allow_none=True)
    device_ids = List(Integer())
    deadlines = List(Nested(DeadlineOut))
    pauses = List(Nested(PauseOut))
    emergency = Boolean(
        metadata={"description": "an emergency: acknowledged within 10 minutes of emergency_since"}
    )
    emergency_since = DateTime(
        allow_none=True, metadata={"description": "when it became the emergency it is now"}
    )
    emergency_levels = List(
        Integer(),
        metadata={"description": "its product's emergency levels when it opened (the level rule)"},
    )
    emergency_marks = List(
        Nested(EmergencyMarkOut), metadata={"description": "staff's marks and unmarks, in order"}
    )


class TicketIn(Schema):
    title = String(required=True, validate=Length(1, 200))
    description = String(load_default="", validate=Length(0, 10_000))
    level = Integer(required=True, validate=Range(1, 4))
    device_ids = List(Integer(), load_default=list)
    organisation_id = Integer(load_default=None)


class TicketList(Schema):
    items = List(Nested(TicketOut))


class StatusIn(Schema):
    status = String(
        required=True,
        validate=OneOf(["acknowledged", "on-the-way", "on-site", "resolved", "closed"]),
    )
    at = Timestamp(load_default=None, not_future=True)


class LevelIn(Schema):
    level = Integer(required=True, validate=Range(1, 4))


class EmergencyIn(Schema):
    emergency = Boolean(required=True, metadata={"description": "true: mark; false: unmark"})
    reason = String(required=True, validate=Length(1, 2000))


class PauseIn(Schema):
    reason = String(required=True, validate=Length(1, 2000))


class StepOut(Schema):
    at = String(required=True)
    step = String(required=True)


class StepIn(Schema):
    at = Timestamp(required=True, metadata={"description": "with its UTC offset; kept in UTC"})
    step = String(required=True, validate=Length(1, 2000))


class ReportParts(Schema):
    fault_started_at = Timestamp()
    fault_ended_at = Timestamp()
    symptoms = String(validate=Length(0, 10_000))
    cause = String(validate=Length(0, 10_000), metadata={"description": "or the plan to find it"})
    solution = String(validate=Length(0, 10_000))
    follow_up = String(validate=Length(0, 10_000))


class ReportIn(ReportParts):
    recovery_steps = List(
        Nested(StepIn), validate=Length(0, 200), metadata={"description": "in time order"}
    )


class ReportOut(ReportParts):
    recovery_steps = List(Nested(StepOut), metadata={"description": "in time order"})
    ticket_id = Integer()
    delivered_at = DateTime(allow_none=True)
    delivered_by = String(allow_none=True)


class ReportQuery(Schema):
    format = String(load_default="json", validate=OneOf(["json", "pdf"]))


class DeadlineReportQuery(Schema):
    start = DayOrTimestamp(required=True, data_key="from")
    end = DayOrTimestamp(required=True, data_key="to")
    organisation_id = Integer(load_default=None)
    format = String(load_default="json", validate=OneOf(["json", "csv"]))


def _view(ticket: Ticket) -> dict[str, Any]:
    now = utcnow()
    found = service.deadlines_of(ticket, _calendars(), now)
    data = {
        name: getattr(ticket, name) for name in TicketOut._declared_fields if hasattr(ticket, name)
    }
    data["device_ids"] = [d.id for d in ticket.devices]
    data["deadlines"] = [
        {
            "name": d.name,
            "due_at": d.due_at,
            "met_at": d.met_at,
            "late_minutes": round(d.late.total_seconds() / 60) if d.late else None,
            "calendar": d.calendar,
        }
        for d in found
    ]
    data["pauses"] = ticket.pauses
    since = service.emergency_since(ticket)
    data["emergency"], data["emergency_since"] = since is not None, since
    data["emergency_marks"] = [
        {**mark, "at": datetime.fromisoformat(mark["at"])} for mark in ticket.emergency_marks
    ]
    return data


def _calendars() -> Calendars:
    return working_calendars(session(), current_settings())


def _with_breaches(ticket: Ticket) -> Ticket:
    """A step taken late is recorded as a breach at once."""
    breaches.record_breaches(session(), [ticket], _calendars(), utcnow())
    return ticket


# --- the device uploads alarms -----------------------------------------------------------------


# --- tickets ----------------------------------------------------------------------------------


@bp.get("/tickets")
@bp.auth_required(token_auth, roles=READ)
@bp.output(TicketList)
def list_tickets() -> dict[str, Any]:
    """Tickets the caller may see, open ones first by the nearest deadline."""
    actor = current_principal()
    open_ones = [t for t, _ in tickets_reports.board(session(), actor, _calendars())]
    done = session().scalars(
        service.visible_tickets(actor)
        .where(Ticket.status.not_in(service.OPEN))
        .order_by(Ticket.id.desc())
        .limit(500)
    )
    return {"items": [_view(t) for t in [*open_ones, *done]]}


@bp.post("/tickets")
@bp.auth_required(token_auth, roles=roles_for(Permission.SERVICE_REQUEST))
@bp.input(TicketIn, arg_name="data")
@bp.output(TicketOut, status_code=201)
def open_ticket(data: dict[str, Any]) -> Any:
    """Open a ticket by hand: a customer, or a support engineer for a phone call."""
    return _view(service.open_ticket(session(), current_principal(), data, via="api"))


@bp.get("/tickets/<int:ticket_id>")
@bp.auth_required(token_auth, roles=READ)
@bp.output(TicketOut)
def get_ticket(ticket_id: int) -> Any:
    """One ticket with its deadlines (met, missed and by how long) and pauses."""
    return _view(service.get_ticket(session(), current_principal(), ticket_id))


@bp.post("/tickets/<int:ticket_id>/status")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(StatusIn, arg_name="data")
@bp.output(TicketOut)
def set_status(ticket_id: int, data: dict[str, Any]) -> Any:
    """Move the ticket forward: acknowledged, on-the-way, on-site, resolved, closed."""
    actor = current_principal()
    ticket = steps.advance(session(), actor, ticket_id, data["status"], data["at"])
    return _view(_with_breaches(ticket))


@bp.post("/tickets/<int:ticket_id>/level")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(LevelIn, arg_name="data")
@bp.output(TicketOut)
def set_level(ticket_id: int, data: dict[str, Any]) -> Any:
    """Change the fault level; the deadlines follow."""
    return _view(service.change_level(session(), current_principal(), ticket_id, data["level"]))


@bp.post("/tickets/<int:ticket_id>/emergency")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(EmergencyIn, arg_name="data")
@bp.output(TicketOut)
def set_emergency(ticket_id: int, data: dict[str, Any]) -> Any:
    """Mark the ticket an emergency (acknowledged within 10 minutes from now)
    or unmark it, with the reason; audited. A level change that crosses the
    product's emergency levels decides again."""
    actor = current_principal()
    ticket = service.mark_emergency(session(), actor, ticket_id, data["emergency"], data["reason"])
    return _view(_with_breaches(ticket))


@bp.post("/tickets/<int:ticket_id>/repair-notice")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output(TicketOut)
def repair_notice(ticket_id: int) -> Any:
    """A part must be replaced: on site with it within 2 working days."""
    return _view(steps.repair_notice(session(), current_principal(), ticket_id))


@bp.post("/tickets/<int:ticket_id>/part-on-site")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output(TicketOut)
def part_on_site(ticket_id: int) -> Any:
    """The engineer is on site with the replacement part."""
    return _view(steps.part_on_site(session(), current_principal(), ticket_id))


@bp.post("/tickets/<int:ticket_id>/pause")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(PauseIn, arg_name="data")
@bp.output(TicketOut)
def pause(ticket_id: int, data: dict[str, Any]) -> Any:
    """The ticket waits on the customer; deadlines hold once the customer confirms."""
    actor = current_principal()
    steps.request_pause(session(), actor, ticket_id, data["reason"])
    return _view(service.get_ticket(session(), actor, ticket_id))


@bp.post("/tickets/<int:ticket_id>/pause/confirm")
@bp.auth_required(token_auth, roles=roles_for(Permission.SERVICE_CONFIRM))
@bp.output(TicketOut)
def confirm_pause(ticket_id: int) -> Any:
    """A customer user confirms the ticket waits on the customer."""
    actor = current_principal()
    steps.confirm_pause(session(), actor, ticket_id)
    return _view(service.get_ticket(session(), actor, ticket_id))


@bp.post("/tickets/<int:ticket_id>/pause/end")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output(TicketOut)
def end_pause(ticket_id: int) -> Any:
    """The wait is over: the deadlines run again."""
    actor = current_principal()
    steps.end_pause(session(), actor, ticket_id)
    return _view(service.get_ticket(session(), actor, ticket_id))


@bp.put("/tickets/<int:ticket_id>/report")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(ReportIn, arg_name="data")
@bp.output(ReportOut)
def save_report(ticket_id: int, data: dict[str, Any]) -> Any:
    """Write the incident report (until it is delivered)."""
    return tickets_incident_report.save_report(session(), current_principal(), ticket_id, data)


@bp.post("/tickets/<int:ticket_id>/report/deliver")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output(ReportOut)
def deliver_report(ticket_id: int) -> Any:
    """Deliver the report to the customer: all six parts required; then read-only."""
    actor = current_principal()
    report = tickets_incident_report.deliver_report(session(), actor, ticket_id)
    _with_breaches(service.get_ticket(session(), actor, ticket_id))
    return report


@bp.get("/tickets/<int:ticket_id>/report")
@bp.auth_required(token_auth, roles=READ)
@bp.input(ReportQuery, location="query", arg_name="query")
@bp.output(ReportOut)
def get_report(ticket_id: int, query: dict[str, Any]) -> Any:
    """The incident report (customers: once delivered); `format=pdf` as a PDF,
    which staff also get of a draft, marked as one on every page."""
    actor = current_principal()
    report = tickets_incident_report.report_of(session(), actor, ticket_id)
    if query["format"] != "pdf":
        return report
    from upgrade_server.notes.documents import render_pdf

    ticket = service.get_ticket(session(), actor, ticket_id)
    name = f"incident-{ticket_id}" + ("" if report.delivered_at else "-draft")
    html = render_template(
        "portal/incident_report.html",
        ticket=ticket,
        report=report,
    )
    return Response(
        render_pdf(html),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )


@bp.get("/tickets/deadline-report")
@bp.auth_required(token_auth, roles=READ)
@bp.input(DeadlineReportQuery, location="query", arg_name="query")
def deadline_report(query: dict[str, Any]) -> Any:
    """Every deadline of the tickets opened in [from, to): met or missed and
    how late (JSON, or `format=csv`), with totals. A plain date starts at
    midnight in the organisation's time zone (the caller's own, else
    `organisation_id`'s; across organisations, China Standard Time). The
    JSON has the service requests' 24-hour response deadlines over the same
    period as `service_requests` (their CSV:
    /api/v1/service-requests/deadline-report)."""
    actor = current_principal()
    org_id = actor.organisation_id or query["organisation_id"]
    org = session().get(Organisation, org_id) if org_id and 0 < org_id <= MAX_ID else None
    zone = org.timezone if org else DEFAULT_ZONE
    rows = tickets_reports.deadline_report(
        session(),
        actor,
        _calendars(),
        instant(query["start"], zone),
        instant(query["end"], zone),
        query["organisation_id"],
    )
    if query["format"] == "csv":
        columns = ["ticket_id", "organisation", "level", "deadline", "due_at", "met_at", "met"]
        extra = ["late_minutes", "region", "timezone", "calendar"]
        return csv_response(rows, [*columns, *extra], "deadlines.csv")
    met = sum(1 for r in rows if r["met"])
    answered = service_responses.response_report(
        session(),
        actor,
        instant(query["start"], zone),
        instant(query["end"], zone),
        query["organisation_id"],
    )
    kept = sum(1 for r in answered if r["met"])
    return {
        "met": met,
        "missed": len(rows) - met,
        "items": rows,
        "service_requests": {"met": kept, "missed": len(answered) - kept, "items": answered},
    }

"""The console's incident reports: support staff write a ticket's report (its
six parts and the recovery steps, times in the ticket's zone), deliver it to
the customer once the ticket is resolved (read-only from then on), and
download it as a PDF, a draft marked as one. The tickets' service does each
(tickets/incident_report.py), with the reader as the actor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import utcnow
from upgrade_server.console.service_forms import local_input, parse_local, refusal
from upgrade_server.console.ticket_pages import REFUSED
from upgrade_server.console.views import bp, require, staff
from upgrade_server.errors import InvalidInputError
from upgrade_server.extensions import current_settings
from upgrade_server.extensions import session as db_session
from upgrade_server.tickets import breaches
from upgrade_server.tickets import incident_report as reports
from upgrade_server.tickets import service as ticket_service
from upgrade_server.tickets.models import IncidentReport, Ticket
from upgrade_server.web.views import document_response
from upgrade_server.workdays.service import working_calendars

TEXTS = ("symptoms", "cause", "solution", "follow_up")
TIMES = ("fault_started_at", "fault_ended_at")
BLANK_STEPS = 3  # empty rows for more recovery steps (another save adds more)


def _values(report: IncidentReport | None, zone: str) -> dict[str, Any]:
    """The form's fields as stored."""
    if report is None:
        return {"steps": [("", "")] * BLANK_STEPS, **dict.fromkeys((*TEXTS, *TIMES), "")}
    steps = [
        (local_input(datetime.fromisoformat(s["at"]), zone), s["step"])
        for s in report.recovery_steps
    ]
    return {
        **{name: getattr(report, name) for name in TEXTS},
        **{name: local_input(getattr(report, name), zone) for name in TIMES},
        "steps": steps + [("", "")] * BLANK_STEPS,
    }


def _typed() -> dict[str, Any]:
    """The form's fields as typed (shown again when the save is refused)."""
    steps = list(zip(request.form.getlist("step_at"), request.form.getlist("step"), strict=False))
    return {
        **{name: request.form.get(name, "") for name in (*TEXTS, *TIMES)},
        "steps": steps + [("", "")] * BLANK_STEPS,
    }


def _parts(zone: str) -> dict[str, Any]:
    """The report's parts from the form, times read in the ticket's zone."""
    data: dict[str, Any] = {name: request.form.get(name, "").strip()[:10_000] for name in TEXTS}
    for name in TIMES:
        data[name] = parse_local(request.form.get(name), zone, name)
    steps = []
    for at, step in zip(
        request.form.getlist("step_at"), request.form.getlist("step"), strict=False
    ):
        if not at.strip() and not step.strip():
            continue
        when = parse_local(at, zone, "recovery_steps")
        if when is None or not step.strip():
            raise InvalidInputError(
                "a recovery step needs its time and what was done",
                [{"field": "recovery_steps", "message": "each with its time"}],
            )
        steps.append({"at": when, "step": step.strip()[:2000]})
    data["recovery_steps"] = sorted(steps, key=lambda s: s["at"])
    return data


def _page(
    ticket: Ticket,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    fields: tuple[str, ...] = (),
) -> str:
    report = db_session().get(IncidentReport, ticket.id)
    return render_template(
        "console/tickets/report.html",
        ticket=ticket,
        zone=ticket.timezone,
        report=report,
        values=values or _values(report, ticket.timezone),
        delivered=report is not None and report.delivered_at is not None,
        saved=request.args.get("saved") == "1",
        error=error,
        fields=fields,
    )


@bp.get("/tickets/<int:ticket_id>/report")
def tickets_report(ticket_id: int) -> str:
    """The report's form (support staff), or the report as delivered."""
    return _page(ticket_service.get_ticket(db_session(), staff(), ticket_id))


@bp.post("/tickets/<int:ticket_id>/report")
def tickets_report_save(ticket_id: int) -> BaseResponse | Any:
    actor = require(Permission.SERVICE_MANAGE)
    ticket = ticket_service.get_ticket(db_session(), actor, ticket_id)
    try:
        reports.save_report(db_session(), actor, ticket_id, _parts(ticket.timezone))
    except REFUSED as error:
        sentence, status, fields = refusal(error)
        ticket = ticket_service.get_ticket(db_session(), actor, ticket_id)
        return _page(ticket, _typed(), sentence, tuple(fields)), status
    return redirect(url_for("console.tickets_report", ticket_id=ticket_id, saved=1))


@bp.post("/tickets/<int:ticket_id>/report/deliver")
def tickets_report_deliver(ticket_id: int) -> BaseResponse | Any:
    """Deliver the report to the customer: it becomes read-only, the ticket
    `report-delivered` (a late delivery is recorded as a breach at once)."""
    actor = require(Permission.SERVICE_MANAGE)
    try:
        reports.deliver_report(db_session(), actor, ticket_id)
        ticket = ticket_service.get_ticket(db_session(), actor, ticket_id)
        calendars = working_calendars(db_session(), current_settings())
        breaches.record_breaches(db_session(), [ticket], calendars, utcnow())
    except REFUSED as error:
        sentence, status, fields = refusal(error)
        ticket = ticket_service.get_ticket(db_session(), actor, ticket_id)
        return _page(ticket, None, sentence, tuple(fields)), status
    return redirect(url_for("console.tickets_detail", ticket_id=ticket_id) + "#report-state")


@bp.get("/tickets/<int:ticket_id>/report.pdf")
def tickets_report_pdf(ticket_id: int) -> BaseResponse:
    """The report as the customer gets it; a draft says so on every page."""
    actor = staff()
    report = reports.report_of(db_session(), actor, ticket_id)
    ticket = ticket_service.get_ticket(db_session(), actor, ticket_id)
    html = render_template("portal/incident_report.html", ticket=ticket, report=report)
    name = f"incident-{ticket_id}" + ("" if report.delivered_at else "-draft")
    return document_response(html, "pdf", name)

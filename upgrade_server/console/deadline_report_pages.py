"""The console's deadline report: every deadline of the tickets opened in a
period, met or missed and by how long, with the service requests' 24-hour
responses over the same period; as a page or the API's CSV. The tickets' and
the service record's reports make it (tickets/reports.py, service/responses.py)."""

from __future__ import annotations

from datetime import date, timedelta

from flask import render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.clock import today_in
from upgrade_server.console.service_forms import number, query_args
from upgrade_server.console.views import bp, staff
from upgrade_server.csvfiles import csv_response
from upgrade_server.extensions import current_settings
from upgrade_server.extensions import session as db_session
from upgrade_server.organisations.models import Organisation
from upgrade_server.schemas import DEFAULT_ZONE, instant
from upgrade_server.service import responses
from upgrade_server.tickets import reports
from upgrade_server.workdays.service import working_calendars

# The API's CSV columns (tickets/api.py's deadline report).
COLUMNS = ["ticket_id", "organisation", "level", "deadline", "due_at", "met_at", "met"]
COLUMNS += ["late_minutes", "region", "timezone", "calendar"]
DEFAULT_DAYS = 30


def _day(value: str | None, default: date) -> date:
    try:
        day = date.fromisoformat(value or "")
    except ValueError:
        return default
    return day if 1970 <= day.year <= 9000 else default


@bp.get("/tickets/deadlines")
def tickets_deadlines() -> str | BaseResponse:
    """From and to are days in the chosen organisation's zone (else China
    Standard Time), `to` included."""
    session, actor = db_session(), staff()
    organisation_id = number(request.args.get("organisation_id"))
    organisation = session.get(Organisation, organisation_id) if organisation_id else None
    zone = organisation.timezone if organisation else DEFAULT_ZONE
    last = _day(request.args.get("to"), today_in(zone))
    first = _day(request.args.get("from"), last - timedelta(days=DEFAULT_DAYS - 1))
    start, end = instant(first, zone), instant(last + timedelta(days=1), zone)
    only = organisation.id if organisation else None
    calendars = working_calendars(session, current_settings())
    rows = reports.deadline_report(session, actor, calendars, start, end, only)
    if request.args.get("format") == "csv":
        return csv_response(rows, COLUMNS, "deadlines.csv")
    answered = responses.response_report(session, actor, start, end, only)
    return render_template(
        "console/tickets/deadlines.html",
        rows=rows,
        answered=answered,
        first=first,
        last=last,
        zone=zone,
        organisation=organisation,
        organisations=list(session.scalars(select(Organisation).order_by(Organisation.name))),
        query_args=query_args,
    )

"""Management API for the working-day calendar (/api/v1/working-days)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Date, DateTime, Integer, List, Nested, String
from apiflask.validators import Length

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.errors import InvalidInputError
from upgrade_server.extensions import current_settings, session
from upgrade_server.organisations.service import get_organisation
from upgrade_server.pagination import paginate
from upgrade_server.schemas import PageQuery, page_body, page_schema
from upgrade_server.workdays import service
from upgrade_server.workdays.models import WorkingDayException

bp = APIBlueprint("working_days", __name__, url_prefix="/api/v1/working-days", tag="Working days")

READ = roles_for(Permission.ORGANISATION_READ)
MANAGE = roles_for(Permission.SERVICE_MANAGE)
MAX_DAYS = 366


class ExceptionOut(Schema):
    id = Integer()
    organisation_id = Integer(allow_none=True, metadata={"description": "null: everyone"})
    day = Date()
    working = Boolean(metadata={"description": "true: a working day; false: a day off"})
    reason = String()
    created_by = String()
    created_at = DateTime()


class ExceptionIn(Schema):
    day = Date(required=True)
    working = Boolean(required=True, metadata={"description": "true: a working day; false: off"})
    reason = String(required=True, validate=Length(1, 500))
    organisation_id = Integer(
        load_default=None, allow_none=True, metadata={"description": "null: for everyone"}
    )


class ExceptionQuery(PageQuery):
    organisation_id = Integer(
        load_default=None, metadata={"description": "the ones that apply to it (and global)"}
    )
    start = Date(load_default=None, data_key="from")
    end = Date(load_default=None, data_key="to", metadata={"description": "exclusive"})


ExceptionPage = page_schema(ExceptionOut, "WorkingDayExceptionPage")


class CalendarQuery(Schema):
    organisation_id = Integer(load_default=None, metadata={"description": "default: yours"})
    start = Date(required=True, data_key="from")
    end = Date(required=True, data_key="to", metadata={"description": f"exclusive; {MAX_DAYS}"})


class DayOut(Schema):
    day = Date()
    working = Boolean()
    exception = String(allow_none=True, metadata={"description": "the reason, if one decided"})


class CalendarOut(Schema):
    organisation_id = Integer(allow_none=True)
    calendar = String(metadata={"description": "which calendar decided these days"})
    days = List(Nested(DayOut))


@bp.get("/exceptions")
@bp.auth_required(token_auth, roles=READ)
@bp.input(ExceptionQuery, location="query", arg_name="query")
@bp.output(ExceptionPage)
def list_exceptions(query: dict[str, Any]) -> dict[str, Any]:
    """Days made working days or days off by staff (customers: the global
    ones and their own organisation's)."""
    stmt = service.list_exceptions(
        current_principal(), query["organisation_id"], query["start"], query["end"]
    )
    return page_body(
        paginate(session(), stmt, WorkingDayException.id, query["limit"], query["after"])
    )


@bp.post("/exceptions")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(ExceptionIn, arg_name="data")
@bp.output(ExceptionOut, status_code=201)
def add_exception(data: dict[str, Any]) -> Any:
    """Make a day a working day or a day off, with a reason, for one
    organisation or for everyone. Deadlines are counted on it from now on,
    including those of open tickets."""
    return service.add_exception(session(), current_principal(), data)


@bp.delete("/exceptions/<int:exception_id>")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output({}, status_code=204)
def remove_exception(exception_id: int) -> tuple[str, int]:
    """Remove an exception: the day is as the calendar has it again."""
    service.remove_exception(session(), current_principal(), exception_id)
    return "", 204


@bp.get("")
@bp.auth_required(token_auth, roles=READ)
@bp.input(CalendarQuery, location="query", arg_name="query")
@bp.output(CalendarOut)
def calendar(query: dict[str, Any]) -> dict[str, Any]:
    """Each day of [from, to) as an organisation's working-day deadlines count
    it, and which calendar decided."""
    actor = current_principal()
    start, end = query["start"], query["end"]
    if not 0 < (end - start).days <= MAX_DAYS:
        raise InvalidInputError(
            "bad range", [{"field": "to", "message": f"after from, at most {MAX_DAYS} days"}]
        )
    organisation_id = query["organisation_id"] or actor.organisation_id
    if organisation_id is not None:
        get_organisation(session(), actor, organisation_id)
    working = service.working_calendars(session(), current_settings()).of(organisation_id)
    days = [start + timedelta(days=n) for n in range((end - start).days)]
    return {
        "organisation_id": organisation_id,
        "calendar": working.used(days[0], days[-1]).summary,
        "days": [
            {
                "day": day,
                "working": working.is_working(day),
                "exception": e.reason if (e := working.exceptions.get(day)) else None,
            }
            for day in days
        ],
    }

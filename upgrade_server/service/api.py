"""Sessions and service requests in the management API (/api/v1). The service
record and reminders (record_api.py), notices (notices_api.py) and contacts
(contacts_api.py) add their routes to the same blueprint (blueprint.py);
importing this module brings them all."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import DateTime, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import Response

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.clock import utcnow
from upgrade_server.csvfiles import csv_response
from upgrade_server.errors import accepts
from upgrade_server.extensions import session
from upgrade_server.organisations.models import Organisation
from upgrade_server.routing import MAX_ID
from upgrade_server.schemas import DEFAULT_ZONE, DayOrTimestamp, Timestamp, instant
from upgrade_server.service import (  # noqa: F401  (the *_api modules: their routes join bp)
    access,
    contacts_api,
    notices_api,
    record_api,
    responses,
    service,
    service_requests,
)
from upgrade_server.service import sessions as service_sessions
from upgrade_server.service.blueprint import (
    CONFIRM,
    MANAGE,
    READ,
    AttachmentOut,
    bp,
    received_file,
    send_attachment,
)
from upgrade_server.service.models import Mode, ServiceRequest, ServiceSession, SessionKind


class ConfirmationOut(Schema):
    state = String(
        metadata={"description": "planned, started, start-confirmed, ended or signed-off"}
    )
    started_at = DateTime(allow_none=True)
    started_by = String(allow_none=True)
    start_confirmed_at = DateTime(allow_none=True)
    start_confirmed_by = String(allow_none=True)
    ended_at = DateTime(allow_none=True)
    ended_by = String(allow_none=True)
    end_confirmed_at = DateTime(allow_none=True)
    end_confirmed_by = String(allow_none=True)
    timezone = String(attribute="organisation.timezone")


class SessionOut(ConfirmationOut):
    id = Integer()
    organisation_id = Integer()
    kind = String()
    mode = String()
    device_ids = List(Integer(), attribute="device_ids")
    release_id = Integer(allow_none=True)
    request_id = Integer(allow_none=True)
    corrects_id = Integer(allow_none=True)
    engineers = List(String())
    customer_representative = String()
    planned_start = DateTime(allow_none=True)
    planned_end = DateTime(allow_none=True)
    training_days = Float(allow_none=True)
    delivery = String(allow_none=True)
    notes = String()
    findings = String()
    suggestions = String()
    outcome = String()
    attachments = List(Nested(AttachmentOut))
    created_at = DateTime()
    created_by = String()
    cancelled_at = DateTime(allow_none=True)
    cancelled_by = String(allow_none=True)
    cancel_reason = String()


class CancelIn(Schema):
    reason = String(required=True, validate=Length(1, 2000))


class SessionFields(Schema):
    mode = String(validate=OneOf([m.value for m in Mode]))
    engineers = List(String(validate=Length(1, 200)))
    customer_representative = String(validate=Length(0, 200))
    planned_start = Timestamp()
    planned_end = Timestamp()
    training_days = Float(validate=Range(0, 30))
    delivery = String(validate=Length(1, 100))
    notes = String(validate=Length(0, 10_000))
    findings = String(validate=Length(0, 10_000))
    suggestions = String(validate=Length(0, 10_000))
    outcome = String(validate=Length(0, 2000))


class SessionIn(SessionFields):
    kind = String(required=True, validate=OneOf([k.value for k in SessionKind]))
    organisation_id = Integer(required=True)
    device_ids = List(Integer(), load_default=list)
    release_id = Integer(load_default=None, allow_none=True)
    request_id = Integer(load_default=None, allow_none=True)


class StepIn(Schema):
    at = Timestamp(
        load_default=None,
        not_future=True,
        metadata={"description": "when it started or ended, not later than now; default now"},
    )
    outcome = String(load_default=None, validate=Length(0, 2000))


class ListQuery(Schema):
    organisation_id = Integer(load_default=None)
    state = String(
        load_default=None,
        validate=OneOf(
            ["planned", "started", "start-confirmed", "ended", "signed-off", "cancelled"]
        ),
    )


class SessionList(Schema):
    items = List(Nested(SessionOut))


class RequestDeadlineOut(Schema):
    name = String(metadata={"description": "response: answered within 24 hours of receipt"})
    due_at = DateTime()
    met_at = DateTime(allow_none=True)
    late_minutes = Integer(allow_none=True, metadata={"description": "set once missed"})


class RequestOut(ConfirmationOut):
    id = Integer()
    organisation_id = Integer()
    title = String()
    description = String()
    contact = String()
    opened_via = String()
    opened_by = String()
    opened_at = DateTime()
    device_ids = List(Integer(), attribute="device_ids")
    session_ids = List(Integer())
    waited_hours = Float(
        allow_none=True, metadata={"description": "from the request to the start of work"}
    )
    received_at = DateTime(metadata={"description": "the 24-hour response deadline runs from here"})
    responded_at = DateTime(
        allow_none=True,
        metadata={
            "description": "the vendor's first response: its answer, the start of work or a"
            " session planned for the request"
        },
    )
    responded_by = String(allow_none=True)
    response = String(
        metadata={
            "description": "the answer the vendor recorded; empty when the start of work or a"
            " planned session was the response"
        }
    )
    deadlines = List(Nested(RequestDeadlineOut))


class RequestIn(Schema):
    title = String(required=True, validate=Length(1, 200))
    description = String(load_default="", validate=Length(0, 10_000))
    contact = String(load_default="", validate=Length(0, 200))
    device_ids = List(Integer(), load_default=list)
    organisation_id = Integer(
        load_default=None, metadata={"description": "vendor staff: whose call this is"}
    )
    received_at = Timestamp(
        not_future=True,
        load_default=None,
        metadata={
            "description": "vendor staff: when the call or the form came in (default now;"
            " not later than now)"
        },
    )


class RespondIn(Schema):
    response = String(required=True, validate=Length(1, 2000))
    at = Timestamp(
        not_future=True, load_default=None, metadata={"description": "when; default now"}
    )


class DeadlineReportQuery(Schema):
    start = DayOrTimestamp(required=True, data_key="from")
    end = DayOrTimestamp(required=True, data_key="to")
    organisation_id = Integer(load_default=None)
    format = String(load_default="json", validate=OneOf(["json", "csv"]))


class RequestList(Schema):
    items = List(Nested(RequestOut))


def _session_view(entry: ServiceSession) -> ServiceSession:
    entry.device_ids = [d.id for d in entry.devices]  # type: ignore[attr-defined]
    return entry


def _request_view(entry: ServiceRequest) -> ServiceRequest:
    entry.device_ids = [d.id for d in entry.devices]  # type: ignore[attr-defined]
    entry.session_ids = [s.id for s in service.sessions_of_request(session(), entry)]  # type: ignore[attr-defined]
    waited = service_requests.waited(entry)
    entry.waited_hours = round(waited.total_seconds() / 3600, 2) if waited else None  # type: ignore[attr-defined]
    deadline = responses.response_deadline(entry, utcnow())
    entry.deadlines = [  # type: ignore[attr-defined]
        {
            "name": deadline.name,
            "due_at": deadline.due_at,
            "met_at": deadline.met_at,
            "late_minutes": round(deadline.late.total_seconds() / 60) if deadline.late else None,
        }
    ]
    return entry


# --- sessions ---------------------------------------------------------------------------


@bp.get("/service-sessions")
@bp.auth_required(token_auth, roles=READ)
@bp.input(ListQuery, location="query", arg_name="query")
@bp.output(SessionList)
def list_sessions(query: dict[str, Any]) -> dict[str, Any]:
    """Sessions the caller may see (customers: their organisation's), newest first."""
    found = service.listing(session(), current_principal(), ServiceSession, **query)
    return {"items": [_session_view(e) for e in found]}


@bp.post("/service-sessions")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(SessionIn, arg_name="data")
@bp.output(SessionOut, status_code=201)
def create_session(data: dict[str, Any]) -> Any:
    """Plan a session: installation, acceptance, training, upgrade, guidance,
    inspection, follow-up visit or phone consultation."""
    return _session_view(service_sessions.create_session(session(), current_principal(), data))


@bp.get("/service-sessions/<int:session_id>")
@bp.auth_required(token_auth, roles=READ)
@bp.output(SessionOut)
def get_session(session_id: int) -> Any:
    """One session; another organisation's is a 404."""
    return _session_view(access.get(session(), current_principal(), ServiceSession, session_id))


@bp.patch("/service-sessions/<int:session_id>")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(SessionFields, arg_name="data")
@bp.output(SessionOut)
def update_session(session_id: int, data: dict[str, Any]) -> Any:
    """Change a session until it is signed off (then 409: record a correction)."""
    return _session_view(
        service_sessions.update_session(session(), current_principal(), session_id, data)
    )


@bp.post("/service-sessions/<int:session_id>/corrections")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(SessionFields, arg_name="data")
@bp.output(SessionOut, status_code=201)
def correct_session(session_id: int, data: dict[str, Any]) -> Any:
    """A new session correcting a signed-off one, which stays unchanged."""
    return _session_view(
        service_sessions.correct_session(session(), current_principal(), session_id, data)
    )


def _step(model: Any, entry_id: int, step: str, data: dict[str, Any] | None = None) -> Any:
    data = data or {}
    entry = service.advance(
        session(),
        current_principal(),
        model,
        entry_id,
        step,
        at=data.get("at"),
        outcome=data.get("outcome"),
    )
    return _session_view(entry) if model is ServiceSession else _request_view(entry)


@bp.post("/service-sessions/<int:session_id>/cancel")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(CancelIn, arg_name="data")
@bp.output(SessionOut)
def cancel_session(session_id: int, data: dict[str, Any]) -> Any:
    """Cancel a planned session that will not take place, with the reason
    (audited). It stays in the record as cancelled and no longer holds up the
    request it was planned for; a started session is ended instead."""
    return service_sessions.cancel_session(
        session(), current_principal(), session_id, data["reason"]
    )


@bp.post("/service-sessions/<int:session_id>/attachments")
@accepts("multipart/form-data")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output(SessionOut, status_code=201)
@bp.doc(description="multipart/form-data with one `file` part (at most 50 MiB).")
def add_attachment(session_id: int) -> Any:
    """Attach a file (a signed form, photos, a report) to an open session."""
    actor = current_principal()
    entry = access.get(session(), actor, ServiceSession, session_id)
    service.check_open(entry)
    service_sessions.add_attachment(session(), actor, entry, received_file())
    return _session_view(entry)


@bp.get("/service-sessions/<int:session_id>/attachments/<sha256>")
@bp.auth_required(token_auth, roles=READ)
def get_attachment(session_id: int, sha256: str) -> Response:
    """Download an attachment of a session the caller may see."""
    entry = access.get(session(), current_principal(), ServiceSession, session_id)
    return send_attachment(entry.attachments, sha256, f"session {session_id}")


# --- requests -----------------------------------------------------------------------------


@bp.get("/service-requests")
@bp.auth_required(token_auth, roles=READ)
@bp.input(ListQuery, location="query", arg_name="query")
@bp.output(RequestList)
def list_requests(query: dict[str, Any]) -> dict[str, Any]:
    """Technical service requests the caller may see, newest first."""
    found = service.listing(session(), current_principal(), ServiceRequest, **query)
    return {"items": [_request_view(e) for e in found]}


@bp.post("/service-requests")
@bp.auth_required(token_auth, roles=roles_for(Permission.SERVICE_REQUEST))
@bp.input(RequestIn, arg_name="data")
@bp.output(RequestOut, status_code=201)
def open_request(data: dict[str, Any]) -> Any:
    """Open a technical service request (技术服务申请单): a customer for its
    organisation, or a vendor engineer for a customer's phone call."""
    return _request_view(
        service_requests.open_request(session(), current_principal(), data, via="api")
    )


@bp.get("/service-requests/<int:request_id>")
@bp.auth_required(token_auth, roles=READ)
@bp.output(RequestOut)
def get_request(request_id: int) -> Any:
    """One request, with the sessions that served it and the wait before work began."""
    return _request_view(access.get(session(), current_principal(), ServiceRequest, request_id))


@bp.post("/service-requests/<int:request_id>/respond")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(RespondIn, arg_name="data")
@bp.output(RequestOut)
def respond(request_id: int, data: dict[str, Any]) -> Any:
    """The vendor's response to a request (a call back, an e-mail): what was
    said and when. It meets the 24-hour response deadline (so does the start
    of work, or a session planned for the request); answered late, the breach
    is recorded with how late. A second response is a 409."""
    entry = responses.respond(
        session(), current_principal(), request_id, data["response"], data["at"]
    )
    return _request_view(entry)


@bp.get("/service-requests/deadline-report")
@bp.auth_required(token_auth, roles=READ)
@bp.input(DeadlineReportQuery, location="query", arg_name="query")
def request_deadline_report(query: dict[str, Any]) -> Any:
    """The response deadline of every request received in [from, to): met or
    missed and how late (JSON with totals, or `format=csv`). A plain date
    starts at midnight in the organisation's time zone, as in the tickets'
    deadline report."""
    actor = current_principal()
    rows = responses.response_report(
        session(), actor, *_period(actor, query), query["organisation_id"]
    )
    if query["format"] == "csv":
        columns = ["request_id", "organisation", "title", "deadline", "received_at", "due_at"]
        return csv_response(rows, [*columns, "met_at", "met", "late_minutes"], "responses.csv")
    met = sum(1 for r in rows if r["met"])
    return {"met": met, "missed": len(rows) - met, "items": rows}


def _period(actor: Any, query: dict[str, Any]) -> tuple[Any, Any]:
    org_id = actor.organisation_id or query["organisation_id"]
    org = session().get(Organisation, org_id) if org_id and 0 < org_id <= MAX_ID else None
    zone = org.timezone if org else DEFAULT_ZONE
    return instant(query["start"], zone), instant(query["end"], zone)


_STEPS = {
    "start": (MANAGE, True, "The engineer records the start (`at`, default now)."),
    "confirm-start": (CONFIRM, False, "A customer user of the organisation confirms the start."),
    "end": (MANAGE, True, "The engineer records the end (`at`, default now) and the outcome."),
    "confirm-end": (CONFIRM, False, "A customer user confirms the end: signed off for good."),
}


def _step_route(model: Any, plural: str, out: type[Schema]) -> None:
    """POST /{plural}/<id>/{step} for each step of the confirmation machine."""
    noun = "session" if model is ServiceSession else "request"
    for step, (roles, takes_body, summary) in _STEPS.items():

        def view(entry_id: int, data: dict[str, Any] | None = None, step: str = step) -> Any:
            return _step(model, entry_id, step, data)

        view.__name__ = f"{step.replace('-', '_')}_{noun}"
        view.__doc__ = summary
        if takes_body:
            view = bp.input(StepIn, arg_name="data")(view)
        view = bp.output(out)(view)
        view = bp.auth_required(token_auth, roles=roles)(view)
        bp.post(f"/{plural}/<int:entry_id>/{step}")(view)


_step_route(ServiceSession, "service-sessions", SessionOut)
_step_route(ServiceRequest, "service-requests", RequestOut)

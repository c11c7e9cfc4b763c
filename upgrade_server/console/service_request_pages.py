"""The console's service requests (技术服务申请单) of every organisation: the
list with each request's 24-hour response deadline (counting down while it
waits), and a request's page where support staff record the response, plan a
session for it, and record the start and end of the work. The service record's
functions do each (service/responses.py, service.py), with the reader as the
actor."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy import ColumnElement, and_, func, select
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import utcnow
from upgrade_server.console.service_forms import (
    local_input,
    newest_first,
    number,
    parse_local,
    query_args,
    refusal,
    text,
)
from upgrade_server.console.service_pages import REFUSED, STATES
from upgrade_server.console.views import bp, require, staff
from upgrade_server.errors import InvalidInputError
from upgrade_server.extensions import session as db_session
from upgrade_server.organisations.models import Organisation
from upgrade_server.service import access, responses
from upgrade_server.service import service as entries
from upgrade_server.service.models import ServiceRequest, ServiceSession

ANSWERS = ("waiting", "overdue", "answered")


@bp.get("/service/requests")
def service_requests() -> str:
    """Requests newest first, by organisation, state and response."""
    args, session, now = request.args, db_session(), utcnow()
    chosen: dict[str, Any] = {
        "organisation_id": number(args.get("organisation_id")),
        "state": args.get("state") if args.get("state") in STATES[:-1] else None,
        "answer": args.get("answer") if args.get("answer") in ANSWERS else None,
    }
    stmt = access.visible(staff(), ServiceRequest)
    if chosen["organisation_id"]:
        stmt = stmt.where(ServiceRequest.organisation_id == chosen["organisation_id"])
    if chosen["state"]:
        stmt = stmt.where(_as_request(chosen["state"]))
    cutoff = now - responses.RESPONSE_WITHIN
    if chosen["answer"] == "answered":
        stmt = stmt.where(ServiceRequest.responded_at.is_not(None))
    elif chosen["answer"] == "waiting":
        stmt = stmt.where(
            ServiceRequest.responded_at.is_(None), ServiceRequest.received_at > cutoff
        )
    elif chosen["answer"] == "overdue":
        stmt = stmt.where(
            ServiceRequest.responded_at.is_(None), ServiceRequest.received_at <= cutoff
        )
    page = newest_first(session, stmt, ServiceRequest.id, number(args.get("before")))
    ids = [r.id for r in page.items]
    served = (
        dict(
            session.execute(
                select(ServiceSession.request_id, func.count())
                .where(ServiceSession.request_id.in_(ids))
                .group_by(ServiceSession.request_id)
            ).all()
        )
        if ids
        else {}
    )
    return render_template(
        "console/service/requests.html",
        page=page,
        chosen=chosen,
        organisations=list(session.scalars(select(Organisation).order_by(Organisation.name))),
        states=STATES[:-1],
        answers=ANSWERS,
        due={r.id: responses.response_deadline(r, now) for r in page.items},
        served=served,
        now=now,
        query_args=query_args,
    )


def _as_request(state: str) -> ColumnElement[bool]:
    """A request's confirmation `state` as SQL (models.Confirmed.state; a
    request is never cancelled), so that a filtered list pages in the database."""
    r = ServiceRequest
    return {
        "signed-off": r.end_confirmed_at.is_not(None),
        "ended": and_(r.end_confirmed_at.is_(None), r.ended_at.is_not(None)),
        "start-confirmed": and_(r.ended_at.is_(None), r.start_confirmed_at.is_not(None)),
        "started": and_(r.start_confirmed_at.is_(None), r.started_at.is_not(None)),
        "planned": r.started_at.is_(None),
    }[state]


def _request_page(request_id: int, error: str | None = None, fields: tuple[str, ...] = ()) -> str:
    session, now = db_session(), utcnow()
    entry = access.get(session, staff(), ServiceRequest, request_id)
    zone = entry.organisation.timezone
    return render_template(
        "console/service/request.html",
        entry=entry,
        zone=zone,
        deadline=responses.response_deadline(entry, now),
        sessions=entries.sessions_of_request(session, entry),
        now=now,
        now_input=local_input(now, zone),
        error=error,
        fields=fields,
    )


@bp.get("/service/requests/<int:request_id>")
def service_request(request_id: int) -> str:
    return _request_page(request_id)


def _act(request_id: int, do: Any, anchor: str) -> Any:
    actor = require(Permission.SERVICE_MANAGE)
    try:
        do(actor)
    except REFUSED as error:
        sentence, status, fields = refusal(error)
        return _request_page(request_id, sentence, tuple(fields)), status
    return redirect(url_for("console.service_request", request_id=request_id) + anchor)


@bp.post("/service/requests/<int:request_id>/respond")
def service_request_respond(request_id: int) -> BaseResponse | Any:
    """The vendor's answer (a call back, an e-mail), at a time typed in the
    organisation's zone (default now): it meets the 24-hour deadline."""
    zone = access.get(db_session(), staff(), ServiceRequest, request_id).organisation.timezone

    def do(actor: Any) -> None:
        answer = text("response", 2000)
        if not answer:
            raise InvalidInputError("say what the response was", [{"field": "response"}])
        at = parse_local(request.form.get("at"), zone, "at")
        responses.respond(db_session(), actor, request_id, answer, at)

    return _act(request_id, do, "#response")


@bp.post("/service/requests/<int:request_id>/step/<any(start, end):step>")
def service_request_step(request_id: int, step: str) -> BaseResponse | Any:
    """The engineer records the start of the work, or its end (once every
    session for the request has ended)."""
    zone = access.get(db_session(), staff(), ServiceRequest, request_id).organisation.timezone

    def do(actor: Any) -> None:
        at = parse_local(request.form.get("at"), zone, "at")
        if at is not None:
            responses.check_time(at, utcnow(), field="at")
        entries.advance(db_session(), actor, ServiceRequest, request_id, step, at=at)

    return _act(request_id, do, "#steps")

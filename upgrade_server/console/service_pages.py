"""The console's service sessions, for every organisation: the list (by
organisation, kind, state and planned day, newest first), planning a session,
and a session's page with its steps: the engineer records the start and the
end with the outcome, the customer confirms each on the portal, a signed-off
session is corrected by a new one. Service requests are on
service_request_pages.py.

Each form calls the service record's functions with the reader as the actor
(service/sessions.py, service.py): the same checks, the same audit log.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import redirect, render_template, request, url_for
from sqlalchemy import ColumnElement, and_, select
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import utcnow
from upgrade_server.console.service_forms import (
    local_input,
    newest_first,
    number,
    numbers,
    parse_local,
    query_args,
    refusal,
    text,
)
from upgrade_server.console.views import bp, require, staff
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import visible_devices
from upgrade_server.errors import ConflictError, InvalidInputError
from upgrade_server.extensions import session as db_session
from upgrade_server.organisations.models import Organisation
from upgrade_server.releases.models import Release, ReleaseStatus
from upgrade_server.schemas import DEFAULT_ZONE
from upgrade_server.service import access, contacts, responses
from upgrade_server.service import service as entries
from upgrade_server.service import sessions as service_sessions
from upgrade_server.service.blueprint import send_attachment
from upgrade_server.service.models import (
    RELEASE_KINDS,
    Mode,
    ServiceRequest,
    ServiceSession,
    SessionKind,
)

REFUSED = (InvalidInputError, ConflictError)
STATES = ("planned", "started", "start-confirmed", "ended", "signed-off", "cancelled")
# The fields a session's page changes until it is signed off, and a correction after.
EDITABLE = ("engineers", "customer_representative", "notes", "findings", "suggestions", "outcome")


def state_clause(state: str) -> ColumnElement[bool]:
    """The SQL condition for a session's `state` (models.Confirmed.state, with
    cancelled first), so that a filtered list pages in the database."""
    s = ServiceSession
    live = s.cancelled_at.is_(None)
    return {
        "cancelled": s.cancelled_at.is_not(None),
        "signed-off": and_(live, s.end_confirmed_at.is_not(None)),
        "ended": and_(live, s.end_confirmed_at.is_(None), s.ended_at.is_not(None)),
        "start-confirmed": and_(live, s.ended_at.is_(None), s.start_confirmed_at.is_not(None)),
        "started": and_(live, s.start_confirmed_at.is_(None), s.started_at.is_not(None)),
        "planned": and_(live, s.started_at.is_(None)),
    }[state]


def _day(value: str | None) -> date | None:
    """A day typed in a filter; None for anything else (or a year no plan has)."""
    try:
        day = date.fromisoformat(value or "")
    except ValueError:
        return None
    return day if 1970 <= day.year <= 9000 else None


def _organisations() -> list[Organisation]:
    return list(db_session().scalars(select(Organisation).order_by(Organisation.name)))


@bp.get("/service")
def service() -> str:
    """Sessions of every organisation, newest first, filtered; planned days are
    the chosen organisation's calendar days (else China Standard Time)."""
    args = request.args
    chosen: dict[str, Any] = {
        "organisation_id": number(args.get("organisation_id")),
        "kind": args.get("kind") if args.get("kind") in {k.value for k in SessionKind} else None,
        "state": args.get("state") if args.get("state") in STATES else None,
        "planned_from": _day(args.get("planned_from")),
        "planned_to": _day(args.get("planned_to")),
    }
    session = db_session()
    stmt = access.visible(staff(), ServiceSession)
    zone = DEFAULT_ZONE
    if chosen["organisation_id"]:
        stmt = stmt.where(ServiceSession.organisation_id == chosen["organisation_id"])
        org = session.get(Organisation, chosen["organisation_id"])
        zone = org.timezone if org else zone
    if chosen["kind"]:
        stmt = stmt.where(ServiceSession.kind == chosen["kind"])
    if chosen["state"]:
        stmt = stmt.where(state_clause(chosen["state"]))
    if chosen["planned_from"]:
        start = datetime.combine(chosen["planned_from"], time(), ZoneInfo(zone))
        stmt = stmt.where(ServiceSession.planned_start >= start)
    if chosen["planned_to"]:
        end = datetime.combine(chosen["planned_to"] + timedelta(days=1), time(), ZoneInfo(zone))
        stmt = stmt.where(ServiceSession.planned_start < end)
    page = newest_first(session, stmt, ServiceSession.id, number(args.get("before")))
    return render_template(
        "console/service/sessions.html",
        page=page,
        chosen=chosen,
        organisations=_organisations(),
        kinds=[k.value for k in SessionKind],
        states=STATES,
        query_args=query_args,
    )


# --- planning ------------------------------------------------------------------------------


def _planned(organisation: Organisation) -> dict[str, Any]:
    """A new session's data from the form (times in the organisation's zone)."""
    form, zone = request.form, organisation.timezone
    days = form.get("training_days", "").strip()
    try:
        training_days = float(days) if days else None
        if training_days is not None and not math.isfinite(training_days):
            raise ValueError(days)
    except ValueError:
        raise InvalidInputError(
            "the session is invalid", [{"field": "training_days", "message": "a number"}]
        ) from None
    return {
        "organisation_id": organisation.id,
        "kind": form.get("kind", ""),
        "mode": form.get("mode") or Mode.ON_SITE.value,
        "device_ids": numbers("device_ids"),
        "release_id": number(form.get("release_id")),
        "request_id": number(form.get("request_id")),
        "engineers": [e.strip()[:200] for e in form.get("engineers", "").split(",") if e.strip()],
        "customer_representative": text("customer_representative", 200),
        "planned_start": parse_local(form.get("planned_start"), zone, "planned_start"),
        "planned_end": parse_local(form.get("planned_end"), zone, "planned_end"),
        "training_days": training_days,
        "notes": form.get("notes", "").strip()[:10_000],
    }


@bp.route("/service/sessions/new", methods=["GET", "POST"])
def service_new() -> Any:
    """Plan a session: first the organisation (its devices and representatives
    fill the form), then the rest. Support staff and administrators only."""
    actor = require(Permission.SERVICE_MANAGE)
    session = db_session()
    source = request.form if request.method == "POST" else request.args
    organisation_id = number(source.get("organisation_id"))
    organisation = session.get(Organisation, organisation_id) if organisation_id else None
    error: str | None = None
    fields: tuple[str, ...] = ()
    status = 200
    if request.method == "POST" and organisation is not None:
        try:
            entry = service_sessions.create_session(session, actor, _planned(organisation))
        except REFUSED as refused:
            error, status, found = refusal(refused)
            fields = tuple(found)
        else:
            return redirect(url_for("console.service_session", session_id=entry.id))
    devices, releases, representatives = [], [], []
    if organisation is not None:
        devices = list(
            session.scalars(
                visible_devices(actor)
                .where(Device.organisation_id == organisation.id)
                .order_by(Device.serial)
                .limit(500)
            )
        )
        # The releases of the organisation's products, newest first.
        products = {d.product_id for d in devices}
        releases = list(
            session.scalars(
                select(Release)
                .where(
                    Release.status == ReleaseStatus.PUBLISHED.value,
                    Release.product_id.in_(products),
                )
                .order_by(Release.id.desc())
                .limit(200)
            )
        )
        representatives = contacts.representatives(session, actor, organisation.id)
    return render_template(
        "console/service/plan.html",
        organisation=organisation,
        organisations=_organisations(),
        devices=devices,
        releases=releases,
        representatives=representatives,
        kinds=[k.value for k in SessionKind],
        release_kinds=sorted(k.value for k in RELEASE_KINDS),
        modes=[m.value for m in Mode],
        form=source,
        picked={str(i) for i in numbers("device_ids")} if request.method == "POST" else set(),
        error=error,
        fields=fields,
    ), status


# --- one session ---------------------------------------------------------------------------


def _session_page(session_id: int, error: str | None = None, fields: tuple[str, ...] = ()) -> str:
    session = db_session()
    entry = access.get(session, staff(), ServiceSession, session_id)
    zone = entry.organisation.timezone
    corrections = session.scalars(
        select(ServiceSession)
        .where(ServiceSession.corrects_id == entry.id)
        .order_by(ServiceSession.id)
    )
    steps = [
        ("planned", entry.created_at, entry.created_by),
        ("started", entry.started_at, entry.started_by),
        ("start-confirmed", entry.start_confirmed_at, entry.start_confirmed_by),
        ("ended", entry.ended_at, entry.ended_by),
        ("signed-off", entry.end_confirmed_at, entry.end_confirmed_by),
    ]
    if entry.cancelled_at is not None:
        steps.append(("cancelled", entry.cancelled_at, entry.cancelled_by))
    return render_template(
        "console/service/session.html",
        entry=entry,
        zone=zone,
        steps=steps,
        corrections=list(corrections),
        request_entry=session.get(ServiceRequest, entry.request_id) if entry.request_id else None,
        now_input=local_input(utcnow(), zone),
        error=error,
        fields=fields,
    )


@bp.get("/service/sessions/<int:session_id>")
def service_session(session_id: int) -> str:
    return _session_page(session_id)


def _act(session_id: int, do: Any, anchor: str = "") -> Any:
    """Do a session's step as the reader; a refusal shows the session with the
    reason, else back to it."""
    actor = require(Permission.SERVICE_MANAGE)
    try:
        target = do(actor)
    except REFUSED as error:
        sentence, status, fields = refusal(error)
        return _session_page(session_id, sentence, tuple(fields)), status
    return redirect(url_for("console.service_session", session_id=target or session_id) + anchor)


@bp.get("/service/sessions/<int:session_id>/attachments/<sha256>")
def service_attachment(session_id: int, sha256: str) -> BaseResponse:
    """A file attached to the session (a signed form, photos), as the API sends it."""
    entry = access.get(db_session(), staff(), ServiceSession, session_id)
    return send_attachment(entry.attachments, sha256, f"session {session_id}")


@bp.post("/service/sessions/<int:session_id>/step/<any(start, end):step>")
def service_step(session_id: int, step: str) -> BaseResponse | Any:
    """The engineer records the start, or the end with the outcome, at a time
    typed in the organisation's zone (default now; never later than now)."""
    entry = access.get(db_session(), staff(), ServiceSession, session_id)
    zone = entry.organisation.timezone

    def do(actor: Any) -> None:
        at = parse_local(request.form.get("at"), zone, "at")
        if at is not None:
            responses.check_time(at, utcnow(), field="at")
        outcome = text("outcome", 2000) if step == "end" else None
        entries.advance(
            db_session(), actor, ServiceSession, session_id, step, at=at, outcome=outcome or None
        )

    return _act(session_id, do, "#steps")


@bp.post("/service/sessions/<int:session_id>/cancel")
def service_cancel(session_id: int) -> BaseResponse | Any:
    def do(actor: Any) -> None:
        reason = text("reason", 2000)
        if not reason:
            raise InvalidInputError("a reason is required", [{"field": "reason", "message": ""}])
        service_sessions.cancel_session(db_session(), actor, session_id, reason)

    return _act(session_id, do)


def _changes() -> dict[str, Any]:
    form = request.form
    changes: dict[str, Any] = {
        name: form.get(name, "").strip()[: 2000 if name == "outcome" else 10_000]
        for name in EDITABLE
        if name != "engineers"
    }
    changes["customer_representative"] = changes["customer_representative"][:200]
    changes["engineers"] = [
        e.strip()[:200] for e in form.get("engineers", "").split(",") if e.strip()
    ]
    return changes


@bp.post("/service/sessions/<int:session_id>/update")
def service_update(session_id: int) -> BaseResponse | Any:
    """Change what an open session says (it is signed off: record a correction)."""

    def do(actor: Any) -> None:
        service_sessions.update_session(db_session(), actor, session_id, _changes())

    return _act(session_id, do, "#record")


@bp.post("/service/sessions/<int:session_id>/correct")
def service_correct(session_id: int) -> BaseResponse | Any:
    """A new session correcting a signed-off one, which stays as it was."""

    def do(actor: Any) -> int:
        return service_sessions.correct_session(db_session(), actor, session_id, _changes()).id

    return _act(session_id, do)

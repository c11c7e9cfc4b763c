"""Sessions and service requests, confirmed by both sides: reading them, and
the confirmation steps. Sessions are recorded in sessions.py, requests opened
in service_requests.py, the service record built in record.py (reminders are
in reminders.py).

The confirmation state machine (the same for sessions and requests):
planned → started (the engineer records the start) → start-confirmed (a
customer user confirms it) → ended (the engineer records the end) →
signed-off (a customer user confirms the end). A signed-off entry never
changes; a correction is a new session pointing at it.

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError,
ConflictError.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server import events
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import local_day, utcnow
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import visible_devices
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.service import responses
from upgrade_server.service.access import get, visible
from upgrade_server.service.models import (
    Confirmed,
    ServiceRequest,
    ServiceSession,
    SessionKind,
)

TRAINING_DAYS_PER_DELIVERY = 3.0

Entry = TypeVar("Entry", ServiceSession, ServiceRequest)


# --- reading (who reads which entries: access.py) -------------------------------


def listing(
    session: Session,
    actor: Principal,
    model: type[Entry],
    organisation_id: int | None = None,
    state: str | None = None,
) -> list[Entry]:
    stmt = visible(actor, model)
    if organisation_id is not None:
        stmt = stmt.where(model.organisation_id == organisation_id)
    found = list(session.scalars(stmt.order_by(model.id.desc()).limit(1000)))
    return [e for e in found if state is None or e.state == state]


# --- shared by sessions and requests --------------------------------------------------


def _devices(
    session: Session, actor: Principal, organisation_id: int, ids: list[int]
) -> list[Device]:
    found = list(session.scalars(visible_devices(actor).where(Device.id.in_(ids)))) if ids else []
    if len(found) != len(set(ids)) or any(d.organisation_id != organisation_id for d in found):
        raise InvalidInputError(
            "the devices are invalid",
            [{"field": "device_ids", "message": "devices of the session's organisation"}],
        )
    return found


def check_open(entry: Confirmed) -> None:
    """Raise ConflictError when the entry is signed off."""
    _not_signed_off(entry)


def local_time(at: datetime, zone: str) -> str:
    """A UTC time as the organisation reads it: 2026-11-25 09:30 (Asia/Shanghai)."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def _not_signed_off(entry: Confirmed) -> None:
    if entry.signed_off:
        raise ConflictError("signed off by both sides: it no longer changes; record a correction")
    if entry.state == "cancelled":
        raise ConflictError("the session was cancelled: it no longer changes")


# --- both sides confirm ------------------------------------------------------------------

_NEXT = {
    "start": ("planned", Permission.SERVICE_MANAGE),
    "confirm-start": ("started", Permission.SERVICE_CONFIRM),
    "end": ("start-confirmed", Permission.SERVICE_MANAGE),
    "confirm-end": ("ended", Permission.SERVICE_CONFIRM),
}


def advance(
    session: Session,
    actor: Principal,
    model: type[Entry],
    entry_id: int,
    step: str,
    at: datetime | None = None,
    outcome: str | None = None,
) -> Entry:
    """One step of the confirmation state machine. The engineer records the
    start and the end (`at`, default now); a customer user of the entry's
    organisation confirms each."""
    if step not in _NEXT:
        raise NotFoundError(f"no step {step}")
    entry = get(session, actor, model, entry_id)
    _not_signed_off(entry)
    expected, permission = _NEXT[step]
    if not actor.may(permission):
        who = "the customer" if permission is Permission.SERVICE_CONFIRM else "the vendor"
        raise PermissionDeniedError(f"{step} is for {who} to do")
    if entry.state != expected:
        raise ConflictError(f"{step} needs the entry {expected}; it is {entry.state}")
    if isinstance(entry, ServiceRequest) and step in ("end", "confirm-end"):
        _sessions_done(session, entry, step)
    now = utcnow()
    before = entry.audit_view()
    if step == "start":
        entry.started_at, entry.started_by = at or now, actor.label
        if isinstance(entry, ServiceRequest):
            responses.mark_responded(entry, entry.started_at, actor.label)
            responses.record_breaches(session, [entry], now)  # answered late: kept
    elif step == "confirm-start":
        entry.start_confirmed_at, entry.start_confirmed_by = now, actor.label
    elif step == "end":
        ended = at or now
        assert entry.started_at is not None
        if ended < entry.started_at:
            raise InvalidInputError("the end is before the start", [{"field": "at", "message": ""}])
        entry.ended_at, entry.ended_by = ended, actor.label
        if outcome is not None and isinstance(entry, ServiceSession):
            entry.outcome = outcome
    else:
        entry.end_confirmed_at, entry.end_confirmed_by = now, actor.label
        if isinstance(entry, ServiceSession) and entry.kind == SessionKind.ACCEPTANCE:
            _accept(session, actor, entry)
    session.flush()
    record_change(
        session,
        actor,
        f"service.{noun(entry)}.{step}",
        entry,
        before,
        organisation_id=entry.organisation_id,
    )
    if isinstance(entry, ServiceRequest):
        responses.record_breaches(session, [entry], now)
    return entry


def _sessions_done(session: Session, request: ServiceRequest, step: str) -> None:
    """The vendor ends a request once every session that serves it has ended;
    the customer signs it off once they are all signed off. Raise
    ConflictError naming the ones still open."""
    done = ("ended", "signed-off", "cancelled") if step == "end" else ("signed-off", "cancelled")
    open_ones = [s for s in sessions_of_request(session, request) if s.state not in done]
    if open_ones:
        names = ", ".join(f"session {s.id} ({s.kind}) is {s.state}" for s in open_ones)
        raise ConflictError(
            f"{step} of request {request.id} waits for its sessions: {names}",
            sessions=[{"id": s.id, "kind": s.kind, "state": s.state} for s in open_ones],
        )


def _accept(session: Session, actor: Principal, entry: ServiceSession) -> None:
    """A signed-off acceptance: the devices were accepted on the day it ended
    (the organisation's calendar), which starts their coverage."""
    assert entry.ended_at is not None
    accepted = local_day(entry.ended_at, entry.organisation.timezone)
    for device in entry.devices:
        before = device.audit_view()
        device.accepted_on = accepted
        if device.delivered_on is None or device.delivered_on > accepted:
            device.delivered_on = device.delivered_on or accepted
        session.flush()
        record_change(
            session, actor, "device.accept", device, before, organisation_id=device.organisation_id
        )
    events.devices_changed.send(session, devices=list(entry.devices))


# --- requests ---------------------------------------------------------------------------


def sessions_of_request(session: Session, request: ServiceRequest) -> list[ServiceSession]:
    return list(
        session.scalars(
            select(ServiceSession)
            .where(ServiceSession.request_id == request.id)
            .order_by(ServiceSession.id)
        )
    )


# --- naming -------------------------------------------------------------------------------


def noun(entry: ServiceSession | ServiceRequest) -> str:
    return "session" if isinstance(entry, ServiceSession) else "request"

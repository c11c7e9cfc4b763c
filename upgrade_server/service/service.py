"""Sessions and service requests, confirmed by both sides; the service
record (reminders are in reminders.py).

The confirmation state machine (the same for sessions and requests):
planned → started (the engineer records the start) → start-confirmed (a
customer user confirms it) → ended (the engineer records the end) →
signed-off (a customer user confirms the end). A signed-off entry never
changes; a correction is a new session pointing at it.

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError,
ConflictError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import local_day, utcnow
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import visible_devices
from upgrade_server.entitlements import service as entitlements
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.releases.models import Release
from upgrade_server.service import notices, responses
from upgrade_server.service.models import (
    RELEASE_KINDS,
    Confirmed,
    Mode,
    PreInstallationNotice,
    ServiceRequest,
    ServiceSession,
    SessionKind,
)
from upgrade_server.updates.models import InstallEvent

TRAINING_DAYS_PER_DELIVERY = 3.0
_SESSION_FIELDS = (
    "mode",
    "engineers",
    "customer_representative",
    "planned_start",
    "planned_end",
    "training_days",
    "delivery",
    "notes",
    "findings",
    "suggestions",
    "outcome",
)

Entry = TypeVar("Entry", ServiceSession, ServiceRequest)


def _require(actor: Principal, permission: Permission, what: str) -> None:
    if not actor.may(permission):
        raise PermissionDeniedError(f"you may not {what}")


# --- reading --------------------------------------------------------------------


def visible(actor: Principal, model: type[Entry]) -> Select[Entry]:
    stmt = select(model)
    if not actor.is_vendor:
        stmt = stmt.where(model.organisation_id == actor.organisation_id)
    return stmt


def get(session: Session, actor: Principal, model: type[Entry], entry_id: int) -> Entry:
    found = session.scalars(visible(actor, model).where(model.id == entry_id)).first()
    if found is None:
        kind = "session" if model is ServiceSession else "service request"
        raise NotFoundError(f"no {kind} {entry_id}")
    return found


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


# --- sessions -------------------------------------------------------------------------


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


def create_session(
    session: Session, actor: Principal, data: dict[str, Any], corrects: ServiceSession | None = None
) -> ServiceSession:
    _require(actor, Permission.SERVICE_MANAGE, "plan service sessions")
    errors: list[dict[str, Any]] = []
    try:
        kind = SessionKind(data["kind"])
        mode = Mode(data.get("mode") or Mode.ON_SITE)
    except ValueError as exc:
        raise InvalidInputError(
            "the session is invalid", [{"field": "kind", "message": str(exc)}]
        ) from exc
    organisation = session.get(Organisation, data["organisation_id"])
    if organisation is None:
        raise InvalidInputError(
            "the session is invalid", [{"field": "organisation_id", "message": "no such one"}]
        )
    devices = _devices(session, actor, organisation.id, list(data.get("device_ids") or []))
    release = None
    if data.get("release_id") is not None:
        release = session.get(Release, data["release_id"])
        if release is None:
            errors.append({"field": "release_id", "message": "no such release"})
    elif kind in RELEASE_KINDS:
        errors.append({"field": "release_id", "message": f"a {kind} session names its release"})
    if kind is SessionKind.ACCEPTANCE and not devices:
        errors.append({"field": "device_ids", "message": "the devices it accepts"})
    if kind is SessionKind.TRAINING:
        days = data.get("training_days")
        if days is None or not 0 < days <= TRAINING_DAYS_PER_DELIVERY * 10:
            errors.append({"field": "training_days", "message": "the days of training given"})
    request = None
    if data.get("request_id") is not None:
        request = session.get(ServiceRequest, data["request_id"])
        if request is None or request.organisation_id != organisation.id:
            errors.append({"field": "request_id", "message": "a request of this organisation"})
    if errors:
        raise InvalidInputError("the session is invalid", errors)
    if request is not None and not request.signed_off:
        responses.mark_responded(request, utcnow(), actor.label)
    entry = ServiceSession(
        organisation_id=organisation.id,
        kind=kind.value,
        mode=mode.value,
        release_id=release.id if release else None,
        request_id=request.id if request else None,
        corrects_id=corrects.id if corrects else None,
        devices=devices,
        created_by=actor.label,
        **{
            name: data[name]
            for name in _SESSION_FIELDS
            if name != "mode" and data.get(name) is not None
        },
    )
    if kind is SessionKind.TRAINING and not entry.delivery:
        delivered = [d.delivered_on for d in devices if d.delivered_on]
        entry.delivery = min(delivered).isoformat() if delivered else "unspecified"
    session.add(entry)
    session.flush()
    action = "service.session.correct" if corrects else "service.session.create"
    record_change(session, actor, action, entry, None, organisation_id=organisation.id)
    return entry


def update_session(
    session: Session, actor: Principal, session_id: int, changes: dict[str, Any]
) -> ServiceSession:
    _require(actor, Permission.SERVICE_MANAGE, "change service sessions")
    entry = get(session, actor, ServiceSession, session_id)
    _not_signed_off(entry)
    before = entry.audit_view()
    for name in _SESSION_FIELDS:
        if name in changes:
            setattr(entry, name, changes[name])
    session.flush()
    record_change(
        session,
        actor,
        "service.session.update",
        entry,
        before,
        organisation_id=entry.organisation_id,
    )
    return entry


def correct_session(
    session: Session, actor: Principal, session_id: int, changes: dict[str, Any]
) -> ServiceSession:
    """A new session correcting a signed-off one (which stays as it was)."""
    original = get(session, actor, ServiceSession, session_id)
    if not original.signed_off:
        raise ConflictError("only a signed-off session is corrected; change this one instead")
    data = {
        "kind": original.kind,
        "organisation_id": original.organisation_id,
        "device_ids": [d.id for d in original.devices],
        "release_id": original.release_id,
        "request_id": original.request_id,
        **{name: getattr(original, name) for name in _SESSION_FIELDS},
        **{k: v for k, v in changes.items() if k in _SESSION_FIELDS},
    }
    return create_session(session, actor, data, corrects=original)


def check_open(entry: Confirmed) -> None:
    """Raise ConflictError when the entry is signed off."""
    _not_signed_off(entry)


def add_attachment(
    session: Session, actor: Principal, entry: ServiceSession, attachment: dict[str, Any]
) -> None:
    """Record a file already in the artifact store on an open session."""
    _require(actor, Permission.SERVICE_MANAGE, "attach files to sessions")
    _not_signed_off(entry)
    before = entry.audit_view()
    entry.attachments = [
        *[a for a in entry.attachments if a["sha256"] != attachment["sha256"]],
        attachment,
    ]
    session.flush()
    record_change(
        session,
        actor,
        "service.session.attach",
        entry,
        before,
        organisation_id=entry.organisation_id,
    )


def record_rows(entries: list[RecordEntry], zone: str) -> list[dict[str, Any]]:
    """The record as flat rows, times in the organisation's zone (API, CSV, PDF, CLI)."""
    return [
        {
            "at": local_time(e.at, zone),
            "kind": e.kind,
            "title": e.title,
            "state": e.state,
            "devices": " ".join(e.devices),
            "detail": e.detail,
            "ref": e.ref,
        }
        for e in entries
    ]


def local_time(at: datetime, zone: str) -> str:
    """A UTC time as the organisation reads it: 2026-11-25 09:30 (Asia/Shanghai)."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def _not_signed_off(entry: Confirmed) -> None:
    if entry.signed_off:
        raise ConflictError("signed off by both sides: it no longer changes; record a correction")
    if entry.state == "cancelled":
        raise ConflictError("the session was cancelled: it no longer changes")


def cancel_session(
    session: Session, actor: Principal, session_id: int, reason: str
) -> ServiceSession:
    """Call off a session that has not started (a planned visit that will not
    take place): it stays in the record as cancelled, with the reason, and no
    longer holds up the request it was planned for."""
    _require(actor, Permission.SERVICE_MANAGE, "cancel service sessions")
    entry = get(session, actor, ServiceSession, session_id)
    _not_signed_off(entry)
    if entry.state != "planned":
        raise ConflictError(
            f"only a planned session is cancelled; this one is {entry.state}: record its end"
        )
    before = entry.audit_view()
    entry.cancelled_at, entry.cancelled_by, entry.cancel_reason = utcnow(), actor.label, reason
    session.flush()
    record_change(
        session,
        actor,
        "service.session.cancel",
        entry,
        before,
        organisation_id=entry.organisation_id,
    )
    return entry


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
    entitlements.refresh(session, list(entry.devices))


# --- requests ---------------------------------------------------------------------------


def open_request(
    session: Session, actor: Principal, data: dict[str, Any], via: str
) -> ServiceRequest:
    """A customer opens a request (portal, API); a vendor engineer opens one
    for a customer's phone call."""
    _require(actor, Permission.SERVICE_REQUEST, "open service requests")
    organisation_id = data.get("organisation_id") if actor.is_vendor else actor.organisation_id
    if organisation_id is None or session.get(Organisation, organisation_id) is None:
        raise InvalidInputError(
            "the request is invalid", [{"field": "organisation_id", "message": "whose request"}]
        )
    devices = _devices(session, actor, organisation_id, list(data.get("device_ids") or []))
    now = utcnow()
    received = data.get("received_at") if actor.is_vendor else None
    if received is not None:
        responses.check_time(received, now, field="received_at")
    request = ServiceRequest(
        organisation_id=organisation_id,
        opened_at=now,
        received_at=received or now,
        title=data["title"],
        description=data.get("description", ""),
        contact=data.get("contact", ""),
        opened_via="phone" if actor.is_vendor else via,
        opened_by=actor.label,
        devices=devices,
    )
    session.add(request)
    session.flush()
    record_change(
        session, actor, "service.request.open", request, None, organisation_id=organisation_id
    )
    return request


def sessions_of_request(session: Session, request: ServiceRequest) -> list[ServiceSession]:
    return list(
        session.scalars(
            select(ServiceSession)
            .where(ServiceSession.request_id == request.id)
            .order_by(ServiceSession.id)
        )
    )


def waited(request: ServiceRequest) -> timedelta | None:
    """From the request's receipt to the start of work."""
    return request.started_at - request.received_at if request.started_at else None


# --- the record ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordEntry:
    at: datetime
    kind: str  # install, session, request, notice, warning
    title: str
    detail: str
    state: str
    devices: tuple[str, ...]
    ref: str


def service_record(
    session: Session,
    actor: Principal,
    *,
    device_id: int | None = None,
    organisation_id: int | None = None,
) -> tuple[Organisation, list[RecordEntry]]:
    """The install log and the sessions and requests, oldest first, for one
    device or one organisation."""
    if device_id is not None:
        device = session.scalars(visible_devices(actor).where(Device.id == device_id)).first()
        if device is None:
            raise NotFoundError(f"no device {device_id}")
        organisation = device.organisation
        device_ids = [device.id]
    else:
        organisation_found = session.get(Organisation, organisation_id)
        if organisation_found is None or not actor.sees_organisation(organisation_id):
            raise NotFoundError(f"no organisation {organisation_id}")
        organisation = organisation_found
        device_ids = list(
            session.scalars(select(Device.id).where(Device.organisation_id == organisation.id))
        )
    serials: dict[int, str] = {
        row.id: row.serial
        for row in session.execute(
            select(Device.id, Device.serial).where(Device.id.in_(device_ids))
        )
    }
    entries: list[RecordEntry] = []
    for event in session.scalars(
        select(InstallEvent).where(InstallEvent.device_id.in_(device_ids))
    ):
        detail = " ".join(filter(None, [event.error_code, event.error_text]))
        entries.append(
            RecordEntry(
                event.occurred_at,
                "install",
                f"{event.version} {event.status}",
                detail,
                event.status,
                (serials[event.device_id],),
                f"install:{event.id}",
            )
        )
    wanted = set(device_ids)
    for entry in session.scalars(
        select(ServiceSession).where(ServiceSession.organisation_id == organisation.id)
    ):
        ids = {d.id for d in entry.devices}
        if device_id is not None and not ids & wanted:
            continue
        title = entry.kind + (f" {entry.release.version}" if entry.release else "")
        if entry.corrects_id:
            title += f" (corrects session {entry.corrects_id})"
        entries.append(
            RecordEntry(
                entry.started_at or entry.planned_start or entry.created_at,
                "session",
                title,
                " ".join(filter(None, [entry.outcome, entry.notes])),
                entry.state,
                tuple(d.serial for d in entry.devices),
                f"session:{entry.id}",
            )
        )
    for request in session.scalars(
        select(ServiceRequest).where(ServiceRequest.organisation_id == organisation.id)
    ):
        ids = {d.id for d in request.devices}
        if device_id is not None and not ids & wanted:
            continue
        entries.append(
            RecordEntry(
                request.opened_at,
                "request",
                request.title,
                request.description,
                request.state,
                tuple(d.serial for d in request.devices),
                f"request:{request.id}",
            )
        )
    entries.extend(_notice_entries(session, organisation, device_id, wanted))
    entries.sort(key=lambda e: (e.at, e.ref))
    return organisation, entries


def _notice_entries(
    session: Session, organisation: Organisation, device_id: int | None, wanted: set[int]
) -> list[RecordEntry]:
    """Pre-installation notices, and a warning at the delivery of each device
    that had none in time."""
    found = []
    for notice in session.scalars(
        select(PreInstallationNotice).where(
            PreInstallationNotice.organisation_id == organisation.id
        )
    ):
        if device_id is not None and not {d.id for d in notice.devices} & wanted:
            continue
        # The arrival and the site; a notice sent too late shows as the warning
        # at its devices' delivery. No code here: the portal shows the detail.
        detail = [notice.expected_on.isoformat() if notice.expected_on else "", notice.site]
        found.append(
            RecordEntry(
                notice.sent_at,
                "notice",
                f"pre-installation notice {notice.id}",
                " · ".join(filter(None, detail)),
                notice.state,
                tuple(d.serial for d in notice.devices),
                f"notice:{notice.id}",
            )
        )
    devices = list(session.scalars(select(Device).where(Device.id.in_(wanted))))
    for missing in notices.missing_notices(session, devices):
        why = (
            "delivered without a pre-installation notice"
            if missing.problem == "none"
            else f"the pre-installation notice {missing.notice_id} was sent on"
            f" {missing.sent_on}, not before the delivery"
        )
        found.append(
            RecordEntry(
                missing.at,
                "warning",
                f"delivered {missing.device.delivered_on}",
                why,
                f"notice-{missing.problem}",
                (missing.device.serial,),
                f"warning:delivery:{missing.device.id}",
            )
        )
    return found


def noun(entry: ServiceSession | ServiceRequest) -> str:
    return "session" if isinstance(entry, ServiceSession) else "request"

"""Service sessions: planned, recorded, corrected, attached to, cancelled."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import utcnow
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.releases.models import Release
from upgrade_server.service import responses
from upgrade_server.service.access import get, require
from upgrade_server.service.models import (
    RELEASE_KINDS,
    Mode,
    ServiceRequest,
    ServiceSession,
    SessionKind,
)
from upgrade_server.service.service import (
    TRAINING_DAYS_PER_DELIVERY,
    _devices,
    _not_signed_off,
)

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


def create_session(
    session: Session, actor: Principal, data: dict[str, Any], corrects: ServiceSession | None = None
) -> ServiceSession:
    require(actor, Permission.SERVICE_MANAGE, "plan service sessions")
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
        responses.record_breaches(session, [request], utcnow())  # answered late: kept
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
    require(actor, Permission.SERVICE_MANAGE, "change service sessions")
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


def add_attachment(
    session: Session, actor: Principal, entry: ServiceSession, attachment: dict[str, Any]
) -> None:
    """Record a file already in the artifact store on an open session."""
    require(actor, Permission.SERVICE_MANAGE, "attach files to sessions")
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


def cancel_session(
    session: Session, actor: Principal, session_id: int, reason: str
) -> ServiceSession:
    """Call off a session that has not started (a planned visit that will not
    take place): it stays in the record as cancelled, with the reason, and no
    longer holds up the request it was planned for."""
    require(actor, Permission.SERVICE_MANAGE, "cancel service sessions")
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

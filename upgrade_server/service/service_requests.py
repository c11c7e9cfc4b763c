"""Service requests: opened by a customer or by vendor staff, worked by sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import utcnow
from upgrade_server.errors import (
    InvalidInputError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.service import responses
from upgrade_server.service.access import require
from upgrade_server.service.models import (
    ServiceRequest,
)
from upgrade_server.service.service import _devices


def open_request(
    session: Session, actor: Principal, data: dict[str, Any], via: str
) -> ServiceRequest:
    """A customer opens a request (portal, API); a vendor engineer opens one
    for a customer's phone call."""
    require(actor, Permission.SERVICE_REQUEST, "open service requests")
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


def waited(request: ServiceRequest) -> timedelta | None:
    """From the request's receipt to the start of work."""
    return request.started_at - request.received_at if request.started_at else None

"""Who reads which entries of the service record: the vendor every
organisation's, a customer its own. The modules of the service record build
on these (service.py offers them to the rest of the server).

Errors raised: NotFoundError, PermissionDeniedError.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.errors import NotFoundError, PermissionDeniedError
from upgrade_server.service.models import PreInstallationNotice, ServiceRequest, ServiceSession

# An organisation's entries of the service record.
Owned = TypeVar("Owned", ServiceSession, ServiceRequest, PreInstallationNotice)
_NOUNS = {ServiceSession: "session", ServiceRequest: "service request"}


def require(actor: Principal, permission: Permission, what: str) -> None:
    if not actor.may(permission):
        raise PermissionDeniedError(f"you may not {what}")


def visible(actor: Principal, model: type[Owned]) -> Select[Owned]:
    stmt = select(model)
    if not actor.is_vendor:
        stmt = stmt.where(model.organisation_id == actor.organisation_id)
    return stmt


def get(session: Session, actor: Principal, model: type[Owned], entry_id: int) -> Owned:
    found = session.scalars(visible(actor, model).where(model.id == entry_id)).first()
    if found is None:
        kind = _NOUNS.get(model, "pre-installation notice")
        raise NotFoundError(f"no {kind} {entry_id}")
    return found

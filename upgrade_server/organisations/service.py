"""Organisations. Errors raised: InvalidInputError, NotFoundError, ConflictError,
PermissionDeniedError."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from upgrade_server import events
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.database import flush_unique
from upgrade_server.errors import (
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.organisations.models import Organisation, Region

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError(
            "unknown time zone", [{"field": "timezone", "message": f"{name!r} is not an IANA zone"}]
        ) from exc
    return name


def check_slug(slug: str) -> str:
    if not _SLUG.match(slug):
        raise InvalidInputError(
            "bad slug",
            [{"field": "slug", "message": "lowercase letters, digits and '-', up to 64"}],
        )
    return slug


def visible_organisations(actor: Principal) -> Select[Organisation]:
    stmt = select(Organisation)
    if not actor.is_vendor:
        stmt = stmt.where(Organisation.id == actor.organisation_id)
    return stmt


def get_organisation(session: Session, actor: Principal, organisation_id: int) -> Organisation:
    org = session.execute(
        visible_organisations(actor).where(Organisation.id == organisation_id)
    ).scalar_one_or_none()
    if org is None:
        raise NotFoundError(f"no organisation {organisation_id}")
    return org


def find_by_slug(session: Session, slug: str) -> Organisation | None:
    return session.execute(
        select(Organisation).where(Organisation.slug == slug)
    ).scalar_one_or_none()


def create_organisation(
    session: Session,
    actor: Principal,
    *,
    slug: str,
    name: str,
    timezone: str = "Asia/Shanghai",
    region: str = Region.OTHER.value,
    contact_email: str | None = None,
) -> Organisation:
    if not actor.may(Permission.ORGANISATION_WRITE):
        raise PermissionDeniedError("you may not manage organisations")
    org = Organisation(
        slug=check_slug(slug),
        name=name,
        timezone=check_timezone(timezone),
        region=Region(region).value,
        contact_email=contact_email,
    )
    session.add(org)
    flush_unique(session, f"an organisation with slug {slug!r} exists")
    record_change(session, actor, "organisation.create", org, None, organisation_id=org.id)
    return org


def update_organisation(
    session: Session, actor: Principal, organisation_id: int, changes: dict[str, Any]
) -> Organisation:
    if not actor.may(Permission.ORGANISATION_WRITE):
        raise PermissionDeniedError("you may not manage organisations")
    org = get_organisation(session, actor, organisation_id)
    before = org.audit_view()
    if "timezone" in changes:
        check_timezone(changes["timezone"])
    if "region" in changes:
        changes["region"] = Region(changes["region"]).value
    for key in ("name", "timezone", "region", "contact_email"):
        if key in changes:
            setattr(org, key, changes[key])
    session.flush()
    record_change(session, actor, "organisation.update", org, before, organisation_id=org.id)
    if org.timezone != before["timezone"]:
        events.organisation_timezone_changed.send(session, organisation=org)
    return org

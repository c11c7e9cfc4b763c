"""Sites of an organisation: managed by admins, named by devices.

A device names its site (the device API and CSV import take the name); a name
the organisation has no site of yet becomes a new site with the
organisation's region and time zone, which an admin can then set.

Errors raised: InvalidInputError, NotFoundError, ConflictError,
PermissionDeniedError.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.database import flush_unique
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.organisations.models import Organisation, Region
from upgrade_server.organisations.service import check_timezone, get_organisation
from upgrade_server.sites.models import Site

MAX_NAME = 200


def _require_write(actor: Principal) -> None:
    if not actor.may(Permission.ORGANISATION_WRITE):
        raise PermissionDeniedError("you may not manage sites")


def visible_sites(actor: Principal) -> Select[Site]:
    stmt = select(Site)
    if not actor.is_vendor:
        stmt = stmt.where(Site.organisation_id == actor.organisation_id)
    return stmt


def list_sites(session: Session, actor: Principal, organisation_id: int) -> Select[Site]:
    """The organisation's sites (another customer's organisation: NotFound)."""
    get_organisation(session, actor, organisation_id)
    return visible_sites(actor).where(Site.organisation_id == organisation_id)


def get_site(session: Session, actor: Principal, site_id: int) -> Site:
    found = session.scalars(visible_sites(actor).where(Site.id == site_id)).first()
    if found is None:
        raise NotFoundError(f"no site {site_id}")
    return found


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or "\x00" in name:
        raise InvalidInputError(
            "bad site name", [{"field": "name", "message": f"1 to {MAX_NAME} characters"}]
        )
    return name


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    checked = dict(changes)
    if "name" in checked:
        checked["name"] = _check_name(checked["name"])
    if checked.get("region") is not None:
        checked["region"] = Region(checked["region"]).value
    if checked.get("timezone") is not None:
        check_timezone(checked["timezone"])
    return checked


def create_site(
    session: Session, actor: Principal, organisation_id: int, data: dict[str, Any]
) -> Site:
    """A site; region and time zone None (or left out): the organisation's."""
    _require_write(actor)
    organisation = get_organisation(session, actor, organisation_id)
    data = _checked(data)
    site = Site(
        organisation=organisation,
        name=data["name"],
        region=data.get("region"),
        timezone=data.get("timezone"),
    )
    session.add(site)
    flush_unique(session, f"the organisation has a site named {data['name']!r}")
    record_change(session, actor, "site.create", site, None, organisation_id=organisation.id)
    return site


def update_site(session: Session, actor: Principal, site_id: int, changes: dict[str, Any]) -> Site:
    """Rename a site or set its region or time zone (None: the organisation's).
    Tickets keep the region and zone they were opened with."""
    _require_write(actor)
    site = get_site(session, actor, site_id)
    before = site.audit_view()
    changes = _checked(changes)
    for key in ("name", "region", "timezone"):
        if key in changes:
            setattr(site, key, changes[key])
    flush_unique(session, f"the organisation has a site named {site.name!r}")
    record_change(session, actor, "site.update", site, before, organisation_id=site.organisation_id)
    return site


def delete_site(session: Session, actor: Principal, site_id: int) -> None:
    """Remove a site no device stands at."""
    from upgrade_server.devices.models import Device  # devices build on sites

    _require_write(actor)
    site = get_site(session, actor, site_id)
    used = session.scalar(select(func.count()).select_from(Device).where(Device.site_id == site.id))
    if used:
        raise ConflictError(f"{used} device(s) stand at site {site.name!r}: move them first")
    before = site.audit_view()
    session.delete(site)
    session.flush()
    record_change(
        session,
        actor,
        "site.delete",
        site,
        before,
        organisation_id=site.organisation_id,
        deleted=True,
    )


def site_named(
    session: Session,
    actor: Principal,
    organisation: Organisation,
    name: str,
    cache: dict[tuple[int, str], Site] | None = None,
) -> Site | None:
    """The organisation's site of that name, created (and audited) if it has
    none; None for an empty name. The device services call it for whoever may
    write devices."""
    name = name.strip()
    if not name:
        return None
    key = (organisation.id, name)
    if cache is not None and key in cache:
        return cache[key]
    site = session.scalars(
        select(Site).where(Site.organisation_id == organisation.id, Site.name == name)
    ).first()
    if site is None:
        site = Site(organisation=organisation, name=_check_name(name))
        session.add(site)
        flush_unique(session, f"the site {name!r} was created meanwhile; try again")
        record_change(session, actor, "site.create", site, None, organisation_id=organisation.id)
    if cache is not None:
        cache[key] = site
    return site

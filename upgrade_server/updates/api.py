"""Management API: the install log per device and per release, with outcomes."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, Integer, List, Nested, String
from sqlalchemy import select

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.device_edge.updates import EventOut
from upgrade_server.devices import service as devices
from upgrade_server.devices.models import Device
from upgrade_server.extensions import session
from upgrade_server.pagination import paginate
from upgrade_server.releases import service as releases
from upgrade_server.schemas import PageQuery, page_body
from upgrade_server.updates.models import InstallEvent
from upgrade_server.updates.service import release_outcomes

bp = APIBlueprint("installs", __name__, url_prefix="/api/v1", tag="Install log")


class LoggedEvent(EventOut):
    device_id = Integer()


class InstallPage(Schema):
    items = List(Nested(LoggedEvent))
    next_cursor = Integer(allow_none=True)


class ReleaseInstalls(InstallPage):
    release_id = Integer()
    version = String()
    downloads = Integer()
    outcomes = Dict(
        metadata={
            "description": "devices by latest step: installed, failed, rolled_back, in_progress"
        }
    )


@bp.get("/devices/<int:device_id>/installs")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_READ))
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(InstallPage)
def device_installs(device_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """Every install step a device reported, oldest first."""
    device = devices.get_device(session(), current_principal(), device_id)
    stmt = select(InstallEvent).where(InstallEvent.device_id == device.id)
    return page_body(paginate(session(), stmt, InstallEvent.id, query["limit"], query["after"]))


@bp.get("/releases/<int:release_id>/installs")
@bp.auth_required(token_auth, roles=roles_for(Permission.RELEASE_READ))
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(ReleaseInstalls)
def release_installs(release_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """A release's install log and outcomes (customers: their organisation's devices)."""
    actor = current_principal()
    release = releases.get_release(session(), actor, release_id)
    stmt = select(InstallEvent).where(InstallEvent.release_id == release.id)
    if not actor.is_vendor:
        stmt = stmt.join(Device, Device.id == InstallEvent.device_id).where(
            Device.organisation_id == actor.organisation_id
        )
    page = paginate(session(), stmt, InstallEvent.id, query["limit"], query["after"])
    return {
        **page_body(page),
        "release_id": release.id,
        "version": release.version,
        "downloads": release.downloads,
        "outcomes": release_outcomes(session(), [release.id])[release.id],
    }

"""Management API for devices (/api/v1/devices): staff and customer tokens."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Date, DateTime, Integer, List, Nested, String
from apiflask.validators import Length
from flask import request

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.devices import provisioning, service
from upgrade_server.devices.models import Device
from upgrade_server.errors import accepts
from upgrade_server.extensions import session
from upgrade_server.pagination import paginate
from upgrade_server.schemas import PageQuery, page_body, page_schema

bp = APIBlueprint("devices", __name__, url_prefix="/api/v1/devices", tag="Devices")


class DeviceOut(Schema):
    id = Integer()
    serial = String()
    product_id = Integer()
    product = String(attribute="product.code")
    hardware_revision = String(attribute="hardware_revision.code")
    organisation_id = Integer()
    site = String(metadata={"description": "its site's name (sites: /api/v1/sites)"})
    site_id = Integer(allow_none=True)
    site_region = String(metadata={"description": "the site's, else the organisation's"})
    site_timezone = String(metadata={"description": "the site's, else the organisation's"})
    delivered_on = Date(allow_none=True)
    accepted_on = Date(allow_none=True)
    current_version = String(allow_none=True)
    channel = String()
    last_seen_at = DateTime(allow_none=True)
    created_at = DateTime()


class ProvisionedOut(Schema):
    device = Nested(DeviceOut)
    token = String(metadata={"description": "the device's secret; shown this once"})


class ImportedDevice(Schema):
    id = Integer()
    serial = String()
    token = String()


class ImportOut(Schema):
    count = Integer()
    devices = List(Nested(ImportedDevice))


class DeviceIn(Schema):
    serial = String(required=True, validate=Length(1, 128))
    product = String(required=True, metadata={"description": "product code"})
    hardware_revision = String(required=True, metadata={"description": "revision code"})
    organisation = String(required=True, metadata={"description": "organisation slug or id"})
    site = String(
        load_default="",
        validate=Length(0, 200),
        metadata={"description": "a site's name; a new name adds a site to the organisation"},
    )
    delivered_on = String(load_default=None, allow_none=True, metadata={"format": "date"})
    accepted_on = String(load_default=None, allow_none=True, metadata={"format": "date"})
    channel = String(load_default="stable", validate=Length(1, 32))
    current_version = String(load_default=None, allow_none=True)


class DevicePatch(Schema):
    site = String(
        validate=Length(0, 200),
        metadata={"description": "a site's name; a new name adds a site, empty: none"},
    )
    hardware_revision = String()
    organisation_id = Integer()
    delivered_on = Date(allow_none=True)
    accepted_on = Date(allow_none=True)
    channel = String(validate=Length(1, 32))
    current_version = String(allow_none=True)


class DeviceQuery(PageQuery):
    organisation_id = Integer(load_default=None)
    product_id = Integer(load_default=None)
    hardware_revision = String(load_default=None)
    channel = String(load_default=None)
    current_version = String(load_default=None)
    serial_prefix = String(load_default=None)
    site = String(load_default=None)


DevicePage = page_schema(DeviceOut, "DevicePage")


def _provisioned(p: service.ProvisionedDevice) -> dict[str, Any]:
    return {"device": p.device, "token": p.secret}


@bp.get("")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_READ))
@bp.input(DeviceQuery, location="query", arg_name="query")
@bp.output(DevicePage)
def list_devices(query: dict[str, Any]) -> dict[str, Any]:
    """List devices the caller may see, with filters (customers: their own)."""
    limit, after = query.pop("limit"), query.pop("after")
    stmt = service.visible_devices(current_principal(), service.DeviceFilters(**query))
    return page_body(paginate(session(), stmt, Device.id, limit, after))


@bp.post("")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_WRITE))
@bp.input(DeviceIn, arg_name="data")
@bp.output(ProvisionedOut, status_code=201)
def create_device(data: dict[str, Any]) -> dict[str, Any]:
    """Provision a device; the response holds its token, shown only this once."""
    return _provisioned(provisioning.create_device(session(), current_principal(), data))


@bp.post("/import")
@accepts("text/csv")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_WRITE))
@bp.output(ImportOut, status_code=201)
@bp.doc(
    description=(
        "Send the CSV file (UTF-8) as the body with `Content-Type: text/csv`. Columns: "
        + ", ".join(provisioning.CSV_COLUMNS)
        + " (the first four are required; `channel`, one of the product's, defaults to "
        "stable). All rows are imported or none: a bad row, or a file that is not "
        "UTF-8 CSV, rejects the file with the line number and reasons. The response "
        "holds each new device's token, shown only this once."
    )
)
def import_devices() -> dict[str, Any]:
    """Provision devices in bulk from CSV."""
    provisioned = provisioning.import_devices_csv(
        session(), current_principal(), request.get_data(cache=False)
    )
    session().flush()
    return {
        "count": len(provisioned),
        "devices": [
            {"id": p.device.id, "serial": p.device.serial, "token": p.secret} for p in provisioned
        ],
    }


@bp.get("/<int:device_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_READ))
@bp.output(DeviceOut)
def get_device(device_id: int) -> Any:
    """One device; another organisation's is a 404."""
    return service.get_device(session(), current_principal(), device_id)


@bp.patch("/<int:device_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_WRITE))
@bp.input(DevicePatch, arg_name="data")
@bp.output(DeviceOut)
def update_device(device_id: int, data: dict[str, Any]) -> Any:
    """Change a device's site, revision, owner, dates, channel or version."""
    return service.update_device(session(), current_principal(), device_id, data)


@bp.post("/<int:device_id>/token")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_WRITE))
@bp.output(ProvisionedOut, status_code=201)
def rotate_token(device_id: int) -> dict[str, Any]:
    """Issue a new device token; the old one is refused from now on."""
    actor = current_principal()
    device = service.get_device(session(), actor, device_id)
    return _provisioned(service.rotate_device_token(session(), actor, device))


@bp.delete("/<int:device_id>/token")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_WRITE))
@bp.output({}, status_code=204)
def revoke_token(device_id: int) -> tuple[str, int]:
    """Revoke the device's token: the device is locked out until a new one is issued."""
    actor = current_principal()
    service.revoke_device_tokens(session(), actor, service.get_device(session(), actor, device_id))
    return "", 204

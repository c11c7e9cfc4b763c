"""The device API (/api/device/v1): what a device itself calls, with its own token."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from upgrade_server.database import writes
from upgrade_server.devices import service
from upgrade_server.devices.api import DeviceOut, ProvisionedOut
from upgrade_server.devices.auth import current_device, device_auth
from upgrade_server.extensions import session

bp = APIBlueprint("device_api", __name__, url_prefix="/api/device/v1", tag="Device API")


@bp.get("/device")
@writes
@bp.auth_required(device_auth)
@bp.output(DeviceOut)
def whoami() -> Any:
    """The calling device's own record; marks it as seen."""
    device = current_device()
    service.touch(device)
    return device


@bp.post("/token")
@bp.auth_required(device_auth)
@bp.output(ProvisionedOut, status_code=201)
def rotate_own_token() -> dict[str, Any]:
    """Rotate the calling device's token; the one used for this call stops working."""
    device = current_device()
    provisioned = service.rotate_device_token(
        session(), service.device_principal(device), device, by_device=True
    )
    return {"device": device, "token": provisioned.secret}

"""A device's own record and token on the device API (/device, /token)."""

from __future__ import annotations

from typing import Any

from upgrade_server.database import writes
from upgrade_server.device_edge.auth import current_device, device_auth
from upgrade_server.device_edge.blueprints import api
from upgrade_server.devices import service
from upgrade_server.devices.api import DeviceOut, ProvisionedOut
from upgrade_server.extensions import session


@api.get("/device")
@writes
@api.auth_required(device_auth)
@api.output(DeviceOut)
def whoami() -> Any:
    """The calling device's own record; marks it as seen."""
    device = current_device()
    service.touch(device)
    return device


@api.post("/token")
@api.auth_required(device_auth)
@api.output(ProvisionedOut, status_code=201)
def rotate_own_token() -> dict[str, Any]:
    """Rotate the calling device's token; the one used for this call stops working."""
    device = current_device()
    provisioned = service.rotate_device_token(
        session(), service.device_principal(device), device, by_device=True
    )
    return {"device": device, "token": provisioned.secret}

"""Bearer authentication for the device API (/api/device/v1): device tokens only.

The 401 it answers carries the edge's one `WWW-Authenticate` (wsgi.py).
"""

from __future__ import annotations

from apiflask import HTTPTokenAuth

from upgrade_server.devices.models import Device
from upgrade_server.devices.service import authenticate_device_token
from upgrade_server.extensions import session

device_auth = HTTPTokenAuth(
    scheme="Bearer",
    security_scheme_name="DeviceToken",
    description="The device's own token (`usd_...`), issued at provisioning.",
)


@device_auth.verify_token
def _verify(token: str) -> Device | None:
    if not token:
        return None
    return authenticate_device_token(session(), token)


def current_device() -> Device:
    device = device_auth.current_user
    assert isinstance(device, Device)
    return device

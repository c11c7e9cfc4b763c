"""A device's own coverage (GET /api/device/v1/coverage)."""

from __future__ import annotations

from typing import Any

from upgrade_server.device_edge.auth import current_device, device_auth
from upgrade_server.device_edge.blueprints import api
from upgrade_server.entitlements import service
from upgrade_server.entitlements.api import CoverageOut
from upgrade_server.extensions import session


@api.get("/coverage")
@api.auth_required(device_auth)
@api.output(CoverageOut)
def own_coverage() -> dict[str, Any]:
    """The calling device's own coverage."""
    return service.coverage_of(session(), current_device())

"""The device edge's two blueprints: the device API and the TUF repository."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import Blueprint

# Every /api/device/v1 endpoint, whichever domain serves it: one name ("device.").
api = APIBlueprint("device", __name__, url_prefix="/api/device/v1", tag="Device API")
# The repository a TUF client reads (metadata and targets), outside the OpenAPI document.
tuf = Blueprint("tuf", __name__, url_prefix="/tuf")

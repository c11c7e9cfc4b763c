"""Alarm upload (POST /api/device/v1/alarms): a device's faults open or add to tickets."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Dict, Integer, String
from apiflask.validators import Length, OneOf, Range

from upgrade_server.device_edge.auth import current_device, device_auth
from upgrade_server.device_edge.blueprints import api
from upgrade_server.extensions import current_settings, session
from upgrade_server.schemas import Timestamp
from upgrade_server.tickets import alarms as tickets_alarms


class AlarmIn(Schema):
    alarm_id = String(required=True, validate=Length(1, 64))
    event = String(load_default="raise", validate=OneOf(["raise", "clear"]))
    code = String(required=True, validate=Length(1, 64))
    level = Integer(required=True, validate=Range(1, 4))
    message = String(load_default="", validate=Length(0, 2000))
    occurred_at = Timestamp(required=True)
    details = Dict(load_default=dict)


class AlarmOut(Schema):
    ticket_id = Integer(allow_none=True)
    counted_only = String(
        allow_none=True, metadata={"description": "set when the rate limit kept no row"}
    )


@api.post("/alarms")
@api.auth_required(device_auth)
@api.input(AlarmIn, arg_name="data")
@api.output(AlarmOut, status_code=201)
@api.doc(
    responses={
        200: "a retried upload: counted once already",
        201: "recorded",
        202: "counted on its ticket only (the device uploads too fast)",
    }
)
def upload_alarm(data: dict[str, Any]) -> Any:
    """Upload an alarm, or its clearing (`event: clear`), with an id of the
    device's choosing so a retry counts once. An alarm of a code whose ticket
    is open adds to that ticket."""
    result = tickets_alarms.receive_alarm(
        session(), current_device(), data, current_settings().alarm_uploads_per_minute
    )
    body = {
        "ticket_id": result.ticket.id if result.ticket else None,
        "counted_only": None if result.stored else "rate limit: counted on the ticket",
    }
    status = 201 if result.created and result.stored else 202 if result.created else 200
    return body, status

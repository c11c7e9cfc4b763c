"""Updates on the device API: the update check (documented here, served by
wsgi.py), release notes, the artifact download and install reports."""

from __future__ import annotations

import io
from typing import Any, cast

from apiflask import Schema
from apiflask.fields import DateTime, Dict, Integer, String
from apiflask.validators import Length, OneOf
from flask import Response, current_app, request

from upgrade_server.database import read_only, writes
from upgrade_server.device_edge.auth import current_device, device_auth
from upgrade_server.device_edge.blueprints import api
from upgrade_server.device_edge.update_check import BODY, Field
from upgrade_server.device_edge.wsgi import respond
from upgrade_server.downloads import send_artifact, starts_a_download
from upgrade_server.errors import NotFoundError
from upgrade_server.extensions import session
from upgrade_server.releases.models import Release
from upgrade_server.schemas import Timestamp
from upgrade_server.updates import service
from upgrade_server.updates.models import InstallStatus


def _check_field(field: Field) -> Any:
    if not field.limit:
        return Dict(load_default=None, metadata={"description": field.description})
    return String(
        load_default=None,
        allow_none=True,
        validate=Length(1, field.limit),
        metadata={"description": field.description},
    )


# The documented body, made from the one specification the check validates by.
CheckIn = cast(
    type[Schema],
    Schema.from_dict({name: _check_field(field) for name, field in BODY.items()}, name="CheckIn"),
)


class EventIn(Schema):
    event_id = String(required=True, validate=Length(1, 64))
    status = String(required=True, validate=OneOf([s.value for s in InstallStatus]))
    release_id = Integer(load_default=None)
    version = String(load_default=None, validate=Length(1, 64))
    error_code = String(load_default=None, validate=Length(1, 64))
    error_text = String(load_default=None, validate=Length(0, 2000))
    occurred_at = Timestamp(load_default=None)


class EventOut(Schema):
    id = Integer()
    event_id = String()
    release_id = Integer(allow_none=True)
    version = String()
    status = String()
    error_code = String(allow_none=True)
    error_text = String(allow_none=True)
    occurred_at = DateTime()
    received_at = DateTime()


@api.post("/update-check")
@read_only
@api.input(CheckIn, arg_name="data", validation=False)  # documents the body
@api.doc(
    security="DeviceToken",
    responses={
        200: "the release to install now; with `newer_not_entitled` when a newer"
        " release exists that the device's coverage does not include (version,"
        " notes_url, published_at, coverage_ends_on). Without release fields:"
        " nothing to install, only that notice",
        204: "nothing to install now",
        304: "same answer as the ETag sent in If-None-Match",
        401: "no valid device token",
        422: "invalid body",
    },
)
def update_check(data: Any) -> Response:
    """What this device should install now.

    The highest published version in the device's channel (or a higher one)
    that fits its hardware, is above its version, is reachable from it (a
    stepping stone first), and that its coverage allows. Sends its version,
    hardware revision, channel and free-form attributes (kept as inventory).
    """
    # The device edge (wsgi.py) answers every update check before Flask
    # dispatches it; were this view reached, it would answer the same way.
    # (Flask's hooks may have read the body already: it is handed over again.)
    environ = {**request.environ, "wsgi.input": io.BytesIO(request.get_data())}
    status, headers, body = respond(current_app.extensions["update_check"], environ)
    return Response(body, status=status, headers=headers)


def _release_for_device(release_id: int, *, covered: bool = True) -> Release:
    """A release of this device's product and hardware; `covered`: one its
    coverage includes too (the notes of a newer release are readable: the
    update check names it when coverage does not reach it)."""
    device = current_device()
    release = session().get(Release, release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id}")
    service.may_download(device, release, covered=covered)
    return release


@api.get("/releases/<int:release_id>")
@api.auth_required(device_auth)
def notes(release_id: int) -> dict[str, Any]:
    """A release's notes, guidance, requirements and parameter changes."""
    release = _release_for_device(release_id, covered=False)
    return {
        "release_id": release.id,
        "version": release.version,
        "notes": release.notes,
        "guidance": release.guidance,
        "requirements": release.requirements,
        "parameters": release.parameters,
        "security_fix": release.security_fix,
        "min_from_version": release.min_from_version,
        "hardware_revisions": release.hardware_revisions,
    }


@api.get("/releases/<int:release_id>/artifact")
@writes
@api.auth_required(device_auth)
@api.doc(
    responses={200: "the artifact", 206: "a range of it", 302: "presigned URL", 416: "bad range"}
)
def download(release_id: int) -> Response:
    """The artifact: resumable (Range, If-Range), from disk with sendfile or via S3."""
    release = _release_for_device(release_id)
    if starts_a_download():
        service.count_download(session(), release)
    return send_artifact(release, max_age=0)


@api.post("/installs")
@api.auth_required(device_auth)
@api.input(EventIn, arg_name="data")
@api.output(EventOut, status_code=201)
def report_event(data: dict[str, Any]) -> Any:
    """Report an install step; the same event_id again is counted once (200)."""
    event, created = service.record_event(session(), current_device(), service.EventReport(**data))
    return event, 201 if created else 200

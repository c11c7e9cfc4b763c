"""Device API (/api/device/v1): update check, release notes, download, install reports."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import DateTime, Dict, Integer, String
from apiflask.validators import Length, OneOf
from flask import Response, current_app, request, send_file
from semver import Version

from upgrade_server.config import Settings
from upgrade_server.database import read_only, utcnow, writes
from upgrade_server.devices.auth import current_device, device_auth
from upgrade_server.errors import AuthenticationError, InvalidInputError, NotFoundError
from upgrade_server.extensions import session
from upgrade_server.releases.models import Release
from upgrade_server.storage import ArtifactStore
from upgrade_server.updates import hot, service
from upgrade_server.updates.models import InstallStatus
from upgrade_server.updates.reports import ReportWriter, report_values

bp = APIBlueprint("device_updates", __name__, url_prefix="/api/device/v1", tag="Device API")


class CheckIn(Schema):
    current_version = String(required=True, validate=Length(1, 64))
    hardware_revision = String(load_default=None, validate=Length(1, 64))
    channel = String(load_default=None, validate=Length(1, 32))
    attributes = Dict(load_default=None, metadata={"description": "free-form inventory"})


class EventIn(Schema):
    event_id = String(required=True, validate=Length(1, 64))
    status = String(required=True, validate=OneOf([s.value for s in InstallStatus]))
    release_id = Integer(load_default=None)
    version = String(load_default=None, validate=Length(1, 64))
    error_code = String(load_default=None, validate=Length(1, 64))
    error_text = String(load_default=None, validate=Length(0, 2000))
    occurred_at = DateTime(load_default=None)


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


def _settings() -> Settings:
    settings: Settings = current_app.config["SETTINGS"]
    return settings


def _check_input(data: Any) -> tuple[str, str | None, str | None, dict[str, Any] | None]:
    """Validate the update check's body by hand: it is the hot path."""
    errors: list[dict[str, str]] = []
    if not isinstance(data, dict):
        raise InvalidInputError(
            "the body must be a JSON object", [{"field": "", "message": "object"}]
        )
    version = data.get("current_version")
    if not isinstance(version, str) or not Version.is_valid(version):
        errors.append({"field": "current_version", "message": "a semantic version is required"})
    fields: dict[str, Any] = {}
    for name, limit in (("hardware_revision", 64), ("channel", 32)):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
            errors.append({"field": name, "message": f"a string of 1 to {limit} characters"})
        fields[name] = value
    attributes = data.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        errors.append({"field": "attributes", "message": "an object"})
    if errors:
        raise InvalidInputError("the update check is invalid", errors)
    return str(version), fields["hardware_revision"], fields["channel"], attributes


@bp.post("/update-check")
@read_only
@bp.input(CheckIn, arg_name="data", validation=False)
@bp.doc(
    security="DeviceToken",
    responses={
        200: "the release to install now",
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
    header = request.headers.get("Authorization", "")
    raw = header[7:] if header.startswith("Bearer ") else ""
    with current_app.extensions["hot_connection"]() as conn:
        device = hot.find_device(conn, raw)
        if device is None:
            raise AuthenticationError("a valid device token is required")
        version, hardware, channel_asked, attributes = _check_input(data)
        channel = channel_asked or device.channel
        settings = _settings()
        cache: hot.AnswerCache = current_app.extensions["answer_cache"]
        key = (device.product_id, device.release_generation, device.hardware, channel, version)
        answer = cache.get(key)
        if answer is None:
            answer = hot.compute_answer(
                conn, device, version, channel, settings.update_poll_seconds, bp.url_prefix or ""
            )
            cache.put(key, answer)
        inventory = dict(attributes or {})
        if hardware:
            inventory["hardware_revision"] = hardware
        values = report_values(device, utcnow(), version, channel, inventory)
        writer: ReportWriter | None = current_app.extensions.get("report_writer")
        if writer is None:
            hot.record_report(conn, device.id, values)
        else:
            writer.add(device.id, values)
    etag = f'"{answer.etag}"'
    if answer.etag in request.if_none_match:
        return Response(status=304, headers={"ETag": etag})
    if answer.body is None:
        response = Response(status=204)
    else:
        response = Response(answer.body, mimetype="application/json")
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _release_for_device(release_id: int) -> Release:
    device = current_device()
    release = session().get(Release, release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id}")
    service.may_download(device, release, service.everything_allowed)
    return release


@bp.get("/releases/<int:release_id>")
@bp.auth_required(device_auth)
def notes(release_id: int) -> dict[str, Any]:
    """A release's notes, guidance, requirements and parameter changes."""
    release = _release_for_device(release_id)
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


@bp.get("/releases/<int:release_id>/artifact")
@writes
@bp.auth_required(device_auth)
@bp.doc(
    responses={200: "the artifact", 206: "a range of it", 302: "presigned URL", 416: "bad range"}
)
def download(release_id: int) -> Response:
    """The artifact: resumable (Range, If-Range), from disk with sendfile or via S3."""
    release = _release_for_device(release_id)
    # Count a download once, not once per resumed range.
    range_header = request.headers.get("Range", "")
    if not range_header or range_header.replace(" ", "").startswith("bytes=0-"):
        service.count_download(session(), release)
    store: ArtifactStore = current_app.extensions["artifact_store"]
    url = store.download_url(
        release.artifact_sha256, _settings().download_url_seconds, release.filename
    )
    if url is not None:
        return Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
    path = store.local_path(release.artifact_sha256)
    assert path is not None
    return send_file(
        path,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=release.filename,
        etag=release.artifact_sha256,
        conditional=True,
        max_age=0,
    )


@bp.post("/installs")
@bp.auth_required(device_auth)
@bp.input(EventIn, arg_name="data")
@bp.output(EventOut, status_code=201)
def report_event(data: dict[str, Any]) -> Any:
    """Report an install step; the same event_id again is counted once (200)."""
    event, created = service.record_event(session(), current_device(), service.EventReport(**data))
    return event, 201 if created else 200

"""The service record's blueprint of the management API (/api/v1), shared by
api.py (sessions and requests), record_api.py, notices_api.py and
contacts_api.py, with what their routes have in common: who may call them and
the attachments of sessions and notices."""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from apiflask import APIBlueprint, Schema
from apiflask.fields import Integer, String
from flask import Response, request

from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.downloads import send_stored
from upgrade_server.errors import BadRequestError, NotFoundError
from upgrade_server.extensions import artifact_store

bp = APIBlueprint("service", __name__, url_prefix="/api/v1", tag="Service record")

READ = roles_for(Permission.DEVICE_READ)
MANAGE = roles_for(Permission.SERVICE_MANAGE)
CONFIRM = roles_for(Permission.SERVICE_CONFIRM)
MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
SAFE_TYPES = {"application/pdf", "image/png", "image/jpeg", "text/plain", "text/csv"}


class AttachmentOut(Schema):
    filename = String()
    sha256 = String()
    size = Integer()
    content_type = String()


def received_file() -> dict[str, Any]:
    """The request's multipart part `file`, kept in the artifact store: the
    attachment entry that names it."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadRequestError("send the file as the multipart part `file`")
    stored = artifact_store().put(cast(BinaryIO, upload.stream), max_bytes=MAX_ATTACHMENT_BYTES)
    return {
        "filename": upload.filename[:200],
        "sha256": stored.sha256,
        "size": stored.size,
        "content_type": upload.mimetype or "application/octet-stream",
    }


def send_attachment(attachments: list[dict[str, Any]], sha256: str, owner: str) -> Response:
    """One of `attachments` (of `owner`, e.g. "session 3") as a download."""
    found = next((a for a in attachments if a["sha256"] == sha256), None)
    if found is None:
        raise NotFoundError(f"no attachment {sha256} on {owner}")
    # A type the uploader named is trusted only from a short list: never HTML.
    mimetype = found["content_type"] if found["content_type"] in SAFE_TYPES else None
    return send_stored(
        found["sha256"], found["filename"], 0, mimetype or "application/octet-stream"
    )

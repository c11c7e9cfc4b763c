"""Serving an artifact over HTTP: a presigned URL where the store has one,
else the file itself (sendfile, Range, If-Range, ETag)."""

from __future__ import annotations

from flask import Response, send_file

from upgrade_server.extensions import artifact_store, current_settings
from upgrade_server.releases.models import Release


def send_artifact(release: Release, max_age: int) -> Response:
    store = artifact_store()
    url = store.download_url(
        release.artifact_sha256, current_settings().s3_presign_seconds, release.filename
    )
    if url is not None:
        return Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
    path = store.local_path(release.artifact_sha256)
    assert path is not None, "a store without presigned URLs serves local files"
    return send_file(
        path,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=release.filename,
        etag=release.artifact_sha256,
        conditional=True,
        max_age=max_age,
    )

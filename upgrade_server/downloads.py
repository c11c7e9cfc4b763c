"""Serving an artifact over HTTP: a presigned URL where the store has one,
else the file itself (sendfile, Range, If-Range, ETag)."""

from __future__ import annotations

from flask import Response, request, send_file

from upgrade_server import metrics
from upgrade_server.extensions import artifact_store, current_settings
from upgrade_server.releases.models import Release


def starts_a_download() -> bool:
    """Is this request the start of a download (a GET of the whole file or
    from its first byte), not a resumed range or a HEAD? A download is
    counted once, however many ranges it takes."""
    if request.method != "GET":
        return False
    range_header = request.headers.get("Range", "")
    return not range_header or range_header.replace(" ", "").startswith("bytes=0-")


def send_artifact(release: Release, max_age: int) -> Response:
    response = send_stored(release.artifact_sha256, release.filename, max_age)
    backend = artifact_store().name
    metrics.count_download(
        backend, response.status_code, response.content_length, release.artifact_size
    )
    return response


def send_stored(
    sha256: str, filename: str, max_age: int, mimetype: str = "application/octet-stream"
) -> Response:
    """Bytes of the artifact store as a download: a 302 to a presigned URL
    (S3), or the local file with ranges and conditional requests."""
    store = artifact_store()
    url = store.download_url(sha256, current_settings().s3_presign_seconds, filename)
    if url is not None:
        return Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
    path = store.local_path(sha256)
    assert path is not None, "a store without presigned URLs serves local files"
    return send_file(
        path,
        mimetype=mimetype,
        as_attachment=True,
        download_name=filename,
        etag=sha256,
        conditional=True,
        max_age=max_age,
    )

"""Streaming artifact uploads straight into the artifact store.

Werkzeug parses a multipart body part by part and asks the request for a file
object to write each file part into. For an endpoint that expects an artifact,
that object is the store's staging writer: the bytes are hashed and staged as
they arrive, in constant memory, without a temporary copy on the app's disk.
"""

from __future__ import annotations

from typing import IO, Any

from flask import Request, g, request

from upgrade_server.storage import ArtifactStore
from upgrade_server.transaction import on_failure


class UploadRequest(Request):
    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes] | Any:
        target: tuple[ArtifactStore, int] | None = g.get("_artifact_target")
        if target is None:
            return super()._get_file_stream(
                total_content_length, content_type, filename, content_length
            )
        store, max_bytes = target
        writer = store.writer(max_bytes)
        # Aborted if the request fails in any way before the writer is committed.
        on_failure(writer.abort)
        g.setdefault("_artifact_writers", []).append(writer)
        return writer


def stream_files_into(store: ArtifactStore, max_bytes: int) -> None:
    """Make this request's file parts stream into `store` (call before reading files)."""
    g._artifact_target = (store, max_bytes)


def upload_was_cut_short() -> bool:
    """A file part was started but the form parser dropped it: the body ended early."""
    started = g.get("_artifact_writers", [])
    return bool(started) and not any(f.stream in started for f in request.files.values())

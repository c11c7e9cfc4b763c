"""Streaming artifact uploads straight into the artifact store.

Werkzeug parses a multipart body part by part and asks the request for a file
object to write each file part into. For an endpoint that expects an artifact,
that object is the store's staging writer: the bytes are hashed and staged as
they arrive, in constant memory, without a temporary copy on the app's disk.
"""

from __future__ import annotations

from typing import IO, Any

from flask import Request, request
from werkzeug.formparser import FormDataParser, MultiPartParser

from upgrade_server.errors import BadRequestError
from upgrade_server.storage import ArtifactStore
from upgrade_server.storage.base import StagingWriter
from upgrade_server.transaction import on_failure

_BUFFER_SIZE = 1024 * 1024


class _LargeBufferFormParser(FormDataParser):
    """Werkzeug's parser reads multipart bodies 64 KiB at a time; artifacts are
    gigabytes, and 1 MiB reads cut the per-chunk Python work sixteenfold."""

    def _parse_multipart(
        self,
        stream: IO[bytes],
        mimetype: str,
        content_length: int | None,
        options: dict[str, str],
    ) -> Any:
        parser = MultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
            buffer_size=_BUFFER_SIZE,
        )
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


class UploadRequest(Request):
    form_data_parser_class = _LargeBufferFormParser

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        # Flask hides the reason outside debug mode; a client needs it.
        reason = f": {e}" if e else ""
        raise BadRequestError(f"the body is not JSON this server takes{reason}")

    # Per request, not on `g`: an app context (and so `g`) can outlive a request.
    artifact_target: tuple[ArtifactStore, int] | None = None
    artifact_writers: list[StagingWriter]

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes] | Any:
        target = self.artifact_target
        if target is None:
            return super()._get_file_stream(
                total_content_length, content_type, filename, content_length
            )
        store, max_bytes = target
        writer = store.writer(max_bytes)
        # Aborted if the request fails in any way before the writer is committed.
        on_failure(writer.abort)
        self.__dict__.setdefault("artifact_writers", []).append(writer)
        return writer


def stream_files_into(store: ArtifactStore, max_bytes: int) -> None:
    """Make this request's file parts stream into `store` (call before reading files)."""
    request.artifact_target = (store, max_bytes)  # type: ignore[attr-defined]


def upload_was_cut_short() -> bool:
    """A file part was started but the form parser dropped it: the body ended early."""
    started = request.__dict__.get("artifact_writers", [])
    return bool(started) and not any(f.stream in started for f in request.files.values())

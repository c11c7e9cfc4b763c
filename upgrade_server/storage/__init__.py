"""Artifact storage behind one interface: a local folder or an S3 bucket.

Objects are content-addressed by their SHA-256. Both backends stream in fixed
chunks, so memory does not grow with the size of an artifact, and neither ever
leaves a partial object under its final name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from upgrade_server.storage.base import ArtifactStore, DigestMismatchError, StoredObject

if TYPE_CHECKING:
    from upgrade_server.config import Settings

__all__ = ["ArtifactStore", "DigestMismatchError", "StoredObject", "make_store"]


def make_store(settings: Settings) -> ArtifactStore:
    if settings.storage_backend == "s3":
        from upgrade_server.storage.s3 import S3Store

        return S3Store.from_settings(settings)
    from upgrade_server.storage.local import LocalStore

    return LocalStore(settings.resolved_storage_path())

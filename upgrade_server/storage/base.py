from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from upgrade_server.errors import InvalidInputError, PayloadTooLargeError

CHUNK_SIZE = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class StoredObject:
    sha256: str
    size: int


class DigestMismatchError(InvalidInputError):
    """The bytes received do not have the SHA-256 the caller announced."""


def check_digest(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError(f"not a lowercase hex SHA-256: {sha256!r}")
    return sha256


class StagingWriter(ABC):
    """Receives an object's bytes in chunks, hashing them, before it has a name.

    `finish` completes the bytes in a staging area; the store's `commit` then
    gives them their final, content-addressed name, or `discard` drops them.
    Until commit, nothing is visible under a final name.
    """

    def __init__(self, max_bytes: int | None) -> None:
        self._max = max_bytes
        self._hash = hashlib.sha256()
        # The digests hawkBit's DDI clients check (SWUpdate sha1, RAUC's client
        # md5), taken in the same pass: the bytes are never read twice.
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self._max is not None and self.size > self._max:
            raise PayloadTooLargeError(f"the artifact exceeds {self._max} bytes")
        self._hash.update(data)
        self._sha1.update(data)
        self._md5.update(data)
        self._write(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        # Werkzeug rewinds a finished file part; the bytes are already staged.
        return 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def finish(self, expected_sha256: str | None = None) -> Staged:
        """Complete the staged bytes. Raises DigestMismatchError or StorageError."""
        if expected_sha256 is not None and expected_sha256 != self.sha256:
            self.abort()
            raise DigestMismatchError(
                f"received bytes have SHA-256 {self.sha256}, expected {expected_sha256}"
            )
        handle = self._finish()
        return Staged(self.sha256, self.size, handle, self._sha1.hexdigest(), self._md5.hexdigest())

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _finish(self) -> Any: ...

    @abstractmethod
    def abort(self) -> None:
        """Drop whatever was staged; safe to call more than once."""


@dataclass(frozen=True)
class Staged:
    sha256: str
    size: int
    handle: Any
    sha1: str = ""
    md5: str = ""


class ArtifactStore(ABC):
    """Where artifacts live. Implementations must be safe across processes."""

    name: str
    chunk_size: int = CHUNK_SIZE

    @abstractmethod
    def writer(self, max_bytes: int | None = None) -> StagingWriter:
        """A writer that stages a new object."""

    @abstractmethod
    def commit(self, staged: Staged) -> StoredObject:
        """Give staged bytes their final name (a no-op if already stored)."""

    @abstractmethod
    def discard(self, staged: Staged) -> None:
        """Drop staged bytes that will not be committed."""

    def put(
        self,
        stream: BinaryIO,
        *,
        expected_sha256: str | None = None,
        max_bytes: int | None = None,
    ) -> StoredObject:
        """Stream `stream` into the store under its SHA-256.

        Storing bytes that are already there is a no-op that returns the same
        object. Raises DigestMismatchError, PayloadTooLargeError or StorageError;
        after any of them nothing new is left under a final name.
        """
        writer = self.writer(max_bytes)
        try:
            while chunk := stream.read(self.chunk_size):
                writer.write(chunk)
            staged = writer.finish(expected_sha256)
        except BaseException:
            writer.abort()
            raise
        try:
            return self.commit(staged)
        except BaseException:
            self.discard(staged)
            raise

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """A readable stream of the object. Raises NotFoundError."""

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def size(self, sha256: str) -> int:
        """Raises NotFoundError."""

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the object if present."""

    def local_path(self, sha256: str) -> Path | None:
        """A file path the web server can send directly, where there is one."""
        return None

    def download_url(self, sha256: str, expires_in: int, filename: str | None = None) -> str | None:
        """A signed URL that serves the object without the app, where there is one."""
        return None

    @abstractmethod
    def check(self) -> None:
        """Raise StorageError with the reason when the store cannot be used."""

    @abstractmethod
    def clean_staging(self, older_than: timedelta) -> int:
        """Remove what puts left staged and untouched for `older_than` (nothing
        finishes a put whose worker was killed); returns how many were
        removed. A put in progress, in any process, adds bytes more often and
        is left alone. Raises StorageError."""

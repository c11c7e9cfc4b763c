from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


class HashingReader:
    """Reads a stream in chunks while computing its SHA-256 and length.

    Raises PayloadTooLargeError as soon as more than max_bytes arrive, so an
    oversized upload is refused before it fills the disk.
    """

    def __init__(self, stream: BinaryIO, max_bytes: int | None = None) -> None:
        self._stream = stream
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0

    def chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        while True:
            chunk = self._stream.read(size)
            if not chunk:
                return
            self.size += len(chunk)
            if self._max is not None and self.size > self._max:
                raise PayloadTooLargeError(f"the artifact exceeds {self._max} bytes")
            self._hash.update(chunk)
            yield chunk

    def read_exact(self, size: int) -> bytes:
        """Up to `size` bytes (fewer only at the end of the stream)."""
        parts: list[bytes] = []
        wanted = size
        while wanted > 0:
            chunk = self._stream.read(min(wanted, CHUNK_SIZE))
            if not chunk:
                break
            parts.append(chunk)
            wanted -= len(chunk)
        data = b"".join(parts)
        self.size += len(data)
        if self._max is not None and self.size > self._max:
            raise PayloadTooLargeError(f"the artifact exceeds {self._max} bytes")
        self._hash.update(data)
        return data

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def verify(self, expected_sha256: str | None) -> None:
        if expected_sha256 is not None and expected_sha256 != self.sha256:
            raise DigestMismatchError(
                f"received bytes have SHA-256 {self.sha256}, expected {expected_sha256}"
            )


class ArtifactStore(ABC):
    """Where artifacts live. Implementations must be safe across processes."""

    name: str

    @abstractmethod
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

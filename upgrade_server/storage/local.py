from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from upgrade_server.errors import NotFoundError, StorageError
from upgrade_server.storage.base import ArtifactStore, HashingReader, StoredObject, check_digest

_MIN_FREE_BYTES = 64 * 1024 * 1024


class LocalStore(ArtifactStore):
    """Objects as files under root/ab/cd/<sha256>.

    A put writes to a temporary file in root/.tmp (same file system), fsyncs it
    and renames it into place: a crash leaves at most a temporary file, which
    `clean_temporary` removes, never a partial file under a final name.
    """

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / ".tmp"

    def _path(self, sha256: str) -> Path:
        check_digest(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(
        self,
        stream: BinaryIO,
        *,
        expected_sha256: str | None = None,
        max_bytes: int | None = None,
    ) -> StoredObject:
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.tmp_dir, prefix="put-")
        except OSError as exc:
            raise StorageError(f"cannot write to the artifact folder: {exc.strerror}") from exc
        tmp = Path(tmp_name)
        try:
            reader = HashingReader(stream, max_bytes)
            with os.fdopen(fd, "wb") as out:
                for chunk in reader.chunks():
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            reader.verify(expected_sha256)
            final = self._path(reader.sha256)
            if final.exists():
                tmp.unlink()
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)  # a stored artifact never changes
                os.replace(tmp, final)
            return StoredObject(reader.sha256, reader.size)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write the artifact: {exc.strerror}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self._path(sha256).open("rb")
        except FileNotFoundError as exc:
            raise NotFoundError("no such artifact") from exc

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError as exc:
            raise NotFoundError("no such artifact") from exc

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def local_path(self, sha256: str) -> Path | None:
        return self._path(sha256)

    def check(self) -> None:
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"artifact folder {self.root} unusable: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"artifact folder {self.root} is not writable")
        free = shutil.disk_usage(self.root).free
        if free < _MIN_FREE_BYTES:
            raise StorageError(f"artifact folder {self.root} has only {free} bytes free")

    def clean_temporary(self) -> int:
        """Remove leftovers of interrupted puts; returns how many were removed."""
        if not self.tmp_dir.exists():
            return 0
        removed = 0
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

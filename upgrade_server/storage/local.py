from __future__ import annotations

import logging
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from upgrade_server.clock import utcnow
from upgrade_server.errors import NotFoundError, StorageError
from upgrade_server.storage.base import (
    ArtifactStore,
    Staged,
    StagingWriter,
    StoredObject,
    check_digest,
)

log = logging.getLogger(__name__)

_MIN_FREE_BYTES = 64 * 1024 * 1024


class _LocalWriter(StagingWriter):
    def __init__(self, tmp_dir: Path, max_bytes: int | None) -> None:
        super().__init__(max_bytes)
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        except OSError as exc:
            raise StorageError(f"cannot write to the artifact folder: {exc.strerror}") from exc
        self.path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    def _write(self, data: bytes) -> None:
        assert self._file is not None, "writer already finished"
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise StorageError(f"cannot write the artifact: {exc.strerror}") from exc

    def _finish(self) -> Path:
        assert self._file is not None, "writer already finished"
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:
            self.abort()
            raise StorageError(f"cannot write the artifact: {exc.strerror}") from exc
        self._file = None
        return self.path

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


class LocalStore(ArtifactStore):
    """Objects as files under root/ab/cd/<sha256>.

    Bytes are staged in a temporary file in root/.tmp (same file system),
    fsynced, and renamed into place on commit: a crash leaves at most a
    temporary file, which `clean_staging` removes once it is old enough, never a
    partial file under a final name.
    """

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / ".tmp"

    def _path(self, sha256: str) -> Path:
        check_digest(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def writer(self, max_bytes: int | None = None) -> StagingWriter:
        return _LocalWriter(self.tmp_dir, max_bytes)

    def commit(self, staged: Staged) -> StoredObject:
        tmp: Path = staged.handle
        final = self._path(staged.sha256)
        try:
            if final.exists():
                tmp.unlink(missing_ok=True)
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)  # a stored artifact never changes
                os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot store the artifact: {exc.strerror}") from exc
        return StoredObject(staged.sha256, staged.size)

    def discard(self, staged: Staged) -> None:
        Path(staged.handle).unlink(missing_ok=True)

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

    def clean_staging(self, older_than: timedelta) -> int:
        # A put writes its file as the bytes arrive: its time is the last byte's.
        cutoff = (utcnow() - older_than).timestamp()
        try:
            staged = list(self.tmp_dir.iterdir())
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageError(f"cannot list {self.tmp_dir}: {exc.strerror}") from exc
        removed = 0
        for path in staged:
            try:
                if path.lstat().st_mtime >= cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue  # committed, or removed by another worker's pass
            except OSError as exc:
                log.warning("cannot remove %s: %s", path, exc.strerror)
                continue
            removed += 1
        if removed:
            log.info("removed %d abandoned upload(s) from %s", removed, self.tmp_dir)
        return removed

"""The audit chain's head, anchored outside the database.

The hash chain shows an entry edited or removed in the middle, but someone who
can write the database can also cut the tail and move the head row back, or
rewrite every entry from one on and recompute the plain hashes. A checkpoint
(entries, head hash, time) kept in a file of the instance folder, and
authenticated with a key that is not in the database either, pins the chain as
it was: verification then fails unless the log still holds that many entries
and the last of them still hashes to that head.

A checkpoint is written after each commit that appended entries (by whichever
worker made it; workers of one host share the file under a lock), and only
ever moves forward: a log found shorter than its checkpoint is evidence, not a
state to record.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from upgrade_server.clock import utcnow

log = logging.getLogger(__name__)

FILE_NAME = "audit_checkpoint.json"


class CheckpointError(Exception):
    """The checkpoint file is unreadable or its MAC does not match."""


@dataclass(frozen=True)
class Checkpoint:
    entries: int
    head: str
    at: datetime


class CheckpointFile:
    """The newest checkpoint, as one JSON file with an HMAC-SHA256 of its fields."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key

    def _mac(self, entries: int, head: str, at: str) -> str:
        message = f"audit-checkpoint\n{entries}\n{head}\n{at}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def read(self) -> Checkpoint | None:
        """The checkpoint, or None if none was written yet.

        Raises CheckpointError if the file cannot be read or does not verify
        with the key (altered, or written with another key).
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"the checkpoint {self.path} cannot be read: {exc}") from exc
        try:
            fields = json.loads(raw)
            entries, head, at, mac = fields["entries"], fields["head"], fields["at"], fields["mac"]
            if not (isinstance(entries, int) and isinstance(head, str) and isinstance(at, str)):
                raise TypeError("wrong types")
            valid = isinstance(mac, str) and hmac.compare_digest(mac, self._mac(entries, head, at))
            checkpoint = Checkpoint(entries, head, datetime.fromisoformat(at))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"the checkpoint {self.path} is malformed") from exc
        if not valid:
            raise CheckpointError(
                f"the checkpoint {self.path} does not verify: altered, or written with another key"
            )
        return checkpoint

    def advance(self, entries: int, head: str) -> bool:
        """Record the chain's head if it is past the checkpoint's; True if written.

        A missing checkpoint is started; an unreadable one is left as it is
        for verification to report.
        """
        with self._locked():
            try:
                current = self.read()
            except CheckpointError:
                log.warning("audit checkpoint not advanced: it does not verify")
                return False
            if current is not None and entries <= current.entries:
                return False
            self._write(entries, head)
            return True

    def replace(self, entries: int, head: str) -> None:
        """Record this head whatever the checkpoint held (an operator's decision,
        after restoring a database backup)."""
        with self._locked():
            self._write(entries, head)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)

    def _write(self, entries: int, head: str) -> None:
        at = utcnow().isoformat()
        body = {"entries": entries, "head": head, "at": at, "mac": self._mac(entries, head, at)}
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(body, f)
                f.flush()
                # On disk before it replaces the last one: a crash leaves one of the two.
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

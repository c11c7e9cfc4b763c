"""Export of the signed metadata as static files, so idle polls never reach Python.

Every metadata file stored is also written, once its transaction commits, to
a folder any web server can serve or to the S3 bucket behind a CDN:

    <export>/<product>/metadata/timestamp.json
    <export>/<product>/metadata/<N>.root.json, <V>.<role>.json

Devices poll timestamp.json there with a conditional GET and call the update
check only when it changed (or after a long interval). Versioned files are
written before timestamp.json, so a reader never sees a timestamp whose
snapshot is not there yet.
"""

from __future__ import annotations

import logging
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from upgrade_server.signing.models import MetadataFile

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)
_PENDING = "upgrade_server.tuf_export"


class Exporter(ABC):
    @abstractmethod
    def write(self, key: str, data: bytes, *, mutable: bool) -> None:
        """Write one file; `mutable` files (timestamp.json) are replaced in place."""

    def publish(self, product: str, files: list[tuple[str, bytes]]) -> None:
        versioned = [(name, data) for name, data in files if name != "timestamp.json"]
        timestamps = [(name, data) for name, data in files if name == "timestamp.json"]
        for name, data in versioned + timestamps[-1:]:
            self.write(f"{product}/metadata/{name}", data, mutable=name == "timestamp.json")


class FolderExporter(Exporter):
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, key: str, data: bytes, *, mutable: bool) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".export-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


class S3Exporter(Exporter):
    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def write(self, key: str, data: bytes, *, mutable: bool) -> None:
        cache = "public, max-age=60" if mutable else "public, max-age=31536000, immutable"
        self.client.put_object(
            Bucket=self.bucket,
            Key=f"{self.prefix}{key}",
            Body=data,
            ContentType="application/json",
            CacheControl=cache,
        )


def file_name(row: MetadataFile) -> str:
    return "timestamp.json" if row.role == "timestamp" else f"{row.version}.{row.role}.json"


def queue(session: Session, exporter: Exporter, product_code: str, row: MetadataFile) -> None:
    """Remember a stored file; it is exported when the transaction commits."""
    session.info.setdefault(_PENDING, []).append(
        (exporter, product_code, file_name(row), row.data, row)
    )


def export_all(session: Session, exporter: Exporter, product_id: int, product_code: str) -> int:
    """Write every stored file of a product (to fill a new export location)."""
    rows = session.execute(
        select(MetadataFile)
        .where(MetadataFile.product_id == product_id)
        .order_by(MetadataFile.role == "timestamp", MetadataFile.version)
    ).scalars()
    files = [(file_name(row), row.data) for row in rows]
    exporter.publish(product_code, files)
    return len(files)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    by_target: dict[tuple[int, str], tuple[Exporter, list[tuple[str, bytes]]]] = {}
    for exporter, product, name, data, row in pending:
        if inspect(row).transient:
            continue  # inserted in a savepoint that was rolled back
        by_target.setdefault((id(exporter), product), (exporter, []))[1].append((name, data))
    for (_, product), (exporter, files) in by_target.items():
        try:
            exporter.publish(product, files)
        except Exception:
            # The database is the source of truth and `upgrade-server tuf export`
            # rewrites the export: a failed export must not fail the request.
            log.exception("exporting %s's metadata failed", product)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING, None)

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from upgrade_server.clock import utcnow
from upgrade_server.errors import NotFoundError, StorageError
from upgrade_server.storage.base import (
    ArtifactStore,
    Staged,
    StagingWriter,
    StoredObject,
    check_digest,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from upgrade_server.config import Settings

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


class _S3Writer(StagingWriter):
    """Buffers one part at a time and sends it as a multipart upload part."""

    def __init__(self, store: S3Store, max_bytes: int | None) -> None:
        super().__init__(max_bytes)
        self.store = store
        self.key = f"{store.prefix}tmp/{uuid.uuid4().hex}"
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._done = False

    def _write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self.store.part_size:
            part = bytes(self._buffer[: self.store.part_size])
            del self._buffer[: self.store.part_size]
            self._send(part)

    def _send(self, part: bytes) -> None:
        client, bucket = self.store.client, self.store.bucket
        try:
            if self._upload_id is None:
                self._upload_id = client.create_multipart_upload(Bucket=bucket, Key=self.key)[
                    "UploadId"
                ]
            number = len(self._parts) + 1
            etag = client.upload_part(
                Bucket=bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=part
            )["ETag"]
        except (BotoCoreError, ClientError) as exc:
            self.abort()
            raise StorageError(f"S3 write failed: {exc}") from exc
        self._parts.append({"PartNumber": number, "ETag": etag})

    def _finish(self) -> str:
        client, bucket = self.store.client, self.store.bucket
        try:
            if self._upload_id is None:
                # Small object: one PUT, no multipart bookkeeping.
                client.put_object(Bucket=bucket, Key=self.key, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    self._send(bytes(self._buffer))
                client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                self._upload_id = None
        except (BotoCoreError, ClientError) as exc:
            self.abort()
            raise StorageError(f"S3 write failed: {exc}") from exc
        self._buffer = bytearray()
        self._done = True
        return self.key

    def abort(self) -> None:
        client, bucket = self.store.client, self.store.bucket
        self._buffer = bytearray()
        try:
            if self._upload_id is not None:
                client.abort_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self._upload_id)
                self._upload_id = None
            if self._done:
                client.delete_object(Bucket=bucket, Key=self.key)
                self._done = False
        except (BotoCoreError, ClientError):
            pass  # clean_staging (or a lifecycle rule on <prefix>tmp/) collects it


class S3Store(ArtifactStore):
    """Objects in an S3-compatible bucket under <prefix>sha256/<sha256>.

    The SHA-256 is only known once the last byte is read, so bytes are staged
    as a multipart upload to a temporary key <prefix>tmp/<uuid>; commit copies
    them server-side to their final key and deletes the temporary one. Any
    failure aborts the upload: nothing appears under a final key until it is
    complete.
    """

    name = "s3"

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        part_size: int = 8 * _MIB,
    ) -> None:
        if part_size < 5 * _MIB:
            raise ValueError("S3 multipart parts must be at least 5 MiB")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        if not settings.s3_bucket:
            raise ValueError("S3_BUCKET must be set when UPGRADE_SERVER_STORAGE_BACKEND=s3")
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
        return cls(client, settings.s3_bucket, settings.s3_prefix, settings.s3_part_size_mb * _MIB)

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}sha256/{check_digest(sha256)}"

    def writer(self, max_bytes: int | None = None) -> StagingWriter:
        return _S3Writer(self, max_bytes)

    def commit(self, staged: Staged) -> StoredObject:
        tmp_key: str = staged.handle
        final_key = self._key(staged.sha256)
        try:
            if not self._head(final_key):
                # Managed copy: a single CopyObject below 5 GiB, multipart above.
                self.client.copy(
                    {"Bucket": self.bucket, "Key": tmp_key},
                    self.bucket,
                    final_key,
                    Config=TransferConfig(multipart_chunksize=self.part_size * 8),
                )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 write failed: {exc}") from exc
        finally:
            self.discard(staged)
        return StoredObject(staged.sha256, staged.size)

    def discard(self, staged: Staged) -> None:
        # clean_staging (or a lifecycle rule on <prefix>tmp/) removes what this misses.
        with contextlib.suppress(BotoCoreError, ClientError):
            self.client.delete_object(Bucket=self.bucket, Key=staged.handle)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def open(self, sha256: str) -> BinaryIO:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise NotFoundError("no such artifact") from exc
            raise StorageError(f"S3 read failed: {exc}") from exc
        return cast(BinaryIO, body)

    def exists(self, sha256: str) -> bool:
        try:
            return self._head(self._key(sha256)) is not None
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 unreachable: {exc}") from exc

    def size(self, sha256: str) -> int:
        try:
            head = self._head(self._key(sha256))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 unreachable: {exc}") from exc
        if head is None:
            raise NotFoundError("no such artifact")
        return int(head["ContentLength"])

    def delete(self, sha256: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 delete failed: {exc}") from exc

    def download_url(self, sha256: str, expires_in: int, filename: str | None = None) -> str | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(sha256)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return str(
            self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        )

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 bucket {self.bucket!r} unreachable: {exc}") from exc

    def clean_staging(self, older_than: timedelta) -> int:
        # Under <prefix>tmp/: multipart uploads nobody completes or aborts
        # (billed for their parts until then), and staged objects never
        # committed. A bucket lifecycle rule, where there is one, does the same.
        cutoff = utcnow() - older_than
        staging = f"{self.prefix}tmp/"
        removed = 0
        try:
            uploads = self.client.get_paginator("list_multipart_uploads")
            for page in uploads.paginate(Bucket=self.bucket, Prefix=staging):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] >= cutoff:
                        continue
                    key, upload_id = upload["Key"], upload["UploadId"]
                    try:
                        if self._last_part_at(key, upload_id) >= cutoff:
                            continue
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=key, UploadId=upload_id
                        )
                    except ClientError as exc:
                        if _code(exc) != "NoSuchUpload":
                            raise
                        continue  # completed or aborted meanwhile
                    removed += 1
            objects = self.client.get_paginator("list_objects_v2")
            for listing in objects.paginate(Bucket=self.bucket, Prefix=staging):
                for staged in listing.get("Contents", []):
                    if staged["LastModified"] < cutoff:
                        self.client.delete_object(Bucket=self.bucket, Key=staged["Key"])
                        removed += 1
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 staging cleanup failed: {exc}") from exc
        if removed:
            log.info("removed %d abandoned upload(s) under %s", removed, staging)
        return removed

    def _last_part_at(self, key: str, upload_id: str) -> datetime:
        """When an upload last received a part (an upload of gigabytes may run
        for longer than it takes a killed one to be garbage)."""
        last = datetime.min.replace(tzinfo=UTC)
        parts = self.client.get_paginator("list_parts")
        for page in parts.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
            for part in page.get("Parts", []):
                last = max(last, part["LastModified"])
        return last


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from upgrade_server.errors import NotFoundError, StorageError
from upgrade_server.storage.base import ArtifactStore, HashingReader, StoredObject, check_digest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from upgrade_server.config import Settings

_MIB = 1024 * 1024


class S3Store(ArtifactStore):
    """Objects in an S3-compatible bucket under <prefix>sha256/<sha256>.

    The SHA-256 is only known once the last byte is read, so a put streams the
    bytes as a multipart upload to a temporary key, then copies it server-side
    to its final key and deletes the temporary one. Any failure aborts the
    upload: nothing appears under a final key until it is complete.
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

    def put(
        self,
        stream: BinaryIO,
        *,
        expected_sha256: str | None = None,
        max_bytes: int | None = None,
    ) -> StoredObject:
        reader = HashingReader(stream, max_bytes)
        tmp_key = f"{self.prefix}tmp/{uuid.uuid4().hex}"
        upload_id: str | None = None
        wrote_tmp = False
        try:
            first = reader.read_exact(self.part_size)
            if len(first) < self.part_size:
                # Small object: one PUT, no multipart bookkeeping.
                self.client.put_object(Bucket=self.bucket, Key=tmp_key, Body=first)
                wrote_tmp = True
            else:
                upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=tmp_key)[
                    "UploadId"
                ]
                parts: list[CompletedPartTypeDef] = []
                chunk = first
                while chunk:
                    number = len(parts) + 1
                    etag = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=tmp_key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )["ETag"]
                    parts.append({"PartNumber": number, "ETag": etag})
                    del chunk
                    chunk = reader.read_exact(self.part_size)
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=tmp_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
                upload_id = None
                wrote_tmp = True
            reader.verify(expected_sha256)
            final_key = self._key(reader.sha256)
            if not self._head(final_key):
                # Managed copy: a single CopyObject below 5 GiB, multipart above.
                self.client.copy(
                    {"Bucket": self.bucket, "Key": tmp_key},
                    self.bucket,
                    final_key,
                    Config=TransferConfig(multipart_chunksize=self.part_size * 8),
                )
            return StoredObject(reader.sha256, reader.size)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 write failed: {exc}") from exc
        finally:
            self._cleanup(tmp_key, upload_id, wrote_tmp)

    def _cleanup(self, tmp_key: str, upload_id: str | None, wrote_tmp: bool) -> None:
        try:
            if upload_id is not None:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=tmp_key, UploadId=upload_id
                )
            if wrote_tmp:
                self.client.delete_object(Bucket=self.bucket, Key=tmp_key)
        except (BotoCoreError, ClientError):
            # A bucket lifecycle rule on <prefix>tmp/ removes what this misses.
            pass

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

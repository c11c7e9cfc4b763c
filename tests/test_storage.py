"""Artifact storage round trips on both backends, and what a failure leaves."""

from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from moto.server import ThreadedMotoServer

from tests.moto_server import s3_client
from upgrade_server.clock import utcnow
from upgrade_server.config import Settings
from upgrade_server.errors import NotFoundError, PayloadTooLargeError, StorageError
from upgrade_server.storage import DigestMismatchError, make_store
from upgrade_server.storage.local import LocalStore
from upgrade_server.storage.s3 import S3Store

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store(moto_endpoint, request) -> S3Store:
    client = s3_client(moto_endpoint)
    bucket = f"artifacts-{abs(hash(request.node.name)) % 10**8}"
    client.create_bucket(Bucket=bucket)
    return S3Store(client, bucket, prefix="fw/", part_size=5 * MIB)


@pytest.fixture
def local_store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "artifacts")


@pytest.fixture(params=["local", "s3"])
def store(request, local_store, s3_store):
    return local_store if request.param == "local" else s3_store


def _stored_keys(store) -> list[str]:
    if isinstance(store, LocalStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    listing = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


class ExplodingStream(io.RawIOBase):
    """Yields `good` bytes, then fails like a client that went away."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            raise OSError("client went away")
        n = min(len(buffer), self.left)
        buffer[:n] = b"\x5a" * n
        self.left -= n
        return n


@pytest.mark.parametrize("size", [0, 1, 3 * MIB, 12 * MIB + 7])
def test_round_trip(store, size):
    data = os.urandom(size)
    stored = store.put(io.BytesIO(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == size
    assert store.exists(stored.sha256)
    assert store.size(stored.sha256) == size
    with store.open(stored.sha256) as f:
        assert f.read() == data


def test_same_bytes_twice_is_one_object(store):
    data = b"firmware image" * 1000
    a = store.put(io.BytesIO(data))
    b = store.put(io.BytesIO(data))
    assert a == b
    assert len(_stored_keys(store)) == 1


def test_digest_mismatch_leaves_nothing(store):
    with pytest.raises(DigestMismatchError):
        store.put(io.BytesIO(b"abc" * 100), expected_sha256="0" * 64)
    assert _stored_keys(store) == []


def test_size_limit_leaves_nothing(store):
    with pytest.raises(PayloadTooLargeError):
        store.put(io.BytesIO(b"x" * (6 * MIB)), max_bytes=5 * MIB + 1)
    assert _stored_keys(store) == []


def test_client_gone_mid_upload_leaves_nothing(store):
    with pytest.raises((OSError, StorageError)):
        store.put(io.BufferedReader(ExplodingStream(11 * MIB)))
    assert _stored_keys(store) == []
    if isinstance(store, S3Store):
        uploads = store.client.list_multipart_uploads(Bucket=store.bucket)
        assert uploads.get("Uploads", []) == []


def test_missing_object(store):
    with pytest.raises(NotFoundError):
        store.size("f" * 64)
    assert not store.exists("f" * 64)


def test_delete(store):
    stored = store.put(io.BytesIO(b"to be removed"))
    store.delete(stored.sha256)
    assert not store.exists(stored.sha256)


def test_local_layout_and_read_only_files(local_store):
    stored = local_store.put(io.BytesIO(b"layout"))
    path = local_store.local_path(stored.sha256)
    assert path == local_store.root / stored.sha256[:2] / stored.sha256[2:4] / stored.sha256
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    assert list(local_store.tmp_dir.iterdir()) == []


def _staged(store, data: bytes, finish: bool = False):
    """A put that stops here, as one in a worker killed now would (staged
    bytes only: a file in .tmp, a multipart upload or a tmp/ object on S3)."""
    writer = store.writer()
    writer.write(data)
    if finish:
        writer.finish()
    if isinstance(store, LocalStore):
        # The file's time by the app's clock (moto, in-process, keeps to it).
        now = utcnow().timestamp()
        os.utime(writer.path, (now, now))
    return writer


def _staging(store) -> list[str]:
    if isinstance(store, LocalStore):
        return sorted(p.name for p in store.tmp_dir.iterdir())
    client, bucket = store.client, store.bucket
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    objects = client.list_objects_v2(Bucket=bucket, Prefix="fw/tmp/").get("Contents", [])
    return sorted([u["Key"] for u in uploads] + [o["Key"] for o in objects])


def test_what_a_killed_put_left_is_removed_once_old_and_a_put_in_progress_kept(store, clock):
    """Nothing ever finishes a put whose worker was killed: its staged bytes
    (mid-write, or written and not yet committed) are removed once untouched
    for the age given; a put still going, in any worker, is younger."""
    _staged(store, os.urandom(5 * MIB + 1))  # a multipart part sent on S3
    _staged(store, b"small", finish=True)
    clock.shift(timedelta(hours=2))
    going = _staged(store, os.urandom(5 * MIB + 1))
    kept = going.path.name if isinstance(store, LocalStore) else going.key
    assert len(_staging(store)) == 3

    assert store.clean_staging(timedelta(hours=1)) == 2
    assert _staging(store) == [kept]
    going.write(b"the last bytes")
    stored = store.commit(going.finish())
    assert store.exists(stored.sha256)
    assert _staging(store) == []
    assert _stored_keys(store) == [_stored_key(store, stored.sha256)]


def test_s3_an_upload_begun_long_ago_still_sending_parts_is_kept(s3_store, clock):
    """Gigabytes take a while: an upload is abandoned when it stops sending parts."""
    long = _staged(s3_store, os.urandom(5 * MIB + 1))
    clock.shift(timedelta(hours=2))
    long.write(os.urandom(5 * MIB))  # its second part, now
    assert s3_store.clean_staging(timedelta(hours=1)) == 0
    clock.shift(timedelta(hours=2))
    assert s3_store.clean_staging(timedelta(hours=1)) == 1
    assert _staging(s3_store) == []


def _stored_key(store, sha256: str) -> str:
    if isinstance(store, LocalStore):
        return str(store.local_path(sha256).relative_to(store.root))
    return f"fw/sha256/{sha256}"


def test_local_check_reports_unwritable_folder(tmp_path):
    if os.geteuid() == 0:
        blocked = LocalStore(tmp_path / "file-not-dir" / "x")
        (tmp_path / "file-not-dir").write_text("a file where the folder should be")
    else:  # pragma: no cover - CI runs as root
        blocked = LocalStore(tmp_path / "ro")
        (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(StorageError):
        blocked.check()


def test_s3_multipart_and_prefix(s3_store):
    data = os.urandom(11 * MIB)
    stored = s3_store.put(io.BytesIO(data))
    keys = _stored_keys(s3_store)
    assert keys == [f"fw/sha256/{stored.sha256}"]
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=keys[0])
    assert head["ContentLength"] == len(data)


def test_s3_presigned_url_serves_the_bytes_for_a_while(s3_store):
    data = b"presigned download" * 100
    stored = s3_store.put(io.BytesIO(data))
    before = int(time.time())
    url = s3_store.download_url(stored.sha256, expires_in=60, filename="fw.bin")
    query = parse_qs(urlparse(url).query)
    assert "Signature" in query or "X-Amz-Signature" in query
    assert before + 55 <= int(query["Expires"][0]) <= int(time.time()) + 60
    assert query["response-content-disposition"] == ['attachment; filename="fw.bin"']
    with urllib.request.urlopen(url) as response:
        assert response.read() == data


def test_s3_check_reports_missing_bucket(moto_endpoint):
    store = S3Store(s3_client(moto_endpoint), "no-such-bucket")
    with pytest.raises(StorageError):
        store.check()


def test_s3_selected_from_settings(moto_endpoint, s3_store, tmp_path):
    settings = Settings(
        instance_path=tmp_path,
        storage_backend="s3",
        S3_BUCKET=s3_store.bucket,
        S3_ENDPOINT_URL=moto_endpoint,
        S3_REGION="us-east-1",
        S3_ACCESS_KEY_ID="testing",
        S3_SECRET_ACCESS_KEY="moto-secret-value",
    )
    store = make_store(settings)
    assert isinstance(store, S3Store)
    store.check()
    assert store.put(io.BytesIO(b"via settings")).size == 12
    assert "moto-secret-value" not in repr(settings)

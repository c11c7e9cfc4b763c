"""Two nodes, as "Running at scale" (README) deploys them: two gunicorn servers
(two workers each) on one PostgreSQL database and one S3 bucket (moto), the
same secret key and online signing keys, behind a round-robin balancer.

What one node does, the other serves at once; metadata upkeep running on both
signs once; a node killed in the middle of a request leaves nothing half
done, and what it was doing can be sent again to the other.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3
from moto.server import ThreadedMotoServer
from sqlalchemy import create_engine, select, update
from sqlalchemy.engine import Engine, make_url
from tuf.api.metadata import Metadata, Root, Timestamp
from tuf.api.serialization.json import CanonicalJSONSerializer

from tests.faults import wait_until
from tests.gunicorn_server import provision, seed_publisher
from tests.helpers.balancer import balancer_of
from tests.helpers.databases import scratch_database
from tests.helpers.nodes import Node, Shared, running_nodes
from tests.helpers.publishing import streamed_publish
from tests.helpers.tuf import publish_file, root_of, run_remote
from tests.moto_server import s3_client
from tests.tuf_client import Device
from upgrade_agent.config import AgentConfig
from upgrade_agent.core import Agent, Offer
from upgrade_server import create_app
from upgrade_server.accounts.principal import Principal
from upgrade_server.clock import utcnow
from upgrade_server.config import Settings
from upgrade_server.extensions import db
from upgrade_server.products import service as products
from upgrade_server.signing.models import MetadataFile
from upgrade_server.storage.s3 import S3Store

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

CHECK = "/api/device/v1/update-check"
MIB = 1024 * 1024
HTTP = urllib3.PoolManager(retries=False, timeout=30, maxsize=8)


@dataclass
class Deployment:
    shared: Shared
    folder: Path
    publisher: str  # the publisher's API token

    @property
    def database_url(self) -> str:
        return self.shared.database_url

    def product(self, code: str) -> int:
        """A product with hardware revision rev-a; its id."""
        app = create_app({"SETTINGS": self._settings()})
        with app.app_context():
            created = products.create_product(
                db.session,
                Principal.cli(),
                code=code,
                name=code,
                hardware_revisions=[{"code": "rev-a"}],
            )
            db.session.commit()
            product_id = created.id
            db.engine.dispose()
        return product_id

    def device(self, product: str) -> str:
        """A device of the product on 0.9.0; its token."""
        return provision(
            self.database_url, self.folder / "seed", product, "rev-a", uuid.uuid4().hex
        )

    def store(self) -> S3Store:
        """The bucket, through the same backend the nodes use."""
        client = s3_client(self.shared.s3_endpoint)
        return S3Store(client, self.shared.bucket, part_size=5 * MIB)

    def _settings(self) -> Settings:
        # No report writer: nothing outlives the seeding.
        return Settings(
            instance_path=self.folder / "seed",
            database_url=self.database_url,
            report_batch_seconds=0,
        )


@dataclass
class Via:
    """Who the publisher's CLI talks to (tests/helpers/tuf.py's `live`)."""

    url: str
    admin_token: str


@pytest.fixture(scope="module")
def deployment(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("nodes on two hosts share a database server; SQLite is one host's file")
    folder = tmp_path_factory.mktemp("two-nodes")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3_client(endpoint).create_bucket(Bucket="firmware")
    try:
        with scratch_database(database_url, folder) as url:
            publisher, _ = seed_publisher(url, folder / "seed", product="seed")
            shared = Shared(url, endpoint, "firmware", folder / "keys")
            yield Deployment(shared, folder, publisher)
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def running(deployment: Deployment) -> Iterator[list[Node]]:
    # Upkeep five times a second in every worker; the staging cleaner off (the
    # test that needs it runs it when it must).
    with running_nodes(
        deployment.shared,
        deployment.folder,
        ("a", "b"),
        UPGRADE_SERVER_TUF_UPKEEP_SECONDS="0.2",
        UPGRADE_SERVER_STAGING_CLEANUP_SECONDS="0",
    ) as started:
        yield started


@pytest.fixture
def nodes(running: list[Node]) -> list[Node]:
    """Nodes a and b, both up: one an earlier test killed is started again."""
    dead = [node for node in running if not node.running]
    for node in dead:
        node.start()
    for node in dead:
        node.wait_ready()
    return running


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _check(url: str, device: str) -> Any:
    return HTTP.request(
        "POST", url + CHECK, json={"current_version": "0.9.0"}, headers=_bearer(device)
    )


def _download(url: str, device: str, offer: dict[str, Any], store: S3Store) -> bytes:
    """The offered artifact: the node sends the device to the bucket."""
    r = HTTP.request("GET", url + offer["download_url"], headers=_bearer(device), redirect=False)
    assert r.status == 302, r.data
    location = r.headers["Location"]
    assert location.startswith(store.client.meta.endpoint_url)
    return bytes(HTTP.request("GET", location).data)


def _releases(url: str, deployment: Deployment, product_id: int) -> list[str]:
    r = HTTP.request(
        "GET", f"{url}/api/v1/products/{product_id}/releases", headers=_bearer(deployment.publisher)
    )
    assert r.status == 200, r.data
    return [item["version"] for item in r.json()["items"]]


def test_a_publish_on_one_node_is_offered_and_served_by_the_other_at_once(
    deployment, nodes, tmp_path
):
    a, b = nodes
    deployment.product("gw-one")
    device = deployment.device("gw-one")
    # b has answered this device's check before: nothing to install.
    assert _check(b.url, device).status == 204

    firmware = tmp_path / "gw.bin"
    firmware.write_bytes(os.urandom(MIB))
    publish_file(Via(a.url, deployment.publisher), "gw-one", "1.0.0", firmware)

    offered = _check(b.url, device)
    assert offered.status == 200, offered.data
    offer = offered.json()
    assert offer["version"] == "1.0.0"
    assert _download(b.url, device, offer, deployment.store()) == firmware.read_bytes()
    # The stock TUF client, through b too: metadata a signed, the target verified.
    root = root_of(Via(b.url, deployment.publisher), "gw-one")
    tuf = Device(b.url, "gw-one", root, tmp_path / "tuf")
    assert tuf.fetch(offer["target_path"]) == firmware.read_bytes()
    assert _check(a.url, device).json()["release_id"] == offer["release_id"]
    # A hawkBit client, through b too: the action's artifact from the bucket,
    # with the digests its client checks taken at the upload on a.
    serial = uuid.uuid4().hex
    ddi = {
        "Authorization": "TargetToken "
        + provision(deployment.database_url, tmp_path / "seed", "gw-one", "rev-a", serial)
    }
    poll = HTTP.request("GET", f"{b.url}/acme/controller/v1/{serial}", headers=ddi).json()
    action = HTTP.request("GET", poll["_links"]["deploymentBase"]["href"], headers=ddi).json()
    (artifact,) = action["deployment"]["chunks"][0]["artifacts"]
    assert (
        artifact["hashes"]["md5"]
        == hashlib.md5(firmware.read_bytes(), usedforsecurity=False).hexdigest()
    )
    assert (
        artifact["hashes"]["sha1"]
        == hashlib.sha1(firmware.read_bytes(), usedforsecurity=False).hexdigest()
    )
    sent = HTTP.request(
        "GET", artifact["_links"]["download-http"]["href"], headers=ddi, redirect=False
    )
    assert sent.status == 302 and sent.headers["Location"].startswith(
        deployment.store().client.meta.endpoint_url
    )
    assert HTTP.request("GET", sent.headers["Location"]).data == firmware.read_bytes()

    run_remote(
        Via(b.url, deployment.publisher), "withdraw", "gw-one", "1.0.0", "--reason", "recalled"
    )
    assert _check(a.url, device).status == 204
    withdrawn = HTTP.request("GET", a.url + offer["download_url"], headers=_bearer(device))
    assert withdrawn.status == 403


def _timestamp_versions(engine: Engine, product_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(MetadataFile.version)
                .where(MetadataFile.role == "timestamp", MetadataFile.product_id == product_id)
                .order_by(MetadataFile.version)
            ).scalars()
        )


def test_metadata_upkeep_on_both_nodes_signs_one_new_timestamp(deployment, nodes, tmp_path):
    a, b = nodes
    product_id = deployment.product("gw-two")
    firmware = tmp_path / "gw.bin"
    firmware.write_bytes(b"fw")
    publish_file(Via(a.url, deployment.publisher), "gw-two", "1.0.0", firmware)
    # Upkeep starts in a worker with the first request it serves: requests at
    # once, so both workers of each node take some.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(
            lambda url: HTTP.request("GET", url + "/healthz").status, [a.url, b.url] * 8
        )
        assert set(answers) == {200}

    engine = create_engine(deployment.database_url)
    before = _timestamp_versions(engine, product_id)
    # Time passes: the timestamp (valid a day) is into the second half of its life.
    # (Not by libfaketime: with the real monotonic clock gunicorn needs, its
    # clock_nanosleep fails with EINVAL.)
    with engine.begin() as conn:
        conn.execute(
            update(MetadataFile)
            .where(
                MetadataFile.role == "timestamp",
                MetadataFile.version == before[-1],
                MetadataFile.product_id == product_id,
            )
            .values(expires=utcnow() + timedelta(hours=2))
        )
    wait_until(lambda: _timestamp_versions(engine, product_id) != before, 15, "a new timestamp")

    served = [
        HTTP.request("GET", f"{url}/tuf/gw-two/metadata/timestamp.json").data
        for url in (a.url, b.url)
    ]
    assert served[0] == served[1]
    timestamp = Metadata[Timestamp].from_bytes(served[0])
    assert timestamp.signed.version == before[-1] + 1
    root = Metadata[Root].from_bytes(root_of(Via(b.url, deployment.publisher), "gw-two"))
    # Raises unless the timestamp key of the root a device trusts signed it.
    root.signed.verify_delegate(
        "timestamp", CanonicalJSONSerializer().serialize(timestamp.signed), timestamp.signatures
    )
    assert timestamp.signed.expires > utcnow() + timedelta(hours=23)
    assert _timestamp_versions(engine, product_id) == [*before, before[-1] + 1]
    engine.dispose()
    upkeep_signed = [
        line
        for node in (a, b)
        for line in node.log().splitlines()
        if "upgrade_server.signing.upkeep" in line and "re-signed {'gw-two'" in line
    ]
    assert len(upkeep_signed) == 1, upkeep_signed


def test_a_node_killed_mid_upload_leaves_nothing_and_the_publish_is_sent_again(
    deployment, nodes, tmp_path
):
    a, b = nodes
    product_id = deployment.product("gw-three")
    device = deployment.device("gw-three")
    first = tmp_path / "first.bin"
    first.write_bytes(b"first")
    publish_file(Via(b.url, deployment.publisher), "gw-three", "1.0.0", first)
    store = deployment.store()
    objects_before = _objects(store)
    metadata_before = HTTP.request("GET", f"{b.url}/tuf/gw-three/metadata/timestamp.json").data
    artifact = [os.urandom(MIB) for _ in range(12)]

    with balancer_of([a.url, b.url]) as balancer:
        content_type, length, pieces = streamed_publish("2.0.0", artifact)
        upload = http.client.HTTPConnection(balancer.url.removeprefix("http://"), timeout=30)
        upload.putrequest("POST", f"/api/v1/products/{product_id}/releases")
        for name, value in {
            **_bearer(deployment.publisher),
            "Content-Type": content_type,
            "Content-Length": str(length),
        }.items():
            upload.putheader(name, value)
        upload.endheaders()
        sent = 0
        try:
            for piece in pieces:
                upload.send(piece)
                sent += len(piece)
                if sent > 6 * MIB and a.running:
                    # a has staged the first 5 MiB part of the upload in the bucket.
                    wait_until(lambda: _uploads(store), 15, "a multipart upload under way")
                    a.kill()
            answer = upload.getresponse().status
        except OSError:
            answer = None  # the connection went down with the node
        upload.close()
        assert balancer.served == [a.url]
        assert answer in (None, 502)

        # Nothing of 2.0.0 anywhere: no release, the same signed metadata, no object.
        assert _releases(b.url, deployment, product_id) == ["1.0.0"]
        timestamp = HTTP.request("GET", f"{b.url}/tuf/gw-three/metadata/timestamp.json").data
        assert timestamp == metadata_before
        assert _objects(store) == objects_before
        # Only the staged part a was sending, which the staging cleaner removes
        # (nodes run it every UPGRADE_SERVER_STAGING_CLEANUP_SECONDS; here, now).
        assert len(_uploads(store)) == 1
        assert store.clean_staging(older_than=timedelta(0)) == 1
        assert _uploads(store) == []

        # The publisher sends it again: b takes it, a new release (not "the same again").
        content_type, length, pieces = streamed_publish("2.0.0", artifact)
        again = HTTP.request(
            "POST",
            f"{balancer.url}/api/v1/products/{product_id}/releases",
            body=b"".join(pieces),
            headers={**_bearer(deployment.publisher), "Content-Type": content_type},
        )
        assert again.status == 201, again.data
        offered = _check(balancer.url, device)
        assert offered.status == 200, offered.data
        assert offered.json()["version"] == "2.0.0"
        assert _download(balancer.url, device, offered.json(), store) == b"".join(artifact)
        assert balancer.served[1:] == [b.url] * 3  # a is passed over
    assert _releases(b.url, deployment, product_id) == ["1.0.0", "2.0.0"]


def _uploads(store: S3Store) -> list[str]:
    listing = store.client.list_multipart_uploads(Bucket=store.bucket)
    return [u["Key"] for u in listing.get("Uploads", [])]


def _objects(store: S3Store) -> list[str]:
    listing = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_an_install_report_sent_as_its_node_dies_counts_once(deployment, nodes, tmp_path):
    """The agent's install step reaches a node that dies before storing it: the
    balancer answers 502 and the agent sends it again, to the other node. Sent
    once more (as after an answer lost on the way), it still counts once."""
    a, b = nodes
    deployment.product("gw-four")
    device = deployment.device("gw-four")
    firmware = tmp_path / "gw.bin"
    firmware.write_bytes(b"fw")
    publish_file(Via(b.url, deployment.publisher), "gw-four", "1.0.0", firmware)
    offer = Offer.from_json(_check(b.url, device).json())

    def kill_a(node: str) -> None:
        if node == a.url:
            a.kill()  # it has the whole report, and dies before it answers

    def stored() -> list[dict[str, Any]]:
        log = HTTP.request(
            "GET",
            f"{b.url}/api/v1/releases/{offer.release_id}/installs",
            headers=_bearer(deployment.publisher),
        )
        return list(log.json()["items"])

    with balancer_of([a.url, b.url]) as balancer:
        balancer.before_answer = kill_a
        logged: list[str] = []
        config = AgentConfig(
            server=balancer.url,
            token=device,
            product="gw-four",
            hardware_revision="rev-a",
            root=tmp_path / "root.json",
            state_dir=tmp_path / "agent",
            install_command=["true"],
        )
        Agent(config, log=logged.append).report("downloading", offer)
        assert logged == []
        assert balancer.served == [a.url, b.url]
        [event] = stored()
        assert event["status"] == "downloading"

        again = {
            "event_id": event["event_id"],
            "status": "downloading",
            "release_id": offer.release_id,
        }
        sent = HTTP.request(
            "POST", balancer.url + "/api/device/v1/installs", json=again, headers=_bearer(device)
        )
        assert sent.status == 200  # had it already
    assert [e["event_id"] for e in stored()] == [event["event_id"]]

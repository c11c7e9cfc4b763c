"""The attacks TUF defends against, staged against the real server with the stock client.

Each test puts a malicious mirror between a device (tuf.ngclient.Updater holding
the product's root.json) and the server, or tampers with what the server
stores, and shows that the client refuses and installs nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from tuf.api import exceptions
from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from tests.helpers.tuf import root_of, run_remote
from tests.live import add_product, live_server
from tests.proxy import proxy_of
from tests.tuf_client import Device
from upgrade_server.signing.keys import KeyFolder

pytestmark = pytest.mark.own_app

TARGET = "1.0.0/fw.bin"
GOOD = b"genuine firmware " * 1000


@pytest.fixture
def world(scratch_url, tmp_path):
    with live_server(scratch_url, tmp_path / "instance") as live:
        add_product(live, "gw")
        firmware = tmp_path / "fw.bin"
        firmware.write_bytes(GOOD)
        run_remote(live, "publish", "gw", "1.0.0", str(firmware), "--no-progress")
        with proxy_of(live.url) as mirror:
            device = Device(mirror.url, "gw", root_of(live, "gw"), tmp_path / "device")
            assert device.fetch(TARGET) == GOOD  # the honest path works
            for f in device.target_dir.iterdir():
                f.unlink()
            yield {"live": live, "mirror": mirror, "device": device, "tmp": tmp_path}


def _meta(mirror, name: str) -> Metadata:
    return Metadata.from_bytes(mirror.fetch_upstream(f"/tuf/gw/metadata/{name}"))


def _bytes(md: Metadata) -> bytes:
    return md.to_bytes(JSONSerializer(compact=True))


def _online_signer(world, role: str):
    live = world["live"]
    keys = KeyFolder(live.app.config["SETTINGS"].resolved_keys_path())
    root = _meta(world["mirror"], "1.root.json").signed
    return keys.signer("gw", role, root.roles[role].keyids[0])


def _current(world) -> tuple[Metadata, Metadata, str, Metadata]:
    """The served timestamp, snapshot, the target's bin name and that bin."""
    mirror = world["mirror"]
    timestamp = _meta(mirror, "timestamp.json")
    snapshot = _meta(mirror, f"{timestamp.signed.snapshot_meta.version}.snapshot.json")
    targets = _meta(mirror, f"{snapshot.signed.meta['targets.json'].version}.targets.json")
    name = targets.signed.delegations.succinct_roles.get_role_for_target(TARGET)
    bin_md = _meta(mirror, f"{snapshot.signed.meta[name + '.json'].version}.{name}.json")
    return timestamp, snapshot, name, bin_md


def _fresh_device(world) -> Device:
    """A device that has cached nothing yet but its root (it will fetch every file)."""
    live = world["live"]
    return Device(world["mirror"].url, "gw", root_of(live, "gw"), world["tmp"] / "fresh")


def _assert_refused(world, error=exceptions.RepositoryError, device: Device | None = None):
    device = device or world["device"]
    with pytest.raises((error, exceptions.DownloadError)):
        device.fetch(TARGET)
    assert list(device.target_dir.iterdir()) == []


def test_arbitrary_installation(world):
    """The mirror swaps the artifact's bytes (same length): the hash check refuses."""
    sha = _current(world)[3].signed.targets[TARGET].hashes["sha256"]
    evil = b"X" * len(GOOD)
    world["mirror"].served[f"/tuf/gw/targets/1.0.0/{sha}.fw.bin"] = evil
    _assert_refused(world, exceptions.LengthOrHashMismatchError)


def test_arbitrary_installation_on_the_server_disk(world):
    """Even the server's own stored file, tampered with, is refused by the client."""
    live = world["live"]
    store = live.app.extensions["artifact_store"]
    sha = _current(world)[3].signed.targets[TARGET].hashes["sha256"]
    path = store.local_path(sha)
    path.chmod(0o644)
    path.write_bytes(b"Y" * len(GOOD))
    _assert_refused(world, exceptions.LengthOrHashMismatchError)


def test_endless_data(world):
    """An endless timestamp: the client stops at its size limit."""

    def endless():
        yield b'{"signed": {"_type": "timestamp", "padding": "'
        while True:
            yield b"A" * 65536

    world["mirror"].served["/tuf/gw/metadata/timestamp.json"] = endless
    _assert_refused(world, exceptions.DownloadLengthMismatchError)


def test_extraneous_dependencies(world):
    """A target slipped into a bin without the bin's keys is refused."""
    *_, name, bin_md = _current(world)
    bin_md.signed.targets["1.0.0/backdoor.bin"] = TargetFile(
        length=3, hashes={"sha256": "0" * 64}, path="1.0.0/backdoor.bin"
    )
    path = f"/tuf/gw/metadata/{bin_md.signed.version}.{name}.json"
    world["mirror"].served[path] = _bytes(bin_md)  # signatures no longer match
    _assert_refused(world, exceptions.UnsignedMetadataError, _fresh_device(world))


def test_malicious_mirror_alters_signed_metadata(world):
    """The mirror edits what the snapshot says of targets: signatures break."""
    _, snapshot, *_ = _current(world)
    snapshot.signed.meta["targets.json"] = MetaFile(version=999)
    path = f"/tuf/gw/metadata/{snapshot.signed.version}.snapshot.json"
    world["mirror"].served[path] = _bytes(snapshot)
    _assert_refused(world, exceptions.UnsignedMetadataError, _fresh_device(world))


def test_mix_and_match(world):
    """Current timestamp and snapshot, but an older bin served under the new name."""
    live = world["live"]
    firmware = world["tmp"] / "fw2.bin"
    firmware.write_bytes(b"second")
    # Publish more releases until one lands in the same bin as the first.
    _, _, name, old_bin = _current(world)
    for minor in range(1, 60):
        run_remote(live, "publish", "gw", f"1.{minor}.0", str(firmware), "--no-progress")
        _, _, _, new_bin = _current(world)
        if new_bin.signed.version > old_bin.signed.version:
            break
    assert new_bin.signed.version > old_bin.signed.version
    path = f"/tuf/gw/metadata/{new_bin.signed.version}.{name}.json"
    world["mirror"].served[path] = _bytes(old_bin)
    device: Device = world["device"]
    with pytest.raises(exceptions.RepositoryError):
        device.fetch(TARGET)
    assert list(device.target_dir.iterdir()) == []


def test_rollback(world):
    """After seeing timestamp vN, the device refuses an older, validly signed one."""
    old_timestamp = world["mirror"].fetch_upstream("/tuf/gw/metadata/timestamp.json")
    firmware = world["tmp"] / "fw2.bin"
    firmware.write_bytes(b"newer")
    run_remote(world["live"], "publish", "gw", "1.1.0", str(firmware), "--no-progress")
    world["device"].refresh()  # the device now trusts the newer timestamp
    world["mirror"].served["/tuf/gw/metadata/timestamp.json"] = old_timestamp
    _assert_refused(world, exceptions.BadVersionNumberError)


def test_indefinite_freeze(world):
    """A validly signed timestamp that has expired: the client will not trust it."""
    timestamp, *_ = _current(world)
    timestamp.signed.version += 1
    timestamp.signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    timestamp.signatures.clear()
    timestamp.sign(_online_signer(world, "timestamp"))
    world["mirror"].served["/tuf/gw/metadata/timestamp.json"] = _bytes(timestamp)
    _assert_refused(world, exceptions.ExpiredMetadataError)


def test_fast_forward_and_recovery(world):
    """A stolen timestamp key pushes the version far ahead; rotating the key recovers."""
    live, mirror, device = world["live"], world["mirror"], world["device"]
    timestamp, *_ = _current(world)
    timestamp.signed.version = 10**9
    timestamp.signatures.clear()
    timestamp.sign(_online_signer(world, "timestamp"))
    mirror.served["/tuf/gw/metadata/timestamp.json"] = _bytes(timestamp)
    device.refresh()  # validly signed, so the device now holds version 10**9
    del mirror.served["/tuf/gw/metadata/timestamp.json"]
    # The genuine timestamp now looks like a rollback: the device is stuck...
    with pytest.raises(exceptions.BadVersionNumberError):
        device.refresh()
    # ...until the vendor rotates the timestamp key. The new root makes the
    # client drop the fast-forwarded timestamp (TUF spec 5.3.11).
    import urllib.request

    request = urllib.request.Request(
        f"{live.url}/api/v1/products/1/repository/rotate",
        data=json.dumps({"role": "timestamp"}).encode(),
        headers={**live.headers, "Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request).close()
    assert device.fetch(TARGET) == GOOD


def test_key_compromise_below_threshold(scratch_url, tmp_path):
    """With targets at 2 of 2 offline keys, one stolen key (plus every online
    key of the server) cannot get a malicious target past the client."""
    from tests.helpers.signing import create_offline_repository, new_signer, sign_all

    with live_server(scratch_url, tmp_path / "instance") as live:
        product_id = add_product(live, "gw")
        signers = [new_signer() for _ in range(2)]
        client = live.app.test_client()
        create_offline_repository(client, live.headers, product_id, signers, 2, 1)
        for signer in signers:
            sign_all(client, live.headers, product_id, signer)
        with proxy_of(live.url) as mirror:
            device = Device(mirror.url, "gw", root_of(live, "gw"), tmp_path / "device")
            device.refresh()
            world = {"live": live, "mirror": mirror}
            timestamp = _meta(mirror, "timestamp.json")
            snapshot = _meta(mirror, f"{timestamp.signed.snapshot_meta.version}.snapshot.json")
            targets = _meta(mirror, f"{snapshot.signed.meta['targets.json'].version}.targets.json")
            name = targets.signed.delegations.succinct_roles.get_role_for_target(TARGET)
            evil = b"malware"
            import hashlib

            bin_md = Metadata(Targets(version=snapshot.signed.meta[name + ".json"].version + 1))
            bin_md.signed.expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
            bin_md.signed.targets[TARGET] = TargetFile(
                length=len(evil), hashes={"sha256": hashlib.sha256(evil).hexdigest()}, path=TARGET
            )
            bin_md.sign(signers[0])  # the one stolen key
            new_snapshot = Metadata(Snapshot(meta=dict(snapshot.signed.meta)))
            new_snapshot.signed.version = snapshot.signed.version + 1
            new_snapshot.signed.expires = bin_md.signed.expires
            new_snapshot.signed.meta[name + ".json"] = MetaFile(version=bin_md.signed.version)
            new_snapshot.sign(_online_signer(world, "snapshot"))
            new_timestamp = Metadata(
                Timestamp(snapshot_meta=MetaFile(version=new_snapshot.signed.version))
            )
            new_timestamp.signed.version = timestamp.signed.version + 1
            new_timestamp.signed.expires = bin_md.signed.expires
            new_timestamp.sign(_online_signer(world, "timestamp"))
            base = "/tuf/gw/metadata/"
            mirror.served[base + "timestamp.json"] = _bytes(new_timestamp)
            mirror.served[f"{base}{new_snapshot.signed.version}.snapshot.json"] = _bytes(
                new_snapshot
            )
            mirror.served[f"{base}{bin_md.signed.version}.{name}.json"] = _bytes(bin_md)
            sha = hashlib.sha256(evil).hexdigest()
            mirror.served[f"/tuf/gw/targets/1.0.0/{sha}.fw.bin"] = evil
            with pytest.raises(exceptions.UnsignedMetadataError):
                device.fetch(TARGET)
            assert list(device.target_dir.iterdir()) == []


def test_wrong_software(world, scratch_url):
    """Another product's repository is not trusted, and the hardware a target
    was built for is signed: changing it breaks the signature."""
    live, mirror = world["live"], world["mirror"]
    add_product(live, "other")
    firmware = world["tmp"] / "other.bin"
    firmware.write_bytes(b"other product")
    run_remote(live, "publish", "other", "1.0.0", str(firmware), "--no-progress")
    # A device of product gw pointed at product other's repository.
    stranger = Device(mirror.url, "other", root_of(live, "gw"), world["tmp"] / "confused")
    with pytest.raises(exceptions.RepositoryError):
        stranger.fetch(TARGET)
    assert list(stranger.target_dir.iterdir()) == []
    # The signed custom field says which hardware the target is for.
    custom = world["device"].custom(TARGET)
    assert custom["product"] == "gw"
    assert custom["hardware_revisions"] == ["rev-a", "rev-b"]
    _, _, name, bin_md = _current(world)
    bin_md.signed.targets[TARGET].unrecognized_fields["custom"]["hardware_revisions"] = ["rev-z"]
    mirror.served[f"/tuf/gw/metadata/{bin_md.signed.version}.{name}.json"] = _bytes(bin_md)
    _assert_refused(world, exceptions.UnsignedMetadataError, _fresh_device(world))


def test_refusals_leave_the_trusted_state_intact(world):
    """After a refused attack the device still updates once the mirror is honest."""
    world["mirror"].served["/tuf/gw/metadata/timestamp.json"] = b"{not json"
    _assert_refused(world)
    world["mirror"].served.clear()
    assert world["device"].fetch(TARGET) == GOOD

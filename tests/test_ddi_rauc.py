"""RAUC's own hawkBit client (rauc-hawkbit 0.2.0, from PyPI) against the
server's hawkBit DDI API (issue 18), end to end: gunicorn as in production,
the client as a separate process, and a stand-in for RAUC's D-Bus service
(tests/helpers/rauc.py) that receives the bundle the client downloaded.

The client knows the server as a hawkBit server only: tenant = the
organisation's slug, controller id = the device's serial, TargetToken = the
device's token (docs/ddi-clients.md says what the client sends and needs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from tests.gunicorn_server import gunicorn, operator, provision, seed_publisher
from tests.helpers.rauc import (
    RaucClient,
    RaucService,
    private_bus,
    rauc_hawkbit_client,
    rauc_service,
    write_client_config,
)

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

TENANT = "acme"  # the organisation tests.gunicorn_server.provision makes
BUNDLE = b"RAUC bundle gw 1.1.0\n" + bytes(range(256)) * 64
# Install steps after which the device is done with a release.
FINAL = ("installed", "failed", "rolled_back")


@dataclass
class Server:
    url: str
    database_url: str
    instance: Path
    token: str  # the publisher's
    engine: Engine
    folder: Path

    def operator(self, *args: str) -> str:
        """`upgrade-server remote …`, as the operator types it."""
        return operator(self.url, self.token, *args)

    def publish(self, version: str = "1.1.0") -> bytes:
        """The bundle of `version`, published to stable; its bytes."""
        bundle = self.folder / f"gw-{version}.raucb"
        bundle.write_bytes(BUNDLE)
        self.operator("publish", "gw", version, str(bundle), "--channel", "stable")
        return BUNDLE

    def release_id(self, version: str) -> int:
        from upgrade_server.releases.models import Release

        with self.engine.connect() as conn:
            return conn.execute(select(Release.id).where(Release.version == version)).scalar_one()

    def device(self, serial: str, **dates: str) -> Device:
        """A device of "acme" on 0.9.0, with its client's config."""
        secret = provision(self.database_url, self.instance, "gw", "rev-a", serial, **dates)
        home = self.folder / serial
        config = write_client_config(home, self.url, TENANT, serial, secret)
        return Device(serial, home, config, self.engine)


@dataclass
class Device:
    serial: str
    home: Path
    config: Path
    engine: Engine

    def steps(self) -> list[tuple[str, str | None]]:
        """Its install steps, (status, error code), in the order recorded."""
        from upgrade_server.devices.models import Device as DeviceRow
        from upgrade_server.updates.models import InstallEvent

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(InstallEvent.status, InstallEvent.error_code)
                .join(DeviceRow, DeviceRow.id == InstallEvent.device_id)
                .where(DeviceRow.serial == self.serial)
                .order_by(InstallEvent.id)
            )
            return [(status, code) for status, code in rows]

    def version(self) -> str | None:
        """The version the server holds for it."""
        from upgrade_server.devices.models import Device as DeviceRow

        with self.engine.connect() as conn:
            return conn.execute(
                select(DeviceRow.current_version).where(DeviceRow.serial == self.serial)
            ).scalar_one()

    def first_attempt(self) -> list[tuple[str, str | None]] | None:
        """Its steps up to the first that ends an install, once there is one."""
        steps = self.steps()
        ends = [n for n, (status, _) in enumerate(steps) if status in FINAL]
        return steps[: ends[0] + 1] if ends else None

    def error_texts(self) -> list[str]:
        """The error texts of its failed steps."""
        from upgrade_server.devices.models import Device as DeviceRow
        from upgrade_server.updates.models import InstallEvent

        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(InstallEvent.error_text)
                    .join(DeviceRow, DeviceRow.id == InstallEvent.device_id)
                    .where(DeviceRow.serial == self.serial, InstallEvent.status == "failed")
                    .order_by(InstallEvent.id)
                ).scalars()
            )

    def open_action(self) -> int | None:
        """The release the server holds it to be part-way through installing."""
        from upgrade_server.devices.models import Device as DeviceRow

        with self.engine.connect() as conn:
            return conn.execute(
                select(DeviceRow.installing_release_id).where(DeviceRow.serial == self.serial)
            ).scalar_one()

    def client(self, bus: str, run: int = 1) -> AbstractContextManager[RaucClient]:
        """Its rauc-hawkbit-client (run `run`: each run logs to a file of its own)."""
        return rauc_hawkbit_client(self.config, bus, self.home / f"client-{run}.log")

    def describe(self, client: RaucClient, rauc: RaucService) -> str:
        return f"steps {self.steps()}\n{client.describe()}\n{rauc.describe()}"


@pytest.fixture
def server(scratch_url: str, tmp_path: Path) -> Iterator[Server]:
    instance = tmp_path / "instance"
    token, _ = seed_publisher(scratch_url, instance)
    engine = create_engine(scratch_url)
    with gunicorn(scratch_url, instance, workers=2, UPGRADE_SERVER_UPDATE_POLL_SECONDS="1") as url:
        yield Server(url, scratch_url, instance, token, engine, tmp_path)
    engine.dispose()


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    """The device's system bus: a private dbus-daemon."""
    with private_bus(tmp_path / "dbus") as address:
        yield address


@pytest.fixture
def rauc(bus: str, tmp_path: Path) -> Iterator[RaucService]:
    with rauc_service(bus, tmp_path) as service:
        yield service


def test_a_covered_device_installs_the_bundle_and_is_then_up_to_date(server, bus, rauc):
    published = server.publish("1.1.0")
    device = server.device("RAUC-1")

    with device.client(bus, run=1) as client:
        steps = client.wait(
            device.first_attempt, "the install to end", lambda: device.describe(client, rauc)
        )
        assert "Download successful" in client.text(), client.describe()  # its md5 matched
    assert steps == [("downloading", None), ("installing", None), ("installed", None)]
    assert rauc.installs() == 1 and rauc.completed() == [0]
    assert rauc.bundle(1) == published
    assert device.version() == "1.1.0"

    # A new run of the client: offered nothing, it downloads nothing.
    with device.client(bus, run=2) as again:
        again.wait_for_polls(3)
        polls = again.answers(f"/controller/v1/{device.serial}")
        assert [poll["_links"] for poll in polls] == [{}] * len(polls), again.describe()
        assert "deploymentBase" not in again.text(), again.describe()
    assert rauc.installs() == 1
    assert not (device.home / "bundle.raucb").exists()
    assert device.steps() == steps


def test_a_failed_install_is_recorded_and_the_version_kept(server, bus, rauc):
    server.publish("1.1.0")
    device = server.device("RAUC-2")
    rauc.results_in(1)

    with device.client(bus) as client:
        steps = client.wait(
            device.first_attempt, "the install to end", lambda: device.describe(client, rauc)
        )
        client.wait(lambda: "Result:   FAILED" in client.text(), "the client's result")
        # A failed action rests before it is offered again (the client would
        # download and install again at once).
        client.wait_for_polls(client.polls() + 3)
        assert "Deployment found" not in client.text().split("Result:   FAILED", 1)[1]
    assert rauc.installs() == 1
    assert device.steps() == steps
    # RAUC's LastError (sent as proceeding/failure) ends the attempt; the
    # closed/failure that follows tells the same end again.
    assert steps == [("downloading", None), ("installing", None), ("failed", "E_DDI_FAILURE")]
    assert device.error_texts()[0] == "Installation error: stand-in told to fail"
    assert rauc.completed() == [1]
    assert device.version() == "0.9.0"


def test_a_release_withdrawn_during_the_install_is_cancelled_and_the_client_rejects(
    server, bus, rauc
):
    server.publish("1.1.0")
    device = server.device("RAUC-3")
    rauc.hold()

    with device.client(bus) as client:
        # The device is installing 1.1.0: the stand-in holds the install.
        client.wait(
            lambda: device.steps()[-1:] == [("installing", None)],
            "the install to start",
            lambda: device.describe(client, rauc),
        )
        assert rauc.installs() == 1
        server.operator("withdraw", "gw", "1.1.0", "--reason", "bricks rev-a")
        # The next poll carries cancelAction; rauc-hawkbit rejects every cancel.
        client.wait(
            lambda: "Rejecting cancelation request" in client.text(),
            "the client to answer the cancel",
            lambda: device.describe(client, rauc),
        )
        release_id = server.release_id("1.1.0")
        # The action's id is the release's.
        assert client.answers(f"/cancelAction/{release_id}")[0] == {
            "id": str(release_id),
            "cancelAction": {"stopId": str(release_id)},
        }
        # A rejected cancel leaves the action open: the next poll cancels again.
        rejected = client.text().count("Rejecting cancelation request")
        client.wait(
            lambda: client.text().count("Rejecting cancelation request") > rejected,
            "the cancel to be asked again",
        )
        assert device.steps() == [("downloading", None), ("installing", None)]
        assert device.open_action() == release_id
        assert rauc.completed() == []
        # The device finishes the install it went on with.
        rauc.release()
        steps = client.wait(
            device.first_attempt, "the install to end", lambda: device.describe(client, rauc)
        )
        # Installed, the action is done: no cancel comes after the poll under way.
        client.wait_for_polls(client.polls() + 1)
        rejected = client.text().count("Rejecting cancelation request")
        client.wait_for_polls(client.polls() + 2)
        assert client.text().count("Rejecting cancelation request") == rejected
    assert rauc.completed() == [0]
    assert steps == [("downloading", None), ("installing", None), ("installed", None)]
    assert device.steps() == steps
    assert device.version() == "1.1.0"
    assert device.open_action() is None


def test_a_device_not_covered_is_offered_nothing(server, bus, rauc):
    server.publish("1.1.0")
    four_years_ago = (date.today() - timedelta(days=4 * 365 + 1)).isoformat()
    device = server.device("RAUC-4", delivered_on=four_years_ago, accepted_on=four_years_ago)

    with device.client(bus) as client:
        client.wait_for_polls(3)
        polls = client.answers(f"/controller/v1/{device.serial}")
        assert [set(poll["_links"]) - {"configData"} for poll in polls] == [set()] * len(polls)
        assert "deploymentBase" not in client.text(), client.describe()
    assert rauc.installs() == 0
    assert device.steps() == []
    assert device.version() == "0.9.0"

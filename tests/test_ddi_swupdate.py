"""Acceptance of the hawkBit DDI API (issue 18) with the real SWUpdate client:
Debian's `swupdate` in suricatta (hawkBit) mode, run unprivileged as a
separate process against the server under gunicorn, as a device would.

A covered device installs a signed .swu and, confirmed after its reboot, is
on the new version; an image signed with another key fails and changes
nothing; a withdrawn release becomes a cancel for a device part-way through
it; a device whose coverage ended is offered nothing.
"""

from __future__ import annotations

import re
import shlex
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from tests.clock import ZONE, ExpiredDevice
from tests.faults import wait_for
from tests.gunicorn_server import gunicorn, operator, seed_publisher
from tests.helpers.databases import scratch_database
from tests.helpers.swupdate import RUN_HEADER, Device, Signer, build_swu
from tests.tuf_client import Device as TufDevice
from upgrade_server.clock import today_in

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

TENANT = "acme"  # the organisation's slug
PAYLOAD = b"gw firmware 1.1.0\n" * 64


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int
    run: int | None  # which run of the client sent it (RUN_HEADER)

    @property
    def kind(self) -> str:
        """What the DDI request is: base, deploymentBase, feedback, cancelAction, artifact…"""
        rest = self.path.split("?", 1)[0].split("/controller/v1/", 1)[1].split("/")[1:]
        if not rest:
            return "base"
        if rest[0] == "softwaremodules":
            return "artifact"
        return rest[0] + ("/feedback" if rest[-1] == "feedback" else "")


@dataclass
class Server:
    url: str
    database_url: str
    instance: Path
    token: str  # a publisher's
    engine: Engine

    def requests(self, serial: str, run: int | None = None) -> list[Request]:
        """The DDI requests of device `serial` (of its client's run `run` only,
        if given), in the order answered, from gunicorn's access log."""
        log = self.instance / "access.log"
        found = []
        for line in log.read_text().splitlines() if log.exists() else []:
            match = re.search(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+) run=(\S+)', line)
            if match and f"/controller/v1/{serial}" in match.group(2):
                method, path, status, sent_by = match.groups()
                request = Request(method, path, int(status), _number(sent_by))
                if run is None or request.run == run:
                    found.append(request)
        return found

    def request_log(self, serial: str) -> str:
        return "\n".join(
            f"run {r.run}: {r.method} {r.path} -> {r.status}" for r in self.requests(serial)
        )

    def operator(self, *args: str) -> str:
        """`upgrade-server remote …`, as the operator types it."""
        return operator(self.url, self.token, *args)

    def provision(self, product: str, serial: str, **dates: str) -> tuple[int, str]:
        """Product `product` (revision rev-a) if new, and a device of organisation
        `acme` on 0.9.0; its id and token. Written while the server runs, in a
        unit of work (on SQLite it queues for the write lock, as the CLI does)."""
        from upgrade_server import create_app
        from upgrade_server.accounts.principal import Principal
        from upgrade_server.config import Settings
        from upgrade_server.devices import provisioning
        from upgrade_server.extensions import db
        from upgrade_server.organisations import service as organisations
        from upgrade_server.products import service as products
        from upgrade_server.unit_of_work import unit_of_work

        settings = Settings(instance_path=self.instance, database_url=self.database_url)
        app = create_app({"SETTINGS": settings})
        actor = Principal.cli()
        with unit_of_work(app) as session:
            if organisations.find_by_slug(session, TENANT) is None:
                organisations.create_organisation(session, actor, slug=TENANT, name="ACME")
            if products.find_by_code(session, product) is None:
                products.create_product(
                    session,
                    actor,
                    code=product,
                    name=product,
                    hardware_revisions=[{"code": "rev-a"}],
                )
            made = provisioning.create_device(
                session,
                actor,
                {
                    "serial": serial,
                    "product": product,
                    "hardware_revision": "rev-a",
                    "organisation": TENANT,
                    "current_version": "0.9.0",
                    **dates,
                },
            )
            session.flush()
            device_id, secret = made.device.id, made.secret
        with app.app_context():
            db.engine.dispose()
        return device_id, secret

    def steps(self, device_id: int) -> list[tuple[str, str, str | None]]:
        """The device's install log: (version, status, error code) in order."""
        from upgrade_server.updates.models import InstallEvent

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(InstallEvent.version, InstallEvent.status, InstallEvent.error_code)
                .where(InstallEvent.device_id == device_id)
                .order_by(InstallEvent.id)
            )
            return [(version, status, code) for version, status, code in rows]

    def last_error(self, device_id: int) -> str | None:
        """The error text of the device's last install step."""
        from upgrade_server.updates.models import InstallEvent

        with self.engine.connect() as conn:
            return conn.execute(
                select(InstallEvent.error_text)
                .where(InstallEvent.device_id == device_id)
                .order_by(InstallEvent.id.desc())
                .limit(1)
            ).scalar_one_or_none()

    def version(self, device_id: int) -> str | None:
        from upgrade_server.devices.models import Device as DeviceRow

        with self.engine.connect() as conn:
            return conn.execute(
                select(DeviceRow.current_version).where(DeviceRow.id == device_id)
            ).scalar_one()


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: each test has a product and devices of its own."""
    folder = tmp_path_factory.mktemp("ddi-swupdate")
    with scratch_database(database_url, folder) as url:
        instance = folder / "instance"
        token, _ = seed_publisher(url, instance)
        engine = create_engine(url)
        with gunicorn(
            url,
            instance,
            workers=2,
            UPGRADE_SERVER_UPDATE_POLL_SECONDS="1",
            GUNICORN_ACCESS_LOG=str(instance / "access.log"),
            # The run each request came from, beside the product's own fields.
            GUNICORN_CMD_ARGS=shlex.join(
                ["--access-logformat", f'"%(r)s" %(s)s run=%({{{RUN_HEADER.lower()}}}i)s']
            ),
        ) as base:
            yield Server(base, url, instance, token, engine)
        engine.dispose()


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    """The key the devices trust."""
    return Signer.make(tmp_path_factory.mktemp("signer"))


@pytest.fixture
def devices(server: Server, signer: Signer) -> Iterator[Callable[[str, str], Device]]:
    """Makes a device that runs SWUpdate (serial, token), trusting `signer`."""
    with ExitStack() as stack:

        def device(serial: str, token: str) -> Device:
            return stack.enter_context(
                Device.made(
                    server=server.url,
                    tenant=TENANT,
                    controller_id=serial,
                    token=token,
                    public_key=signer.cert,
                )
            )

        yield device


def _swu(folder: Path, signer: Signer, device: Device) -> tuple[Path, Path]:
    """A .swu of 1.1.0 signed by `signer`, and the file it writes on `device`."""
    target = device.rootfs / "firmware.bin"
    swu = build_swu(folder / "gw-1.1.0.swu", signer, "1.1.0", PAYLOAD, target, device.revision)
    return swu, target


def _publish(server: Server, product: str, swu: Path) -> None:
    server.operator("publish", product, "1.1.0", str(swu), "--channel", "stable")


def _explain(server: Server, device: Device, device_id: int) -> Callable[[], str]:
    """What an assertion shows: the device's requests, its install log, swupdate's log."""
    return lambda: (
        f"requests of {device.controller_id}:\n{server.request_log(device.controller_id)}\n"
        f"install log: {server.steps(device_id)}\n{device.log()}"
    )


def _after(requests: list[Request], kind: str) -> list[Request]:
    """The requests after the last one of `kind` (none if there is none)."""
    kinds = [r.kind for r in requests]
    return requests[len(kinds) - kinds[::-1].index(kind) :] if kind in kinds else []


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _polls_after(server: Server, device: Device, kind: str, polls: int = 2) -> list[Request] | None:
    """Once the device's client, in its current run, polled `polls` times
    after its last request of `kind`, the requests after that one."""
    after = _after(server.requests(device.controller_id, run=device.run), kind)
    return after if [r.kind for r in after].count("base") >= polls else None


def _install_and_leave_pending(
    server: Server, device: Device, device_id: int, explain: Callable[[], str]
) -> None:
    """One run of swupdate: it takes the offered .swu, installs it and reports
    so; the update then waits for the reboot's confirmation."""
    with device.running():
        wait_for(
            lambda: "installing" in [status for _, status, _ in server.steps(device_id)],
            "the install to be reported",
            explain=explain,
        )
        # Done once the client polls again after its feedback on the download.
        wait_for(
            lambda: _polls_after(server, device, "artifact", polls=1),
            "a poll after the download",
            explain=explain,
        )


def test_a_covered_device_installs_the_signed_update_and_confirms_it_after_its_reboot(
    server, signer, devices, tmp_path
):
    device_id, token = server.provision("gw", "SWU-1")
    device = devices("SWU-1", token)
    explain = _explain(server, device, device_id)
    swu, installed_file = _swu(tmp_path, signer, device)
    _publish(server, "gw", swu)

    _install_and_leave_pending(server, device, device_id, explain)
    assert installed_file.read_bytes() == PAYLOAD, explain()
    kinds = [r.kind for r in server.requests("SWU-1")]
    assert kinds.count("deploymentBase") >= 1 and kinds.count("artifact") >= 1, explain()
    steps = server.steps(device_id)
    statuses = [status for _, status, _ in steps]
    assert {version for version, _, _ in steps} == {"1.1.0"}, explain()
    assert statuses.index("downloading") < statuses.index("installing"), explain()
    assert not {"installed", "failed"} & set(statuses), explain()
    # Installed, pending: the server waits for the confirmation.
    assert server.version(device_id) == "0.9.0"

    # After the reboot into 1.1.0, swupdate confirms it (`-c 2`).
    with device.running(confirm=2):
        wait_for(
            lambda: server.steps(device_id)[-1][1] == "installed",
            "the confirmation to reach the install log",
            explain=explain,
        )
        # From then on the device is offered nothing.
        after = wait_for(
            lambda: _polls_after(server, device, "deploymentBase/feedback"),
            "two polls after the confirmation",
            explain=explain,
        )
    assert server.steps(device_id)[-1] == ("1.1.0", "installed", None)
    assert server.version(device_id) == "1.1.0"
    assert {(r.kind, r.status) for r in after} == {("base", 200)}, explain()
    requests = server.requests("SWU-1")
    assert [r.kind for r in requests].count("artifact") == kinds.count("artifact")
    # Every answer was a 200: SWUpdate gives up an install whose feedback is refused.
    assert {r.status for r in requests} == {200}, explain()
    # The .swu is also a target of the product's TUF repository: a device with a
    # TUF-capable helper verifies the same bytes against the signed metadata.
    root = urllib.request.urlopen(f"{server.url}/tuf/gw/metadata/1.root.json").read()
    tuf = TufDevice(server.url, "gw", root, tmp_path / "tuf")
    assert tuf.fetch("1.1.0/gw-1.1.0.swu") == swu.read_bytes()


def test_an_update_signed_with_another_key_fails_and_changes_nothing(server, devices, tmp_path):
    device_id, token = server.provision("gw-k", "SWU-2")
    device = devices("SWU-2", token)
    explain = _explain(server, device, device_id)
    stranger = Signer.make(tmp_path / "stranger", name="not-trusted")
    swu, target = _swu(tmp_path, stranger, device)
    _publish(server, "gw-k", swu)

    with device.running():
        wait_for(
            lambda: "failed" in [status for _, status, _ in server.steps(device_id)],
            "the failure to reach the install log",
            explain=explain,
        )
    assert server.steps(device_id)[-1][:2] == ("1.1.0", "failed"), explain()
    # With SWUpdate's words for it ("Authentication of all signatures failed",
    # or only "No suitable .swu image found", depending on its log's timing).
    assert server.last_error(device_id), explain()
    assert server.version(device_id) == "0.9.0"
    assert not target.exists()


def test_a_withdrawn_release_is_cancelled_on_a_device_part_way_through_it(
    server, signer, devices, tmp_path
):
    device_id, token = server.provision("gw-c", "SWU-3")
    device = devices("SWU-3", token)
    explain = _explain(server, device, device_id)
    swu, target = _swu(tmp_path, signer, device)
    _publish(server, "gw-c", swu)
    _install_and_leave_pending(server, device, device_id, explain)
    assert target.read_bytes() == PAYLOAD, explain()

    server.operator("withdraw", "gw-c", "1.1.0", "--reason", "1.1.0 does not boot on rev-a")
    with device.running():
        wait_for(
            lambda: ("1.1.0", "failed", "E_CANCELLED") in server.steps(device_id),
            "the cancel to reach the install log",
            explain=explain,
        )
        after = wait_for(
            lambda: _polls_after(server, device, "cancelAction/feedback"),
            "two polls after the cancel",
            explain=explain,
        )
    since = [(r.method, r.kind, r.status) for r in server.requests("SWU-3", run=device.run)]
    assert ("GET", "cancelAction", 200) in since, explain()
    assert ("POST", "cancelAction/feedback", 200) in since, explain()
    assert "deploymentBase" not in [kind for _, kind, _ in since], explain()
    # Not offered the release again.
    assert {(r.kind, r.status) for r in after} == {("base", 200)}, explain()
    assert server.steps(device_id)[-1] == ("1.1.0", "failed", "E_CANCELLED")
    assert server.version(device_id) == "0.9.0"


def test_a_device_whose_coverage_ended_is_offered_nothing(server, signer, devices, tmp_path):
    # Accepted four years ago, no contract: coverage ended about a year ago.
    # The server runs on the real clock, so the dates are relative to the real today.
    dates = ExpiredDevice.relative_to(today_in(ZONE))
    device_id, token = server.provision(
        "gw-x",
        "SWU-4",
        delivered_on=dates.delivered_on.isoformat(),
        accepted_on=dates.accepted_on.isoformat(),
    )
    device = devices("SWU-4", token)
    explain = _explain(server, device, device_id)
    swu, target = _swu(tmp_path, signer, device)
    _publish(server, "gw-x", swu)

    with device.running():
        wait_for(
            lambda: [r.kind for r in server.requests("SWU-4")].count("base") >= 3,
            "three polls",
            explain=explain,
        )
    assert {(r.kind, r.status) for r in server.requests("SWU-4")} == {("base", 200)}, explain()
    assert server.steps(device_id) == []
    assert server.version(device_id) == "0.9.0"
    assert not target.exists()

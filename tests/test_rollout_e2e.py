"""Acceptance of staged rollouts (issue 16), end to end: gunicorn running the
gates' background job, and a fleet whose devices run the agent as separate
processes.

A rollout of 1 % -> 10 % -> 100 % of a release that does not boot on one
hardware revision halts by itself during the first wave; the rest of the
fleet is never offered the release; once the operator excludes that
revision and resumes, the rollout walks its waves by itself to completion.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from tests.agent_helpers import installed, write_config
from tests.gunicorn_server import gunicorn, operator, seed_publisher
from upgrade_server.rollouts.plan import Target, Wave, in_wave

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

# The customer's fleet; a pilot organisation, which volunteered for first
# waves, adds one device of each revision: the canaries, in the first wave
# from the rollout's start whatever their buckets. (Pins added after the start
# could come after the gates' first pass, which advances at once a first wave
# with no device of its own: 1 % of this fleet often has none, and the soak
# is 0 here.)
FLEET = {"rev-a": 26, "rev-b": 12}
# The new image does not boot on rev-b boards: their install command fails.
BRICKED = "import sys; sys.exit('1.1.0 does not boot on this board')"
# Gates for a test that runs in seconds.
GATES = {
    "min_soak_seconds": 0,
    # More than any wave holds: a wave advances once each of its devices has
    # reported, whatever order the fleet polls in.
    "min_reported": 1000,
    "min_reported_to_halt": 1,
    "min_failures_to_halt": 1,
    "min_device_days_to_judge_alarms": 0,
}
AGENTS_AT_ONCE = 6


@dataclass
class Device:
    id: int
    serial: str
    revision: str
    organisation_id: int
    secret: str = field(repr=False)
    home: Path = field(repr=False)
    config: Path | None = field(default=None, repr=False)
    polls: list[str] = field(default_factory=list)  # "offered", or "up to date (version)"
    installs: list[int] = field(default_factory=list)  # the install command's exit codes

    @property
    def target(self) -> Target:
        return Target(self.id, self.organisation_id, self.revision)

    @property
    def version(self) -> str:
        return "1.1.0" if installed(self.home) else "1.0.0"


def _provision(database_url: str, instance: Path, homes: Path) -> tuple[list[Device], int]:
    """The fleet, every device on 1.0.0; and the pilot organisation's id."""
    from upgrade_server import create_app
    from upgrade_server.accounts.principal import Principal
    from upgrade_server.config import Settings
    from upgrade_server.devices import provisioning
    from upgrade_server.extensions import db
    from upgrade_server.organisations import service as organisations

    app = create_app({"SETTINGS": Settings(instance_path=instance, database_url=database_url)})
    devices = []
    with app.app_context():
        actor = Principal.cli()
        for slug in ("pilot", "acme"):
            organisations.create_organisation(db.session, actor, slug=slug, name=slug.title())
        plan = [("pilot", "rev-a", "P-A"), ("pilot", "rev-b", "P-B")] + [
            ("acme", revision, f"{revision[-1].upper()}-{i:03}")
            for revision, count in FLEET.items()
            for i in range(count)
        ]
        for organisation, revision, serial in plan:
            made = provisioning.create_device(
                db.session,
                actor,
                {
                    "serial": serial,
                    "product": "gw",
                    "hardware_revision": revision,
                    "organisation": organisation,
                    "current_version": "1.0.0",
                },
            )
            device = made.device
            devices.append(
                Device(
                    device.id, serial, revision, device.organisation_id, made.secret, homes / serial
                )
            )
        pilot = organisations.find_by_slug(db.session, "pilot")
        assert pilot is not None
        pilot_id = pilot.id
        db.session.commit()
        db.engine.dispose()
    return devices, pilot_id


def _rollout(url: str, token: str, rollout_id: int) -> Any:
    request = urllib.request.Request(
        f"{url}/api/v1/rollouts/{rollout_id}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def _agent(device: Device, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upgrade_agent.cli", "--config", str(device.config), *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _poll_step_by_step(device: Device) -> None:
    """The agent's `check`, and when offered an update, `download` and
    `install` (which reports `failed` when the install command fails): a
    failed install under `run` would back off 20 s and more before it retries."""
    check = _agent(device, "check")
    assert check.returncode == 0, check.stderr
    offered = check.stdout.startswith("offered 1.1.0")
    device.polls.append("offered" if offered else check.stdout.strip())
    if offered:
        download = _agent(device, "download")
        assert download.returncode == 0, download.stderr
        device.installs.append(_agent(device, "install").returncode)


def _poll_run(device: Device) -> None:
    """`upgrade-agent run --until-idle`: check, and install what is offered
    until nothing is."""
    run = _agent(device, "run", "--until-idle")
    assert run.returncode == 0, run.stderr
    offered = "offered 1.1.0" in run.stderr
    device.polls.append("offered" if offered else f"up to date ({device.version})")
    if offered:
        device.installs.append(0 if "installed 1.1.0" in run.stderr else 1)


def _sweep(devices: list[Device], poll: Callable[[Device], None], seed: int) -> float:
    """Every device polls once, a few at a time, in a shuffled order; the seconds it took."""
    order = list(devices)
    random.Random(seed).shuffle(order)
    started = time.monotonic()
    with ThreadPoolExecutor(AGENTS_AT_ONCE) as pool:
        list(pool.map(poll, order))  # re-raises a device's failed assertion
    return time.monotonic() - started


def _until(url: str, token: str, rollout_id: int, what: str, done: Callable[[Any], bool]) -> Any:
    """The rollout once `done` holds for it (the gates' job runs every second)."""
    deadline = time.monotonic() + 30
    while True:
        rollout = _rollout(url, token, rollout_id)
        if done(rollout):
            return rollout
        assert time.monotonic() < deadline, (
            f"waited 30 s for {what}: the rollout is {rollout['state']} at wave "
            f"{rollout['current_wave'] + 1}, decisions {rollout['decisions'][:2]}"
        )
        time.sleep(0.2)  # the poll's period


def _install_steps(engine: Engine) -> dict[int, list[tuple[str, str | None]]]:
    """Per device, its install steps of 1.1.0 (status, error code) in order."""
    from upgrade_server.updates.models import InstallEvent

    steps: dict[int, list[tuple[str, str | None]]] = {}
    with engine.connect() as conn:
        for device_id, status, code in conn.execute(
            select(InstallEvent.device_id, InstallEvent.status, InstallEvent.error_code)
            .where(InstallEvent.version == "1.1.0")
            .order_by(InstallEvent.id)
        ):
            steps.setdefault(device_id, []).append((status, code))
    return steps


def _first_steps(engine: Engine) -> dict[int, datetime]:
    """Per device, when it reported its first install step of 1.1.0."""
    from upgrade_server.updates.models import InstallEvent

    with engine.connect() as conn:
        rows = conn.execute(
            select(InstallEvent.device_id, func.min(InstallEvent.occurred_at))
            .where(InstallEvent.version == "1.1.0")
            .group_by(InstallEvent.device_id)
        )
        return {device_id: at for device_id, at in rows}


def _server_versions(engine: Engine) -> dict[int, str | None]:
    from upgrade_server.devices.models import Device as DeviceRow

    with engine.connect() as conn:
        return dict(conn.execute(select(DeviceRow.id, DeviceRow.current_version)).all())


def _salt(engine: Engine, rollout_id: int) -> str:
    from upgrade_server.rollouts.models import Rollout

    with engine.connect() as conn:
        return conn.execute(select(Rollout.salt).where(Rollout.id == rollout_id)).scalar_one()


def test_a_rollout_halts_on_a_failing_revision_and_completes_once_it_is_excluded(
    scratch_url, tmp_path
):
    instance = tmp_path / "instance"
    token, _ = seed_publisher(scratch_url, instance, revisions=("rev-a", "rev-b"))
    devices, pilot = _provision(scratch_url, instance, tmp_path / "devices")
    rev_a = [d for d in devices if d.revision == "rev-a"]
    rev_b = [d for d in devices if d.revision == "rev-b"]
    engine = create_engine(scratch_url)
    timings: dict[str, float] = {}
    with gunicorn(
        scratch_url, instance, workers=2, UPGRADE_SERVER_ROLLOUT_EVALUATE_SECONDS="1"
    ) as url:
        # Staged as the README says: published to beta, which the fleet does
        # not follow, then rolled out to stable (the start promotes it).
        artifact = tmp_path / "gw-1.1.0.bin"
        artifact.write_bytes(b"firmware 1.1.0\n" * 1000)
        operator(url, token, "publish", "gw", "1.1.0", str(artifact), "--channel", "beta")
        gates = [arg for name, value in GATES.items() for arg in ("--gate", f"{name}={value}")]
        started = operator(
            url,
            token,
            "rollout",
            "start",
            "gw",
            "1.1.0",
            "--channel",
            "stable",
            "--waves",
            "1,10,100",
            "--early-organisation",
            str(pilot),
            *gates,
        )
        found = re.match(r"rollout (\d+): gw 1\.1\.0 to stable, waves 1 %, 10 %, 100 %", started)
        assert found, started
        rollout_id = int(found.group(1))
        rollout = _rollout(url, token, rollout_id)
        waves = [Wave.from_json(w) for w in rollout["waves"]]
        salt = _salt(engine, rollout_id)
        first_wave = {d.id for d in devices if in_wave(waves, 0, salt, d.target)}
        assert rollout["progress"]["waves"][0]["eligible"] == len(first_wave)
        assert {d.id for d in devices if d.organisation_id == pilot} <= first_wave
        assert len(first_wave) <= len(devices) // 2  # most of the fleet waits

        root = urllib.request.urlopen(f"{url}/tuf/gw/metadata/1.root.json").read()
        for device in devices:
            bricked = [sys.executable, "-c", BRICKED] if device.revision == "rev-b" else None
            device.config = write_config(
                device.home,
                url,
                device.secret,
                device.revision,
                root,
                initial_version="1.0.0",
                install_command=bricked,
                # Ask the server at every poll: a rollout's step changes no
                # signed metadata, which the agent otherwise polls first.
                extra="full_check_seconds = 0\n",
            )

        # The first wave: the fleet polls; the rev-b devices of the wave fail.
        timings["fleet, first wave"] = _sweep(devices, _poll_step_by_step, seed=1)
        halted = _until(url, token, rollout_id, "a halt", lambda r: r["state"] != "running")
        assert (halted["state"], halted["current_wave"]) == ("halted", 0), halted
        halt = halted["decisions"][0]
        assert (halt["action"], halt["wave"], halt["automatic"]) == ("halt", 0, True), halt
        assert halt["figures"]["failed"] >= 1
        assert "failed or rolled back" in halt["reasons"][0], halt["reasons"]

        # Halted: the fleet polls again; no one is offered the release but a
        # device that was part-way through its install when the gates halted.
        timings["fleet, halted"] = _sweep(devices, _poll_step_by_step, seed=2)
        part_way = set(halted["in_progress"])
        assert {d.id for d in devices if d.polls[1] == "offered"} <= part_way
        steps = _install_steps(engine)
        assert set(steps) <= first_wave
        failed = {d.id for d in rev_b if d.id in steps}
        assert failed, "no rev-b device of the first wave was offered 1.1.0"
        # (One offered before the halt may report after it.)
        assert 1 <= halt["figures"]["failed"] <= len(failed)
        for device_id in failed:
            assert steps[device_id][-1] == ("failed", "E_INSTALL"), steps[device_id]
        for device in devices:
            if device.id not in first_wave:
                assert device.polls == ["up to date (1.0.0)"] * 2, device
                assert installed(device.home) == []

        # The operator leaves rev-b out and resumes; the gates take it from there.
        operator(url, token, "rollout", "exclude-hardware", str(rollout_id), "rev-b")
        resumed = operator(
            url, token, "rollout", "resume", str(rollout_id), "--reason", "rev-b left out"
        )
        assert resumed == f"rollout {rollout_id}: running, wave 1\n"
        for seed in range(3, 3 + len(waves)):
            rollout = _rollout(url, token, rollout_id)
            if rollout["state"] == "completed":
                break
            wave = rollout["current_wave"]
            waiting = [
                d for d in rev_a if d.version == "1.0.0" and in_wave(waves, wave, salt, d.target)
            ]
            if waiting:  # else every device of the waves reached has reported already
                left = [d for d in devices if d.version == "1.0.0"]
                timings[f"fleet not on 1.1.0, wave {wave + 1}"] = _sweep(left, _poll_run, seed)
            # Each device of the waves reached has reported: the gates move on.
            _until(
                url,
                token,
                rollout_id,
                f"wave {wave + 1} to be judged",
                lambda r, wave=wave: r["state"] != "running" or r["current_wave"] > wave,
            )
        final = _rollout(url, token, rollout_id)
        assert final["state"] == "completed", final["decisions"][:2]
        # Completed, the release is offered as any release is, but still not to rev-b.
        timings["rev-b, completed"] = _sweep(rev_b, _poll_step_by_step, seed=9)
        print("\n".join(f"{what}: {seconds:.1f} s" for what, seconds in timings.items()))

    steps_taken = [(d["action"], d["wave"], d["automatic"]) for d in reversed(final["decisions"])]
    assert steps_taken == [
        ("start", 0, False),
        ("halt", 0, True),
        ("resume", 0, False),
        ("advance", 1, True),
        ("advance", 2, True),
        ("complete", 2, True),
    ]
    # The figures leave the excluded revision out: every device counted installed.
    totals = final["progress"]["totals"]
    assert (totals["excluded"], totals["installed"], totals["failed"]) == (
        len(rev_b),
        len(rev_a),
        0,
    )

    # No device started before its wave was reached.
    reached: dict[int, datetime] = {}  # when each wave was first reached
    for decision in reversed(final["decisions"]):
        reached.setdefault(decision["wave"], datetime.fromisoformat(decision["at"]))
    for device_id, at in _first_steps(engine).items():
        device = next(d for d in devices if d.id == device_id)
        wave = next(n for n in range(len(waves)) if in_wave(waves, n, salt, device.target))
        assert at > reached[wave], (device, wave)

    versions = _server_versions(engine)
    steps = _install_steps(engine)
    for device in rev_a:
        assert installed(device.home) == ["1.1.0"], device
        assert versions[device.id] == "1.1.0"
        assert device.installs == [0]
        assert steps[device.id][-1] == ("installed", None)
    for device in rev_b:
        assert installed(device.home) == [], device
        assert versions[device.id] == "1.0.0"
        # Offered in the first wave, or while part-way when it halted; never since.
        offered = [n for n, said in enumerate(device.polls) if said == "offered"]
        if device.id in failed:
            assert offered[0] == 0 and set(offered) <= {0, 1}, device
            assert device.installs == [1] * len(offered)
        else:
            assert not offered and device.id not in steps, device
        assert set(device.polls[2:]) == {"up to date (1.0.0)"}, device
    engine.dispose()

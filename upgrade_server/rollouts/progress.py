"""A rollout's figures, wave by wave, from a fixed number of set-based
queries (never one per device): the eligible fleet, each device's latest
install step for the release, and the alarms raised since.

Which wave a device belongs to is computed here from its bucket
(plan.bucket), since the hash cannot be computed in SQLite: the fleet of a
product is read once, as (id, organisation, hardware revision, version).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from upgrade_server.devices.models import Device
from upgrade_server.products.models import HardwareRevision
from upgrade_server.releases.models import Channel
from upgrade_server.rollouts.models import Rollout
from upgrade_server.rollouts.plan import Target, Wave, WaveStats, wave_of
from upgrade_server.tickets.models import Alarm
from upgrade_server.updates.models import InstallEvent, InstallStatus

STARTED = frozenset(
    {
        InstallStatus.WAITING,
        InstallStatus.DOWNLOADING,
        InstallStatus.DOWNLOADED,
        InstallStatus.VERIFIED,
        InstallStatus.INSTALLING,
    }
)
COLUMNS = [
    "wave",
    "share_percent",
    "reached",
    "eligible",
    "offered",
    "downloading",
    "installed",
    "failed",
    "rolled_back",
    "alarms",
]


def first_wave(
    waves: Sequence[Wave],
    salt: str,
    target: Target,
    pinned: frozenset[int],
    excluded_devices: frozenset[int],
    excluded_hardware: frozenset[str],
) -> int | None:
    """The first wave the device is in (None: excluded, or in none): the
    first N for which plan.in_wave holds, with one hash per device."""
    if target.device_id in excluded_devices or target.hardware in excluded_hardware:
        return None
    if target.device_id in pinned:
        return 0
    return wave_of(waves, salt, target)


@dataclass
class Member:
    device_id: int
    wave: int | None  # None: excluded or in no wave
    on_release: bool  # already runs the release's version
    status: str | None = None  # its latest install step for the release
    installed_at: datetime | None = None
    alarms_since_install: int = 0
    alarms_in_wave: int = 0  # raised since the current wave started


@dataclass(frozen=True)
class Progress:
    rollout: Rollout
    members: list[Member]
    now: datetime

    def wave_rows(self) -> list[dict[str, Any]]:
        """Per wave: its devices (those first in it) and how far they got."""
        rows = []
        for index, data in enumerate(self.rollout.waves):
            devices = [m for m in self.members if m.wave == index]
            reached = index <= self.rollout.current_wave
            rows.append(
                {
                    "wave": index,
                    "share_percent": int(data.get("share", 0)) / 100,
                    "reached": reached,
                    **_counts(devices, reached),
                }
            )
        return rows

    def totals(self) -> dict[str, Any]:
        reached = [
            m for m in self.members if m.wave is not None and m.wave <= self.rollout.current_wave
        ]
        return {
            "fleet": len(self.members),
            "excluded": sum(1 for m in self.members if m.wave is None),
            **_counts(reached, True),
        }

    def in_progress(self) -> list[int]:
        """Devices of the waves reached that are part-way through the install
        (downloading it, or installing): those a halt does not cut off. A
        device waiting for its operator has not started."""
        return sorted(
            m.device_id
            for m in self.members
            if m.wave is not None
            and m.wave <= self.rollout.current_wave
            and m.status in STARTED
            and m.status != InstallStatus.WAITING
        )

    def stats(self) -> WaveStats:
        """The current wave's figures for the gates. The control group is every
        eligible device still on the previous release (not started on this
        one): those of waves not reached, and those of reached waves that
        have not begun, so that the last wave has one too."""
        wave = self.rollout.current_wave
        devices = [m for m in self.members if m.wave == wave]
        counts = _counts(devices, True)
        treated = [m for m in devices if m.installed_at is not None]
        control = [m for m in self.members if m.status is None and not m.on_release]
        since = self.rollout.wave_started_at or self.now
        control_hours = max(0.0, (self.now - since).total_seconds() / 3600)
        return WaveStats(
            eligible=counts["eligible"],
            offered=counts["offered"],
            downloading=counts["downloading"],
            installed=counts["installed"],
            failed=counts["failed"],
            rolled_back=counts["rolled_back"],
            alarms_treated=sum(m.alarms_since_install for m in treated),
            exposure_treated=sum(
                max(0.0, (self.now - m.installed_at).total_seconds() / 3600)
                for m in treated
                if m.installed_at is not None
            ),
            alarms_control=sum(m.alarms_in_wave for m in control),
            exposure_control=control_hours * len(control),
        )


def figures(stats: WaveStats) -> dict[str, Any]:
    """The stats as audit and API figures, with the derived rates."""
    return {
        **asdict(stats),
        "reported": stats.reported,
        "success_rate": stats.success_rate,
        "failure_rate": stats.failure_rate,
        "alarm_ratio": stats.alarm_ratio,
    }


def _counts(devices: list[Member], reached: bool) -> dict[str, int]:
    steps = Counter(m.status for m in devices)
    return {
        "eligible": len(devices),
        "offered": len(devices) if reached else 0,
        "downloading": sum(n for s, n in steps.items() if s in STARTED),
        "installed": steps[InstallStatus.INSTALLED],
        "failed": steps[InstallStatus.FAILED],
        "rolled_back": steps[InstallStatus.ROLLED_BACK],
        "alarms": sum(m.alarms_since_install for m in devices),
    }


def progress(session: Session, rollout: Rollout, now: datetime) -> Progress:
    """Every eligible device with its wave, latest step and alarms: four queries."""
    release = rollout.release
    waves = [Wave.from_json(w) for w in rollout.waves]
    pinned, excluded = rollout.pinned, rollout.excluded
    excluded_hardware = frozenset(rollout.excluded_hardware)
    members: dict[int, Member] = {}
    for row in session.execute(_fleet(rollout)):
        target = Target(row.id, row.organisation_id, row.hardware)
        wave = first_wave(waves, rollout.salt, target, pinned, excluded, excluded_hardware)
        members[row.id] = Member(row.id, wave, row.current_version == release.version)
    latest = (
        select(func.max(InstallEvent.id))
        .where(InstallEvent.release_id == release.id)
        .group_by(InstallEvent.device_id)
    )
    for device_id, status in session.execute(
        select(InstallEvent.device_id, InstallEvent.status).where(InstallEvent.id.in_(latest))
    ):
        if device_id in members:
            members[device_id].status = status
    installed = (
        select(InstallEvent.device_id, func.min(InstallEvent.occurred_at).label("at"))
        .where(
            InstallEvent.release_id == release.id,
            InstallEvent.status == InstallStatus.INSTALLED.value,
        )
        .group_by(InstallEvent.device_id)
        .subquery()
    )
    treated_alarms = (
        select(installed.c.device_id, installed.c.at, func.count(Alarm.id))
        .outerjoin(
            Alarm,
            and_(
                Alarm.device_id == installed.c.device_id,
                Alarm.event == "raise",
                Alarm.occurred_at >= installed.c.at,
            ),
        )
        .group_by(installed.c.device_id, installed.c.at)
    )
    for device_id, at, count in session.execute(treated_alarms):
        if device_id in members:
            members[device_id].installed_at = at
            members[device_id].alarms_since_install = count
    since = rollout.wave_started_at or now
    recent_alarms = (
        select(Alarm.device_id, func.count(Alarm.id))
        .join(Device, Device.id == Alarm.device_id)
        .where(
            Device.product_id == rollout.product_id,
            Alarm.event == "raise",
            Alarm.occurred_at >= since,
        )
        .group_by(Alarm.device_id)
    )
    for device_id, count in session.execute(recent_alarms):
        if device_id in members:
            members[device_id].alarms_in_wave = count
    return Progress(rollout, list(members.values()), now)


def _fleet(rollout: Rollout) -> Any:
    """The devices the release could reach through the rollout's channel: of
    its product, on that channel or a lower one, of a revision it runs on."""
    stmt = (
        select(
            Device.id,
            Device.organisation_id,
            HardwareRevision.code.label("hardware"),
            Device.current_version,
        )
        .join(HardwareRevision, HardwareRevision.id == Device.hardware_revision_id)
        .join(
            Channel,
            and_(Channel.product_id == Device.product_id, Channel.name == Device.channel),
        )
        .where(Device.product_id == rollout.product_id, Channel.rank <= rollout.channel.rank)
    )
    if rollout.release.hardware_revisions:
        stmt = stmt.where(HardwareRevision.code.in_(rollout.release.hardware_revisions))
    return stmt

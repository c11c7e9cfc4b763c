"""What a release action would do to the fleet, counted before a person confirms it.

A device is offered a release when it is of the release's product, follows a
channel the release is in or a lower one (a device on beta takes beta and
stable), runs a hardware revision the release supports, and runs a version
below the release's (and not below its lowest from-version): the rule of the
update check (updates/offers.py). The fleet is read as one grouped statement
(channel rank, version, count); versions are compared here with the same
sort key the database holds for releases, since devices keep only their
version's text. Upgrade coverage, maintenance windows and customers' approval
may still hold devices back: the pages say "up to".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from upgrade_server.devices.models import Device
from upgrade_server.errors import InvalidInputError
from upgrade_server.products.models import HardwareRevision
from upgrade_server.releases import versions
from upgrade_server.releases.models import Channel, Release
from upgrade_server.rollouts.progress import STARTED
from upgrade_server.updates.models import InstallEvent


@dataclass(frozen=True)
class Group:
    """Devices of one channel rank and one version."""

    rank: int
    version: str | None
    count: int


@dataclass(frozen=True)
class Fleet:
    """The devices of a release's product that could run it, by channel rank
    and version; questions about who is offered it are asked of this."""

    release: Release
    groups: tuple[Group, ...]

    def _below(self, version: str | None) -> bool:
        if version is None:
            return False  # a device that never said its version is offered nothing
        try:
            key = versions.sort_key(version)
        except InvalidInputError:
            return False
        if key >= self.release.version_key:
            return False
        return self.release.min_from_key is None or key >= self.release.min_from_key

    def offered(self, up_to_rank: int | None, above_rank: int | None = None) -> int:
        """Devices following a channel of rank at most `up_to_rank` (and above
        `above_rank`) that would be offered the release."""
        if up_to_rank is None:
            return 0
        return sum(
            g.count
            for g in self.groups
            if g.rank <= up_to_rank
            and (above_rank is None or g.rank > above_rank)
            and self._below(g.version)
        )

    def running(self, up_to_rank: int | None) -> int:
        """Devices already running the release's version."""
        if up_to_rank is None:
            return 0
        return sum(
            g.count
            for g in self.groups
            if g.rank <= up_to_rank and g.version == self.release.version
        )


def fleet(session: Session, release: Release, excluded_hardware: Iterable[str] = ()) -> Fleet:
    """The release's possible fleet in one statement (hardware it runs on,
    less `excluded_hardware`)."""
    hardware = sorted(set(release.hardware_revisions) - set(excluded_hardware))
    stmt = (
        select(Channel.rank, Device.current_version, func.count())
        .join(HardwareRevision, HardwareRevision.id == Device.hardware_revision_id)
        .join(
            Channel,
            and_(Channel.product_id == Device.product_id, Channel.name == Device.channel),
        )
        .where(Device.product_id == release.product_id, HardwareRevision.code.in_(hardware))
        .group_by(Channel.rank, Device.current_version)
    )
    rows = session.execute(stmt).all() if hardware else []
    return Fleet(release, tuple(Group(rank, version, count) for rank, version, count in rows))


def top_rank(release: Release) -> int | None:
    """The highest rank of the release's channels: devices on it or lower take it."""
    return max((c.rank for c in release.channels), default=None)


def installing(session: Session, release: Release) -> int:
    """Devices whose latest step for the release says they are part-way through it."""
    latest = (
        select(func.max(InstallEvent.id))
        .where(InstallEvent.release_id == release.id)
        .group_by(InstallEvent.device_id)
    )
    return int(
        session.execute(
            select(func.count()).where(
                InstallEvent.id.in_(latest), InstallEvent.status.in_([s.value for s in STARTED])
            )
        ).scalar_one()
    )


def first_wave_share(fleet_size: int, share: int) -> int:
    """About how many of `fleet_size` devices a wave of `share` basis points reaches."""
    return round(fleet_size * share / 10_000)

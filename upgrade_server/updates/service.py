"""Download authorisation and install reports (the update check: device_edge/update_check.py).

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError,
ConflictError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from upgrade_server import events, metrics
from upgrade_server.clock import utcnow
from upgrade_server.devices.models import Device
from upgrade_server.entitlements import service as entitlements
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.releases import versions
from upgrade_server.releases.models import Release, ReleaseStatus
from upgrade_server.updates.models import InstallEvent, InstallStatus


def may_download(device: Device, release: Release, *, covered: bool = True) -> None:
    """Raise unless this device may fetch this release's artifact.

    Another product's release is NotFound (its existence does not leak); a
    withdrawn, pending or foreign-hardware one is PermissionDenied, one the
    device's coverage does not include is NotEntitled.
    """
    if release.product_id != device.product_id:
        raise NotFoundError(f"no release {release.id}")
    if release.status != ReleaseStatus.PUBLISHED.value:
        raise PermissionDeniedError(f"release {release.version} is {release.status}")
    if device.hardware_revision.code not in release.hardware_revisions:
        raise PermissionDeniedError(
            f"release {release.version} is not for hardware {device.hardware_revision.code}"
        )
    if covered:
        entitlements.check_release(device, release)


def count_download(session: Session, release: Release) -> None:
    session.execute(
        update(Release).where(Release.id == release.id).values(downloads=Release.downloads + 1)
    )


# --- install reports -----------------------------------------------------------

_ORDER = {
    InstallStatus.WAITING: 0,
    InstallStatus.DOWNLOADING: 1,
    InstallStatus.DOWNLOADED: 2,
    InstallStatus.VERIFIED: 3,
    InstallStatus.INSTALLING: 4,
    InstallStatus.INSTALLED: 5,
}
_TERMINAL = {InstallStatus.INSTALLED, InstallStatus.FAILED, InstallStatus.ROLLED_BACK}


def allowed_after(previous: InstallStatus | None, new: InstallStatus) -> bool:
    """The install state machine for one release on one device."""
    if previous is None or previous in (InstallStatus.FAILED, InstallStatus.ROLLED_BACK):
        # A new attempt may start anywhere (a device may skip reporting steps),
        # but a rollback needs something installed or installing.
        return new is not InstallStatus.ROLLED_BACK or previous is InstallStatus.FAILED
    if new is InstallStatus.FAILED:
        return previous not in _TERMINAL
    if new is InstallStatus.ROLLED_BACK:
        return previous in (InstallStatus.INSTALLING, InstallStatus.INSTALLED)
    if previous is InstallStatus.INSTALLED:
        return False
    if new is previous is InstallStatus.WAITING:
        return True  # still waiting (a device that lost its state says so again)
    return _ORDER[new] > _ORDER[previous]


def last_step(session: Session, device_id: int, release_id: int) -> InstallStatus | None:
    """The device's last install step of the release (None: none yet)."""
    last = session.execute(
        select(InstallEvent.status)
        .where(InstallEvent.device_id == device_id, InstallEvent.release_id == release_id)
        .order_by(InstallEvent.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return InstallStatus(last) if last else None


@dataclass(frozen=True)
class EventReport:
    event_id: str
    status: str
    version: str | None = None
    release_id: int | None = None
    error_code: str | None = None
    error_text: str | None = None
    occurred_at: datetime | None = None


# How an install ends: the steps after which the device is no longer part-way.
OUTCOMES = frozenset({InstallStatus.INSTALLED, InstallStatus.FAILED, InstallStatus.ROLLED_BACK})


def record_event(
    session: Session, device: Device, report: EventReport
) -> tuple[InstallEvent, bool]:
    """Keep one install step; returns (event, created). A repeated event_id is a no-op.

    `installed` sets the device's current version. A version installed outside
    the server is reported with `version` and no release.
    """
    existing = session.execute(
        select(InstallEvent).where(
            InstallEvent.device_id == device.id, InstallEvent.event_id == report.event_id
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    try:
        status = InstallStatus(report.status)
    except ValueError as exc:
        raise InvalidInputError(
            "unknown status",
            [{"field": "status", "message": f"one of {[s.value for s in InstallStatus]}"}],
        ) from exc
    release = None
    if report.release_id is not None:
        release = session.get(Release, report.release_id)
        if release is None or release.product_id != device.product_id:
            raise NotFoundError(f"no release {report.release_id}")
        version = release.version
    elif report.version:
        version = str(versions.parse(report.version))
        if status is not InstallStatus.INSTALLED:
            raise InvalidInputError(
                "an outside install is reported once, as installed",
                [{"field": "status", "message": "installed, with version and no release_id"}],
            )
    else:
        raise InvalidInputError(
            "which release?", [{"field": "release_id", "message": "release_id or version"}]
        )
    if status is InstallStatus.FAILED and not report.error_code:
        raise InvalidInputError(
            "a failure needs its error code", [{"field": "error_code", "message": "required"}]
        )
    if release is not None:
        previous_status = last_step(session, device.id, release.id)
        if not allowed_after(previous_status, status):
            raise ConflictError(
                f"cannot go from {previous_status.value if previous_status else 'nothing'} "
                f"to {status.value} for release {release.version}",
            )
    event = InstallEvent(
        device_id=device.id,
        release_id=release.id if release else None,
        version=version,
        event_id=report.event_id,
        status=status.value,
        error_code=report.error_code,
        error_text=report.error_text,
        occurred_at=report.occurred_at or utcnow(),
    )
    session.add(event)
    if status is InstallStatus.INSTALLED:
        device.current_version = version
    if release is None or status in OUTCOMES:
        if release is None or device.installing_release_id == release.id:
            device.installing_release_id = None
    else:
        device.installing_release_id = release.id
    session.flush()
    if release is not None and status in OUTCOMES:
        events.install_outcome.send(session, event=event)
    metrics.count_install_report(status.value)
    return event, True


def release_outcomes(session: Session, release_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per release: how many devices succeeded, failed, rolled back, are in progress."""
    latest = (
        select(
            InstallEvent.release_id,
            InstallEvent.device_id,
            func.max(InstallEvent.id).label("last_id"),
        )
        .where(InstallEvent.release_id.in_(release_ids))
        .group_by(InstallEvent.release_id, InstallEvent.device_id)
        .subquery()
    )
    rows = session.execute(
        select(InstallEvent.release_id, InstallEvent.status, func.count())
        .join(latest, and_(InstallEvent.id == latest.c.last_id))
        .group_by(InstallEvent.release_id, InstallEvent.status)
    ).all()
    empty = {"installed": 0, "failed": 0, "rolled_back": 0, "in_progress": 0}
    out: dict[int, dict[str, int]] = {rid: dict(empty) for rid in release_ids}
    for release_id, status, count in rows:
        if release_id is None:
            continue
        key = status if status in ("installed", "failed", "rolled_back") else "in_progress"
        out[release_id][key] += count
    return out


# --- what a device would be offered, for people ---------------------------------


@dataclass(frozen=True)
class Available:
    """The release a device would be offered now, and a newer one its
    coverage does not include (either may be None)."""

    offered: Release | None
    not_covered: Release | None


def available_update(
    session: Session,
    device: Device,
    memo: dict[tuple[Any, ...], Any] | None = None,
    keep: Callable[[Any], bool] | None = None,
) -> Available:
    """What the update check would answer this device, as releases: the same
    candidates and the same rule (offers.py), read in this session. `memo` keeps
    candidates across the devices of one page; `keep` leaves out the
    candidates it refuses (rollouts.availability: rollouts and approval)."""
    from types import SimpleNamespace

    from upgrade_server.updates import offers

    if device.current_version is None:
        return Available(None, None)
    view = SimpleNamespace(
        product_id=device.product_id,
        hardware=device.hardware_revision.code,
        upgrade_windows=device.upgrade_windows,
        security_fixes_free=device.product.security_fixes_free,
    )
    memo = {} if memo is None else memo
    key = (device.product_id, view.hardware, device.channel, device.current_version)
    if key not in memo:
        memo[key] = offers.candidates(
            session.connection(), view, device.current_version, device.channel, 0, ""
        )
    found = memo[key]
    if keep is not None:
        found = tuple(c for c in found if keep(c))
    chosen, missed = offers.pick(found, view)

    def release(candidate: offers.Candidate | None) -> Release | None:
        return session.get(Release, candidate.offer["release_id"]) if candidate else None

    return Available(release(chosen), release(missed))

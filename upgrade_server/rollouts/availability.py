"""What a device is offered now, for people: the update check's answer as
releases, with the rollouts, the customer's approval and the maintenance
window applied as the check applies them (gatekeeper.py), and why an update
waits when it does.

The portal's device pages and the list of releases waiting for approval
read this, so that what a customer sees is what the device gets: a release
a staged rollout has not reached the device with is not shown as available,
one waiting for the customer's approval says so, and one held by the
maintenance window says until when.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.devices.models import Device
from upgrade_server.organisations.service import get_organisation
from upgrade_server.releases.models import Release
from upgrade_server.rollouts.approvals import Approvals, load_approvals
from upgrade_server.rollouts.maintenance import load_windows
from upgrade_server.rollouts.offer import ActiveRollouts, load_active, offered
from upgrade_server.rollouts.plan import Target
from upgrade_server.rollouts.windows import window_state
from upgrade_server.updates.offers import Candidate
from upgrade_server.updates.service import available_update


@dataclass(frozen=True)
class Availability:
    """The release offered now (None: nothing to install now) and why not."""

    offered: Release | None
    # A newer release its upgrade coverage does not include.
    not_covered: Release | None
    # The release the device would be offered but for the customer's approval.
    awaiting_approval: Release | None = None
    # The offered release waits for the maintenance window that opens then
    # (None: no window holds it). The device is told to wait until then.
    window_opens: datetime | None = None
    window_closed: bool = False


class Memo:
    """What the devices of one page share: candidates, rollouts, settings."""

    def __init__(self) -> None:
        self.candidates: dict[tuple[Any, ...], Any] = {}
        self.rollouts: dict[int, ActiveRollouts] = {}
        self.approvals: dict[int, Approvals] = {}
        self.windows: dict[int, Any] = {}


def availability(
    session: Session, device: Device, now: datetime, memo: Memo | None = None
) -> Availability:
    """What the update check would answer `device` at `now`, as releases."""
    memo = memo or Memo()
    conn = session.connection()
    if device.product_id not in memo.rollouts:
        memo.rollouts[device.product_id] = load_active(conn, device.product_id)
    active = memo.rollouts[device.product_id]
    organisation_id = device.organisation_id
    if organisation_id not in memo.approvals:
        memo.approvals[organisation_id] = load_approvals(conn, organisation_id)
    approvals = memo.approvals[organisation_id]
    target = Target(device.id, organisation_id, device.hardware_revision.code)

    def reached(candidate: Candidate) -> bool:
        return offered(active, candidate.release_id, target) is not False

    def approved(candidate: Candidate) -> bool:
        return reached(candidate) and approvals.approved(candidate.release_id, device.id)

    staged = available_update(session, device, memo.candidates, keep=reached)
    if not approvals.needed:
        now_offered = staged
        awaiting = None
    else:
        now_offered = available_update(session, device, memo.candidates, keep=approved)
        waiting = staged.offered
        awaiting = waiting if waiting is not None and waiting != now_offered.offered else None
    release = now_offered.offered
    if release is None:
        return Availability(None, now_offered.not_covered, awaiting)
    view = active.by_release.get(release.id)
    if view is not None and view.emergency:
        return Availability(release, now_offered.not_covered, awaiting)  # windows do not hold it
    if organisation_id not in memo.windows:
        windows = load_windows(conn, organisation_id)
        memo.windows[organisation_id] = window_state(windows, device.organisation.timezone, now)
    state = memo.windows[organisation_id]
    if state.open:
        return Availability(release, now_offered.not_covered, awaiting)
    return Availability(release, now_offered.not_covered, awaiting, state.opens_at, True)


@dataclass(frozen=True)
class Pending:
    """A release offered to some of the organisation's devices that waits for approval."""

    release: Release
    devices: list[Device]


def pending_releases(
    session: Session, actor: Principal, organisation_id: int, now: datetime
) -> list[Pending]:
    """Releases the update check would offer the organisation's devices now
    but for approval (a staged rollout that has not reached a device does
    not), each with the devices it concerns; none while approval is off."""
    organisation = get_organisation(session, actor, organisation_id)
    if not organisation.updates_need_approval:
        return []
    waiting: dict[int, list[Device]] = defaultdict(list)
    releases: dict[int, Release] = {}
    memo = Memo()
    own = session.scalars(
        select(Device).where(Device.organisation_id == organisation.id).order_by(Device.serial)
    )
    for device in own:
        release = availability(session, device, now, memo).awaiting_approval
        if release is not None:
            releases[release.id] = release
            waiting[release.id].append(device)
    return [Pending(releases[rid], waiting[rid]) for rid in sorted(releases, reverse=True)]

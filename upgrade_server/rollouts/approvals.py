"""Customer approval of updates, an organisation setting: while it is on, a
release is offered to the organisation's devices only once a customer-admin
approved it for all of them or for the device. Approving may ask for an
upgrade-installation service session (a service request, as the portal opens
one). Flask-free.

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.audit.service import record, record_change
from upgrade_server.devices.models import Device
from upgrade_server.errors import InvalidInputError, NotFoundError
from upgrade_server.organisations.models import Organisation
from upgrade_server.organisations.service import get_organisation
from upgrade_server.releases.models import Release, ReleaseStatus
from upgrade_server.rollouts.maintenance import bump, require_approver
from upgrade_server.rollouts.settings_models import ReleaseApproval, approval_devices
from upgrade_server.service import service_requests

MAX_DEVICES = 10_000
LISTED_APPROVALS = 200


# --- what the update check needs --------------------------------------------------------


@dataclass(frozen=True)
class Approvals:
    """An organisation's approvals, as plain data a process may cache under
    the organisation's `update_settings_generation`."""

    needed: bool
    every_device: frozenset[int] = frozenset()  # releases approved for all devices
    devices: dict[int, frozenset[int]] = field(default_factory=dict)  # release -> devices

    def allowed_for(self, device_id: int) -> frozenset[int]:
        """The releases approved for `device_id` (when approval is needed)."""
        chosen = {release for release, ids in self.devices.items() if device_id in ids}
        return self.every_device | chosen if chosen else self.every_device

    def approved(self, release_id: int, device_id: int) -> bool:
        """May `release_id` be offered to `device_id` as far as approval goes?"""
        if not self.needed or release_id in self.every_device:
            return True
        return device_id in self.devices.get(release_id, frozenset())


_APPROVALS = (
    select(
        Organisation.updates_need_approval,
        ReleaseApproval.release_id,
        ReleaseApproval.all_devices,
        approval_devices.c.device_id,
    )
    .select_from(Organisation)
    .outerjoin(ReleaseApproval, ReleaseApproval.organisation_id == Organisation.id)
    .outerjoin(approval_devices, approval_devices.c.approval_id == ReleaseApproval.id)
    .where(Organisation.id == bindparam("organisation_id"))
)


def load_approvals(conn: Connection, organisation_id: int) -> Approvals:
    """The setting and every approval of an organisation, in one query."""
    needed = False
    every: set[int] = set()
    chosen: dict[int, set[int]] = defaultdict(set)
    for row in conn.execute(_APPROVALS, {"organisation_id": organisation_id}):
        needed = bool(row.updates_need_approval)
        if row.release_id is None:
            continue
        if row.all_devices:
            every.add(row.release_id)
        elif row.device_id is not None:
            chosen[row.release_id].add(row.device_id)
    return Approvals(
        needed, frozenset(every), {release: frozenset(ids) for release, ids in chosen.items()}
    )


def approved(session: Session, organisation_id: int, release_id: int, device_id: int) -> bool:
    """Whether the organisation lets `release_id` be offered to `device_id`."""
    return load_approvals(session.connection(), organisation_id).approved(release_id, device_id)


# --- the setting ------------------------------------------------------------------------


def get_setting(session: Session, actor: Principal, organisation_id: int) -> Organisation:
    return get_organisation(session, actor, organisation_id)


def set_required(
    session: Session, actor: Principal, organisation_id: int, required: bool
) -> Organisation:
    """Turn customer approval of updates on or off for the organisation."""
    organisation = get_organisation(session, actor, organisation_id)
    require_approver(actor, organisation.id)
    before = organisation.updates_need_approval
    if before != required:
        organisation.updates_need_approval = required
        bump(organisation)
        session.flush()
        record(
            session,
            actor,
            "organisation.update-approval.set",
            "organisation",
            organisation.id,
            before={"updates_need_approval": before},
            after={"updates_need_approval": required},
            organisation_id=organisation.id,
        )
    return organisation


# --- pending and given approvals -----------------------------------------------------------


def approvals_given(
    session: Session, actor: Principal, organisation_id: int
) -> list[ReleaseApproval]:
    """The organisation's latest approvals, newest first."""
    organisation = get_organisation(session, actor, organisation_id)
    return list(
        session.scalars(
            select(ReleaseApproval)
            .where(ReleaseApproval.organisation_id == organisation.id)
            .order_by(ReleaseApproval.id.desc())
            .limit(LISTED_APPROVALS)
        )
    )


def approve(
    session: Session,
    actor: Principal,
    organisation_id: int,
    release_id: int,
    device_ids: Sequence[int] = (),
    *,
    request_installation: bool = False,
    request_title: str | None = None,
    via: str = "api",
) -> ReleaseApproval:
    """Approve a release for all of the organisation's devices (no
    `device_ids`) or the devices named, which must be the organisation's
    devices of the release's product. With `request_installation`, a service
    request for an upgrade-installation session is opened for those devices."""
    organisation = get_organisation(session, actor, organisation_id)
    require_approver(actor, organisation.id)
    release = session.get(Release, release_id)
    if release is None or release.status != ReleaseStatus.PUBLISHED.value:
        raise NotFoundError(f"no published release {release_id}")
    ids = sorted(set(device_ids))
    if len(ids) > MAX_DEVICES:
        raise InvalidInputError(
            "too many devices", [{"field": "device_ids", "message": f"at most {MAX_DEVICES}"}]
        )
    of_product = select(Device).where(
        Device.organisation_id == organisation.id, Device.product_id == release.product_id
    )
    if ids:
        chosen = list(session.scalars(of_product.where(Device.id.in_(ids))))
        if len(chosen) != len(ids):
            raise InvalidInputError(
                "the devices are invalid",
                [{"field": "device_ids", "message": "devices of this organisation and product"}],
            )
    else:
        chosen = list(session.scalars(of_product.order_by(Device.serial)))
        if not chosen:
            raise InvalidInputError(
                "the release concerns no device of this organisation",
                [{"field": "release_id", "message": "a release of a product the organisation has"}],
            )
    approval = ReleaseApproval(
        organisation_id=organisation.id,
        release_id=release.id,
        all_devices=not ids,
        approved_by=actor.label,
        devices=chosen if ids else [],
    )
    if request_installation:
        product = release.product
        request = service_requests.open_request(
            session,
            actor,
            {
                "organisation_id": organisation.id,
                "title": (
                    request_title or f"Upgrade installation: {product.name} {release.version}"
                )[:200],
                "description": f"{product.code} {release.version}",
                "device_ids": [d.id for d in chosen],
            },
            via=via,
        )
        approval.service_request_id = request.id
    session.add(approval)
    bump(organisation)
    session.flush()
    record_change(
        session, actor, "release.approve", approval, None, organisation_id=organisation.id
    )
    return approval

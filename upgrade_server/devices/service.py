"""Devices: reads scoped to the caller's organisation, changes, tokens
(provisioning, one at a time or from CSV, is in provisioning.py).

Errors raised: InvalidInputError, NotFoundError, ConflictError,
PermissionDeniedError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import semver
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from upgrade_server import events, tokens
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record, record_change
from upgrade_server.clock import utcnow
from upgrade_server.database import escape_like
from upgrade_server.devices.models import Device, DeviceToken
from upgrade_server.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import HardwareRevision, Product
from upgrade_server.releases.models import DEFAULT_CHANNELS, Channel
from upgrade_server.sites.service import site_named

# Largest id an organisation reference may name (a 32-bit column); longer digit
# strings are refused before they reach the database.
_MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class ProvisionedDevice:
    device: Device
    secret: str


@dataclass
class DeviceFilters:
    organisation_id: int | None = None
    product_id: int | None = None
    hardware_revision: str | None = None
    channel: str | None = None
    current_version: str | None = None
    serial_prefix: str | None = None
    site: str | None = None


def _require_write(actor: Principal) -> None:
    if not actor.may(Permission.DEVICE_WRITE):
        raise PermissionDeniedError("you may not manage devices")


def visible_devices(actor: Principal, filters: DeviceFilters | None = None) -> Select[Device]:
    stmt = select(Device)
    if not actor.is_vendor:
        stmt = stmt.where(Device.organisation_id == actor.organisation_id)
    f = filters or DeviceFilters()
    if f.organisation_id is not None:
        stmt = stmt.where(Device.organisation_id == f.organisation_id)
    if f.product_id is not None:
        stmt = stmt.where(Device.product_id == f.product_id)
    if f.hardware_revision is not None:
        stmt = stmt.join(
            HardwareRevision, Device.hardware_revision_id == HardwareRevision.id
        ).where(HardwareRevision.code == f.hardware_revision)
    if f.channel is not None:
        stmt = stmt.where(Device.channel == f.channel)
    if f.current_version is not None:
        stmt = stmt.where(Device.current_version == f.current_version)
    if f.serial_prefix:
        stmt = stmt.where(Device.serial.like(f"{escape_like(f.serial_prefix)}%", escape="\\"))
    if f.site is not None:
        stmt = stmt.where(Device.site == f.site)
    return stmt


def get_device(session: Session, actor: Principal, device_id: int) -> Device:
    """A device the caller may see; another organisation's device is NotFound."""
    device = session.execute(
        visible_devices(actor).where(Device.id == device_id)
    ).scalar_one_or_none()
    if device is None:
        raise NotFoundError(f"no device {device_id}")
    return device


def channel_names(session: Session, product: Product) -> tuple[str, ...]:
    """The product's channels in rank order (the defaults until it has its own)."""
    names = session.scalars(
        select(Channel.name).where(Channel.product_id == product.id).order_by(Channel.rank)
    ).all()
    return tuple(names) or DEFAULT_CHANNELS


def _shown(value: object) -> str:
    """A caller's value quoted for an error message, cut short."""
    text = str(value)
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _check_version(value: str | None, errors: list[dict[str, Any]]) -> str | None:
    if not value:
        return None
    if len(value) > 64:
        errors.append({"field": "current_version", "message": "up to 64 characters"})
    elif not semver.Version.is_valid(value):
        errors.append({"field": "current_version", "message": f"{_shown(value)} is not semver"})
    return value


def _check_channel(
    channels: tuple[str, ...], product: Product, channel: str, errors: list[dict[str, Any]]
) -> None:
    if channel not in channels:
        errors.append(
            {
                "field": "channel",
                "message": f"product {product.code} has no channel {_shown(channel)}"
                f" ({', '.join(channels)})",
            }
        )


def update_device(
    session: Session, actor: Principal, device_id: int, changes: dict[str, Any]
) -> Device:
    _require_write(actor)
    device = get_device(session, actor, device_id)
    before = device.audit_view()
    errors: list[dict[str, Any]] = []
    if "hardware_revision" in changes:
        revision = next(
            (
                r
                for r in device.product.hardware_revisions
                if r.code == changes["hardware_revision"]
            ),
            None,
        )
        if revision is None:
            errors.append({"field": "hardware_revision", "message": "no such revision"})
        else:
            device.hardware_revision = revision
    site_name = changes.get("site", device.site)
    if "organisation_id" in changes:
        org = session.get(Organisation, changes["organisation_id"])
        if org is None:
            errors.append({"field": "organisation_id", "message": "no such organisation"})
        else:
            device.organisation = org
    if "current_version" in changes:
        _check_version(changes["current_version"], errors)
    if "channel" in changes:
        channels = channel_names(session, device.product)
        _check_channel(channels, device.product, changes["channel"], errors)
    if errors:
        raise InvalidInputError("the change is invalid", errors)
    for key in ("delivered_on", "accepted_on", "channel", "current_version"):
        if key in changes:
            setattr(device, key, changes[key])
    moved = device.site_record is not None and (
        device.site_record.organisation_id != device.organisation.id
    )
    if "site" in changes or moved:
        # A site by name, in the device's (new) organisation.
        device.site_record = site_named(session, actor, device.organisation, site_name)
    if device.delivered_on and device.accepted_on and device.accepted_on < device.delivered_on:
        raise InvalidInputError(
            "the change is invalid", [{"field": "accepted_on", "message": "before delivered_on"}]
        )
    session.flush()
    events.devices_changed.send(session, devices=[device])
    record_change(
        session, actor, "device.update", device, before, organisation_id=device.organisation_id
    )
    return device


def rotate_device_token(
    session: Session, actor: Principal, device: Device, *, by_device: bool = False
) -> ProvisionedDevice:
    """Revoke the device's tokens and issue a new one; the old one stops at once."""
    if not by_device:
        _require_write(actor)
    now = utcnow()
    for old in session.execute(
        select(DeviceToken).where(
            DeviceToken.device_id == device.id, DeviceToken.revoked_at.is_(None)
        )
    ).scalars():
        old.revoked_at = now
    secret = tokens.new_secret(tokens.DEVICE_TOKEN_PREFIX)
    session.add(
        DeviceToken(
            device=device, token_hash=tokens.hash_secret(secret), prefix=tokens.shown_prefix(secret)
        )
    )
    session.flush()
    record(
        session,
        actor,
        "device.token.rotate",
        "devices",
        device.id,
        organisation_id=device.organisation_id,
    )
    return ProvisionedDevice(device, secret)


def revoke_device_tokens(session: Session, actor: Principal, device: Device) -> int:
    _require_write(actor)
    now = utcnow()
    revoked = 0
    for old in session.execute(
        select(DeviceToken).where(
            DeviceToken.device_id == device.id, DeviceToken.revoked_at.is_(None)
        )
    ).scalars():
        old.revoked_at = now
        revoked += 1
    session.flush()
    record(
        session,
        actor,
        "device.token.revoke",
        "devices",
        device.id,
        after={"revoked": revoked},
        organisation_id=device.organisation_id,
    )
    return revoked


def authenticate_device_token(session: Session, raw: str) -> Device | None:
    """The device a token belongs to, or None if it is unknown or revoked."""
    if not raw.startswith(tokens.DEVICE_TOKEN_PREFIX):
        return None
    token = session.execute(
        select(DeviceToken).where(DeviceToken.token_hash == tokens.hash_secret(raw))
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None:
        return None
    return token.device


def touch(device: Device, now: datetime | None = None) -> None:
    device.last_seen_at = now or utcnow()


def device_principal(device: Device) -> Principal:
    return Principal(
        kind="device",
        id=device.id,
        label=f"device:{device.serial}",
        organisation_id=device.organisation_id,
    )

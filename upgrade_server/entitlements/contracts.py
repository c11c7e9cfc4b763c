"""Contracts and per-device overrides: who sees them, creating and deleting them
(audited); each change recomputes the stored coverage of the devices it touches.

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.audit.service import record_change
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import get_device
from upgrade_server.entitlements.coverage import Kind
from upgrade_server.entitlements.models import Contract, CoverageOverride
from upgrade_server.entitlements.service import _require_manage, refresh, refresh_where
from upgrade_server.errors import (
    InvalidInputError,
    NotFoundError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import Product


def _parse_kind(value: str, errors: list[dict[str, Any]]) -> Kind | None:
    try:
        return Kind(value)
    except ValueError:
        errors.append({"field": "kind", "message": f"one of {', '.join(Kind)}"})
        return None


def visible_contracts(actor: Principal) -> Any:
    stmt = select(Contract)
    if not actor.is_vendor:
        stmt = stmt.where(Contract.organisation_id == actor.organisation_id)
    return stmt


def get_contract(session: Session, actor: Principal, contract_id: int) -> Contract:
    found = session.scalars(visible_contracts(actor).where(Contract.id == contract_id)).first()
    if found is None:
        raise NotFoundError(f"no contract {contract_id}")
    return found


def create_contract(session: Session, actor: Principal, data: dict[str, Any]) -> Contract:
    """A contract for one device (`device_id`) or for an organisation's
    devices (`organisation_id`, optionally `product_id`)."""
    _require_manage(actor)
    errors: list[dict[str, Any]] = []
    kind = _parse_kind(data["kind"], errors)
    device = None
    if data.get("device_id") is not None:
        device = session.get(Device, data["device_id"])
        if device is None:
            errors.append({"field": "device_id", "message": "no such device"})
        organisation_id = device.organisation_id if device else None
    else:
        organisation_id = data.get("organisation_id")
        if organisation_id is None or session.get(Organisation, organisation_id) is None:
            errors.append({"field": "organisation_id", "message": "a device or an organisation"})
    product_id = data.get("product_id")
    if product_id is not None and session.get(Product, product_id) is None:
        errors.append({"field": "product_id", "message": "no such product"})
    if data["ends_on"] < data["starts_on"]:
        errors.append({"field": "ends_on", "message": "before starts_on"})
    if errors or kind is None or organisation_id is None:
        raise InvalidInputError("the contract is invalid", errors)
    contract = Contract(
        organisation_id=organisation_id,
        device_id=device.id if device else None,
        product_id=None if device else product_id,
        kind=kind.value,
        starts_on=data["starts_on"],
        ends_on=data["ends_on"],
        reference=data["reference"],
        note=data.get("note", ""),
    )
    session.add(contract)
    session.flush()
    record_change(
        session, actor, "contract.create", contract, None, organisation_id=organisation_id
    )
    _refresh_for_contract(session, contract)
    return contract


def delete_contract(session: Session, actor: Principal, contract_id: int) -> None:
    _require_manage(actor)
    contract = get_contract(session, actor, contract_id)
    before = contract.audit_view()
    session.delete(contract)
    session.flush()
    record_change(
        session,
        actor,
        "contract.delete",
        contract,
        before,
        organisation_id=contract.organisation_id,
        deleted=True,
    )
    _refresh_for_contract(session, contract)


def _refresh_for_contract(session: Session, contract: Contract) -> None:
    if contract.device_id is not None:
        refresh_where(session, Device.id == contract.device_id)
        return
    criteria = [Device.organisation_id == contract.organisation_id]
    if contract.product_id is not None:
        criteria.append(Device.product_id == contract.product_id)
    refresh_where(session, *criteria)


def create_override(
    session: Session, actor: Principal, device_id: int, data: dict[str, Any]
) -> CoverageOverride:
    _require_manage(actor)
    device = get_device(session, actor, device_id)
    errors: list[dict[str, Any]] = []
    kind = _parse_kind(data["kind"], errors)
    if data["effect"] not in ("grant", "deny"):
        errors.append({"field": "effect", "message": "grant or deny"})
    if data.get("ends_on") is not None and data["ends_on"] < data["starts_on"]:
        errors.append({"field": "ends_on", "message": "before starts_on"})
    if not data["reason"].strip():
        errors.append({"field": "reason", "message": "an override needs its reason"})
    if errors or kind is None:
        raise InvalidInputError("the override is invalid", errors)
    override = CoverageOverride(
        device_id=device.id,
        kind=kind.value,
        effect=data["effect"],
        starts_on=data["starts_on"],
        ends_on=data.get("ends_on"),
        reason=data["reason"].strip(),
    )
    session.add(override)
    session.flush()
    record_change(
        session, actor, "coverage.override", override, None, organisation_id=device.organisation_id
    )
    refresh(session, [device])
    return override


def delete_override(session: Session, actor: Principal, device_id: int, override_id: int) -> None:
    _require_manage(actor)
    device = get_device(session, actor, device_id)
    override = session.get(CoverageOverride, override_id)
    if override is None or override.device_id != device.id:
        raise NotFoundError(f"no override {override_id} on device {device_id}")
    before = override.audit_view()
    session.delete(override)
    session.flush()
    record_change(
        session,
        actor,
        "coverage.override.delete",
        override,
        before,
        organisation_id=device.organisation_id,
        deleted=True,
    )
    refresh(session, [device])


def contracts_of(session: Session, actor: Principal, **filters: Any) -> list[Contract]:
    stmt = visible_contracts(actor)
    if filters.get("organisation_id") is not None:
        stmt = stmt.where(Contract.organisation_id == filters["organisation_id"])
    if filters.get("device_id") is not None:
        stmt = stmt.where(Contract.device_id == filters["device_id"])
    return list(session.scalars(stmt.order_by(Contract.starts_on, Contract.id)))

"""Coverage, contracts and overrides in the management API (/api/v1)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Date, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import request

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.csvfiles import csv_response
from upgrade_server.entitlements import contracts as entitlements_contracts
from upgrade_server.entitlements import service
from upgrade_server.entitlements.coverage import Kind
from upgrade_server.extensions import session

bp = APIBlueprint("coverage", __name__, url_prefix="/api/v1", tag="Coverage")

KINDS = [k.value for k in Kind]


class GrantOut(Schema):
    source = String(metadata={"description": "promise, trial, contract or override"})
    reference = String(metadata={"description": "contract number or override reason"})
    effect = String()
    starts_on = Date()
    ends_on = Date(allow_none=True)


class WindowOut(Schema):
    starts_on = Date()
    ends_on = Date(allow_none=True)


class KindOut(Schema):
    kind = String()
    status = String(
        metadata={
            "description": "covered, trial (covered by the trial run), awaiting-acceptance"
            " (starts at acceptance: the device is in its trial run), expired, not-started"
            " or undelivered"
        }
    )
    covered_through = Date(allow_none=True)
    windows = List(Nested(WindowOut))
    grants = List(Nested(GrantOut))


class CoverageOut(Schema):
    device_id = Integer()
    serial = String()
    timezone = String()
    today = Date(metadata={"description": "today in the organisation's time zone"})
    security_fixes_free = Boolean()
    kinds = List(Nested(KindOut))


class StatusCounts(Schema):
    covered = Integer()
    trial = Integer(metadata={"description": "covered by the trial run (upgrades)"})
    awaiting_acceptance = Integer(
        attribute="awaiting-acceptance",
        data_key="awaiting-acceptance",
        metadata={"description": "in the trial run, before acceptance starts this kind (warranty)"},
    )
    expired = Integer()
    not_started = Integer(attribute="not-started", data_key="not-started")
    undelivered = Integer()
    ending_90_days = Integer(metadata={"description": "covered or trial, ending within 90 days"})


class SummaryKinds(Schema):
    upgrades = Nested(StatusCounts)
    warranty = Nested(StatusCounts)
    support = Nested(StatusCounts)


class SummaryOut(Schema):
    organisation_id = Integer()
    today = Date(metadata={"description": "today in the organisation's time zone"})
    devices = Integer()
    kinds = Nested(SummaryKinds)


class ContractIn(Schema):
    kind = String(required=True, validate=OneOf(KINDS))
    device_id = Integer(load_default=None, allow_none=True)
    organisation_id = Integer(
        load_default=None,
        allow_none=True,
        metadata={"description": "for every device of the organisation (no device_id)"},
    )
    product_id = Integer(
        load_default=None,
        allow_none=True,
        metadata={"description": "with organisation_id: only this product's devices"},
    )
    starts_on = Date(required=True)
    ends_on = Date(required=True, metadata={"description": "the last covered day"})
    reference = String(required=True, validate=Length(1, 100))
    note = String(load_default="", validate=Length(0, 2000))


class ContractOut(Schema):
    id = Integer()
    kind = String()
    organisation_id = Integer()
    device_id = Integer(allow_none=True)
    product_id = Integer(allow_none=True)
    starts_on = Date()
    ends_on = Date()
    reference = String()
    note = String()
    created_at = DateTime()


class ContractQuery(Schema):
    organisation_id = Integer(load_default=None)
    device_id = Integer(load_default=None)


class ContractList(Schema):
    items = List(Nested(ContractOut))


class OverrideIn(Schema):
    kind = String(required=True, validate=OneOf(KINDS))
    effect = String(required=True, validate=OneOf(["grant", "deny"]))
    starts_on = Date(required=True)
    ends_on = Date(load_default=None, allow_none=True)
    reason = String(required=True, validate=Length(1, 2000))


class OverrideOut(Schema):
    id = Integer()
    device_id = Integer()
    kind = String()
    effect = String()
    starts_on = Date()
    ends_on = Date(allow_none=True)
    reason = String()
    created_at = DateTime()


class ExpiringQuery(Schema):
    days = Integer(load_default=90, validate=Range(0, 3660))
    kind = String(load_default="upgrades", validate=OneOf(KINDS))
    organisation_id = Integer(load_default=None)
    format = String(load_default="json", validate=OneOf(["json", "csv"]))


class ExpiringRow(Schema):
    device_id = Integer()
    serial = String()
    organisation = String()
    product = String()
    site = String()
    kind = String()
    covered_through = Date()
    days_left = Integer()


class ExpiringOut(Schema):
    days = Integer()
    kind = String()
    items = List(Nested(ExpiringRow))


@bp.get("/devices/<int:device_id>/coverage")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_READ))
@bp.output(CoverageOut)
def device_coverage(device_id: int) -> dict[str, Any]:
    """A device's upgrade, warranty and support coverage: status today, the
    covered windows, and what grants them (promise, trial, contracts, overrides)."""
    return service.device_coverage(session(), current_principal(), device_id)


@bp.post("/devices/<int:device_id>/coverage-overrides")
@bp.auth_required(token_auth, roles=roles_for(Permission.COVERAGE_MANAGE))
@bp.input(OverrideIn, arg_name="data")
@bp.output(OverrideOut, status_code=201)
def create_override(device_id: int, data: dict[str, Any]) -> Any:
    """Grant or deny coverage the rules do not decide so, with the reason (admins)."""
    return entitlements_contracts.create_override(session(), current_principal(), device_id, data)


@bp.delete("/devices/<int:device_id>/coverage-overrides/<int:override_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.COVERAGE_MANAGE))
@bp.output({}, status_code=204)
def delete_override(device_id: int, override_id: int) -> tuple[str, int]:
    """Remove an override; the device's coverage follows the rules again."""
    entitlements_contracts.delete_override(session(), current_principal(), device_id, override_id)
    return "", 204


@bp.get("/contracts")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_READ))
@bp.input(ContractQuery, location="query", arg_name="query")
@bp.output(ContractList)
def list_contracts(query: dict[str, Any]) -> dict[str, Any]:
    """Contracts the caller may see (customers: their organisation's)."""
    return {"items": entitlements_contracts.contracts_of(session(), current_principal(), **query)}


@bp.post("/contracts")
@bp.auth_required(token_auth, roles=roles_for(Permission.COVERAGE_MANAGE))
@bp.input(ContractIn, arg_name="data")
@bp.output(ContractOut, status_code=201)
def create_contract(data: dict[str, Any]) -> Any:
    """Record a contract for one device or an organisation's devices (admins)."""
    return entitlements_contracts.create_contract(session(), current_principal(), data)


@bp.get("/contracts/<int:contract_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_READ))
@bp.output(ContractOut)
def get_contract(contract_id: int) -> Any:
    """One contract; another organisation's is a 404."""
    return entitlements_contracts.get_contract(session(), current_principal(), contract_id)


@bp.delete("/contracts/<int:contract_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.COVERAGE_MANAGE))
@bp.output({}, status_code=204)
def delete_contract(contract_id: int) -> tuple[str, int]:
    """Remove a contract recorded in error (admins)."""
    entitlements_contracts.delete_contract(session(), current_principal(), contract_id)
    return "", 204


@bp.get("/coverage/expiring")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_READ))
@bp.input(ExpiringQuery, location="query", arg_name="query")
@bp.output(ExpiringOut)
@bp.doc(description="`format=csv` (or `Accept: text/csv`) answers the same rows as CSV.")
def expiring(query: dict[str, Any]) -> Any:
    """Devices whose coverage of a kind ends within `days` days, soonest first."""
    rows = service.expiring(
        session(),
        current_principal(),
        query["days"],
        Kind(query["kind"]),
        query["organisation_id"],
    )
    wants_csv = query["format"] == "csv" or request.accept_mimetypes.best == "text/csv"
    if not wants_csv:
        return {"days": query["days"], "kind": query["kind"], "items": rows}
    columns = list(ExpiringRow._declared_fields)
    return csv_response(rows, columns, f"expiring-{query['kind']}.csv")


@bp.get("/organisations/<int:organisation_id>/coverage")
@bp.auth_required(token_auth, roles=roles_for(Permission.DEVICE_READ))
@bp.output(SummaryOut)
@bp.doc(
    description="Per kind (upgrades, warranty, support): how many devices are covered, in"
    " trial, awaiting acceptance (in the trial run, so warranty has not started), expired,"
    " not started or undelivered, and how many covered ones end within 90 days."
)
def organisation_summary(organisation_id: int) -> dict[str, Any]:
    """Coverage summary of an organisation's devices."""
    return service.summary(session(), current_principal(), organisation_id)

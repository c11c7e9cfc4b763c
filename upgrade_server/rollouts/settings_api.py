"""Management API of an organisation's update settings: its maintenance
windows, whether its updates wait for approval, and the approvals
(/api/v1/organisations/<id>/maintenance-windows, /update-approval, /approvals).

Customer-admins of the organisation and vendor admins change them; every
other role reads them (customers: their own organisation's only).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.clock import utcnow
from upgrade_server.extensions import session
from upgrade_server.organisations.models import Organisation
from upgrade_server.rollouts import approvals, availability, maintenance
from upgrade_server.rollouts.settings_models import (
    MAX_DURATION_MINUTES,
    MIN_DURATION_MINUTES,
    MaintenanceWindowSetting,
    WindowKind,
)
from upgrade_server.routing import MAX_ID

bp = APIBlueprint(
    "update_settings",
    __name__,
    url_prefix="/api/v1/organisations",
    tag="Maintenance windows and approval",
)

READ = roles_for(Permission.ORGANISATION_READ)
WRITE = roles_for(Permission.UPDATES_APPROVE)
_ID = Range(1, MAX_ID)


class WindowSchema(Schema):
    kind = String(required=True, validate=OneOf([k.value for k in WindowKind]))
    days = List(
        Integer(validate=Range(1, 7)),
        load_default=list,
        validate=Length(max=7),
        metadata={"description": "weekly: ISO weekdays, 1 Monday .. 7 Sunday"},
    )
    start = String(
        load_default=None,
        allow_none=True,
        validate=Length(max=5),
        metadata={"description": "weekly: local start time, HH:MM"},
    )
    cron = String(
        load_default=None,
        allow_none=True,
        validate=Length(max=100),
        metadata={"description": "cron: 5 fields, the start times, e.g. `0 1 * * 0`"},
    )
    duration_minutes = Integer(
        required=True, validate=Range(MIN_DURATION_MINUTES, MAX_DURATION_MINUTES)
    )
    label = String(load_default="", validate=Length(max=100))


class WindowsIn(Schema):
    windows = List(
        Nested(WindowSchema), required=True, validate=Length(max=maintenance.MAX_WINDOWS)
    )


class WindowsOut(Schema):
    timezone = String(metadata={"description": "the organisation's zone the windows are in"})
    windows = List(Nested(WindowSchema))
    open = Boolean(metadata={"description": "devices may install now (no window: always)"})
    opens_at = DateTime(allow_none=True, metadata={"description": "next opening, if closed"})
    closes_at = DateTime(allow_none=True, metadata={"description": "end of the open window"})


class ApprovalSetting(Schema):
    updates_need_approval = Boolean(required=True)


class DeviceRef(Schema):
    id = Integer()
    serial = String()


class PendingOut(Schema):
    release_id = Integer()
    product = String()
    version = String()
    security_fix = Boolean()
    notes_url = String(metadata={"description": "the release notes in the portal"})
    devices = List(Nested(DeviceRef))


class ApprovalOut(Schema):
    id = Integer()
    release_id = Integer()
    all_devices = Boolean()
    device_ids = List(Integer())
    approved_by = String()
    approved_at = DateTime()
    service_request_id = Integer(allow_none=True)


class ApprovalsOut(Schema):
    updates_need_approval = Boolean()
    pending = List(Nested(PendingOut))
    approved = List(Nested(ApprovalOut), metadata={"description": "the latest, newest first"})


class ApprovalIn(Schema):
    release_id = Integer(required=True, validate=_ID)
    device_ids = List(
        Integer(validate=_ID),
        load_default=list,
        validate=Length(max=approvals.MAX_DEVICES),
        metadata={"description": "the devices approved; empty: all of them"},
    )
    request_installation = Boolean(
        load_default=False,
        metadata={"description": "also ask for an upgrade-installation service session"},
    )


def _windows_body(
    organisation: Organisation, rows: list[MaintenanceWindowSetting]
) -> dict[str, Any]:
    state = maintenance.state_of(organisation, rows, utcnow())
    return {
        "timezone": organisation.timezone,
        "windows": [row.audit_view() for row in rows],
        "open": state.open,
        "opens_at": state.opens_at,
        "closes_at": state.closes_at,
    }


def _approval_body(approval: Any) -> dict[str, Any]:
    return {
        "id": approval.id,
        "release_id": approval.release_id,
        "all_devices": approval.all_devices,
        "device_ids": sorted(d.id for d in approval.devices),
        "approved_by": approval.approved_by,
        "approved_at": approval.approved_at,
        "service_request_id": approval.service_request_id,
    }


@bp.get("/<int:organisation_id>/maintenance-windows")
@bp.auth_required(token_auth, roles=READ)
@bp.output(WindowsOut)
def get_windows(organisation_id: int) -> dict[str, Any]:
    """The organisation's maintenance windows, in its zone, and whether one is open now."""
    return _windows_body(*maintenance.list_windows(session(), current_principal(), organisation_id))


@bp.put("/<int:organisation_id>/maintenance-windows")
@bp.auth_required(token_auth, roles=WRITE)
@bp.input(WindowsIn, arg_name="data")
@bp.output(WindowsOut)
def put_windows(organisation_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Replace the windows: weekly (`days`, `start`) or `cron`, each with a
    duration of 15 minutes to 24 hours. Outside them devices are told to wait;
    an empty list lets them install any time."""
    found = maintenance.set_windows(
        session(), current_principal(), organisation_id, data["windows"]
    )
    return _windows_body(*found)


@bp.get("/<int:organisation_id>/update-approval")
@bp.auth_required(token_auth, roles=READ)
@bp.output(ApprovalSetting)
def get_approval_setting(organisation_id: int) -> Any:
    """Whether updates for the organisation's devices wait for approval."""
    return approvals.get_setting(session(), current_principal(), organisation_id)


@bp.put("/<int:organisation_id>/update-approval")
@bp.auth_required(token_auth, roles=WRITE)
@bp.input(ApprovalSetting, arg_name="data")
@bp.output(ApprovalSetting)
def put_approval_setting(organisation_id: int, data: dict[str, Any]) -> Any:
    """Turn customer approval of updates on or off."""
    return approvals.set_required(
        session(), current_principal(), organisation_id, data["updates_need_approval"]
    )


@bp.get("/<int:organisation_id>/approvals")
@bp.auth_required(token_auth, roles=READ)
@bp.output(ApprovalsOut)
def list_approvals(organisation_id: int) -> dict[str, Any]:
    """Releases waiting for the organisation's approval, with the devices
    each concerns, and the approvals given."""
    actor = current_principal()
    organisation = approvals.get_setting(session(), actor, organisation_id)
    waiting = availability.pending_releases(session(), actor, organisation_id, utcnow())
    return {
        "updates_need_approval": organisation.updates_need_approval,
        "pending": [
            {
                "release_id": p.release.id,
                "product": p.release.product.code,
                "version": p.release.version,
                "security_fix": p.release.security_fix,
                "notes_url": f"/portal/releases/{p.release.id}",
                "devices": [{"id": d.id, "serial": d.serial} for d in p.devices],
            }
            for p in waiting
        ],
        "approved": [
            _approval_body(a) for a in approvals.approvals_given(session(), actor, organisation_id)
        ],
    }


@bp.post("/<int:organisation_id>/approvals")
@bp.auth_required(token_auth, roles=WRITE)
@bp.input(ApprovalIn, arg_name="data")
@bp.output(ApprovalOut, status_code=201)
def post_approval(organisation_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Approve a release for all of the organisation's devices of its product
    or the devices named; `request_installation` also opens a service request
    for an upgrade-installation session."""
    approval = approvals.approve(
        session(),
        current_principal(),
        organisation_id,
        data["release_id"],
        data["device_ids"],
        request_installation=data["request_installation"],
    )
    return _approval_body(approval)

"""Management API for rollouts: start one for a release, list, show with its
progress per wave (JSON and CSV), pause, resume, abort, approve the next
wave, pin and exclude devices, exclude hardware revisions. Vendor staff only."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import Response

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, Role, roles_for
from upgrade_server.clock import utcnow
from upgrade_server.csvfiles import csv_response
from upgrade_server.extensions import current_settings, session
from upgrade_server.pagination import paginate
from upgrade_server.releases import service as releases
from upgrade_server.rollouts import progress, service
from upgrade_server.rollouts.models import Rollout, RolloutState
from upgrade_server.rollouts.plan import BUCKETS
from upgrade_server.routing import MAX_ID
from upgrade_server.schemas import PageQuery, page_schema
from upgrade_server.signing.service import repository_for

bp = APIBlueprint("rollouts", __name__, url_prefix="/api/v1", tag="Rollouts")


def _vendor(permission: Permission) -> list[str]:
    # Customers never see rollouts, whatever their role allows on releases.
    return [r for r in roles_for(permission) if Role(r).is_vendor]


READ = _vendor(Permission.RELEASE_READ)
MANAGE = _vendor(Permission.RELEASE_PUBLISH)
_ID = Range(1, MAX_ID)
_CODE = Length(1, 64)


class WaveIn(Schema):
    share = Integer(
        required=True,
        strict=True,
        validate=Range(0, BUCKETS),
        metadata={
            "description": "cumulative share of the eligible fleet in basis points (100 = 1 %)"
        },
    )
    organisations = List(Integer(strict=True, validate=_ID), validate=Length(max=1000))
    devices = List(Integer(strict=True, validate=_ID), validate=Length(max=10_000))
    hardware = List(String(validate=_CODE), validate=Length(max=100))


class GatesIn(Schema):
    min_soak_seconds = Integer(strict=True, validate=Range(0, 90 * 86400))
    min_reported = Integer(strict=True, validate=Range(0, 1_000_000))
    min_success_rate = Float(validate=Range(0, 1))
    max_alarm_ratio = Float(validate=Range(0.01, 1000))
    stop_failure_rate = Float(validate=Range(0, 1))
    min_reported_to_halt = Integer(strict=True, validate=Range(0, 1_000_000))
    min_failures_to_halt = Integer(strict=True, validate=Range(0, 1_000_000))
    stop_alarm_ratio = Float(validate=Range(0.01, 1000))
    min_device_days_to_judge_alarms = Float(validate=Range(0, 10_000_000))
    confidence_z = Float(validate=Range(0, 10))
    auto_advance = Boolean()


class RolloutIn(Schema):
    channel = String(required=True, validate=Length(1, 32))
    waves = List(Nested(WaveIn), required=True, validate=Length(1, service.MAX_WAVES))
    gates = Nested(
        GatesIn,
        load_default=None,
        metadata={"description": "knobs of rollouts/plan.py Gates; absent ones keep defaults"},
    )
    excluded_hardware = List(String(validate=_CODE), validate=Length(max=100), load_default=[])
    emergency = Boolean(
        load_default=False,
        metadata={"description": "a security fix that ignores maintenance windows"},
    )
    override_reason = String(validate=Length(max=2000), load_default=None, allow_none=True)


class ActionIn(Schema):
    reason = String(validate=Length(max=2000), load_default="")


class RolloutQuery(PageQuery):
    product = Integer(load_default=None, validate=_ID)
    state = String(load_default=None, validate=OneOf([s.value for s in RolloutState]))


class KindQuery(Schema):
    kind = String(required=True, validate=OneOf(["pin", "exclude"]))


class HardwareIn(Schema):
    code = String(required=True, validate=_CODE)


class RolloutSummary(Schema):
    id = Integer()
    product_id = Integer()
    product = String()
    release_id = Integer()
    version = String()
    channel = String()
    state = String(metadata={"description": ", ".join(s.value for s in RolloutState)})
    current_wave = Integer(metadata={"description": "0-based index of the wave reached"})
    wave_started_at = DateTime(allow_none=True)
    waves = List(Dict())
    gates = Dict()
    excluded_hardware = List(String())
    pinned = List(Integer())
    excluded_devices = List(Integer())
    halted_reason = String(allow_none=True)
    in_progress = List(
        Integer(),
        metadata={
            "description": "halted: the devices part-way through the install when it halted,"
            " which keep the offer"
        },
    )
    emergency = Boolean()
    override_reason = String(allow_none=True)
    created_by = String()
    created_at = DateTime()
    updated_at = DateTime()


class RolloutOut(RolloutSummary):
    progress = Dict(
        metadata={
            "description": "waves: per wave eligible, offered, downloading, installed, failed,"
            " rolled_back, alarms; totals; current: the gates' figures of the current wave"
        }
    )
    decisions = List(Dict(), metadata={"description": "the latest decisions, newest first"})


RolloutPage = page_schema(RolloutSummary, "RolloutPage")


def _summary(rollout: Rollout) -> dict[str, Any]:
    release = rollout.release
    return {
        "id": rollout.id,
        "product_id": rollout.product_id,
        "product": release.product.code,
        "release_id": release.id,
        "version": release.version,
        "channel": rollout.channel.name,
        "state": rollout.state,
        "current_wave": rollout.current_wave,
        "wave_started_at": rollout.wave_started_at,
        "waves": rollout.waves,
        "gates": rollout.gates,
        "excluded_hardware": rollout.excluded_hardware,
        "pinned": sorted(rollout.pinned),
        "excluded_devices": sorted(rollout.excluded),
        "halted_reason": rollout.halted_reason,
        "in_progress": list(rollout.in_progress),
        "emergency": rollout.emergency,
        "override_reason": rollout.override_reason,
        "created_by": rollout.created_by,
        "created_at": rollout.created_at,
        "updated_at": rollout.updated_at,
    }


def _detail(rollout: Rollout) -> dict[str, Any]:
    found = progress.progress(session(), rollout, utcnow())
    return {
        **_summary(rollout),
        "progress": {
            "waves": found.wave_rows(),
            "totals": found.totals(),
            "current": progress.figures(found.stats()),
        },
        "decisions": [
            {
                "at": d.at.isoformat(),
                "action": d.action,
                "wave": d.wave,
                "actor": d.actor,
                "automatic": d.automatic,
                "reasons": d.reasons,
                "figures": d.figures,
            }
            for d in service.decisions(session(), rollout, 20)
        ],
    }


def _rollout(rollout_id: int, *, lock: bool = False) -> Rollout:
    return service.get_rollout(session(), current_principal(), rollout_id, lock=lock)


@bp.post("/releases/<int:release_id>/rollouts")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(RolloutIn, arg_name="data")
@bp.output(RolloutOut, status_code=201)
@bp.doc(
    description="Waves are cumulative shares of the eligible fleet (basis points, "
    "ascending, the last 10000) plus named sets (organisations, devices, hardware "
    "revisions). One rollout per release at a time."
)
def start(release_id: int, data: dict[str, Any]) -> Any:
    """Start a rollout of a published release in a channel: one it is in, or
    one it is promoted to by this start, in the same transaction (so the
    channel's devices are never offered it unstaged)."""
    actor = current_principal()
    release = releases.get_release(session(), actor, release_id)
    repository = repository_for(session(), release.product, current_settings())
    return _detail(service.start_rollout(session(), actor, release, data, repository)), 201


@bp.get("/rollouts")
@bp.auth_required(token_auth, roles=READ)
@bp.input(RolloutQuery, location="query", arg_name="query")
@bp.output(RolloutPage)
def list_rollouts(query: dict[str, Any]) -> dict[str, Any]:
    """Rollouts, oldest first, of a product or in a state if asked."""
    stmt = service.visible_rollouts(current_principal(), query["product"], query["state"])
    page = paginate(session(), stmt, Rollout.id, query["limit"], query["after"])
    return {"items": [_summary(r) for r in page.items], "next_cursor": page.next_cursor}


@bp.get("/rollouts/<int:rollout_id>")
@bp.auth_required(token_auth, roles=READ)
@bp.output(RolloutOut)
def get_rollout(rollout_id: int) -> dict[str, Any]:
    """One rollout with its progress per wave and its latest decisions."""
    return _detail(_rollout(rollout_id))


_CSV_RESPONSE: dict[int | str, dict[str, str | dict[str, dict[str, Any]]]] = {
    200: {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
}


@bp.get("/rollouts/<int:rollout_id>/progress.csv")
@bp.auth_required(token_auth, roles=READ)
@bp.doc(
    description="One row per wave: " + ", ".join(progress.COLUMNS) + ".",
    responses=_CSV_RESPONSE,
)
def progress_csv(rollout_id: int) -> Response:
    """The rollout's progress per wave as CSV."""
    rollout = _rollout(rollout_id)
    rows = progress.progress(session(), rollout, utcnow()).wave_rows()
    return csv_response(rows, progress.COLUMNS, f"rollout-{rollout.id}-progress.csv")


def _action(name: str, doc: str, act: Any) -> None:
    def view(rollout_id: int, data: dict[str, Any]) -> dict[str, Any]:
        rollout = _rollout(rollout_id, lock=True)
        return _detail(act(session(), current_principal(), rollout, data["reason"]))

    view.__name__ = view.__qualname__ = name
    view.__doc__ = doc
    decorated = bp.output(RolloutOut)(view)
    decorated = bp.input(ActionIn, arg_name="data")(decorated)
    decorated = bp.auth_required(token_auth, roles=MANAGE)(decorated)
    bp.post(f"/rollouts/<int:rollout_id>/{name}")(decorated)


_action(
    "pause",
    "Hold the rollout at its wave (the reached waves keep the offer).",
    service.pause_rollout,
)
_action(
    "resume",
    "Run a paused or halted rollout again; its wave's soak starts over.",
    service.resume_rollout,
)
_action("abort", "End the rollout and withdraw its offer from every device.", service.abort_rollout)
_action("advance", "Approve the next wave (or complete the last) now.", service.advance_rollout)


@bp.post("/rollouts/<int:rollout_id>/devices/<int:device_id>")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(KindQuery, location="query", arg_name="query")
@bp.output(RolloutOut)
def set_device(rollout_id: int, device_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """Pin a device (offered from the first wave) or exclude it (never offered)."""
    rollout = _rollout(rollout_id, lock=True)
    return _detail(
        service.set_device(session(), current_principal(), rollout, device_id, query["kind"])
    )


@bp.delete("/rollouts/<int:rollout_id>/devices/<int:device_id>")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output(RolloutOut)
def release_device(rollout_id: int, device_id: int) -> dict[str, Any]:
    """Take back a device's pin or exclusion: its bucket decides again."""
    rollout = _rollout(rollout_id, lock=True)
    return _detail(service.set_device(session(), current_principal(), rollout, device_id, None))


@bp.post("/rollouts/<int:rollout_id>/excluded-hardware")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(HardwareIn, arg_name="data")
@bp.output(RolloutOut)
def exclude_hardware(rollout_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Exclude a hardware revision: none of its devices is offered the release."""
    rollout = _rollout(rollout_id, lock=True)
    actor = current_principal()
    return _detail(service.set_hardware_excluded(session(), actor, rollout, data["code"], True))


@bp.delete("/rollouts/<int:rollout_id>/excluded-hardware/<code>")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output(RolloutOut)
def include_hardware(rollout_id: int, code: str) -> dict[str, Any]:
    """Take a hardware revision back into the rollout."""
    rollout = _rollout(rollout_id, lock=True)
    actor = current_principal()
    return _detail(service.set_hardware_excluded(session(), actor, rollout, code, False))

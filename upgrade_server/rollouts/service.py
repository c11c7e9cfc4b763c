"""Rollouts: start, pause, resume, abort, advance, pin and exclude, and the
gates' evaluation of every running rollout (a background job).

Every change bumps the product's release generation (the update check's
cache key), so a device sees it at its next check; every decision, a
person's or the gates', is a `rollout_decisions` row and an audit entry with
the current wave's figures.

The gates' evaluation, the background job, is in rollouts/evaluation.py.

Errors raised: InvalidInputError, ConflictError, NotFoundError,
PermissionDeniedError.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record
from upgrade_server.clock import utcnow
from upgrade_server.database import flush_unique
from upgrade_server.devices.models import Device
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.releases.models import Release, ReleaseStatus
from upgrade_server.releases.service import bump_generation, channels, promote_release
from upgrade_server.rollouts import listeners as _listeners  # noqa: F401  (connects them)
from upgrade_server.rollouts import progress as figures_of
from upgrade_server.rollouts.models import (
    ACTIVE_STATES,
    Rollout,
    RolloutDecision,
    RolloutDevice,
    RolloutState,
)
from upgrade_server.rollouts.plan import BUCKETS, Gates
from upgrade_server.signing.repository import TufRepository

# Who takes the gates' decisions in the audit log.
GATES = Principal(kind="system", id=None, label="rollout-gates")
MAX_WAVES = 20


def _require(actor: Principal, permission: Permission) -> None:
    # Customers never see rollouts, whatever their role allows on releases.
    if not actor.is_vendor or not actor.may(permission):
        raise PermissionDeniedError("you may not manage rollouts")


def visible_rollouts(
    actor: Principal, product_id: int | None = None, state: str | None = None
) -> Select[Any]:
    _require(actor, Permission.RELEASE_READ)
    stmt = select(Rollout)
    if product_id is not None:
        stmt = stmt.where(Rollout.product_id == product_id)
    if state is not None:
        stmt = stmt.where(Rollout.state == state)
    return stmt


def get_rollout(
    session: Session, actor: Principal, rollout_id: int, *, lock: bool = False
) -> Rollout:
    """The rollout; `lock`: its row locked for a change (the gates' job takes
    the same lock, so a person's step and the gates' never cross)."""
    _require(actor, Permission.RELEASE_READ)
    stmt = select(Rollout).where(Rollout.id == rollout_id)
    if lock:
        stmt = stmt.with_for_update(of=Rollout).execution_options(populate_existing=True)
    rollout = session.scalars(stmt).first()
    if rollout is None:
        raise NotFoundError("no such rollout")
    return rollout


def decisions(session: Session, rollout: Rollout, limit: int = 50) -> list[RolloutDecision]:
    """The rollout's latest decisions, newest first."""
    stmt = (
        select(RolloutDecision)
        .where(RolloutDecision.rollout_id == rollout.id)
        .order_by(RolloutDecision.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def gates_of(rollout: Rollout) -> Gates:
    return Gates.from_json(rollout.gates)


def parse_gates(given: dict[str, Any] | None) -> Gates:
    """plan.Gates from the given knobs over the defaults.

    Raises InvalidInputError for an unknown knob or a value out of range."""
    try:
        return Gates.from_json(given or {})
    except (TypeError, ValueError) as exc:
        raise InvalidInputError("invalid gates", [{"field": "gates", "message": str(exc)}]) from exc


def _validate_waves(
    session: Session, release: Release, waves: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if not 1 <= len(waves) <= MAX_WAVES:
        raise InvalidInputError(
            f"a rollout has 1 to {MAX_WAVES} waves", [{"field": "waves", "message": "count"}]
        )
    errors: list[dict[str, Any]] = []
    clean = []
    previous = -1
    revisions = {h.code for h in release.product.hardware_revisions}
    for index, wave in enumerate(waves):
        share = int(wave.get("share", 0))
        orgs = sorted({int(o) for o in wave.get("organisations", ())})
        devices = sorted({int(d) for d in wave.get("devices", ())})
        hardware = sorted({str(h) for h in wave.get("hardware", ())})
        field = f"waves.{index}"
        if not 0 <= share <= BUCKETS:
            errors.append({"field": f"{field}.share", "message": f"0 to {BUCKETS}"})
        elif share < previous or (share == previous and not (orgs or devices or hardware)):
            errors.append(
                {"field": f"{field}.share", "message": "each wave must reach further than the last"}
            )
        if unknown := set(hardware) - revisions:
            errors.append(
                {"field": f"{field}.hardware", "message": f"unknown: {', '.join(sorted(unknown))}"}
            )
        if orgs:
            found = set(session.scalars(select(Organisation.id).where(Organisation.id.in_(orgs))))
            if missing := set(orgs) - found:
                errors.append(
                    {"field": f"{field}.organisations", "message": f"unknown: {sorted(missing)}"}
                )
        if devices:
            _check_devices(session, release.product_id, devices, f"{field}.devices", errors)
        previous = max(previous, share)
        clean.append(
            {"share": share, "organisations": orgs, "devices": devices, "hardware": hardware}
        )
    if clean and clean[-1]["share"] != BUCKETS:
        errors.append({"field": "waves", "message": "the last wave must reach 100 % (10000)"})
    if errors:
        raise InvalidInputError("invalid waves", errors)
    return clean


def _check_devices(
    session: Session, product_id: int, ids: list[int], field: str, errors: list[dict[str, Any]]
) -> None:
    found = set(
        session.scalars(
            select(Device.id).where(Device.id.in_(ids), Device.product_id == product_id)
        )
    )
    if missing := set(ids) - found:
        errors.append({"field": field, "message": f"not devices of the product: {sorted(missing)}"})


def start_rollout(
    session: Session,
    actor: Principal,
    release: Release,
    data: dict[str, Any],
    repository: TufRepository | None = None,
) -> Rollout:
    """Start a rollout of a published release in a channel, at its first
    wave. One rollout per release at a time (running, paused or halted).

    A channel the release is not in yet is added (promotion, re-signed with
    `repository`) in the same transaction as the rollout, so no device of
    that channel is ever offered the release unstaged: publish to a channel
    the fleet does not follow (dev, beta), then roll out to stable."""
    _require(actor, Permission.RELEASE_PUBLISH)
    if release.status != ReleaseStatus.PUBLISHED.value:
        raise ConflictError(f"the release is {release.status}, not published")
    name = data.get("channel")
    known = {c.name for c in channels(session, release.product)}
    channel = next((c for c in release.channels if c.name == name), None)
    if channel is None and (repository is None or name not in known):
        choices = release.channel_names if repository is None else sorted(known)
        raise InvalidInputError(
            "no such channel" if repository is not None else "the release is not in that channel",
            [{"field": "channel", "message": f"one of {', '.join(choices)}"}],
        )
    emergency = bool(data.get("emergency"))
    reason = (data.get("override_reason") or "").strip() or None
    if emergency and (not release.security_fix or reason is None):
        raise InvalidInputError(
            "an emergency rollout is for a security fix, with a reason",
            [{"field": "emergency", "message": "needs security_fix and override_reason"}],
        )
    waves = _validate_waves(session, release, list(data.get("waves") or []))
    gates = parse_gates(data.get("gates"))
    revisions = {h.code for h in release.product.hardware_revisions}
    excluded_hardware = sorted(set(data.get("excluded_hardware") or ()))
    if unknown := set(excluded_hardware) - revisions:
        raise InvalidInputError(
            "unknown hardware revision",
            [{"field": "excluded_hardware", "message": ", ".join(sorted(unknown))}],
        )
    active = session.scalars(
        select(Rollout.id).where(
            Rollout.release_id == release.id, Rollout.state.in_([s.value for s in ACTIVE_STATES])
        )
    ).first()
    if active is not None:
        raise ConflictError(f"rollout {active} of this release is still active")
    if channel is None:
        assert repository is not None and name is not None
        promote_release(session, actor, release, name, repository)
        channel = next(c for c in release.channels if c.name == name)
    now = utcnow()
    rollout = Rollout(
        product_id=release.product_id,
        release=release,
        channel=channel,
        salt=secrets.token_hex(16),
        state=RolloutState.RUNNING.value,
        current_wave=0,
        wave_started_at=now,
        gates=gates.to_json(),
        waves=waves,
        excluded_hardware=excluded_hardware,
        created_by=actor.label,
        created_at=now,
        updated_at=now,
        emergency=emergency,
        override_reason=reason if emergency else None,
    )
    session.add(rollout)
    # Two starts at once: the unique index of active rollouts lets one through.
    flush_unique(session, "a rollout of this release in this channel is already active")
    reasons = [f"started by {actor.label}"] + ([f"emergency: {reason}"] if emergency else [])
    decide(session, actor, rollout, "start", reasons, None, now)
    return rollout


def pause_rollout(
    session: Session, actor: Principal, rollout: Rollout, reason: str = ""
) -> Rollout:
    """Hold a running rollout at its wave: no wave is added until it resumes."""
    _require(actor, Permission.RELEASE_PUBLISH)
    return _move(
        session, actor, rollout, "pause", {RolloutState.RUNNING}, RolloutState.PAUSED, reason
    )


def resume_rollout(
    session: Session, actor: Principal, rollout: Rollout, reason: str = ""
) -> Rollout:
    """Run a paused or halted rollout again; its wave's soak starts over."""
    _require(actor, Permission.RELEASE_PUBLISH)
    states = {RolloutState.PAUSED, RolloutState.HALTED}
    return _move(session, actor, rollout, "resume", states, RolloutState.RUNNING, reason)


def abort_rollout(
    session: Session, actor: Principal, rollout: Rollout, reason: str = ""
) -> Rollout:
    """End the rollout and withdraw its offer: no device gets the release from it."""
    _require(actor, Permission.RELEASE_PUBLISH)
    states = set(ACTIVE_STATES) | {RolloutState.PLANNED}
    return _move(session, actor, rollout, "abort", states, RolloutState.ABORTED, reason)


def advance_rollout(
    session: Session, actor: Principal, rollout: Rollout, reason: str = ""
) -> Rollout:
    """A person approves the next wave (or completes the last one)."""
    _require(actor, Permission.RELEASE_PUBLISH)
    if rollout.state != RolloutState.RUNNING:
        raise ConflictError(f"the rollout is {rollout.state}, not running")
    now = utcnow()
    action = step(rollout, now)
    decide(session, actor, rollout, action, [f"{action} by {actor.label}", reason], None, now)
    return rollout


def step(rollout: Rollout, now: datetime) -> str:
    """Advance to the next wave, or complete after the last."""
    if rollout.current_wave + 1 >= len(rollout.waves):
        rollout.state = RolloutState.COMPLETED.value
        return "complete"
    rollout.current_wave += 1
    rollout.wave_started_at = now
    return "advance"


def _move(
    session: Session,
    actor: Principal,
    rollout: Rollout,
    action: str,
    sources: set[RolloutState],
    target: RolloutState,
    reason: str,
) -> Rollout:
    if rollout.state == target:
        return rollout  # asked twice: nothing more to do
    if rollout.state not in sources:
        raise ConflictError(f"a {rollout.state} rollout cannot {action}")
    now = utcnow()
    rollout.state = target.value
    if target == RolloutState.RUNNING:
        rollout.wave_started_at = now
        rollout.halted_reason = None
        rollout.in_progress = []
    decide(session, actor, rollout, action, [f"{action} by {actor.label}", reason], None, now)
    return rollout


def decide(
    session: Session,
    actor: Principal,
    rollout: Rollout,
    action: str,
    reasons: list[str],
    figures: dict[str, Any] | None,
    now: datetime,
) -> RolloutDecision:
    """Record a decision (a row and an audit entry) and make devices see it."""
    if figures is None:
        figures = figures_of.figures(figures_of.progress(session, rollout, now).stats())
    rollout.updated_at = now
    bump_generation(rollout.release.product)
    decision = RolloutDecision(
        rollout_id=rollout.id,
        at=now,
        action=action,
        wave=rollout.current_wave,
        actor=actor.label,
        automatic=actor is GATES,
        reasons=[r for r in reasons if r],
        figures=figures,
    )
    session.add(decision)
    session.flush()
    record(
        session,
        actor,
        f"rollout.{action}",
        "rollouts",
        rollout.id,
        after={**rollout.audit_view(), "reasons": decision.reasons, "figures": figures},
    )
    return decision


# --- devices and hardware ------------------------------------------------------------------


def set_device(
    session: Session, actor: Principal, rollout: Rollout, device_id: int, kind: str | None
) -> Rollout:
    """Pin a device (offered from the first wave) or exclude it (never
    offered under this rollout); kind None removes either."""
    _require(actor, Permission.RELEASE_PUBLISH)
    _still_open(rollout)
    if kind not in (None, "pin", "exclude"):
        raise InvalidInputError("kind is pin or exclude", [{"field": "kind"}])
    device = session.get(Device, device_id)
    if device is None or device.product_id != rollout.product_id:
        raise NotFoundError("no such device of the rollout's product")
    row = next((d for d in rollout.devices if d.device_id == device_id), None)
    before = rollout.audit_view()
    if kind is None:
        if row is None:
            return rollout
        rollout.devices.remove(row)
    elif row is None:
        rollout.devices.append(RolloutDevice(device_id=device_id, kind=kind))
    elif row.kind == kind:
        return rollout
    else:
        row.kind = kind
    _changed(session, actor, rollout, f"rollout.{kind or 'release'}-device", before)
    return rollout


def set_hardware_excluded(
    session: Session, actor: Principal, rollout: Rollout, code: str, excluded: bool
) -> Rollout:
    """Exclude a hardware revision from the rollout (or take it back in)."""
    _require(actor, Permission.RELEASE_PUBLISH)
    _still_open(rollout)
    if code not in {h.code for h in rollout.release.product.hardware_revisions}:
        raise NotFoundError("no such hardware revision of the rollout's product")
    codes = set(rollout.excluded_hardware)
    if (code in codes) == excluded:
        return rollout
    before = rollout.audit_view()
    rollout.excluded_hardware = sorted(codes | {code} if excluded else codes - {code})
    action = "rollout.exclude-hardware" if excluded else "rollout.include-hardware"
    _changed(session, actor, rollout, action, before)
    return rollout


def _still_open(rollout: Rollout) -> None:
    if rollout.state in (RolloutState.ABORTED, RolloutState.COMPLETED):
        raise ConflictError(f"the rollout is {rollout.state}")


def _changed(
    session: Session, actor: Principal, rollout: Rollout, action: str, before: dict[str, Any]
) -> None:
    rollout.updated_at = utcnow()
    bump_generation(rollout.release.product)
    session.flush()
    record(
        session, actor, action, "rollouts", rollout.id, before=before, after=rollout.audit_view()
    )

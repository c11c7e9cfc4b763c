"""The gates at work: every running rollout evaluated (a background job),
its wave advanced, the rollout completed or halted; a halt notifies through
the outbox (webhook and mail)."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.clock import utcnow
from upgrade_server.rollouts import progress
from upgrade_server.rollouts.models import Rollout, RolloutDecision, RolloutState
from upgrade_server.rollouts.plan import evaluate
from upgrade_server.rollouts.service import GATES, decide, decisions, gates_of, step
from upgrade_server.tickets.notify import enqueue_note
from upgrade_server.unit_of_work import unit_of_work

log = logging.getLogger(__name__)


def evaluate_rollout(session: Session, rollout: Rollout, now: datetime) -> RolloutDecision | None:
    """Apply the gates to a running rollout; the decision taken, if any (a
    wait is not recorded, a wait for approval once per wave)."""
    if rollout.state != RolloutState.RUNNING or rollout.wave_started_at is None:
        return None
    seen = progress.progress(session, rollout, now)
    stats = seen.stats()
    last = rollout.current_wave + 1 >= len(rollout.waves)
    decision = evaluate(gates_of(rollout), stats, rollout.wave_started_at, now, last)
    figures = {**progress.figures(stats), **decision.figures}
    reasons = list(decision.reasons)
    if decision.action == "wait":
        return None
    if decision.action == "wait-for-approval":
        previous = decisions(session, rollout, 1)
        if previous and (previous[0].action, previous[0].wave) == (
            "wait-for-approval",
            rollout.current_wave,
        ):
            return None  # said once for this wave
        return decide(session, GATES, rollout, "wait-for-approval", reasons, figures, now)
    if decision.action == "halt":
        rollout.state = RolloutState.HALTED.value
        rollout.halted_reason = "; ".join(reasons)[:2000] or "the stop thresholds were crossed"
        rollout.in_progress = seen.in_progress()
        figures["in_progress"] = len(rollout.in_progress)
        made = decide(session, GATES, rollout, "halt", reasons, figures, now)
        _notify_halt(session, rollout, made)
        return made
    if decision.action in ("advance", "complete"):
        return decide(session, GATES, rollout, step(rollout, now), reasons, figures, now)
    raise ValueError(f"unknown decision {decision.action!r}")


def _notify_halt(session: Session, rollout: Rollout, decision: RolloutDecision) -> None:
    release = rollout.release
    enqueue_note(
        session,
        f"rollout:{rollout.id}:halt:{decision.id}",
        "rollout",
        f"Rollout #{rollout.id} of {release.product.code} {release.version} halted",
        {
            "event": "rollout-halted",
            "rollout_id": rollout.id,
            "product": release.product.code,
            "version": release.version,
            "channel": rollout.channel.name,
            "wave": rollout.current_wave,
            "reasons": decision.reasons,
            "figures": decision.figures,
            "halted_at": decision.at.isoformat(),
        },
    )


def _locked(session: Session, rollout_id: int) -> Rollout:
    # Locked (PostgreSQL; SQLite has one writer): two workers never take one step twice.
    return session.scalars(
        select(Rollout)
        .where(Rollout.id == rollout_id)
        .with_for_update(of=Rollout)
        .execution_options(populate_existing=True)
    ).one()


def _running(session: Session) -> list[int]:
    stmt = select(Rollout.id).where(Rollout.state == RolloutState.RUNNING.value)
    return list(session.scalars(stmt.order_by(Rollout.id)))


def evaluate_all(session: Session, now: datetime) -> list[RolloutDecision]:
    """Evaluate every running rollout in the caller's unit of work; the
    decisions taken."""
    taken = []
    for rollout_id in _running(session):
        made = evaluate_rollout(session, _locked(session, rollout_id), now)
        if made is not None:
            taken.append(made)
    return taken


def run_once(app: Flask, now: datetime | None = None) -> int:
    """One pass of the background job: each rollout in a unit of work of its
    own, so that one that fails holds back no other (the pass then fails, for
    the job's health); how many decisions were taken."""
    with unit_of_work(app, writes=False) as session:
        ids = _running(session)
    taken, failed = 0, []
    for rollout_id in ids:
        try:
            with unit_of_work(app) as session:
                made = evaluate_rollout(session, _locked(session, rollout_id), now or utcnow())
                taken += made is not None
        except Exception:
            log.exception("rollout %s could not be evaluated", rollout_id)
            failed.append(rollout_id)
    if failed:
        raise RuntimeError(f"rollouts {failed} could not be evaluated")
    return taken

"""What rollouts keep in step with the install log (events.py).

A halted rollout keeps offering its release to the devices that were part-way
through the install when it halted (`Rollout.in_progress`). Once such a device
reports how the install ended, it is no longer part-way: it leaves the list and
is offered the release no more (a device whose install failed would otherwise
be offered it again at every check while the rollout is halted, and retry).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server import events
from upgrade_server.releases.service import bump_generation
from upgrade_server.rollouts.models import Rollout, RolloutState
from upgrade_server.updates.models import InstallEvent


@events.install_outcome.connect
def _outcome_ends_a_part_way_install(session: Session, event: InstallEvent, **_: Any) -> None:
    halted = session.scalars(
        select(Rollout).where(
            Rollout.release_id == event.release_id, Rollout.state == RolloutState.HALTED.value
        )
    )
    for rollout in halted:
        if event.device_id in (rollout.in_progress or ()):
            rollout.in_progress = [d for d in rollout.in_progress if d != event.device_id]
            bump_generation(rollout.release.product)  # the update check sees it at once
    session.flush()

"""A running rollout steered from its release's page: pause, resume, advance
the next wave, abort. Through rollouts.service (the API's and the CLI's),
with the staff member as the actor and a reason kept in the audit log.
Abort, which withdraws the offer for good, is confirmed on a page of its own
that says what it stops; the others act at once (each can be undone).
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for

from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import utcnow
from upgrade_server.console.views import bp, require
from upgrade_server.errors import AppError
from upgrade_server.extensions import session
from upgrade_server.rollouts import progress
from upgrade_server.rollouts import service as rollouts
from upgrade_server.rollouts.models import Rollout
from upgrade_server.web import problems

ACTIONS = {
    "pause": rollouts.pause_rollout,
    "resume": rollouts.resume_rollout,
    "advance": rollouts.advance_rollout,
    "abort": rollouts.abort_rollout,
}


def _rollout(release_id: int, rollout_id: int) -> Rollout:
    # Locked as the API locks it: a person's step and the gates' never cross.
    rollout = rollouts.get_rollout(
        session(), require(Permission.RELEASE_PUBLISH), rollout_id, lock=request.method == "POST"
    )
    if rollout.release_id != release_id:
        abort(404)
    return rollout


@bp.route("/releases/<int:release_id>/rollouts/<int:rollout_id>/<action>", methods=["GET", "POST"])
def releases_rollout_control(release_id: int, rollout_id: int, action: str) -> Any:
    if action not in ACTIONS:
        abort(404)
    rollout = _rollout(release_id, rollout_id)
    reason = request.form.get("reason", "").strip()[:500]
    error = None
    if request.method == "POST" and (action != "abort" or request.form.get("confirm") == "yes"):
        try:
            ACTIONS[action](session(), require(Permission.RELEASE_PUBLISH), rollout, reason)
        except AppError as exc:
            session().rollback()
            status, error = problems.for_error(exc, f"{request.method} {request.path}")
            if action != "abort":
                return render_template(
                    "console/releases/rollout_refused.html", rollout=rollout, error=error
                ), status
        else:
            return redirect(url_for("console.releases_detail", release_id=release_id), 303)
    if action != "abort":
        return redirect(url_for("console.releases_detail", release_id=release_id), 303)
    totals = progress.progress(session(), rollout, utcnow()).totals()
    return render_template(
        "console/releases/rollout_abort.html", rollout=rollout, totals=totals, error=error
    ), (409 if error else 200)


def controls_for(rollout: Rollout) -> list[str]:
    """The steps a rollout in its state can take (the release page's buttons)."""
    return {
        "running": ["pause", "advance", "abort"],
        "paused": ["resume", "abort"],
        "halted": ["resume", "abort"],
    }.get(rollout.state, [])

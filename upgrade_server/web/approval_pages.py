"""The portal's update approval page: releases waiting for the organisation's
approval (notes link, the devices each concerns), approving for all or chosen
devices with an upgrade-installation session asked for if wished, and the
organisation's maintenance windows in its zone. Routes of the portal
blueprint (views.bp)."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import utcnow
from upgrade_server.extensions import session as db_session
from upgrade_server.releases.models import Release
from upgrade_server.rollouts import approvals, availability, maintenance
from upgrade_server.rollouts.settings_models import MaintenanceWindowSetting, WindowKind
from upgrade_server.web.labels import label
from upgrade_server.web.views import bp, current_user, picked_device_ids, require_login


def _own_organisation() -> tuple[Any, int]:
    """The customer user's principal and organisation; vendor staff use the API."""
    actor = require_login()
    if actor.organisation_id is None:
        abort(404)
    return actor, actor.organisation_id


@bp.get("/approvals")
def approvals_page() -> str:
    actor, organisation_id = _own_organisation()
    organisation, rows = maintenance.list_windows(db_session(), actor, organisation_id)
    state = maintenance.state_of(organisation, rows, utcnow())
    return render_template(
        "portal/approvals.html",
        organisation=organisation,
        pending=availability.pending_releases(db_session(), actor, organisation_id, utcnow()),
        approved=approvals.approvals_given(db_session(), actor, organisation_id),
        windows=[_window_words(row) for row in rows],
        state=state,
        may_approve=actor.may(Permission.UPDATES_APPROVE),
        user=current_user(),
    )


def _window_words(row: MaintenanceWindowSetting) -> dict[str, str]:
    """A window as the reader says it: days and local start, or the cron
    expression; how long."""
    hours, minutes = divmod(row.duration_minutes, 60)
    length = _("%(hours)s h %(minutes)s min", hours=hours, minutes=minutes)
    if row.kind == WindowKind.WEEKLY and row.start is not None:
        days = ", ".join(label(d, "weekday") for d in row.days)
        when = _("%(days)s from %(start)s", days=days, start=row.start.strftime("%H:%M"))
    else:
        when = _("starting at the times of %(cron)s (cron)", cron=row.cron)
    return {"when": when, "length": length, "label": row.label}


@bp.post("/approvals/<int:release_id>")
def approve_release(release_id: int) -> BaseResponse:
    """A customer-admin approves a release for all or the ticked devices."""
    actor, organisation_id = _own_organisation()
    chosen = picked_device_ids() if request.form.get("scope") == "chosen" else []
    if request.form.get("scope") == "chosen" and not chosen:
        abort(400, _("Tick the devices to approve it for."))
    release = db_session().get(Release, release_id)
    title = (
        _(
            "Upgrade installation: %(product)s %(version)s",
            product=release.product.name,
            version=release.version,
        )
        if release is not None
        else None
    )
    approvals.approve(
        db_session(),
        actor,
        organisation_id,
        release_id,
        chosen,
        request_installation=request.form.get("request_installation") == "yes",
        request_title=title,
        via="portal",
    )
    return redirect(url_for("portal.approvals_page") + "#approved")

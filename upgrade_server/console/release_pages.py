"""The console's releases: the list with its filters, one release's page
(notes in both languages, hardware, parameters, guidance, its rollouts and
what a publisher may do with it), and the releases waiting for offline
signatures. Publishing is in release_publish.py; promote, withdraw and
rollouts, each confirmed first, in release_actions.py."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from sqlalchemy import func, select

from upgrade_server.clock import utcnow
from upgrade_server.console import (  # noqa: F401  (their routes join bp)
    release_actions,
    release_publish,
    release_signatures,
)
from upgrade_server.console.release_form import rendered_texts
from upgrade_server.console.rollout_controls import controls_for
from upgrade_server.console.views import bp, staff
from upgrade_server.database import escape_like
from upgrade_server.extensions import current_settings, session
from upgrade_server.notes.documents import GUIDANCE_KINDS
from upgrade_server.products.models import Product
from upgrade_server.releases import service as release_service
from upgrade_server.releases.models import Channel, Release, ReleaseStatus
from upgrade_server.rollouts import progress
from upgrade_server.rollouts.models import ACTIVE_STATES, Rollout
from upgrade_server.routing import MAX_ID

PAGE_SIZE = 25
STATUSES = [s.value for s in ReleaseStatus]


def _int_arg(name: str, low: int = 1, high: int = MAX_ID) -> int | None:
    value = request.args.get(name, "")
    if value.isascii() and value.isdigit() and low <= int(value) <= high:
        return int(value)
    return None


@bp.get("/releases")
def releases() -> str:
    actor = staff()
    filters = {
        "product": _int_arg("product"),
        "channel": request.args.get("channel", "").strip()[:32],
        "status": request.args.get("status", "") if request.args.get("status") in STATUSES else "",
        "q": request.args.get("q", "").strip()[:64],
    }
    page = _int_arg("page", high=100_000) or 1
    stmt = _filtered(actor, filters)
    rows = list(
        session().scalars(
            stmt.order_by(Release.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
        )
    )
    products = list(session().scalars(select(Product).order_by(Product.code)))
    channel_names = list(session().scalars(select(Channel.name).distinct().order_by(Channel.name)))
    pending = session().scalar(
        select(func.count()).where(Release.status == ReleaseStatus.PENDING.value)
    )
    return render_template(
        "console/releases/list.html",
        releases=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
        filters=filters,
        products=products,
        channel_names=channel_names,
        statuses=STATUSES,
        pending=pending or 0,
        filter_args={k: v for k, v in filters.items() if v},
    )


def _filtered(actor: Any, filters: dict[str, Any]) -> Any:
    """The releases the filters keep, as the API's list reads them."""
    stmt = release_service.visible_releases(actor, filters["product"])
    if filters["status"]:
        stmt = stmt.where(Release.status == filters["status"])
    if filters["channel"]:
        stmt = stmt.where(Release.channels.any(Channel.name == filters["channel"]))
    if filters["q"]:
        stmt = stmt.where(Release.version.like(f"%{escape_like(filters['q'])}%", escape="\\"))
    return stmt


@bp.get("/releases/<int:release_id>")
def releases_detail(release_id: int) -> str:
    actor = staff()
    release = release_service.get_release(session(), actor, release_id)
    rollouts = list(
        session().scalars(
            select(Rollout).where(Rollout.release_id == release.id).order_by(Rollout.id.desc())
        )
    )
    active = next((r for r in rollouts if r.state in ACTIVE_STATES), None)
    totals = progress.progress(session(), active, utcnow()).totals() if active else None
    channels = release_service.channels(session(), release.product)
    return render_template(
        "console/releases/detail.html",
        release=release,
        notes=rendered_texts(release.notes),
        guidance=[
            (kind, rendered_texts(release.guidance.get(kind)))
            for kind in GUIDANCE_KINDS
            if release.guidance.get(kind)
        ],
        rollouts=rollouts,
        active=active,
        totals=totals,
        promote_to=[c.name for c in channels if c not in release.channels],
        rollout_controls=controls_for,
        notice=request.args.get("notice", ""),
    )


@bp.get("/releases/signatures")
def releases_signatures() -> str:
    staff()
    return render_template(
        "console/releases/signatures.html",
        products=release_signatures.waiting(session(), current_settings()),
    )

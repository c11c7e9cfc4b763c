"""The console's overview: the fleet at a glance (console/overview.py's figures)."""

from __future__ import annotations

from flask import render_template, request

from upgrade_server.clock import today_in, utcnow
from upgrade_server.console import overview as figures
from upgrade_server.console.views import bp, staff
from upgrade_server.extensions import current_settings
from upgrade_server.extensions import session as db_session
from upgrade_server.routing import MAX_ID
from upgrade_server.workdays.service import working_calendars


@bp.get("/")
def overview() -> str:
    actor = staff()
    settings = current_settings()
    session = db_session()
    now = utcnow()
    zone = settings.console_timezone
    asked = request.args.get("product", "")
    product_id = (
        int(asked) if asked.isascii() and asked.isdigit() and int(asked) <= MAX_ID else None
    )
    fleet = figures.fleet_chart(session, product_id)
    fleet_size = sum(total for _, _, total in fleet.table)
    calendars = working_calendars(session, settings)
    tickets, open_count = figures.open_tickets(session, actor, calendars, now)
    silent, silent_sample = figures.silent_devices(session, now, settings.update_poll_seconds)
    return render_template(
        "console/overview.html",
        now=now,
        zone=zone,
        fleet=fleet,
        adoption=figures.adoption(session, fleet.product, fleet_size, today_in(zone, now)),
        rollouts=figures.summary(figures.rollouts_in_progress(session)),
        ending=figures.coverage_ending(session, today_in(zone, now)),
        tickets=tickets,
        open_count=open_count,
        month=figures.deadlines_this_month(session, actor, calendars, now, zone),
        silent=silent,
        silent_sample=silent_sample,
        silent_polls=figures.SILENT_AFTER_POLLS,
        poll_minutes=settings.update_poll_seconds // 60,
    )

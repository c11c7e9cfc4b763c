"""The console's devices: the fleet searched and filtered (a GET form, so a
URL is a shareable search), sorted, paged, exported as CSV; a device's page
with its facts, its coverage and one timeline of everything that happened
to it. Support engineers may move a device to another channel there."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask import (
    Response,
    current_app,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _

from upgrade_server.accounts.roles import Permission
from upgrade_server.console import device_queries as queries
from upgrade_server.console.device_timeline import console_link, timeline
from upgrade_server.console.views import bp, require, staff
from upgrade_server.csvfiles import spreadsheet_safe
from upgrade_server.devices import service as device_service
from upgrade_server.entitlements.service import coverage_of
from upgrade_server.errors import AppError
from upgrade_server.extensions import session as db_session
from upgrade_server.web import problems
from upgrade_server.web.labels import label

# The CSV file's columns, in order.
CSV_COLUMNS = (
    "serial",
    "organisation",
    "product",
    "hardware_revision",
    "current_version",
    "channel",
    "site",
    "last_seen_at",
    "upgrade_coverage",
    "upgrades_covered_through",
    "delivered_on",
    "accepted_on",
)


def _organisation_link(organisation_id: int) -> str | None:
    """The organisation's console page, once that section has one."""
    return console_link(("console.organisations_detail",), organisation_id=organisation_id)


@bp.get("/devices")
def devices() -> str:
    query = queries.DeviceQuery.from_args(request.args)
    session = db_session()
    found = queries.device_page(session, staff(), query)
    return render_template(
        "console/devices/list.html",
        query=query,
        found=found,
        choices=queries.choices(session),
        states=queries.STATES,
        sorts=queries.SORTS,
        cap=queries.COUNT_CAP,
        page_size=queries.PAGE_SIZE,
        organisation_link=_organisation_link,
        # Said once a page, not once a row.
        state_words={state: label(state, "upgrade-coverage") for state in queries.STATES},
        through=_("through %(day)s"),
        never=_("never"),
    )


@bp.get("/devices.csv")
def devices_csv() -> Response:
    """The filtered list, every row, streamed."""
    query = queries.DeviceQuery.from_args(request.args)
    session = db_session()
    rows = queries.device_rows(session, staff(), query)

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for n, r in enumerate(rows, 1):
            writer.writerow(
                (
                    spreadsheet_safe(r.serial),
                    spreadsheet_safe(r.organisation_slug),
                    spreadsheet_safe(r.product),
                    spreadsheet_safe(r.hardware),
                    spreadsheet_safe(r.current_version or ""),
                    spreadsheet_safe(r.channel),
                    spreadsheet_safe(r.site),
                    r.last_seen_at.isoformat() if r.last_seen_at else "",
                    r.state,
                    r.through or "",
                    r.delivered_on.isoformat() if r.delivered_on else "",
                    r.accepted_on.isoformat() if r.accepted_on else "",
                )
            )
            if n % 500 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="devices.csv"'},
    )


@bp.get("/devices/<int:device_id>")
def devices_detail(device_id: int, error: str | None = None, status: int = 200) -> Any:
    session = db_session()
    device = device_service.get_device(session, staff(), device_id)
    writable = "console.devices_channel" in current_app.view_functions and (
        staff().may(Permission.DEVICE_WRITE)
    )
    return render_template(
        "console/devices/detail.html",
        device=device,
        coverage=coverage_of(session, device),
        entries=timeline(session, device),
        channels=device_service.channel_names(session, device.product) if writable else (),
        zone=device.organisation.timezone,
        organisation_link=_organisation_link(device.organisation_id),
        error=error,
    ), status


@bp.post("/devices/<int:device_id>/channel")
def devices_channel(device_id: int) -> Any:
    """Move the device to another channel (it is offered that channel's releases)."""
    actor = require(Permission.DEVICE_WRITE)
    channel = request.form.get("channel", "").strip()[:32]
    session = db_session()
    try:
        device_service.update_device(session, actor, device_id, {"channel": channel})
    except AppError as error:
        _status, sentence = problems.for_error(error, f"{request.method} {request.path}")
        return devices_detail(device_id, error=sentence, status=422)
    return redirect(url_for("console.devices_detail", device_id=device_id, changed="channel"))

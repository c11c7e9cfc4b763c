"""The service record (JSON, CSV or PDF) and the reminders in the management API
(/api/v1): routes of the service blueprint (api.bp)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Integer, String
from apiflask.validators import OneOf, Range
from flask import Response, render_template

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.csvfiles import csv_response
from upgrade_server.extensions import session
from upgrade_server.service import notices, reminders
from upgrade_server.service import record as service_record
from upgrade_server.service.blueprint import READ, bp


class RecordQuery(Schema):
    format = String(load_default="json", validate=OneOf(["json", "csv", "pdf"]))


class ReminderQuery(Schema):
    days = Integer(load_default=30, validate=Range(0, 3660))
    hours = Integer(load_default=24, validate=Range(0, 24 * 365))
    format = String(load_default="json", validate=OneOf(["json", "csv"]))


def record_response(
    organisation: Any, entries: list[service_record.RecordEntry], fmt: str, name: str
) -> Any:
    zone = organisation.timezone
    rows = service_record.record_rows(entries, zone)
    if fmt == "csv":
        return csv_response(rows, list(rows[0]) if rows else ["at"], f"{name}.csv")
    if fmt == "pdf":
        from upgrade_server.notes.documents import render_pdf
        from upgrade_server.web.record import present

        # People read the PDF: each entry in their words, as on the portal's
        # record page (the JSON and the CSV keep the codes).
        html = render_template(
            "portal/record_document.html",
            organisation=organisation,
            rows=present(session(), entries, zone),
            title=name,
        )
        return Response(
            render_pdf(html),
            mimetype="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
        )
    return {"organisation_id": organisation.id, "timezone": zone, "items": rows}


@bp.get("/devices/<int:device_id>/service-record")
@bp.auth_required(token_auth, roles=READ)
@bp.input(RecordQuery, location="query", arg_name="query")
@bp.doc(description="Times in the organisation's time zone. `format=csv` or `format=pdf`.")
def device_record(device_id: int, query: dict[str, Any]) -> Any:
    """A device's service record: installs, sessions and requests, oldest first."""
    organisation, entries = service_record.service_record(
        session(), current_principal(), device_id=device_id
    )
    return record_response(organisation, entries, query["format"], f"device-{device_id}-record")


@bp.get("/organisations/<int:organisation_id>/service-record")
@bp.auth_required(token_auth, roles=READ)
@bp.input(RecordQuery, location="query", arg_name="query")
@bp.doc(description="Times in the organisation's time zone. `format=csv` or `format=pdf`.")
def organisation_record(organisation_id: int, query: dict[str, Any]) -> Any:
    """An organisation's service record across its devices, oldest first."""
    organisation, entries = service_record.service_record(
        session(), current_principal(), organisation_id=organisation_id
    )
    return record_response(
        organisation, entries, query["format"], f"{organisation.slug}-service-record"
    )


def _report(rows: list[dict[str, Any]], fmt: str, name: str) -> Any:
    if fmt == "csv":
        return csv_response(rows, list(rows[0]) if rows else ["none"], f"{name}.csv")
    return {"items": rows}


@bp.get("/service/reminders/inspections")
@bp.auth_required(token_auth, roles=READ)
@bp.input(ReminderQuery, location="query", arg_name="query")
def inspections_due(query: dict[str, Any]) -> Any:
    """Devices under warranty whose periodic inspection is due within `days` days."""
    rows = reminders.inspections_due(session(), current_principal(), query["days"])
    return _report(rows, query["format"], "inspections-due")


@bp.get("/service/reminders/training")
@bp.auth_required(token_auth, roles=READ)
@bp.input(ReminderQuery, location="query", arg_name="query")
def training_left(query: dict[str, Any]) -> Any:
    """Training days used and left per organisation and delivery (3 each)."""
    return _report(
        reminders.training_left(session(), current_principal()), query["format"], "training"
    )


@bp.get("/service/reminders/waiting")
@bp.auth_required(token_auth, roles=READ)
@bp.input(ReminderQuery, location="query", arg_name="query")
def waiting(query: dict[str, Any]) -> Any:
    """Sessions and requests waiting for the customer's confirmation for more than `hours`."""
    rows = reminders.waiting_for_customer(session(), current_principal(), query["hours"])
    return _report(rows, query["format"], "waiting-for-confirmation")


@bp.get("/service/reminders/pre-installation-notices")
@bp.auth_required(token_auth, roles=READ)
@bp.input(ReminderQuery, location="query", arg_name="query")
def notices_missing(query: dict[str, Any]) -> Any:
    """Delivered devices that had no written pre-installation notice sent
    before the day they arrived (`problem`: none, or late)."""
    rows = notices.missing_report(session(), current_principal())
    return _report(rows, query["format"], "pre-installation-notices-missing")


@bp.get("/service/reminders/hotline")
@bp.auth_required(token_auth, roles=READ)
@bp.input(ReminderQuery, location="query", arg_name="query")
def hotline_not_told(query: dict[str, Any]) -> Any:
    """Customers not yet told in writing of a hotline change (`overdue` past
    the 3 days), the soonest due first."""
    from upgrade_server.service import contacts

    rows = contacts.not_told(session(), current_principal())
    return _report(rows, query["format"], "hotline-not-told")

"""The service record from the command line (vendor staff): plan sessions,
record their start and end, open requests for phone calls, print the record
and the reminders. Customers confirm in the portal or through the API."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import click
from sqlalchemy import select

from upgrade_server.accounts.principal import Principal
from upgrade_server.cli import fail, transaction
from upgrade_server.clock import utcnow
from upgrade_server.csvfiles import csv_response
from upgrade_server.devices.models import Device
from upgrade_server.errors import AppError
from upgrade_server.extensions import current_settings, session
from upgrade_server.organisations.models import Organisation
from upgrade_server.service import contacts, notices, responses, service, service_requests
from upgrade_server.service import record as service_record
from upgrade_server.service import reminders as due
from upgrade_server.service import sessions as service_sessions
from upgrade_server.service.models import Mode, ServiceSession, SessionKind
from upgrade_server.tickets.notify import send_mail

WHEN = click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"])


@click.group("service", help="Service sessions, requests, the record and reminders.")
def service_group() -> None:
    pass


def _organisation(slug: str) -> Organisation:
    found = session().scalars(select(Organisation).where(Organisation.slug == slug)).first()
    if found is None:
        raise click.ClickException(f"no organisation {slug!r}")
    return found


def _device_ids(serials: tuple[str, ...]) -> list[int]:
    found = dict(
        session().execute(select(Device.serial, Device.id).where(Device.serial.in_(serials))).all()
    )
    missing = [s for s in serials if s not in found]
    if missing:
        raise click.ClickException(f"no device {', '.join(missing)}")
    return [found[s] for s in serials]


@service_group.command("plan")
@click.option("--kind", type=click.Choice([k.value for k in SessionKind]), required=True)
@click.option("--org", "slug", required=True)
@click.option("--device", "serials", multiple=True, help="a device's serial (repeat)")
@click.option("--mode", type=click.Choice([m.value for m in Mode]), default="on-site")
@click.option("--release-id", type=int)
@click.option("--engineer", "engineers", multiple=True)
@click.option("--customer-representative", default="")
@click.option("--training-days", type=float)
@click.option("--notes", default="")
def plan(slug: str, serials: tuple[str, ...], engineers: tuple[str, ...], **fields: Any) -> None:
    """Plan a session."""
    try:
        with transaction() as db_session:
            data = {
                **fields,
                "organisation_id": _organisation(slug).id,
                "device_ids": _device_ids(serials),
                "engineers": list(engineers),
            }
            entry = service_sessions.create_session(db_session, Principal.cli(), data)
    except AppError as error:
        fail(error)
    click.echo(f"session {entry.id} planned ({entry.kind})")


def _step(entry_id: int, step: str, at: datetime | None, outcome: str | None = None) -> None:
    try:
        with transaction() as db_session:
            entry = service.advance(
                db_session, Principal.cli(), ServiceSession, entry_id, step, at, outcome
            )
    except AppError as error:
        fail(error)
    click.echo(f"session {entry.id}: {entry.state}")


@service_group.command("start")
@click.argument("session_id", type=int)
@click.option("--at", type=WHEN, help="e.g. 2026-03-01T09:00+0800; default now")
def start(session_id: int, at: datetime | None) -> None:
    """Record the start of a session (the customer confirms it)."""
    _step(session_id, "start", at)


@service_group.command("end")
@click.argument("session_id", type=int)
@click.option("--at", type=WHEN, help="default now")
@click.option("--outcome", default=None)
def end(session_id: int, at: datetime | None, outcome: str | None) -> None:
    """Record the end of a session (the customer confirms it: signed off)."""
    _step(session_id, "end", at, outcome)


@service_group.command("cancel")
@click.argument("session_id", type=int)
@click.option("--reason", required=True, help="why it will not take place")
def cancel(session_id: int, reason: str) -> None:
    """Cancel a planned session that will not take place (kept in the record)."""
    try:
        with transaction() as db_session:
            entry = service_sessions.cancel_session(db_session, Principal.cli(), session_id, reason)
    except AppError as error:
        fail(error)
    click.echo(f"session {entry.id}: {entry.state}")


@service_group.command("list")
@click.option("--org", "slug", default=None)
def list_sessions(slug: str | None) -> None:
    """Sessions, newest first."""
    organisation_id = _organisation(slug).id if slug else None
    for entry in service.listing(session(), Principal.cli(), ServiceSession, organisation_id):
        devices = ",".join(d.serial for d in entry.devices)
        click.echo(f"{entry.id}\t{entry.kind}\t{entry.state}\t{entry.organisation.slug}\t{devices}")


@service_group.command("phone-request")
@click.option("--org", "slug", required=True)
@click.option("--title", required=True)
@click.option("--description", default="")
@click.option("--device", "serials", multiple=True)
def phone_request(slug: str, title: str, description: str, serials: tuple[str, ...]) -> None:
    """Open a technical service request for a customer's phone call."""
    try:
        with transaction() as db_session:
            data = {
                "organisation_id": _organisation(slug).id,
                "title": title,
                "description": description,
                "device_ids": _device_ids(serials),
            }
            request = service_requests.open_request(db_session, Principal.cli(), data, via="phone")
    except AppError as error:
        fail(error)
    click.echo(f"request {request.id} opened")


@service_group.command("respond")
@click.argument("request_id", type=int)
@click.option("--response", required=True, help="what the vendor answered")
@click.option("--at", type=WHEN, help="default now; never later than now")
def respond(request_id: int, response: str, at: datetime | None) -> None:
    """Record the vendor's response to a service request (due within 24 hours)."""
    try:
        with transaction() as db_session:
            request = responses.respond(db_session, Principal.cli(), request_id, response, at)
    except AppError as error:
        fail(error)
    late = responses.response_deadline(request, utcnow()).late
    click.echo(f"request {request.id}: answered" + (f", {late} late" if late else " in time"))


@service_group.command("hotline-change")
@click.argument("number")
@click.option("--changed-at", type=WHEN, help="when it takes effect; default now")
@click.option("--note", default="")
def hotline_change(number: str, changed_at: datetime | None, note: str) -> None:
    """Record a new hotline number: every customer is due a written notice within 3 days."""
    try:
        with transaction() as db_session:
            data = {"number": number, "changed_at": changed_at, "note": note}
            change = contacts.record_change_of_hotline(db_session, Principal.cli(), data)
    except AppError as error:
        fail(error)
    click.echo(f"hotline change {change.id}: {change.previous_number or '-'} -> {change.number}")


@service_group.command("hotline-email")
@click.argument("change_id", type=int)
def hotline_email(change_id: int) -> None:
    """E-mail a hotline change to every customer not yet told (their contact address)."""
    settings = current_settings()
    if not settings.smtp_host:
        raise click.ClickException("no mail server is configured (UPGRADE_SERVER_SMTP_HOST)")
    try:
        with transaction() as db_session:
            result = contacts.send_by_email(
                db_session, Principal.cli(), change_id, partial(send_mail, settings)
            )
    except AppError as error:
        fail(error)
    for outcome, slugs in result.items():
        click.echo(f"{outcome}: {', '.join(slugs) or 'none'}")


@service_group.command("record")
@click.argument("serial")
def record(serial: str) -> None:
    """A device's service record as CSV (times in its organisation's zone)."""
    try:
        organisation, entries = service_record.service_record(
            session(), Principal.cli(), device_id=_device_ids((serial,))[0]
        )
    except AppError as error:
        fail(error)
    rows = service_record.record_rows(entries, organisation.timezone)
    response = csv_response(rows, ["at", "kind", "title", "state", "detail"], "record.csv")
    click.echo(response.get_data(as_text=True), nl=False)


@service_group.command("reminders")
@click.argument(
    "which", type=click.Choice(["inspections", "training", "waiting", "notices", "hotline"])
)
@click.option("--days", default=30, show_default=True, help="inspections due within")
@click.option("--hours", default=24, show_default=True, help="waiting for longer than")
def reminders(which: str, days: int, hours: int) -> None:
    """Inspections due, training days left, entries waiting for the customer,
    delivered devices without a pre-installation notice in time, or customers
    not yet told of a hotline change."""
    actor = Principal.cli()
    rows = {
        "inspections": lambda: due.inspections_due(session(), actor, days),
        "training": lambda: due.training_left(session(), actor),
        "waiting": lambda: due.waiting_for_customer(session(), actor, hours),
        "notices": lambda: notices.missing_report(session(), actor),
        "hotline": lambda: contacts.not_told(session(), actor),
    }[which]()
    if not rows:
        click.echo("none")
    for row in rows:
        click.echo("\t".join(str(v) for v in row.values()))

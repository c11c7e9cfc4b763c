"""Tickets from the command line (vendor staff): the board, one ticket with
its deadlines, opening one for a phone call, moving it on, changing its level.

Each command runs the services the API runs, as a staff principal: the CLI
itself (`cli:<os user>`), or with `--as EMAIL` a vendor staff user, whom the
audit log then names.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from sqlalchemy import select

from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.models import User
from upgrade_server.accounts.principal import Principal
from upgrade_server.cli import fail, transaction
from upgrade_server.clock import utcnow
from upgrade_server.devices.models import Device
from upgrade_server.errors import AppError
from upgrade_server.extensions import current_settings, session
from upgrade_server.organisations.models import Organisation
from upgrade_server.schemas import parse_timestamp
from upgrade_server.tickets import breaches, reports, service
from upgrade_server.tickets import steps as tickets_steps
from upgrade_server.tickets.models import Ticket
from upgrade_server.workdays.service import Calendars, working_calendars

STEPS = click.Choice(["acknowledged", "on-the-way", "on-site", "resolved", "closed"])
LEVELS = click.IntRange(1, 4)

as_option = click.option(
    "--as",
    "as_email",
    metavar="EMAIL",
    help="act as this vendor staff user (the audit names them); default: the CLI",
)


@click.group("tickets", help="Tickets: the board, one ticket, open, advance, level.")
def tickets_group() -> None:
    pass


def _actor(email: str | None) -> Principal:
    if email is None:
        return Principal.cli()
    user = session().scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.active:
        raise click.ClickException(f"no active user {email}")
    actor = accounts.principal_for(user)
    if not actor.is_vendor:
        raise click.ClickException(f"{email} is not vendor staff")
    return actor


def _calendars() -> Calendars:
    # The working-day calendars the API's views use for deadlines.
    return working_calendars(session(), current_settings())


def _when(value: datetime | None) -> str:
    return value.isoformat() if value else "-"


def _row(ticket: Ticket, now: datetime) -> str:
    deadlines = service.deadlines_of(ticket, _calendars(), now)
    pending = [d for d in deadlines if d.met_at is None]
    nearest = min(pending, key=lambda d: d.due_at) if pending else None
    due = f"{nearest.name} {_when(nearest.due_at)}" if nearest else "-"
    late = " LATE" if nearest and nearest.breached else ""
    return (
        f"{ticket.id}\tL{ticket.level}\t{ticket.status}\t{ticket.organisation.slug}\t"
        f"{due}{late}\t{ticket.title}"
    )


def _view(ticket: Ticket, now: datetime) -> dict[str, Any]:
    """The ticket as the API shows it, in the fields staff read at a terminal."""
    return {
        "id": ticket.id,
        "organisation": ticket.organisation.slug,
        "level": ticket.level,
        "status": ticket.status,
        "title": ticket.title,
        "description": ticket.description,
        "source": ticket.source,
        "region": ticket.region,
        "timezone": ticket.timezone,
        "devices": [d.serial for d in ticket.devices],
        "opened_at": _when(ticket.opened_at),
        "steps": {
            step: _when(getattr(ticket, column))
            for step, column in (
                ("acknowledged", "acknowledged_at"),
                ("on-the-way", "on_the_way_at"),
                ("on-site", "on_site_at"),
                ("resolved", "resolved_at"),
                ("closed", "closed_at"),
            )
        },
        "deadlines": [
            {
                "name": d.name,
                "due_at": _when(d.due_at),
                "met_at": _when(d.met_at) if d.met_at else None,
                "late_minutes": round(d.late.total_seconds() / 60) if d.late else None,
                "calendar": d.calendar,
            }
            for d in service.deadlines_of(ticket, _calendars(), now)
        ],
    }


def _show(ticket: Ticket, as_json: bool) -> None:
    view = _view(ticket, utcnow())
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    click.echo(f"ticket {view['id']}: {view['title']} ({view['organisation']})")
    click.echo(f"  level {view['level']}, {view['status']}, opened {view['opened_at']}")
    click.echo(f"  deadlines of region {view['region']}, working days in {view['timezone']}")
    if view["devices"]:
        click.echo(f"  devices {', '.join(view['devices'])}")
    for step, at in view["steps"].items():
        if at != "-":
            click.echo(f"  {step:12} {at}")
    for d in view["deadlines"]:
        if d["late_minutes"]:
            state = f"LATE by {d['late_minutes']} min"
        else:
            state = f"met {d['met_at']}" if d["met_at"] else "pending"
        used = f" ({d['calendar']})" if d["calendar"] else ""
        click.echo(f"  deadline {d['name']:14} due {d['due_at']}  {state}{used}")


@tickets_group.command("list")
@click.option("--all", "everything", is_flag=True, help="closed and resolved ones too")
@as_option
def list_tickets(everything: bool, as_email: str | None) -> None:
    """Open tickets, nearest deadline first (as the API's board)."""
    actor = _actor(as_email)
    now = utcnow()
    try:
        open_ones = [t for t, _ in reports.board(session(), actor, _calendars())]
    except AppError as error:
        fail(error)
    done: list[Ticket] = []
    if everything:
        done = list(
            session().scalars(
                service.visible_tickets(actor)
                .where(Ticket.status.not_in(service.OPEN))
                .order_by(Ticket.id.desc())
            )
        )
    if not open_ones and not done:
        click.echo("No open tickets." if not everything else "No tickets.")
    for ticket in [*open_ones, *done]:
        click.echo(_row(ticket, now))


@tickets_group.command("show")
@click.argument("ticket_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@as_option
def show(ticket_id: int, as_json: bool, as_email: str | None) -> None:
    """One ticket with its steps and deadlines (met, missed and by how long)."""
    try:
        ticket = service.get_ticket(session(), _actor(as_email), ticket_id)
    except AppError as error:
        fail(error)
    _show(ticket, as_json)


@tickets_group.command("open")
@click.option("--org", "slug", required=True, help="the customer organisation's slug")
@click.option("--level", type=LEVELS, required=True, help="fault level, 1 (worst) to 4")
@click.option("--title", required=True)
@click.option("--description", default="")
@click.option("--device", "serials", multiple=True, help="a device's serial (repeat)")
@as_option
def open_ticket(
    slug: str,
    level: int,
    title: str,
    description: str,
    serials: tuple[str, ...],
    as_email: str | None,
) -> None:
    """Open a ticket for a fault reported by phone."""
    try:
        with transaction() as db_session:
            actor = _actor(as_email)
            org = db_session.scalars(select(Organisation).where(Organisation.slug == slug)).first()
            if org is None:
                raise click.ClickException(f"no organisation {slug!r}")
            found = dict(
                db_session.execute(
                    select(Device.serial, Device.id).where(Device.serial.in_(serials))
                ).all()
            )
            missing = [s for s in serials if s not in found]
            if missing:
                raise click.ClickException(f"no device {', '.join(missing)}")
            data = {
                "title": title,
                "description": description,
                "level": level,
                "organisation_id": org.id,
                "device_ids": [found[s] for s in serials],
            }
            ticket = service.open_ticket(db_session, actor, data, via="cli")
    except AppError as error:
        fail(error)
    click.echo(f"ticket {ticket.id} opened (level {ticket.level}, {ticket.organisation.slug})")


@tickets_group.command("advance")
@click.argument("ticket_id", type=int)
@click.argument("status", type=STEPS)
@click.option(
    "--at",
    "at_text",
    metavar="TIME",
    help="when it happened, ISO 8601 with its offset (2026-12-01T09:30+08:00); default now",
)
@as_option
def advance(ticket_id: int, status: str, at_text: str | None, as_email: str | None) -> None:
    """Move a ticket on: acknowledged, on-the-way, on-site, resolved, closed.
    A step taken late is recorded as a breach at once."""
    try:
        at = parse_timestamp(at_text, "--at", not_future=True) if at_text else None
        with transaction() as db_session:
            actor = _actor(as_email)
            ticket = tickets_steps.advance(db_session, actor, ticket_id, status, at)
            breaches.record_breaches(db_session, [ticket], _calendars(), utcnow())
    except AppError as error:
        fail(error)
    click.echo(f"ticket {ticket.id} {ticket.status}")


@tickets_group.command("level")
@click.argument("ticket_id", type=int)
@click.argument("level", type=LEVELS)
@as_option
def change_level(ticket_id: int, level: int, as_email: str | None) -> None:
    """Change an open ticket's fault level; its deadlines follow."""
    try:
        with transaction() as db_session:
            ticket = service.change_level(db_session, _actor(as_email), ticket_id, level)
    except AppError as error:
        fail(error)
    click.echo(f"ticket {ticket.id} is level {ticket.level}")

"""Coverage from the command line: show a device's, record contracts and
overrides, list what ends soon, and re-derive what the update check reads."""

from __future__ import annotations

from datetime import datetime

import click
from sqlalchemy import select

from upgrade_server.accounts.principal import Principal
from upgrade_server.cli import fail, transaction
from upgrade_server.devices.models import Device
from upgrade_server.entitlements import contracts as entitlements_contracts
from upgrade_server.entitlements import service
from upgrade_server.entitlements.coverage import Kind
from upgrade_server.errors import AppError
from upgrade_server.extensions import session
from upgrade_server.organisations.models import Organisation

KINDS = click.Choice([k.value for k in Kind])
DAY = click.DateTime(formats=["%Y-%m-%d"])


@click.group("coverage", help="Device coverage: contracts, overrides, reports.")
def coverage_group() -> None:
    pass


def _device(serial: str) -> Device:
    device = session().scalars(select(Device).where(Device.serial == serial)).first()
    if device is None:
        raise click.ClickException(f"no device {serial!r}")
    return device


@coverage_group.command("show")
@click.argument("serial")
def show(serial: str) -> None:
    """Each kind's status today, the covered windows and what grants them."""
    found = service.coverage_of(session(), _device(serial))
    click.echo(f"{found['serial']}: today {found['today']} ({found['timezone']})")
    for kind in found["kinds"]:
        through = kind["covered_through"] or "-"
        click.echo(f"  {kind['kind']:9} {kind['status']:19} through {through}")
        for grant in kind["grants"]:
            end = grant["ends_on"] or "open"
            ref = f" {grant['reference']}" if grant["reference"] else ""
            click.echo(f"    {grant['effect']} {grant['starts_on']}..{end} {grant['source']}{ref}")


@coverage_group.command("add-contract")
@click.option("--device", "serial", help="the device's serial (or --organisation)")
@click.option("--organisation", "slug", help="every device of this organisation")
@click.option("--product-id", type=int, help="with --organisation: only this product")
@click.option("--kind", type=KINDS, default="upgrades", show_default=True)
@click.option("--from", "starts_on", type=DAY, required=True)
@click.option("--through", "ends_on", type=DAY, required=True, help="the last covered day")
@click.option("--reference", required=True, help="the contract number")
@click.option("--note", default="")
def add_contract(
    serial: str | None,
    slug: str | None,
    product_id: int | None,
    kind: str,
    starts_on: datetime,
    ends_on: datetime,
    reference: str,
    note: str,
) -> None:
    if bool(serial) == bool(slug):
        raise click.UsageError("give --device or --organisation")
    data = {
        "kind": kind,
        "starts_on": starts_on.date(),
        "ends_on": ends_on.date(),
        "reference": reference,
        "note": note,
        "product_id": product_id,
    }
    try:
        with transaction() as db_session:
            if serial:
                data["device_id"] = _device(serial).id
            else:
                org = db_session.scalars(
                    select(Organisation).where(Organisation.slug == slug)
                ).first()
                if org is None:
                    raise click.ClickException(f"no organisation {slug!r}")
                data["organisation_id"] = org.id
            contract = entitlements_contracts.create_contract(db_session, Principal.cli(), data)
    except AppError as error:
        fail(error)
    click.echo(f"contract {contract.id} {contract.reference} recorded")


@coverage_group.command("expiring")
@click.option("--days", type=int, default=90, show_default=True)
@click.option("--kind", type=KINDS, default="upgrades", show_default=True)
def expiring(days: int, kind: str) -> None:
    """Devices whose coverage ends within --days days, soonest first."""
    try:
        rows = service.expiring(session(), Principal.cli(), days, Kind(kind))
    except AppError as error:
        fail(error)
    if not rows:
        click.echo(f"No coverage ends in the next {days} days.")
    for row in rows:
        click.echo(
            f"{row['covered_through']}\t{row['days_left']}\t{row['serial']}\t"
            f"{row['organisation']}\t{row['product']}\t{row['site']}"
        )


@coverage_group.command("refresh")
def refresh() -> None:
    """Re-derive every device's stored upgrade windows (after a restore, say)."""
    with transaction() as db_session:
        count = service.refresh_where(db_session)
    click.echo(f"{count} devices refreshed")

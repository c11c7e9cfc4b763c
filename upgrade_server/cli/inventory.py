"""Organisations, products and devices from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click
from sqlalchemy import select

from upgrade_server.accounts.principal import Principal
from upgrade_server.cli import fail, transaction
from upgrade_server.devices import gateway_tokens, provisioning
from upgrade_server.devices import service as devices
from upgrade_server.devices.models import Device
from upgrade_server.errors import AppError
from upgrade_server.extensions import session
from upgrade_server.organisations import service as organisations
from upgrade_server.organisations.models import Organisation, Region
from upgrade_server.products import service as products
from upgrade_server.products.models import Product


@click.group("org", help="Customer organisations.")
def org_group() -> None:
    pass


@org_group.command("create")
@click.option("--slug", required=True)
@click.option("--name", required=True)
@click.option("--timezone", default="Asia/Shanghai", show_default=True)
@click.option("--region", type=click.Choice([r.value for r in Region]), default="other")
@click.option("--contact-email", default=None)
def create_org(slug: str, name: str, timezone: str, region: str, contact_email: str | None) -> None:
    try:
        with transaction() as session:
            org = organisations.create_organisation(
                session,
                Principal.cli(),
                slug=slug,
                name=name,
                timezone=timezone,
                region=region,
                contact_email=contact_email,
            )
    except AppError as error:
        fail(error)
    click.echo(f"organisation {org.id} {org.slug} created")


@org_group.command("list")
def list_orgs() -> None:
    for org in session().execute(select(Organisation).order_by(Organisation.id)).scalars():
        click.echo(f"{org.id}\t{org.slug}\t{org.name}\t{org.timezone}\t{org.region}")


@org_group.group(
    "gateway-token", help="hawkBit gateway tokens: DDI for any device of one organisation."
)
def gateway_token_group() -> None:
    pass


def _organisation(slug: str) -> Organisation:
    found = organisations.find_by_slug(session(), slug)
    if found is None:
        raise click.ClickException(f"no organisation {slug}")
    return found


@gateway_token_group.command("issue", help="Issue a gateway token for ORGANISATION (shown once).")
@click.argument("organisation")
@click.option("--name", required=True, help="What or where it is for.")
def issue_gateway_token(organisation: str, name: str) -> None:
    try:
        with transaction() as db:
            issued = gateway_tokens.issue_gateway_token(
                db, Principal.cli(), _organisation(organisation), name
            )
    except AppError as error:
        fail(error)
    click.echo(f"gateway token {issued.token.id} for {organisation}: {issued.secret}")
    click.echo("Shown once: devices send it as `Authorization: GatewayToken <token>`.", err=True)


@gateway_token_group.command("list", help="ORGANISATION's gateway tokens (never the secrets).")
@click.argument("organisation")
def list_gateway_tokens(organisation: str) -> None:
    for token in gateway_tokens.list_gateway_tokens(
        session(), Principal.cli(), _organisation(organisation)
    ):
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
        click.echo(f"{token.id}\t{token.prefix}…\t{token.name}\t{state}")


@gateway_token_group.command("revoke", help="Revoke a gateway token by its id (at once).")
@click.argument("token_id", type=int)
def revoke_gateway_token(token_id: int) -> None:
    try:
        with transaction() as db:
            gateway_tokens.revoke_gateway_token(db, Principal.cli(), token_id)
    except AppError as error:
        fail(error)
    click.echo(f"gateway token {token_id} revoked")


@click.group("product", help="Products and hardware revisions.")
def product_group() -> None:
    pass


@product_group.command("create")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--description", default="")
@click.option("--revision", "revisions", multiple=True, help="Hardware revision code (repeat).")
def create_product(code: str, name: str, description: str, revisions: tuple[str, ...]) -> None:
    try:
        with transaction() as session:
            product = products.create_product(
                session,
                Principal.cli(),
                code=code,
                name=name,
                description=description,
                hardware_revisions=[{"code": r} for r in revisions],
            )
    except AppError as error:
        fail(error)
    click.echo(f"product {product.id} {product.code} created")


@product_group.command("add-revision")
@click.argument("product_code")
@click.argument("revision_code")
@click.option("--name", default="")
def add_revision(product_code: str, revision_code: str, name: str) -> None:
    try:
        with transaction() as session:
            product = products.find_by_code(session, product_code)
            if product is None:
                raise click.ClickException(f"no product {product_code}")
            products.add_hardware_revision(
                session, Principal.cli(), product, code=revision_code, name=name
            )
    except AppError as error:
        fail(error)
    click.echo(f"{product_code}: revision {revision_code} added")


@product_group.command("list")
def list_products() -> None:
    for product in session().execute(select(Product).order_by(Product.id)).scalars():
        revisions = ",".join(r.code for r in product.hardware_revisions)
        click.echo(f"{product.id}\t{product.code}\t{product.name}\t[{revisions}]")


@click.group("device", help="Devices.")
def device_group() -> None:
    pass


@device_group.command("create", help="Provision a device and print its token once.")
@click.option("--serial", required=True)
@click.option("--product", required=True, help="Product code.")
@click.option("--revision", "hardware_revision", required=True, help="Hardware revision code.")
@click.option("--org", "organisation", required=True, help="Organisation slug.")
@click.option("--site", default="")
@click.option("--delivered-on", default=None, help="YYYY-MM-DD")
@click.option("--accepted-on", default=None, help="YYYY-MM-DD")
@click.option("--channel", default="stable", show_default=True)
@click.option("--current-version", default=None)
def create_device(**data: str | None) -> None:
    try:
        with transaction() as session:
            provisioned = provisioning.create_device(session, Principal.cli(), dict(data))
    except AppError as error:
        fail(error)
    click.echo(f"device {provisioned.device.id} {provisioned.device.serial}; token (shown once):")
    click.echo(provisioned.secret)


@device_group.command("import", help="Provision devices from a CSV file, all or none.")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--tokens-out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write serial,token for every new device (mode 0600).",
)
def import_devices(csv_file: Path, tokens_out: Path) -> None:
    try:
        with transaction() as session:
            provisioned = provisioning.import_devices_csv(
                session, Principal.cli(), csv_file.read_bytes()
            )
            tokens_out.touch(mode=0o600)
            with tokens_out.open("w") as out:
                out.write("serial,token\n")
                for p in provisioned:
                    out.write(f"{p.device.serial},{p.secret}\n")
    except AppError as error:
        fail(error)
    click.echo(f"{len(provisioned)} devices imported; tokens written to {tokens_out}")


@device_group.command("rotate-token", help="Issue a new token for a device; print it once.")
@click.argument("serial")
def rotate_token(serial: str) -> None:
    try:
        with transaction() as session:
            device = session.execute(
                select(Device).where(Device.serial == serial)
            ).scalar_one_or_none()
            if device is None:
                raise click.ClickException(f"no device {serial}")
            provisioned = devices.rotate_device_token(session, Principal.cli(), device)
    except AppError as error:
        fail(error)
    click.echo(provisioned.secret)


@device_group.command("list")
@click.option("--org", "organisation", default=None, help="Organisation slug.")
@click.option("--json", "as_json", is_flag=True)
def list_devices(organisation: str | None, as_json: bool) -> None:
    stmt = select(Device).order_by(Device.id)
    if organisation:
        stmt = stmt.join(Organisation).where(Organisation.slug == organisation)
    for device in session().execute(stmt).scalars():
        if as_json:
            click.echo(json.dumps({"id": device.id, **device.audit_view()}))
        else:
            click.echo(
                f"{device.id}\t{device.serial}\t{device.product.code}/"
                f"{device.hardware_revision.code}\t{device.organisation.slug}\t"
                f"{device.current_version or '-'}\t{device.channel}"
            )

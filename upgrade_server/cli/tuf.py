"""`upgrade-server tuf`: upkeep of the signed metadata (for cron or a systemd timer)."""

from __future__ import annotations

import click
from sqlalchemy import select

from upgrade_server.cli import transaction
from upgrade_server.extensions import current_settings, session
from upgrade_server.products.models import Product
from upgrade_server.signing.export import export_all
from upgrade_server.signing.service import exporter_from, repository_for


@click.group("tuf", help="Signed metadata upkeep.")
def tuf_group() -> None:
    pass


@tuf_group.command(
    "refresh", help="Re-sign snapshot and timestamp past half-life (run hourly from cron)."
)
def refresh() -> None:
    settings = current_settings()
    with transaction() as s:
        for product in s.execute(select(Product).order_by(Product.id)).scalars():
            repo = repository_for(s, product, settings)
            if not repo.exists():
                continue
            renewed = repo.refresh_expiring()
            click.echo(f"{product.code}: {', '.join(renewed) if renewed else 'fresh'}")


@tuf_group.command("export", help="Write every product's metadata to the export location.")
def export() -> None:
    exporter = exporter_from(current_settings())
    if exporter is None:
        raise click.ClickException(
            "no export location: set UPGRADE_SERVER_EXPORT_PATH or UPGRADE_SERVER_EXPORT_S3"
        )
    for product in session().execute(select(Product).order_by(Product.id)).scalars():
        count = export_all(session(), exporter, product.id, product.code)
        click.echo(f"{product.code}: {count} files")

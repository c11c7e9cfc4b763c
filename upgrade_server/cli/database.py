from __future__ import annotations

import click
from alembic import command
from flask import current_app

from upgrade_server.migrate import alembic_config


def _url() -> str:
    return str(current_app.config["SQLALCHEMY_DATABASE_URI"])


@click.group("db", help="Database schema (Alembic migrations).")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Migrate the database to REVISION (default: the newest).")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    command.upgrade(alembic_config(_url()), revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade", help="Migrate the database back to REVISION.")
@click.argument("revision")
def downgrade(revision: str) -> None:
    command.downgrade(alembic_config(_url()), revision)
    click.echo(f"database at {revision}")


@db_group.command("current", help="Show the database's revision.")
def current() -> None:
    command.current(alembic_config(_url()))


@db_group.command("revision", help="Write a new migration from the models (review it!).")
@click.option("-m", "--message", required=True)
def revision(message: str) -> None:
    command.revision(alembic_config(_url()), message=message, autogenerate=True)

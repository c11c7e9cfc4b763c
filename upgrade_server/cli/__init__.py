"""The `upgrade-server` command: one click group, a module per area.

It is Flask's CLI, so `flask --app upgrade_server ...` works the same. The
commands that act on this server's database and files are the app's: Flask
builds the app (and its instance folder) to find them. The publisher's HTTP
client (`remote`) sits on the group itself, so it runs without building the
app and leaves no server state in the folder it runs in.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

import click
from flask import Flask
from flask.cli import FlaskGroup
from sqlalchemy.orm import Session

from upgrade_server.errors import AppError
from upgrade_server.unit_of_work import unit_of_work


def transaction() -> AbstractContextManager[Session]:
    """One unit of work per CLI command: commit on success; on error, roll
    back and undo what `on_failure` registered."""
    return unit_of_work()


def fail(error: AppError) -> NoReturn:
    """Turn a domain error into a CLI error message (exit status 1)."""
    parts = []
    for problem in error.extra.get("errors", []):
        where = f"line {problem['row']} " if "row" in problem else ""
        parts.append(f"{where}{problem.get('field', '')}: {problem.get('message')}")
    details = "; ".join(parts)
    raise click.ClickException(f"{error.detail}{' (' + details + ')' if details else ''}")


def register_commands(app: Flask) -> None:
    from upgrade_server.cli import (
        accounts,
        audit,
        coverage,
        database,
        demo,
        inventory,
        keys,
        remote,
        service,
        tickets,
        tuf,
    )

    for group in (
        database.db_group,
        accounts.admin_group,
        accounts.user_group,
        accounts.token_group,
        accounts.accounts_group,
        inventory.org_group,
        inventory.product_group,
        inventory.device_group,
        coverage.coverage_group,
        service.service_group,
        tickets.tickets_group,
        audit.audit_group,
        demo.demo_command,
        demo.serve_command,
        remote.remote_group,  # also here, for `flask --app upgrade_server remote`
        keys.keys_group,
        tuf.tuf_group,
    ):
        app.cli.add_command(group)


def _create_app() -> Flask:
    import logging

    from upgrade_server import create_app

    # Alembic narrates every step at INFO; the CLI prints its own outcome.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return create_app()


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"upgrade-server {server_version()}")
    ctx.exit()


def server_version() -> str:
    """This server's version, from the installed package's metadata."""
    try:
        return version("upgrade-server")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def cli() -> FlaskGroup:
    # Flask's own --version names Python, Flask and Werkzeug: this one names the server.
    version_option = click.Option(
        ["--version"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_print_version,
        help="Print this server's version and exit.",
    )
    from upgrade_server.cli.remote import remote_group

    group = FlaskGroup(
        create_app=_create_app,
        add_default_commands=False,
        add_version_option=False,
        params=[version_option],
        help="upgrade_server",
    )
    # The group's own commands are found before Flask loads the app for the rest.
    group.add_command(remote_group)
    return group


def main() -> None:
    cli().main()

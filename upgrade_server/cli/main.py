"""The `upgrade-server` command: one click group, a module per area.

It is Flask's CLI, so `flask --app upgrade_server ...` works the same. The
commands that act on this server's database and files are the app's: Flask
builds the app (and its instance folder) to find them. The publisher's HTTP
client (`remote`) sits on the group itself, so it runs without building the
app and leaves no server state in the folder it runs in.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import click
from flask import Flask
from flask.cli import FlaskGroup


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
    from upgrade_server.cli.remote_rollouts import rollout_group

    remote_group.add_command(rollout_group)

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

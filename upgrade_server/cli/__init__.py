"""The `upgrade-server` command: one click group, a module per area.

It is Flask's CLI, so `flask --app upgrade_server ...` works the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
from flask import Flask
from flask.cli import FlaskGroup
from sqlalchemy.orm import Session

from upgrade_server.database import write_intent
from upgrade_server.errors import AppError
from upgrade_server.extensions import session


@contextmanager
def transaction() -> Iterator[Session]:
    """One transaction per CLI command: commit on success, roll back on error."""
    token = write_intent.set(True)
    try:
        yield session()
        session().commit()
    except BaseException:
        session().rollback()
        raise
    finally:
        write_intent.reset(token)


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
        tuf,
    )

    for group in (
        database.db_group,
        accounts.admin_group,
        accounts.user_group,
        accounts.token_group,
        inventory.org_group,
        inventory.product_group,
        inventory.device_group,
        coverage.coverage_group,
        service.service_group,
        audit.audit_group,
        demo.demo_command,
        demo.serve_command,
        remote.remote_group,
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


def main() -> None:
    FlaskGroup(create_app=_create_app, add_default_commands=False, help="upgrade_server").main()

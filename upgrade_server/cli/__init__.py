"""The `upgrade-server` command (main.py): one click group, a module per area
(commands.py lists them). This package's own module holds what the command
modules share.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
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

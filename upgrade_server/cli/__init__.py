"""The `upgrade-server` command (main.py): one click group, a module per area
(commands.py lists them). This package's own module holds what the command
modules share.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import NoReturn

import click
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

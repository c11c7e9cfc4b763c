"""How any exception is answered: one mapping to problem types for every app.

The API's handlers (http_errors.py), the portal's error pages (web/problems.py)
and the device edge's update check (device_edge/wsgi.py) all ask answer_for,
so a permission error is a 403 and an unreachable database a 503 wherever it
happens. The domain errors and their table stay in errors.py, which imports
neither a web framework nor the database layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, OperationalError

from upgrade_server.database import refuses_writes
from upgrade_server.errors import (
    HTTP_PROBLEMS,
    PROBLEMS,
    AppError,
    InvalidInputError,
    Problem,
    ServiceUnavailableError,
    problem_for,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """How any exception is answered: its problem, detail and extra members."""

    problem: Problem
    detail: str | None = None
    extra: dict[str, Any] | None = None


def answer_for(error: BaseException, where: str = "") -> Answer:
    """The one mapping of exceptions to problems, for every app (the API, the
    portal's pages, the device edge's update check): a domain error by its
    table; a database that cannot be reached or takes no writes, 503; a value
    the database cannot store, 422; anything else, 500 (logged with its
    traceback; `where` names the request)."""
    if isinstance(error, AppError):
        return Answer(problem_for(error), error.detail, error.extra)
    if isinstance(error, DBAPIError) and refuses_writes(error):
        # Read-only is SQLite's OperationalError but PostgreSQL's InternalError.
        log.error("database refuses writes: %s", error.orig)
        detail = "The database does not take writes now; retry later."
        return Answer(PROBLEMS[ServiceUnavailableError], detail)
    if isinstance(error, OperationalError):
        log.error("database error: %s", error.orig)
        detail = "The database cannot be reached; retry later."
        return Answer(PROBLEMS[ServiceUnavailableError], detail)
    if isinstance(error, DataError | OverflowError | UnicodeEncodeError):
        # What the request checks and schemas let through but a store refuses:
        # a number past a column's range (PostgreSQL's DataError, SQLite's
        # OverflowError at bind), a date past year 9999, text no codec writes.
        log.info("value out of range%s: %s", f" on {where}" if where else "", error)
        detail = "A value is out of the range this server can store."
        return Answer(PROBLEMS[InvalidInputError], detail, {"errors": []})
    log.error("unhandled error%s", f" on {where}" if where else "", exc_info=error)
    return Answer(HTTP_PROBLEMS[500])

"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy import text

from upgrade_server import background
from upgrade_server.database import refuses_writes, writes
from upgrade_server.errors import PROBLEMS, ServiceUnavailableError, StorageError
from upgrade_server.extensions import session
from upgrade_server.http_errors import problem_response

bp = Blueprint("health", __name__)

# A write that changes nothing, then rolled back: a database that may only be
# read refuses it (reads alone would pass). The Alembic table is there
# wherever the schema is, and only migrations take locks on it.
_NO_OP_WRITE = text("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0")


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process answers; it checks nothing else, so it never flaps with the database."""
    return {"status": "ok"}


@bp.get("/readyz")
@writes  # on SQLite, queue for the write lock as a write does
def readyz() -> dict[str, Any] | Response:
    """Ready to serve: the database takes writes and the artifact store is
    usable. This process's background jobs are shown, not checked: a node
    whose upkeep fails still serves what it has."""
    checks: dict[str, str] = {"database": _database_state()}
    try:
        current_app.extensions["artifact_store"].check()
        checks["storage"] = "ok"
    except StorageError as exc:
        checks["storage"] = f"unusable: {exc.detail}"
    jobs = background.jobs(current_app)
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks, "background": jobs}
    failing = ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok")
    return problem_response(
        PROBLEMS[ServiceUnavailableError],
        f"not ready: {failing}",
        {"checks": checks, "background": jobs},
    )


def _database_state() -> str:
    try:
        session().execute(_NO_OP_WRITE)
        return "ok"
    except Exception as exc:
        return "read-only" if refuses_writes(exc) else f"unreachable: {type(exc).__name__}"
    finally:
        session().rollback()

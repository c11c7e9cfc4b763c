"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy import text

from upgrade_server.errors import (
    PROBLEMS,
    ServiceUnavailableError,
    StorageError,
    problem_response,
)
from upgrade_server.extensions import session

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process answers; it checks nothing else, so it never flaps with the database."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> dict[str, Any] | Response:
    """Ready to serve: the database and the artifact store are reachable."""
    checks: dict[str, str] = {}
    try:
        session().execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        session().rollback()
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        current_app.extensions["artifact_store"].check()
        checks["storage"] = "ok"
    except StorageError as exc:
        checks["storage"] = f"unusable: {exc.detail}"
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks}
    failing = ", ".join(f"{k} {v}" for k, v in checks.items() if v != "ok")
    return problem_response(
        PROBLEMS[ServiceUnavailableError], f"not ready: {failing}", {"checks": checks}
    )

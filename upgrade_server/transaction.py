"""The request's transaction boundary and what to undo outside the database.

Services only flush; the request commits once, after the view returned a
success. Work done outside the database (an artifact moved to its final name)
registers an undo with `on_failure`, which runs when the request fails or its
commit does, so a failed publish leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response, g

from upgrade_server.extensions import session

log = logging.getLogger(__name__)


def on_failure(undo: Callable[[], None]) -> None:
    g.setdefault("_on_failure", []).append(undo)


def _run_failure_hooks() -> None:
    for undo in reversed(g.pop("_on_failure", [])):
        try:
            undo()
        except Exception:
            log.exception("undo after a failed request failed")


def init_app(app: Flask) -> None:
    @app.after_request
    def _commit(response: Response) -> Response:
        if response.status_code >= 400:
            session().rollback()
            _run_failure_hooks()
            return response
        try:
            session().commit()
        except BaseException:
            session().rollback()
            _run_failure_hooks()
            raise
        g.pop("_on_failure", None)
        return response

    @app.teardown_request
    def _undo(exc: BaseException | None) -> None:
        # Reached with hooks still registered only when the view raised.
        if "_on_failure" in g:
            _run_failure_hooks()

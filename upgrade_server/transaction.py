"""The request's transaction boundary and what to undo outside the database.

Services only flush; the request commits once, after the view returned a
success. Work done outside the database (an artifact moved to its final name)
registers an undo with `on_failure`, which runs when the request fails or its
commit does, so a failed publish leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response, request

from upgrade_server.database import write_intent
from upgrade_server.extensions import db, session

log = logging.getLogger(__name__)


def _hooks() -> list[Callable[[], None]]:
    # Kept on the request, not on `g`: an app context can span several requests.
    return request.environ.setdefault("upgrade_server.on_failure", [])


def on_failure(undo: Callable[[], None]) -> None:
    _hooks().append(undo)


def _run_failure_hooks() -> None:
    hooks = _hooks()
    pending, hooks[:] = list(hooks), []
    for undo in reversed(pending):
        try:
            undo()
        except Exception:
            log.exception("undo after a failed request failed")


def init_app(app: Flask) -> None:
    @app.before_request
    def _declare_writes() -> None:
        view = app.view_functions.get(request.endpoint or "")
        declared = getattr(view, "writes", None)
        if declared is not None:
            request.environ["upgrade_server.write_token"] = write_intent.set(declared)

    @app.after_request
    def _commit(response: Response) -> Response:
        if not db.session.registry.has():
            # The request never opened a session (the update check's hot path).
            _hooks().clear()
            return response
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
        _hooks().clear()
        return response

    @app.teardown_request
    def _undo(exc: BaseException | None) -> None:
        token = request.environ.pop("upgrade_server.write_token", None)
        if token is not None:
            write_intent.reset(token)
        # Reached with hooks still registered only when the view raised.
        if _hooks():
            _run_failure_hooks()

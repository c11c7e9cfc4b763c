"""The request's unit of work, driven by the app's request hooks.

Services only flush; the request commits once, after the view returned a
success, and rolls back after an error response. What the request did outside
the database (registered with `on_failure`) is undone when the request fails
or its commit does, so a failed publish leaves nothing behind. The unit itself
is the one CLI commands and background jobs use (unit_of_work.py).
"""

from __future__ import annotations

from flask import Flask, Response, request

from upgrade_server.extensions import db, session
from upgrade_server.unit_of_work import UnitOfWork, on_failure

__all__ = ["init_app", "on_failure"]

# Kept on the request, not on `g`: an app context can span several requests.
_UNIT = "upgrade_server.unit_of_work"


def _unit() -> UnitOfWork:
    # A before_request handler that answered first (a refused body) kept ours
    # from beginning the unit: the response still ends one.
    unit: UnitOfWork = request.environ.setdefault(_UNIT, UnitOfWork(writes=None))
    return unit


def init_app(app: Flask) -> None:
    @app.before_request
    def _begin() -> None:
        view = app.view_functions.get(request.endpoint or "")
        # None (not declared): the request method decides.
        unit = UnitOfWork(writes=getattr(view, "writes", None))
        request.environ[_UNIT] = unit
        unit.begin()

    @app.after_request
    def _commit(response: Response) -> Response:
        unit = _unit()
        if not db.session.registry.has():
            # The request never opened a session (the update check's hot path).
            unit.discard()
        elif response.status_code >= 400:
            unit.fail(session())
        else:
            unit.commit(session())
        return response

    @app.teardown_request
    def _end(exc: BaseException | None) -> None:
        # Undoes what is still registered only when the view raised.
        _unit().end()

"""The device edge: everything a device calls, behind one HTTP contract.

    wsgi.py          the WSGI layer in front of the app: one set of headers,
                     one body limit, one order of refusals for every device
                     request, and the update check answered without Flask
    update_check.py  the update check itself (Flask-free) and its body
    auth.py          device-token authentication
    blueprints.py    the device API (/api/device/v1) and the TUF repository (/tuf)
    updates.py       release notes, artifact download, install reports
    identity.py      the device's own record and token rotation
    coverage.py      the device's own coverage
    alarms.py        alarm upload
    tuf.py           TUF metadata and targets

The domains (updates, devices, entitlements, tickets, signing) keep the rules;
this package only speaks HTTP to devices. Problems are rendered by the same
functions as everywhere else (errors.problem_document).
"""

from __future__ import annotations

from flask import Flask

from upgrade_server.config import Settings
from upgrade_server.extensions import db


def init_app(app: Flask, settings: Settings) -> None:
    """The update check's state, the device blueprints and the WSGI edge."""
    from upgrade_server.compiled_queries import KeptConnections
    from upgrade_server.device_edge import alarms, coverage, identity, tuf, updates  # noqa: F401
    from upgrade_server.device_edge.blueprints import api
    from upgrade_server.device_edge.blueprints import tuf as tuf_bp
    from upgrade_server.device_edge.update_check import UpdateCheck
    from upgrade_server.rollouts.gatekeeper import Gatekeeper
    from upgrade_server.updates.offers import AnswerCache

    app.extensions["answer_cache"] = AnswerCache()
    app.extensions["gatekeeper"] = Gatekeeper()
    with app.app_context():
        app.extensions["hot_connection"] = KeptConnections(db.engine)
    app.extensions["update_check"] = UpdateCheck(app.extensions, settings.update_poll_seconds)
    app.register_blueprint(api)
    app.register_blueprint(tuf_bp)


def wrap(app: Flask) -> None:
    """Put the edge in front of everything else the app's WSGI callable does."""
    from upgrade_server.device_edge.wsgi import DeviceEdge

    app.wsgi_app = DeviceEdge(  # type: ignore[method-assign]
        app.wsgi_app, app.extensions["update_check"]
    )

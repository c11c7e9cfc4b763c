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
    ddi/             the hawkBit DDI API, for devices running SWUpdate or RAUC

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
    from upgrade_server.device_edge.ddi.api import bp as ddi_bp
    from upgrade_server.device_edge.ddi.poll import BasePoll
    from upgrade_server.device_edge.update_check import UpdateCheck
    from upgrade_server.rollouts.gatekeeper import Gatekeeper
    from upgrade_server.updates.offers import AnswerCache

    app.extensions["answer_cache"] = AnswerCache()
    app.extensions["gatekeeper"] = Gatekeeper()
    with app.app_context():
        app.extensions["hot_connection"] = KeptConnections(db.engine)
    app.extensions["update_check"] = UpdateCheck(app.extensions, settings.update_poll_seconds)
    app.extensions["ddi_poll"] = BasePoll(app.extensions["update_check"])
    app.register_blueprint(api)
    app.register_blueprint(tuf_bp)
    app.register_blueprint(ddi_bp)
    app.config["SECURITY_SCHEMES"] = {
        **(app.config.get("SECURITY_SCHEMES") or {}),
        **{
            scheme: {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": f"`{scheme} <token>`: {what} (hawkBit DDI)",
            }
            for scheme, what in (
                ("TargetToken", "the device's own token"),
                ("GatewayToken", "a gateway token of the device's organisation"),
            )
        },
    }


def wrap(app: Flask) -> None:
    """Put the edge in front of everything else the app's WSGI callable does."""
    from upgrade_server.device_edge.wsgi import DeviceEdge

    app.wsgi_app = DeviceEdge(  # type: ignore[method-assign]
        app.wsgi_app, app.extensions["update_check"], app.extensions["ddi_poll"]
    )

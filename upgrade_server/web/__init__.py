"""The customer portal: server-rendered pages in zh-CN and en.

Customers log in with a session cookie (CSRF-protected forms, failed logins
limited), see their organisation's devices with coverage, the update each
would be offered and its install history, and read, download (HTML, PDF) and
compare release notes. A product can make its notes public.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_babel import Babel

from upgrade_server.releases.metadata import translated
from upgrade_server.web.extensions import csrf, current_language, locale


def init_app(app: Flask, cookie_secure: bool) -> None:
    app.config.update(
        # Forms check their token where the portal says so, not the JSON API.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cookie_secure,
        SESSION_COOKIE_NAME="upgrade_server_session",
        BABEL_DEFAULT_LOCALE="zh_CN",
    )
    csrf.init_app(app)
    Babel(app, locale_selector=locale)

    from upgrade_server.web import (
        approval_pages,  # noqa: F401  (its routes join bp)
        service_pages,  # noqa: F401  (its routes join bp)
        ticket_pages,  # noqa: F401  (its routes join bp)
    )
    from upgrade_server.web.labels import label
    from upgrade_server.web.times import when
    from upgrade_server.web.views import bp, root_bp

    app.jinja_env.filters["label"] = label
    # A text of the release metadata, given once or per language, in the reader's.
    app.jinja_env.filters["in_language"] = lambda value: translated(value, current_language())
    app.jinja_env.filters["when"] = when

    app.register_blueprint(bp)
    app.register_blueprint(root_bp)

    @app.context_processor
    def _language() -> dict[str, Any]:
        return {"lang": current_language() if request else "zh-CN"}

"""The staff console: the vendor's people run the fleet from the browser.

Under `/console/`, on the same server and the same login as the portal, for
vendor staff only (a customer is refused, whatever the page). Server-rendered
pages in zh-CN and en that work without JavaScript where a form suffices; the
few scripts (countdowns, upload progress, the notes preview) are files the
app serves (the console's Content-Security-Policy allows no other). What each
role sees and may do follows accounts/roles.py: a page shows no button its
reader cannot use, and the service behind it refuses anyway.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from upgrade_server.console import (  # noqa: F401  (their routes join bp)
        account_pages,
        audit_pages,
        deadline_report_pages,
        device_pages,
        gateway_token_pages,
        incident_report_pages,
        organisation_pages,
        overview_pages,
        release_pages,
        rollout_controls,
        service_pages,
        service_request_pages,
        ticket_pages,
    )
    from upgrade_server.console.views import bp

    app.register_blueprint(bp)

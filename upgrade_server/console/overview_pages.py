"""The console's overview: the fleet at a glance."""

from __future__ import annotations

from flask import render_template

from upgrade_server.console.views import bp, staff


@bp.get("/")
def overview() -> str:
    staff()
    return render_template("console/overview.html")

"""The console's blueprint: who may enter, its headers, login and errors.

Every page is for vendor staff: a visitor who is not logged in is sent to the
console's login, a customer gets a 403 page. Permissions are the roles' table
(accounts/roles.py): `can(permission)` in a template hides what the reader may
not do, `require(permission)` in a view refuses it, and the services check again.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import (
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission, allows
from upgrade_server.errors import AuthenticationError, PermissionDeniedError
from upgrade_server.extensions import session as db_session
from upgrade_server.web import problems
from upgrade_server.web.views import (
    current_user,
    end_session,
    local_path,
    start_page_request,
    start_session,
    viewer,
)

bp = APIBlueprint(
    "console",
    __name__,
    url_prefix="/console",
    enable_openapi=False,
    static_folder="../static/console",
    static_url_path="/static",
)

# Scripts only from the app itself; no inline script or style, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
OPEN = frozenset({"console.login", "console.static"})

# The console's sections, in the navigation's order: (endpoint, name, the
# permission needed to see it or None). A section shows once its page exists.
SECTIONS: tuple[tuple[str, Any, Permission | None], ...] = (
    ("console.overview", lazy_gettext("Overview"), None),
    ("console.releases", lazy_gettext("Releases"), None),
    ("console.devices", lazy_gettext("Devices"), None),
    ("console.service", lazy_gettext("Service"), None),
    ("console.tickets", lazy_gettext("Tickets"), None),
    ("console.organisations", lazy_gettext("Organisations"), None),
    ("console.accounts", lazy_gettext("Accounts"), Permission.USER_READ),
    ("console.audit", lazy_gettext("Audit"), Permission.AUDIT_READ),
)


def staff() -> Principal:
    """The vendor staff member reading the page (the guard let them in)."""
    principal: Principal = g.console_principal
    return principal


def can(permission: Permission | str) -> bool:
    """May the reader do this? (A template hides what they may not.)"""
    principal = g.get("console_principal")
    role = principal.role if principal is not None else None
    return role is not None and allows(role, Permission(permission))


def require(permission: Permission) -> Principal:
    """The reader, if their role allows `permission`; else a 403 page."""
    principal = staff()
    if not can(permission):
        raise PermissionDeniedError(f"the {principal.role} role may not {permission}")
    return principal


@bp.before_request
def _guard() -> BaseResponse | None:
    start_page_request()  # as the portal: the language, a POST's CSRF token
    if request.endpoint in OPEN:
        return None
    principal = viewer()
    if principal is None:
        return redirect(url_for("console.login", next=request.full_path))
    if principal.role is None or not principal.role.is_vendor:
        abort(403, _("The console is for the vendor's staff. Customers use the portal."))
    g.console_principal = principal
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "console.static":
        # Pages with fleet data are not kept by shared caches or the back button.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def sections() -> list[tuple[str, Any]]:
    """The navigation: the sections that exist and the reader may see (none
    for a customer on the 403 page)."""
    if g.get("console_principal") is None:
        return []
    return [
        (endpoint, name)
        for endpoint, name, permission in SECTIONS
        if endpoint in current_app.view_functions and (permission is None or can(permission))
    ]


@bp.context_processor
def _helpers() -> dict[str, Any]:
    # Every console page: the reader, what they may do, the sections.
    return {
        "can": can,
        "console_sections": sections,
        "user": current_user(),
    }


@bp.errorhandler(Exception)
def _error(error: Exception) -> tuple[str, int]:
    status, sentence = problems.for_error(error, f"{request.method} {request.path}")
    return _error_page(status, sentence)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Any:
    if error.response is not None:
        return error.response
    return _error_page(error.code or 500, problems.for_http_error(error))


def _error_page(status: int, detail: str) -> tuple[str, int]:
    return render_template(
        "console/error.html", title=problems.title(status), status=status, detail=detail
    ), status


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        try:
            user = accounts.web_login(
                db_session(), request.form.get("email", ""), request.form.get("password", "")
            )
        except AuthenticationError:
            error = _("Wrong email or password.")  # one message for every refusal
        else:
            start_session(user)
            target = local_path(request.args.get("next", ""))
            return redirect(target or url_for("console.overview"))
    return render_template("console/login.html", error=error)


@bp.post("/logout")
def logout() -> BaseResponse:
    end_session()
    return redirect(url_for("console.login"))

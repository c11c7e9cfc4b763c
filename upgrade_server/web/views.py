"""Portal pages. Every page checks who is asking: a logged-in user sees what
their role and organisation allow (another organisation's device is a 404,
as one that does not exist); without a login only public notes are readable."""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import urlsplit

from apiflask import APIBlueprint
from flask import (
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import refresh as babel_refresh
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.models import User
from upgrade_server.accounts.principal import Principal
from upgrade_server.clock import utcnow
from upgrade_server.devices import service as devices
from upgrade_server.devices.models import Device
from upgrade_server.downloads import send_artifact
from upgrade_server.entitlements import service as entitlements
from upgrade_server.errors import AppError, AuthenticationError, NotFoundError
from upgrade_server.extensions import session as db_session
from upgrade_server.notes import documents
from upgrade_server.notes.markdown import render
from upgrade_server.products.models import Product
from upgrade_server.releases.models import Release
from upgrade_server.rollouts import availability
from upgrade_server.routing import MAX_ID
from upgrade_server.updates.models import InstallEvent
from upgrade_server.web import problems
from upgrade_server.web.extensions import LANGUAGES, csrf, current_language
from upgrade_server.web.times import when

bp = APIBlueprint("portal", __name__, url_prefix="/portal", enable_openapi=False)
root_bp = APIBlueprint("portal_root", __name__, enable_openapi=False)


@root_bp.get("/")
def root() -> BaseResponse:
    return redirect(url_for("portal.index"))


# --- who is asking -----------------------------------------------------------------


def current_user() -> User | None:
    user_id = session.get("user_id")
    if user_id is None:
        return None
    user = db_session().get(User, user_id)
    # The cookie is signed but stateless: a copy of it lives on until the
    # user's session generation moves on (logout, new password, deactivation).
    if user is None or not user.active or session.get("generation") != user.session_generation:
        session.clear()
        return None
    return user


def viewer() -> Principal | None:
    user = current_user()
    return accounts.principal_for(user) if user else None


def picked_device_ids() -> list[int]:
    """The device ids ticked in a form; anything that is not one is ignored."""
    return [
        int(i)
        for i in request.form.getlist("device_ids")
        if i.isascii() and i.isdigit() and len(i) <= 10 and int(i) <= MAX_ID
    ]


def require_login() -> Principal:
    principal = viewer()
    if principal is None:
        abort(redirect(url_for("portal.login", next=request.full_path)))
    return principal


@bp.before_request
def start_page_request() -> None:
    """Before every page of the portal and the console: the language asked
    for, and a POST's CSRF token checked."""
    # Flask-WTF caches the form token and Flask-Babel the locale in the app
    # context, which outlives the request when an outer one is active (the test
    # suite, a script): both per request.
    g.pop("csrf_token", None)
    lang = request.args.get("lang")
    if lang in LANGUAGES:
        session["lang"] = lang
    babel_refresh()
    if request.method == "POST":
        csrf.protect()


@bp.after_request
def _headers(response: Response) -> Response:
    # The portal runs no script at all: a browser refuses any that got in.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@bp.errorhandler(Exception)
def _error(error: Exception) -> tuple[str, int]:
    # Mapped as on the API (errors.answer_for: a permission error is 403, a
    # database that cannot be reached 503); the page says the problem type's
    # sentence in the reader's language, not the English detail (that is for
    # the API and the log).
    status, sentence = problems.for_error(error, f"{request.method} {request.path}")
    return _error_page(status, sentence)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Any:
    if error.response is not None:  # a redirect raised by abort(redirect(...))
        return error.response
    return _error_page(error.code or 500, problems.for_http_error(error))


def _error_page(status: int, detail: str) -> tuple[str, int]:
    return render_template(
        "portal/error.html",
        title=problems.title(status),
        status=status,
        detail=detail,
        user=current_user(),
    ), status


# --- login -----------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        email = request.form.get("email", "")
        try:
            user = accounts.web_login(db_session(), email, request.form.get("password", ""))
        except AuthenticationError:
            # One message for every refusal, a lockout included: anything else
            # would tell which accounts exist.
            error = _("Wrong email or password.")
        else:
            start_session(user)
            return redirect(local_path(request.args.get("next", "")) or url_for("portal.index"))
    # A failed login is a 200 with the message, so the count of failures commits.
    return render_template("portal/login.html", error=error, user=None)


def start_session(user: User) -> None:
    """Log `user` in: a new session (never the one from before the login:
    no fixation), the language chosen kept. The portal and the console share it."""
    lang = session.get("lang")
    session.clear()
    session["user_id"] = user.id
    session["generation"] = user.session_generation
    if lang:
        session["lang"] = lang


def local_path(target: str) -> str | None:
    r"""`target` if a browser would read it as a path of this site, else None.

    Browsers drop tabs and newlines from a URL, trim control characters and
    read a backslash as a slash, so `/\t/evil.example` and `/\evil.example`
    lead to another host: the value must hold none of them, anywhere.
    """
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    # Control, format, unassigned and separator characters (spaces among them).
    if any(unicodedata.category(c)[0] in "CZ" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def end_session() -> None:
    """Log the reader out: every copy of their session cookie is refused from
    now on (portal and console alike); the language chosen is kept."""
    user = current_user()
    if user is not None:
        accounts.log_out(db_session(), user)
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


@bp.post("/logout")
def logout() -> BaseResponse:
    end_session()
    return redirect(url_for("portal.login"))


# --- devices -----------------------------------------------------------------------------


@bp.get("/")
def index() -> BaseResponse:
    if viewer() is None:
        return redirect(url_for("portal.login"))
    return redirect(url_for("portal.device_list"))


@bp.get("/devices")
def device_list() -> str:
    actor = require_login()
    found = list(
        db_session().scalars(devices.visible_devices(actor).order_by(Device.serial).limit(500))
    )
    coverage = entitlements.coverage_of_each(db_session(), found)
    memo = availability.Memo()
    rows = [_device_row(device, coverage[device.id], memo) for device in found]
    return render_template("portal/devices.html", rows=rows, user=current_user())


def _device_row(
    device: Device, coverage: dict[str, Any], memo: availability.Memo
) -> dict[str, Any]:
    return {
        "device": device,
        "coverage": next(k for k in coverage["kinds"] if k["kind"] == "upgrades"),
        # What the device gets: rollouts, approval and the window applied.
        "available": availability.availability(db_session(), device, utcnow(), memo),
    }


@bp.get("/devices/<int:device_id>")
def device_page(device_id: int) -> str:
    actor = require_login()
    device = devices.get_device(db_session(), actor, device_id)
    coverage = entitlements.coverage_of(db_session(), device)
    row = _device_row(device, coverage, availability.Memo())
    history = list(
        db_session().scalars(
            select(InstallEvent)
            .where(InstallEvent.device_id == device.id)
            .order_by(InstallEvent.occurred_at.desc(), InstallEvent.id.desc())
            .limit(200)
        )
    )
    return render_template(
        "portal/device.html", row=row, coverage=coverage, history=history, user=current_user()
    )


# --- releases and notes --------------------------------------------------------------------


def _readable_product(code: str) -> Product:
    """A product whose notes the caller may read: public ones by anyone; else
    vendor staff, and customers with a device of it."""
    product = db_session().scalars(select(Product).where(Product.code == code)).first()
    if product is None:
        raise NotFoundError(f"no product {code}")
    _check_notes_access(product)
    return product


def _check_notes_access(product: Product) -> None:
    if product.public_notes:
        return
    actor = require_login()
    if actor.is_vendor:
        return
    owned = db_session().scalars(
        devices.visible_devices(actor).where(Device.product_id == product.id).limit(1)
    )
    if owned.first() is None:
        raise NotFoundError(f"no product {product.code}")


def _readable_release(release_id: int) -> Release:
    release = db_session().get(Release, release_id)
    if release is None or release.status == "pending-signatures":
        raise NotFoundError(f"no release {release_id}")
    _check_notes_access(release.product)
    return release


@bp.get("/products/<code>/releases")
def release_list(code: str) -> str:
    product = _readable_product(code)
    found = list(db_session().scalars(documents.visible_releases(product)))
    return render_template(
        "portal/releases.html", product=product, releases=found, user=current_user()
    )


def _download_state(release: Release) -> tuple[bool, str]:
    """May the caller download this release's artifact? If not, why."""
    actor = viewer()
    if actor is None:
        return False, _("Log in to download.")
    if release.status != "published":
        return False, _("This release was withdrawn.")
    if actor.is_vendor:
        return True, ""
    owned = list(
        db_session().scalars(
            devices.visible_devices(actor).where(Device.product_id == release.product_id)
        )
    )
    fitting = [d for d in owned if d.hardware_revision.code in release.hardware_revisions]
    if not fitting:
        return False, _("None of your devices runs this release's hardware.")
    for device in fitting:
        try:
            entitlements.check_release(device, release)
        except AppError:
            continue
        return True, ""
    return False, _(
        "This release came out after your devices' upgrade coverage ended. "
        "A contract that covers it brings it."
    )


def _context(release: Release) -> dict[str, Any]:
    lang = current_language()
    return {
        "release": release,
        "notes": render(documents.text_in(release.notes, lang)),
        "guidance": [
            (kind, render(documents.text_in(release.guidance.get(kind), lang)))
            for kind in documents.GUIDANCE_KINDS
            if release.guidance.get(kind)
        ],
    }


@bp.get("/releases/<int:release_id>")
def release_page(release_id: int) -> str:
    release = _readable_release(release_id)
    allowed, reason = _download_state(release)
    return render_template(
        "portal/release.html",
        **_context(release),
        may_download=allowed,
        download_reason=reason,
        user=current_user(),
    )


@bp.get("/releases/<int:release_id>/notes.<fmt>")
def release_document(release_id: int, fmt: str) -> Response:
    release = _readable_release(release_id)
    html = render_template("portal/document.html", entries=[_context(release)], changelog=None)
    name = f"{release.product.code}-{release.version}-notes-{current_language()}"
    return document_response(html, fmt, name)


def document_response(html: str, fmt: str, name: str) -> Response:
    if fmt == "html":
        body, mimetype = html.encode(), "text/html"
    elif fmt == "pdf":
        body, mimetype = documents.render_pdf(html), "application/pdf"
    else:
        raise NotFoundError(f"no {fmt} format")
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )


@bp.get("/releases/<int:release_id>/artifact")
def release_artifact(release_id: int) -> Response:
    release = _readable_release(release_id)
    allowed, reason = _download_state(release)
    if not allowed:
        abort(403, reason)
    return send_artifact(release, max_age=0)


@bp.get("/products/<code>/changelog")
def changelog_page(code: str) -> Any:
    product = _readable_product(code)
    after, upto = request.args.get("from", ""), request.args.get("to", "")
    log = documents.changelog(db_session(), product, after, upto)
    entries = [_context(release) for release in log.releases]
    fmt = request.args.get("format", "")
    if fmt:
        html = render_template("portal/document.html", entries=entries, changelog=log)
        name = f"{product.code}-{log.from_version}-to-{log.to_version}-{current_language()}"
        return document_response(html, fmt, name)
    return render_template(
        "portal/changelog.html",
        product=product,
        log=log,
        entries=entries,
        after=after,
        upto=upto,
        user=current_user(),
    )


# --- shared by ticket_pages.py and service_pages.py -----------------------------------------


def local_time(at: Any, zone: str) -> str:
    return when(at, zone)

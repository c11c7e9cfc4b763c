"""The console's accounts: users (listed, created with a role and, for a
customer role, an organisation; their role and password changed; deactivated
after a confirmation) and API tokens (created with the secret shown on the
answer to the form and never again; listed by name and prefix; revoked after a
confirmation). Every change goes through accounts/service.py with the staff
member as the actor. A password or a secret is only ever in a POST body: never
in a URL, the session, a log or a later page."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy import func, or_, select
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts import service as users
from upgrade_server.accounts.models import ApiToken, User
from upgrade_server.accounts.roles import Permission, Role
from upgrade_server.console.form_errors import FormError, form_error, parse_int
from upgrade_server.console.views import bp, require, staff
from upgrade_server.errors import AppError, InvalidInputError, NotFoundError
from upgrade_server.extensions import current_settings
from upgrade_server.extensions import session as db_session
from upgrade_server.organisations.models import Organisation

PAGE_SIZE = 50
ROLES = [r.value for r in Role]


@bp.get("/accounts")
def accounts() -> str:
    return _users_page()


def _users_page(error: FormError | None = None, form: Any = None) -> Any:
    """Users by id, filtered by organisation, role or a name, a page at a time."""
    actor = require(Permission.USER_READ)
    args = request.args
    q = args.get("q", "").strip()[:200]
    organisation_id = args.get("organisation", type=int)
    role = args.get("role", "")
    after = args.get("after", type=int)
    stmt = users.visible_users(actor)
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(User.name).like(pattern), User.email.like(pattern)))
    if organisation_id is not None:
        stmt = stmt.where(User.organisation_id == organisation_id)
    if role in ROLES:
        stmt = stmt.where(User.role == role)
    if after is not None:
        stmt = stmt.where(User.id > after)
    # Users join their organisation (models.User.organisation, lazy="joined").
    rows = list(db_session().scalars(stmt.order_by(User.id).limit(PAGE_SIZE + 1)).unique())
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    page = render_template(
        "console/accounts/users.html",
        users=rows,
        q=q,
        role=role,
        organisation_id=organisation_id,
        next_after=rows[-1].id if more else None,
        roles=ROLES,
        organisations=_organisations() if error is not None or _may_write() else [],
        error=error,
        form=form if form is not None else {"organisation_id": str(organisation_id or "")},
    )
    return (page, error.status) if error is not None else page


def _may_write() -> bool:
    return staff().may(Permission.USER_WRITE)


def _organisations() -> list[Organisation]:
    """For the new user's organisation: every organisation, by name."""
    return list(db_session().scalars(select(Organisation).order_by(Organisation.name)))


@bp.post("/accounts/users")
def accounts_user_create() -> Any:
    """A new user: vendor roles belong to no organisation, customer roles to one."""
    actor = require(Permission.USER_WRITE)
    form = request.form
    role = form.get("role", "")
    try:
        user = users.create_user(
            db_session(),
            actor,
            email=form.get("email", "").strip(),
            name=form.get("name", "").strip(),
            role=role,
            organisation_id=(
                parse_int(form, "organisation_id", required=False)
                if role.startswith("customer-")
                else None
            ),
            password=form.get("password") or None,
        )
    except AppError as error:
        failed = form_error(error)
        db_session().rollback()
        return _users_page(failed, {k: v for k, v in form.items() if k != "password"})
    db_session().commit()
    return redirect(url_for("console.accounts_user", user_id=user.id))


@bp.get("/accounts/users/<int:user_id>")
def accounts_user(user_id: int) -> str:
    return _user_page(user_id)


def _user_page(user_id: int, error: FormError | None = None) -> Any:
    """A user: facts, tokens (whose the reader may see), and the admin's forms."""
    actor = require(Permission.USER_READ)
    user = users.get_user(db_session(), actor, user_id)
    tokens = list(
        db_session().scalars(
            users.visible_tokens(actor)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.id.desc())
            .limit(PAGE_SIZE)
        )
    )
    page = render_template(
        "console/accounts/user.html", account=user, tokens=tokens, roles=ROLES, error=error
    )
    return (page, error.status) if error is not None else page


@bp.post("/accounts/users/<int:user_id>")
def accounts_user_update(user_id: int) -> Any:
    """Rename, change the role, or set a new password (admins)."""
    actor = require(Permission.USER_WRITE)
    form = request.form
    changes: dict[str, Any] = {}
    if form.get("name", "").strip():
        changes["name"] = form["name"].strip()
    if form.get("role"):
        changes["role"] = form["role"]
    if form.get("password"):
        changes["password"] = form["password"]
    try:
        users.update_user(db_session(), actor, user_id, changes)
    except AppError as error:
        failed = form_error(error)
        db_session().rollback()
        return _user_page(user_id, failed)
    db_session().commit()
    return redirect(url_for("console.accounts_user", user_id=user_id))


@bp.get("/accounts/users/<int:user_id>/active")
def accounts_user_active_confirm(user_id: int) -> str:
    """What (de)activating the user does, before it is done."""
    actor = require(Permission.USER_WRITE)
    user = users.get_user(db_session(), actor, user_id)
    live = db_session().scalar(
        select(func.count())
        .select_from(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    )
    return render_template("console/accounts/active.html", account=user, live_tokens=live)


@bp.post("/accounts/users/<int:user_id>/active")
def accounts_user_active(user_id: int) -> Any:
    actor = require(Permission.USER_WRITE)
    active = request.form.get("active") == "yes"
    try:
        users.update_user(db_session(), actor, user_id, {"active": active})
    except AppError as error:
        failed = form_error(error)
        db_session().rollback()
        return _user_page(user_id, failed)
    db_session().commit()
    return redirect(url_for("console.accounts_user", user_id=user_id))


# --- API tokens -------------------------------------------------------------------------


@bp.get("/accounts/tokens")
def accounts_tokens() -> str:
    return _tokens_page()


def _email_of(user_id: int | None) -> str:
    """The e-mail of the user a page links to the token form for."""
    user = db_session().get(User, user_id) if user_id is not None else None
    return user.email if user is not None else ""


def _user_by_email(email: str) -> int:
    found = db_session().scalar(select(User.id).where(User.email == email.strip().lower()))
    if found is None:
        raise InvalidInputError("no such user", [{"field": "user_id", "message": "unknown"}])
    return found


def _tokens_page(error: FormError | None = None, form: Any = None) -> Any:
    """Tokens the reader may see (admins: everyone's), newest first, a page at a time."""
    actor = staff()
    before = request.args.get("before", type=int)
    stmt = users.visible_tokens(actor)
    if before is not None:
        stmt = stmt.where(ApiToken.id < before)
    rows = list(db_session().scalars(stmt.order_by(ApiToken.id.desc()).limit(PAGE_SIZE + 1)))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    page = render_template(
        "console/accounts/tokens.html",
        tokens=rows,
        next_before=rows[-1].id if more else None,
        error=error,
        form=form or {"email": _email_of(request.args.get("user", type=int))},
    )
    return (page, error.status) if error is not None else page


@bp.post("/accounts/tokens")
def accounts_tokens_create() -> Any:
    """Issue a token for a user (admins). The answer is the only page that
    ever shows its secret; it is neither stored nor redirected to."""
    actor = require(Permission.TOKEN_MANAGE_ANY)
    form = request.form
    try:
        issued = users.create_api_token(
            db_session(),
            actor,
            name=form.get("name", "").strip()[:100] or "console",
            user_id=_user_by_email(form.get("email", "")),
            expires_in_days=parse_int(form, "expires_in_days", required=False),
            default_days=current_settings().token_ttl_days,
        )
    except AppError as error:
        failed = form_error(error)
        db_session().rollback()
        return _tokens_page(failed, form)
    db_session().commit()
    return render_template(
        "console/accounts/token_created.html", token=issued.token, secret=issued.secret
    ), 201


def _token(token_id: int) -> ApiToken:
    found = (
        db_session().scalars(users.visible_tokens(staff()).where(ApiToken.id == token_id)).first()
    )
    if found is None:
        raise NotFoundError(f"no token {token_id}")
    return found


@bp.get("/accounts/tokens/<int:token_id>/revoke")
def accounts_tokens_revoke_confirm(token_id: int) -> str:
    """Whose token is revoked and what stops working, before it is done."""
    require(Permission.TOKEN_MANAGE_ANY)
    return render_template("console/accounts/revoke.html", token=_token(token_id))


@bp.post("/accounts/tokens/<int:token_id>/revoke")
def accounts_tokens_revoke(token_id: int) -> BaseResponse:
    actor = require(Permission.TOKEN_MANAGE_ANY)
    users.revoke_api_token(db_session(), actor, token_id)
    db_session().commit()
    return redirect(url_for("console.accounts_tokens"))

"""Users, passwords and API tokens.

Errors raised: InvalidInputError, PermissionDeniedError, NotFoundError,
ConflictError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from upgrade_server import tokens
from upgrade_server.accounts.models import ApiToken, User
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import CUSTOMER_ROLES, Permission, Role
from upgrade_server.audit.service import record_change
from upgrade_server.clock import utcnow
from upgrade_server.database import flush_unique
from upgrade_server.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from upgrade_server.organisations.models import Organisation

MIN_PASSWORD_LENGTH = 12
# Hashing is deliberately slow: a longer text buys no safety, only work.
MAX_PASSWORD_LENGTH = 1024
MAX_TOKEN_DAYS = 3650
# Writing last_used_at on every call would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=5)

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """The password's hash, if it keeps the rules (the API's, the CLI's and
    the portal's alike). Raises InvalidInputError."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInputError(
            "password too short" if len(password) < MIN_PASSWORD_LENGTH else "password too long",
            [
                {
                    "field": "password",
                    "message": f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
                }
            ],
        )
    return _hasher.hash(password)


# Verified when there is no hash of the user's own, so that every login does the
# same argon2 work: how long it takes tells nothing about the account.
_DUMMY_HASH = _hasher.hash("not a password of anyone's")


def _password_matches(password_hash: str | None, password: str) -> bool:
    try:
        _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def check_password(user: User, password: str) -> bool:
    return _password_matches(user.password_hash, password)


# --- users -----------------------------------------------------------------


def visible_users(actor: Principal) -> Select[User]:
    stmt = select(User)
    if not actor.is_vendor:
        stmt = stmt.where(User.organisation_id == actor.organisation_id)
    return stmt


def get_user(session: Session, actor: Principal, user_id: int) -> User:
    user = session.execute(visible_users(actor).where(User.id == user_id)).scalar_one_or_none()
    if user is None:
        raise NotFoundError(f"no user {user_id}")
    return user


def _check_role_assignment(
    session: Session, actor: Principal, role: str, organisation_id: int | None
) -> Role:
    try:
        role_ = Role(role)
    except ValueError as exc:
        raise InvalidInputError(
            "unknown role", [{"field": "role", "message": f"one of {[r.value for r in Role]}"}]
        ) from exc
    if role_ in CUSTOMER_ROLES:
        if organisation_id is None:
            raise InvalidInputError(
                "customer roles need an organisation",
                [{"field": "organisation_id", "message": "required for customer roles"}],
            )
        if session.get(Organisation, organisation_id) is None or not actor.sees_organisation(
            organisation_id
        ):
            raise InvalidInputError(
                "no such organisation",
                [{"field": "organisation_id", "message": "no such organisation"}],
            )
    elif organisation_id is not None:
        raise InvalidInputError(
            "vendor roles belong to no organisation",
            [{"field": "organisation_id", "message": "must be empty for vendor roles"}],
        )
    # A customer admin manages its own organisation's customer users only
    # (sees_organisation above already kept it to its own organisation).
    if not actor.is_vendor and role_ not in CUSTOMER_ROLES:
        raise PermissionDeniedError("customer administrators may grant customer roles only")
    return role_


def create_user(
    session: Session,
    actor: Principal,
    *,
    email: str,
    name: str,
    role: str,
    organisation_id: int | None = None,
    password: str | None = None,
) -> User:
    if not actor.may(Permission.USER_WRITE):
        raise PermissionDeniedError("you may not manage users")
    if not actor.is_vendor:
        organisation_id = actor.organisation_id if organisation_id is None else organisation_id
    role_ = _check_role_assignment(session, actor, role, organisation_id)
    user = User(
        email=email.strip().lower(),
        name=name,
        role=role_.value,
        organisation_id=organisation_id,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    flush_unique(session, f"a user with e-mail {user.email} exists")
    record_change(session, actor, "user.create", user, None, organisation_id=organisation_id)
    return user


def update_user(session: Session, actor: Principal, user_id: int, changes: dict[str, Any]) -> User:
    """Rename, change role, set a password, (de)activate. Raises ConflictError
    for a change that would leave no active administrator."""
    if not actor.may(Permission.USER_WRITE):
        raise PermissionDeniedError("you may not manage users")
    user = get_user(session, actor, user_id)
    before = user.audit_view()
    role = changes.get("role", user.role)
    if "role" in changes:
        _check_role_assignment(session, actor, role, user.organisation_id)
    if actor.kind == "user" and actor.id == user.id and changes.get("active") is False:
        raise ConflictError("you cannot deactivate yourself")
    if _is_active_admin(user.role, user.active) and not _is_active_admin(
        role, changes.get("active", user.active)
    ):
        _keep_an_admin(session, user)
    for key in ("name", "role", "active"):
        if key in changes:
            setattr(user, key, changes[key])
    if changes.get("password") is not None:
        # An empty one too: it breaks the rules, it does not mean "unchanged".
        user.password_hash = hash_password(changes["password"])
    if changes.get("active") is False:
        # Deactivating a user ends every token it holds, at once.
        for token in session.execute(
            select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        ).scalars():
            token.revoked_at = utcnow()
    session.flush()
    record_change(session, actor, "user.update", user, before, organisation_id=user.organisation_id)
    return user


def _is_active_admin(role: str, active: bool) -> bool:
    return role == Role.ADMIN.value and active


def _keep_an_admin(session: Session, leaving: User) -> None:
    """Raises ConflictError unless another active administrator remains.

    Every active administrator's row is locked, in id order: two of them
    demoting each other at once queue here, and the second sees the first's
    change (PostgreSQL re-reads a row it waited for; SQLite has one writer).
    """
    admins = session.scalars(
        select(User.id)
        .where(User.role == Role.ADMIN.value, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    if not set(admins) - {leaving.id}:
        raise ConflictError(
            f"{leaving.email} is the last active administrator: make another one first"
        )


# --- API tokens ------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def create_api_token(
    session: Session,
    actor: Principal,
    *,
    name: str,
    user_id: int | None = None,
    expires_in_days: int | None = None,
    default_days: int = 90,
) -> IssuedToken:
    """Issue a token for the caller, or (admins) for another user.

    The secret is in the returned object only; the database keeps its hash.
    """
    target_id = user_id if user_id is not None else actor.id
    if target_id is None:
        raise InvalidInputError(
            "user_id is required", [{"field": "user_id", "message": "required"}]
        )
    if target_id != actor.id and not actor.may(Permission.TOKEN_MANAGE_ANY):
        raise PermissionDeniedError("you may only create tokens for yourself")
    user = session.get(User, target_id)
    if user is None or not actor.sees_organisation(user.organisation_id):
        raise NotFoundError(f"no user {target_id}")
    if not user.active:
        raise ConflictError("the user is deactivated")
    days = default_days if expires_in_days is None else expires_in_days
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInputError(
            "bad expiry",
            [{"field": "expires_in_days", "message": f"between 1 and {MAX_TOKEN_DAYS}"}],
        )
    secret = tokens.new_secret(tokens.API_TOKEN_PREFIX)
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=tokens.hash_secret(secret),
        prefix=tokens.shown_prefix(secret),
        expires_at=utcnow() + timedelta(days=days),
    )
    session.add(token)
    session.flush()
    record_change(
        session, actor, "api_token.create", token, None, organisation_id=user.organisation_id
    )
    return IssuedToken(token, secret)


def visible_tokens(actor: Principal) -> Select[ApiToken]:
    stmt = select(ApiToken)
    if not actor.may(Permission.TOKEN_MANAGE_ANY):
        stmt = stmt.where(ApiToken.user_id == actor.id)
    return stmt


def revoke_api_token(session: Session, actor: Principal, token_id: int) -> ApiToken:
    token = session.execute(
        visible_tokens(actor).where(ApiToken.id == token_id)
    ).scalar_one_or_none()
    if token is None:
        raise NotFoundError(f"no token {token_id}")
    if token.revoked_at is None:
        before = token.audit_view()
        token.revoked_at = utcnow()
        session.flush()
        record_change(
            session,
            actor,
            "api_token.revoke",
            token,
            before,
            organisation_id=token.user.organisation_id,
        )
    return token


def authenticate_api_token(
    session: Session, raw: str, now: datetime | None = None
) -> Principal | None:
    """The principal a Bearer token stands for, or None if it is not valid now."""
    if not raw.startswith(tokens.API_TOKEN_PREFIX):
        return None
    now = now or utcnow()
    row = session.execute(
        select(ApiToken, User)
        .join(User, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == tokens.hash_secret(raw))
    ).one_or_none()
    if row is None:
        return None
    token, user = row
    if token.revoked_at is not None or not user.active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        token.last_used_at = now
    return principal_for(user)


def principal_for(user: User) -> Principal:
    return Principal(
        kind="user",
        id=user.id,
        label=user.email,
        role=Role(user.role),
        organisation_id=user.organisation_id,
    )


# --- web login -----------------------------------------------------------------

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)


def web_login(session: Session, email: str, password: str, now: datetime | None = None) -> User:
    """The user with this email and password. After MAX_FAILED_LOGINS wrong
    passwords in a row the account refuses logins for LOCKOUT, even with the
    right password.

    Raises AuthenticationError for every refusal (an unknown email, a wrong
    password, a deactivated or locked account), after the same password-hash
    work in each case: neither the answer nor its time says whether an account
    exists, is locked, or whether a password tried during a lockout was right.
    """
    now = now or utcnow()
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    matches = _password_matches(user.password_hash if user else None, password)
    if user is None or not user.active:
        raise AuthenticationError("wrong email or password")
    if user.locked_until is not None and user.locked_until > now:
        raise AuthenticationError("wrong email or password")
    if not matches:
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        session.flush()
        raise AuthenticationError("wrong email or password")
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
    return user


def log_out(session: Session, user: User) -> None:
    """End the user's portal sessions: a copy of the cookie is refused too."""
    user.end_sessions()
    session.flush()

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Email, Integer, String
from apiflask.validators import Length, OneOf, Range

from upgrade_server.accounts import service
from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.models import ApiToken, User
from upgrade_server.accounts.roles import Permission, Role, roles_for
from upgrade_server.extensions import current_settings, session
from upgrade_server.pagination import paginate
from upgrade_server.schemas import PageQuery, page_body, page_schema

users_bp = APIBlueprint("users", __name__, url_prefix="/api/v1/users", tag="Users")
tokens_bp = APIBlueprint("tokens", __name__, url_prefix="/api/v1/tokens", tag="Tokens")

_ROLES = [r.value for r in Role]


class UserOut(Schema):
    id = Integer()
    email = String()
    name = String()
    role = String()
    organisation_id = Integer(allow_none=True)
    active = Boolean()
    created_at = DateTime()


class UserIn(Schema):
    email = Email(required=True)
    name = String(required=True, validate=Length(1, 200))
    role = String(required=True, validate=OneOf(_ROLES))
    organisation_id = Integer(load_default=None, allow_none=True)
    password = String(load_default=None, allow_none=True, validate=Length(12, 1024), load_only=True)


class UserPatch(Schema):
    name = String(validate=Length(1, 200))
    role = String(validate=OneOf(_ROLES))
    active = Boolean()
    password = String(validate=Length(12, 1024), load_only=True)


class UserQuery(PageQuery):
    organisation_id = Integer(load_default=None)
    role = String(load_default=None, validate=OneOf(_ROLES))


UserPage = page_schema(UserOut, "UserPage")


@users_bp.get("")
@users_bp.auth_required(token_auth, roles=roles_for(Permission.USER_READ))
@users_bp.input(UserQuery, location="query", arg_name="query")
@users_bp.output(UserPage)
def list_users(query: dict[str, Any]) -> dict[str, Any]:
    """List users (customer administrators: their organisation's)."""
    stmt = service.visible_users(current_principal())
    if query["organisation_id"] is not None:
        stmt = stmt.where(User.organisation_id == query["organisation_id"])
    if query["role"] is not None:
        stmt = stmt.where(User.role == query["role"])
    return page_body(paginate(session(), stmt, User.id, query["limit"], query["after"]))


@users_bp.post("")
@users_bp.auth_required(token_auth, roles=roles_for(Permission.USER_WRITE))
@users_bp.input(UserIn, arg_name="data")
@users_bp.output(UserOut, status_code=201)
def create_user(data: dict[str, Any]) -> Any:
    """Create a user. Customer administrators create customer users of their organisation."""
    return service.create_user(session(), current_principal(), **data)


@users_bp.get("/me")
@users_bp.auth_required(token_auth)
@users_bp.output(UserOut)
def whoami() -> Any:
    """The user the token belongs to."""
    principal = current_principal()
    return service.get_user(session(), principal, principal.id or 0)


@users_bp.get("/<int:user_id>")
@users_bp.auth_required(token_auth, roles=roles_for(Permission.USER_READ))
@users_bp.output(UserOut)
def get_user(user_id: int) -> Any:
    """One user; another organisation's is a 404."""
    return service.get_user(session(), current_principal(), user_id)


@users_bp.patch("/<int:user_id>")
@users_bp.auth_required(token_auth, roles=roles_for(Permission.USER_WRITE))
@users_bp.input(UserPatch, arg_name="data")
@users_bp.output(UserOut)
def update_user(user_id: int, data: dict[str, Any]) -> Any:
    """Rename, change role, set a password, or deactivate (which revokes its tokens)."""
    return service.update_user(session(), current_principal(), user_id, data)


class TokenOut(Schema):
    id = Integer()
    user_id = Integer()
    name = String()
    prefix = String(metadata={"description": "the first characters of the secret"})
    created_at = DateTime()
    expires_at = DateTime(allow_none=True)
    revoked_at = DateTime(allow_none=True)
    last_used_at = DateTime(allow_none=True)


class TokenCreatedOut(TokenOut):
    token = String(metadata={"description": "the secret; shown this once, never again"})


class TokenIn(Schema):
    name = String(required=True, validate=Length(1, 100))
    user_id = Integer(load_default=None, metadata={"description": "admins: another user"})
    expires_in_days = Integer(load_default=None, validate=Range(1, service.MAX_TOKEN_DAYS))


TokenPage = page_schema(TokenOut, "TokenPage")


@tokens_bp.get("")
@tokens_bp.auth_required(token_auth, roles=roles_for(Permission.TOKEN_MANAGE_OWN))
@tokens_bp.input(PageQuery, location="query", arg_name="query")
@tokens_bp.output(TokenPage)
def list_tokens(query: dict[str, Any]) -> dict[str, Any]:
    """The caller's tokens (admins: everyone's). Secrets are never listed."""
    stmt = service.visible_tokens(current_principal())
    return page_body(paginate(session(), stmt, ApiToken.id, query["limit"], query["after"]))


@tokens_bp.post("")
@tokens_bp.auth_required(token_auth, roles=roles_for(Permission.TOKEN_MANAGE_OWN))
@tokens_bp.input(TokenIn, arg_name="data")
@tokens_bp.output(TokenCreatedOut, status_code=201)
def create_token(data: dict[str, Any]) -> Any:
    """Create a token; the response holds its secret, shown only this once."""
    issued = service.create_api_token(
        session(),
        current_principal(),
        default_days=current_settings().token_ttl_days,
        **data,
    )
    body = {c: getattr(issued.token, c) for c in TokenOut().fields}
    body["token"] = issued.secret
    return body


@tokens_bp.delete("/<int:token_id>")
@tokens_bp.auth_required(token_auth, roles=roles_for(Permission.TOKEN_MANAGE_OWN))
@tokens_bp.output(TokenOut)
def revoke_token(token_id: int) -> Any:
    """Revoke a token; it is refused from the next request on."""
    return service.revoke_api_token(session(), current_principal(), token_id)

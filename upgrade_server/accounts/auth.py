"""Bearer authentication for the management API (/api/v1).

Device tokens are a different kind (see device_edge/auth.py) and are refused here.
"""

from __future__ import annotations

from apiflask import HTTPTokenAuth

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.service import authenticate_api_token
from upgrade_server.extensions import session

token_auth = HTTPTokenAuth(
    scheme="Bearer",
    security_scheme_name="ApiToken",
    description="A staff or customer API token (`usk_...`), created with the CLI or the API.",
)


@token_auth.verify_token
def _verify(token: str) -> Principal | None:
    if not token:
        return None
    return authenticate_api_token(session(), token)


@token_auth.get_user_roles
def _roles(principal: Principal) -> list[str]:
    return [principal.role.value] if principal.role else []


def current_principal() -> Principal:
    principal = token_auth.current_user
    assert isinstance(principal, Principal)
    return principal

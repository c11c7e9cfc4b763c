"""Organisations' hawkBit gateway tokens (device_edge/ddi/targets.py).

A gateway token lets its holder speak DDI for any device of one
organisation, as hawkBit's does: for a gateway in front of devices, or a
fleet whose devices were never given tokens of their own. Issued by an
admin, shown once, stored as its SHA-256, revoked at once.

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server import tokens
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record
from upgrade_server.clock import utcnow
from upgrade_server.devices.models import GatewayToken
from upgrade_server.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from upgrade_server.organisations.models import Organisation


@dataclass(frozen=True)
class IssuedGatewayToken:
    token: GatewayToken
    secret: str  # shown once


def _require(actor: Principal) -> None:
    if not actor.may(Permission.ORGANISATION_WRITE):
        raise PermissionDeniedError("you may not manage gateway tokens")


def issue_gateway_token(
    session: Session, actor: Principal, organisation: Organisation, name: str
) -> IssuedGatewayToken:
    _require(actor)
    name = name.strip()
    if not 0 < len(name) <= 100:
        raise InvalidInputError(
            "a gateway token needs a name", [{"field": "name", "message": "1 to 100 characters"}]
        )
    secret = tokens.new_secret(tokens.GATEWAY_TOKEN_PREFIX)
    token = GatewayToken(
        organisation_id=organisation.id,
        name=name,
        token_hash=tokens.hash_secret(secret),
        prefix=tokens.shown_prefix(secret),
        created_by=actor.label,
    )
    session.add(token)
    session.flush()
    record(
        session,
        actor,
        "gateway_token.issue",
        "gateway_tokens",
        token.id,
        after={"name": name, "prefix": token.prefix},
        organisation_id=organisation.id,
    )
    return IssuedGatewayToken(token, secret)


def list_gateway_tokens(
    session: Session, actor: Principal, organisation: Organisation
) -> list[GatewayToken]:
    _require(actor)
    return list(
        session.execute(
            select(GatewayToken)
            .where(GatewayToken.organisation_id == organisation.id)
            .order_by(GatewayToken.id)
        ).scalars()
    )


def revoke_gateway_token(
    session: Session, actor: Principal, token_id: int, organisation: Organisation | None = None
) -> GatewayToken:
    """Revoke a token (of `organisation`, when given); at once."""
    _require(actor)
    token = session.get(GatewayToken, token_id)
    if token is None or (organisation is not None and token.organisation_id != organisation.id):
        raise NotFoundError(f"no gateway token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(
            session,
            actor,
            "gateway_token.revoke",
            "gateway_tokens",
            token.id,
            organisation_id=token.organisation_id,
        )
    return token

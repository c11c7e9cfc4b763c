from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import DateTime, Email, Integer, Nested, String
from apiflask.validators import Length, OneOf

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.devices import gateway_tokens
from upgrade_server.extensions import session
from upgrade_server.organisations import service
from upgrade_server.organisations.models import Organisation, Region
from upgrade_server.pagination import paginate
from upgrade_server.schemas import PageQuery, page_body, page_schema

bp = APIBlueprint(
    "organisations", __name__, url_prefix="/api/v1/organisations", tag="Organisations"
)

_REGIONS = [r.value for r in Region]


class OrganisationOut(Schema):
    id = Integer()
    slug = String()
    name = String()
    timezone = String()
    region = String()
    contact_email = String(allow_none=True)
    created_at = DateTime()


class OrganisationIn(Schema):
    slug = String(required=True, validate=Length(1, 64))
    name = String(required=True, validate=Length(1, 200))
    timezone = String(load_default="Asia/Shanghai", validate=Length(1, 64))
    region = String(load_default=Region.OTHER.value, validate=OneOf(_REGIONS))
    contact_email = Email(load_default=None, allow_none=True)


class OrganisationPatch(Schema):
    name = String(validate=Length(1, 200))
    timezone = String(validate=Length(1, 64))
    region = String(validate=OneOf(_REGIONS))
    contact_email = Email(allow_none=True)


OrganisationPage = page_schema(OrganisationOut, "OrganisationPage")


@bp.get("")
@bp.auth_required(token_auth, roles=roles_for(Permission.ORGANISATION_READ))
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(OrganisationPage)
def list_organisations(query: dict[str, Any]) -> dict[str, Any]:
    """List the organisations the caller may see (customers: their own)."""
    stmt = service.visible_organisations(current_principal())
    return page_body(paginate(session(), stmt, Organisation.id, query["limit"], query["after"]))


@bp.post("")
@bp.auth_required(token_auth, roles=roles_for(Permission.ORGANISATION_WRITE))
@bp.input(OrganisationIn, arg_name="data")
@bp.output(OrganisationOut, status_code=201)
def create_organisation(data: dict[str, Any]) -> Any:
    """Create a customer organisation."""
    return service.create_organisation(session(), current_principal(), **data)


@bp.get("/<int:organisation_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.ORGANISATION_READ))
@bp.output(OrganisationOut)
def get_organisation(organisation_id: int) -> Any:
    """One organisation; another customer's is a 404."""
    return service.get_organisation(session(), current_principal(), organisation_id)


@bp.patch("/<int:organisation_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.ORGANISATION_WRITE))
@bp.input(OrganisationPatch, arg_name="data")
@bp.output(OrganisationOut)
def update_organisation(organisation_id: int, data: dict[str, Any]) -> Any:
    """Change an organisation's name, time zone, region or contact."""
    return service.update_organisation(session(), current_principal(), organisation_id, data)


class GatewayTokenIn(Schema):
    name = String(required=True, validate=Length(1, 100))


class GatewayTokenOut(Schema):
    id = Integer()
    organisation_id = Integer()
    name = String()
    prefix = String(metadata={"description": "the token's first characters, to recognise it"})
    created_by = String()
    created_at = DateTime()
    revoked_at = DateTime(allow_none=True)


class IssuedGatewayTokenOut(Schema):
    gateway_token = Nested(GatewayTokenOut)
    token = String(metadata={"description": "shown this once: `GatewayToken <token>`"})


@bp.get("/<int:organisation_id>/gateway-tokens")
@bp.auth_required(token_auth, roles=roles_for(Permission.ORGANISATION_WRITE))
@bp.output(GatewayTokenOut(many=True))
def list_gateway_tokens(organisation_id: int) -> Any:
    """The organisation's hawkBit gateway tokens (never their secrets)."""
    organisation = service.get_organisation(session(), current_principal(), organisation_id)
    return gateway_tokens.list_gateway_tokens(session(), current_principal(), organisation)


@bp.post("/<int:organisation_id>/gateway-tokens")
@bp.auth_required(token_auth, roles=roles_for(Permission.ORGANISATION_WRITE))
@bp.input(GatewayTokenIn, arg_name="data")
@bp.output(IssuedGatewayTokenOut, status_code=201)
def issue_gateway_token(organisation_id: int, data: dict[str, Any]) -> Any:
    """Issue a gateway token: hawkBit DDI for any device of the organisation."""
    organisation = service.get_organisation(session(), current_principal(), organisation_id)
    issued = gateway_tokens.issue_gateway_token(
        session(), current_principal(), organisation, data["name"]
    )
    return {"gateway_token": issued.token, "token": issued.secret}


@bp.delete("/<int:organisation_id>/gateway-tokens/<int:token_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.ORGANISATION_WRITE))
@bp.output(GatewayTokenOut)
def revoke_gateway_token(organisation_id: int, token_id: int) -> Any:
    """Revoke a gateway token; it stops working at once."""
    organisation = service.get_organisation(session(), current_principal(), organisation_id)
    return gateway_tokens.revoke_gateway_token(
        session(), current_principal(), token_id, organisation
    )

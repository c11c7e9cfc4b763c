"""Management API for sites (/api/v1/organisations/<id>/sites, /api/v1/sites/<id>)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import DateTime, Integer, String
from apiflask.validators import Length, OneOf

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.extensions import session
from upgrade_server.organisations.models import Region
from upgrade_server.pagination import paginate
from upgrade_server.schemas import PageQuery, page_body, page_schema
from upgrade_server.sites import service
from upgrade_server.sites.models import Site

bp = APIBlueprint("sites", __name__, url_prefix="/api/v1", tag="Sites")

_REGIONS = [r.value for r in Region]
READ = roles_for(Permission.ORGANISATION_READ)
WRITE = roles_for(Permission.ORGANISATION_WRITE)
_INHERITED = "null: the organisation's"


class SiteOut(Schema):
    id = Integer()
    organisation_id = Integer()
    name = String()
    region = String(allow_none=True, metadata={"description": f"as set; {_INHERITED}"})
    timezone = String(allow_none=True, metadata={"description": f"as set; {_INHERITED}"})
    effective_region = String(metadata={"description": "what ticket deadlines use"})
    effective_timezone = String(metadata={"description": "what ticket deadlines use"})
    created_at = DateTime()


class SiteIn(Schema):
    name = String(required=True, validate=Length(1, service.MAX_NAME))
    region = String(load_default=None, allow_none=True, validate=OneOf(_REGIONS))
    timezone = String(
        load_default=None,
        allow_none=True,
        validate=Length(1, 64),
        metadata={"description": "an IANA zone, e.g. Asia/Shanghai"},
    )


class SitePatch(Schema):
    name = String(validate=Length(1, service.MAX_NAME))
    region = String(allow_none=True, validate=OneOf(_REGIONS))
    timezone = String(allow_none=True, validate=Length(1, 64))


SitePage = page_schema(SiteOut, "SitePage")


@bp.get("/organisations/<int:organisation_id>/sites")
@bp.auth_required(token_auth, roles=READ)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(SitePage)
def list_sites(organisation_id: int, query: dict[str, Any]) -> dict[str, Any]:
    """The organisation's sites (customers: their own organisation's)."""
    stmt = service.list_sites(session(), current_principal(), organisation_id)
    return page_body(paginate(session(), stmt, Site.id, query["limit"], query["after"]))


@bp.post("/organisations/<int:organisation_id>/sites")
@bp.auth_required(token_auth, roles=WRITE)
@bp.input(SiteIn, arg_name="data")
@bp.output(SiteOut, status_code=201)
def create_site(organisation_id: int, data: dict[str, Any]) -> Any:
    """Add a site. Its region and time zone decide the on-site deadlines and the
    working days of tickets about its devices; left out, the organisation's."""
    return service.create_site(session(), current_principal(), organisation_id, data)


@bp.get("/sites/<int:site_id>")
@bp.auth_required(token_auth, roles=READ)
@bp.output(SiteOut)
def get_site(site_id: int) -> Any:
    """One site; another customer's is a 404."""
    return service.get_site(session(), current_principal(), site_id)


@bp.patch("/sites/<int:site_id>")
@bp.auth_required(token_auth, roles=WRITE)
@bp.input(SitePatch, arg_name="data")
@bp.output(SiteOut)
def update_site(site_id: int, data: dict[str, Any]) -> Any:
    """Rename a site or set its region or time zone (null: the organisation's).
    Open tickets keep the region and zone they were opened with."""
    return service.update_site(session(), current_principal(), site_id, data)


@bp.delete("/sites/<int:site_id>")
@bp.auth_required(token_auth, roles=WRITE)
@bp.output({}, status_code=204)
def delete_site(site_id: int) -> tuple[str, int]:
    """Remove a site no device stands at (else 409)."""
    service.delete_site(session(), current_principal(), site_id)
    return "", 204

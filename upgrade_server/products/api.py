from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from sqlalchemy import select

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.extensions import session
from upgrade_server.pagination import paginate
from upgrade_server.products import service
from upgrade_server.products.models import Product
from upgrade_server.schemas import PageQuery, page_body, page_schema

STARTS_FROM = ("delivery", "acceptance")

bp = APIBlueprint("products", __name__, url_prefix="/api/v1/products", tag="Products")


class HardwareRevisionOut(Schema):
    id = Integer()
    code = String()
    name = String()


class HardwareRevisionIn(Schema):
    code = String(required=True, validate=Length(1, 64))
    name = String(load_default="", validate=Length(0, 200))


class ProductOut(Schema):
    id = Integer()
    code = String()
    name = String()
    description = String()
    hardware_revisions = List(Nested(HardwareRevisionOut))
    upgrade_months = Integer()
    upgrade_starts_from = String()
    warranty_months = Integer()
    warranty_starts_from = String()
    support_months = Integer()
    support_starts_from = String()
    security_fixes_free = Boolean()
    public_notes = Boolean()
    emergency_levels = List(Integer())
    created_at = DateTime()


class ProductIn(Schema):
    code = String(required=True, validate=Length(1, 64))
    name = String(required=True, validate=Length(1, 200))
    description = String(load_default="", validate=Length(0, 2000))
    hardware_revisions = List(Nested(HardwareRevisionIn), load_default=list)


class ProductPatch(Schema):
    name = String(validate=Length(1, 200))
    description = String(validate=Length(0, 2000))
    # Coverage terms: admins only.
    upgrade_months = Integer(validate=Range(1, 600))
    upgrade_starts_from = String(validate=OneOf(STARTS_FROM))
    warranty_months = Integer(validate=Range(1, 600))
    warranty_starts_from = String(validate=OneOf(STARTS_FROM))
    support_months = Integer(validate=Range(1, 600))
    support_starts_from = String(validate=OneOf(STARTS_FROM))
    security_fixes_free = Boolean(
        metadata={"description": "security-fix releases go to every device, covered or not"}
    )
    public_notes = Boolean(metadata={"description": "release notes readable without a login"})
    emergency_levels = List(
        Integer(validate=Range(1, 4)),
        validate=Length(max=4),
        metadata={
            "description": "fault levels whose new tickets are emergencies (the 10-minute"
            " reaction); admins only"
        },
    )


ProductPage = page_schema(ProductOut, "ProductPage")


@bp.get("")
@bp.auth_required(token_auth, roles=roles_for(Permission.PRODUCT_READ))
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(ProductPage)
def list_products(query: dict[str, Any]) -> dict[str, Any]:
    """List products with their hardware revisions."""
    stmt = select(Product)
    return page_body(paginate(session(), stmt, Product.id, query["limit"], query["after"]))


@bp.post("")
@bp.auth_required(token_auth, roles=roles_for(Permission.PRODUCT_WRITE))
@bp.input(ProductIn, arg_name="data")
@bp.output(ProductOut, status_code=201)
def create_product(data: dict[str, Any]) -> Any:
    """Create a product, optionally with its hardware revisions."""
    return service.create_product(session(), current_principal(), **data)


@bp.get("/<int:product_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.PRODUCT_READ))
@bp.output(ProductOut)
def get_product(product_id: int) -> Any:
    """One product."""
    return service.get_product(session(), product_id)


@bp.patch("/<int:product_id>")
@bp.auth_required(token_auth, roles=roles_for(Permission.PRODUCT_WRITE))
@bp.input(ProductPatch, arg_name="data")
@bp.output(ProductOut)
def update_product(product_id: int, data: dict[str, Any]) -> Any:
    """Change a product's name or description."""
    return service.update_product(session(), current_principal(), product_id, data)


@bp.post("/<int:product_id>/hardware-revisions")
@bp.auth_required(token_auth, roles=roles_for(Permission.PRODUCT_WRITE))
@bp.input(HardwareRevisionIn, arg_name="data")
@bp.output(HardwareRevisionOut, status_code=201)
def add_hardware_revision(product_id: int, data: dict[str, Any]) -> Any:
    """Add a hardware revision to a product."""
    product = service.get_product(session(), product_id)
    return service.add_hardware_revision(session(), current_principal(), product, **data)

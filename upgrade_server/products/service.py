"""Products and hardware revisions. Errors raised: InvalidInputError,
NotFoundError, ConflictError, PermissionDeniedError."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server import events
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.database import flush_unique
from upgrade_server.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from upgrade_server.products.models import HardwareRevision, Product

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_code(code: str, field: str = "code") -> str:
    if not _CODE.match(code):
        raise InvalidInputError(
            f"bad {field}",
            [{"field": field, "message": "letters, digits, '.', '_' and '-', up to 64"}],
        )
    return code


def _require_write(actor: Principal) -> None:
    if not actor.may(Permission.PRODUCT_WRITE):
        raise PermissionDeniedError("you may not manage products")


def get_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise NotFoundError(f"no product {product_id}")
    return product


def find_by_code(session: Session, code: str) -> Product | None:
    return session.execute(select(Product).where(Product.code == code)).scalar_one_or_none()


def create_product(
    session: Session,
    actor: Principal,
    *,
    code: str,
    name: str,
    description: str = "",
    hardware_revisions: list[dict[str, str]] | None = None,
) -> Product:
    _require_write(actor)
    product = Product(code=check_code(code), name=name, description=description)
    session.add(product)
    flush_unique(session, f"a product with code {code!r} exists")
    record_change(session, actor, "product.create", product, None)
    for revision in hardware_revisions or []:
        add_hardware_revision(
            session, actor, product, code=revision["code"], name=revision.get("name", "")
        )
    return product


COVERAGE_TERMS = frozenset(
    f"{kind}_{field}"
    for kind in ("upgrade", "warranty", "support")
    for field in ("months", "starts_from")
) | {"security_fixes_free"}


def update_product(
    session: Session, actor: Principal, product_id: int, changes: dict[str, Any]
) -> Product:
    _require_write(actor)
    product = get_product(session, product_id)
    before = product.audit_view()
    term_keys = [k for k in changes if k in COVERAGE_TERMS]
    if term_keys and not actor.may(Permission.COVERAGE_MANAGE):
        raise PermissionDeniedError("you may not change coverage terms")
    if "emergency_levels" in changes:  # a service term, as coverage is
        if not actor.may(Permission.COVERAGE_MANAGE):
            raise PermissionDeniedError("you may not change which levels are emergencies")
        product.emergency_levels = sorted(set(changes["emergency_levels"]))
    for key in ("name", "description", "public_notes", *term_keys):
        if key in changes:
            setattr(product, key, changes[key])
    session.flush()
    record_change(session, actor, "product.update", product, before)
    if term_keys:
        events.product_terms_changed.send(session, product=product)
    return product


def add_hardware_revision(
    session: Session, actor: Principal, product: Product, *, code: str, name: str = ""
) -> HardwareRevision:
    _require_write(actor)
    revision = HardwareRevision(product=product, code=check_code(code), name=name)
    session.add(revision)
    flush_unique(session, f"product {product.code} already has hardware revision {code!r}")
    record_change(session, actor, "hardware_revision.create", revision, None)
    return revision


def find_revision(product: Product, code: str) -> HardwareRevision | None:
    return next((r for r in product.hardware_revisions if r.code == code), None)

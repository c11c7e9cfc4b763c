"""Release notes as documents: one release, or every release between two
versions with their parameter changes and hardware requirements collected.
The same view models feed the portal pages, the downloadable HTML and PDF,
and the JSON of the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.errors import InvalidInputError, NotFoundError
from upgrade_server.products.models import Product
from upgrade_server.releases import versions
from upgrade_server.releases.models import Release, ReleaseStatus

GUIDANCE_KINDS = ("installation", "operation", "maintenance")


def text_in(texts: dict[str, str] | None, lang: str) -> str:
    """The text in `lang`, else in the other language, else empty."""
    texts = texts or {}
    return texts.get(lang) or next((t for t in texts.values() if t), "")


@dataclass
class Changelog:
    """The releases a device on `from_version` installs to reach `to_version`
    (the newest one included), as the page, the HTML and the PDF all say it."""

    product: Product
    releases: list[Release]
    from_version: str
    to_version: str
    parameters: list[dict[str, Any]] = field(default_factory=list)
    requirements: list[dict[str, Any]] = field(default_factory=list)


def visible_releases(product: Product) -> Any:
    """Releases people may read: published or withdrawn (withdrawn ones say why)."""
    return (
        select(Release)
        .where(
            Release.product_id == product.id,
            Release.status.in_([ReleaseStatus.PUBLISHED.value, ReleaseStatus.WITHDRAWN.value]),
        )
        .order_by(Release.version_key.desc())
    )


def changelog(session: Session, product: Product, after: str, upto: str) -> Changelog:
    """Every published release above `after` up to and including `upto`,
    oldest first, with each parameter change and hardware requirement.

    The range it states is from `after` (the version a device upgrades from,
    not the first release listed) to the newest release listed."""
    errors = []
    keys = {}
    for name, value in (("from", after), ("to", upto)):
        try:
            keys[name] = versions.sort_key(versions.parse(value, name))
        except InvalidInputError:
            errors.append({"field": name, "message": "a semantic version is required"})
    if errors:
        raise InvalidInputError("the versions are invalid", errors)
    if keys["to"] <= keys["from"]:
        raise InvalidInputError(
            "the versions are invalid", [{"field": "to", "message": "must be above from"}]
        )
    found = list(
        session.scalars(
            select(Release)
            .where(
                Release.product_id == product.id,
                Release.status == ReleaseStatus.PUBLISHED.value,
                Release.version_key > keys["from"],
                Release.version_key <= keys["to"],
            )
            .order_by(Release.version_key)
        )
    )
    if not found:
        raise NotFoundError(f"no published release of {product.code} after {after} up to {upto}")
    log = Changelog(product, found, from_version=after, to_version=found[-1].version)
    for release in found:
        log.parameters += [{**p, "version": release.version} for p in release.parameters]
        log.requirements += [{**r, "version": release.version} for r in release.requirements]
    return log


def render_pdf(html: str) -> bytes:
    """A PDF of a self-contained HTML document (WeasyPrint; CJK through the
    system's Noto CJK fonts)."""
    from weasyprint import HTML

    pdf: bytes = HTML(string=html).write_pdf()
    return pdf

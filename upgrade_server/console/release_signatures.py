"""Releases waiting for offline signatures, and which keys still have to sign.

With offline targets (or root) keys, a publish leaves the release in
`pending-signatures` and its metadata in a signing request until the role's
threshold of holders has signed (`upgrade-server remote sign`). This module
reads, per product with an open request, what each request waits for: the
role's keys and threshold, those that signed, and the releases in it.
A handful of statements per product, whatever the number of releases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.config import Settings
from upgrade_server.products.models import Product
from upgrade_server.releases.models import Release, ReleaseStatus
from upgrade_server.signing.metadata_store import BIN_PREFIX, role_of_bin
from upgrade_server.signing.models import SigningKey, SigningRequest
from upgrade_server.signing.service import repository_for


@dataclass(frozen=True)
class Signer:
    keyid: str
    holder: str
    signed: bool


@dataclass
class Waiting:
    """One open signing request: what signs it and what waits on it."""

    request: SigningRequest
    key_role: str  # root or targets (a hash bin is signed by the targets keys)
    threshold: int
    signers: list[Signer]
    releases: list[Release] = field(default_factory=list)

    @property
    def is_bin(self) -> bool:
        return self.request.role.startswith(BIN_PREFIX + "-")

    @property
    def still_needed(self) -> int:
        return max(0, self.threshold - sum(1 for s in self.signers if s.signed))


@dataclass
class ProductWaiting:
    product: Product
    requests: list[Waiting]
    releases: list[Release]


def pending_releases(session: Session) -> list[Release]:
    """Every release waiting for signatures, oldest first."""
    return list(
        session.scalars(
            select(Release)
            .where(Release.status == ReleaseStatus.PENDING.value)
            .order_by(Release.id)
        )
    )


def waiting(session: Session, settings: Settings) -> list[ProductWaiting]:
    """Per product with a release or metadata waiting: its open requests."""
    releases = pending_releases(session)
    open_products = set(
        session.scalars(select(SigningRequest.product_id).where(SigningRequest.state == "open"))
    )
    by_product: dict[int, list[Release]] = {}
    for release in releases:
        by_product.setdefault(release.product_id, []).append(release)
    ids = sorted(open_products | set(by_product))
    products = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))}
    holders = {
        (row.product_id, row.role, row.keyid): row.holder
        for row in session.scalars(select(SigningKey).where(SigningKey.product_id.in_(ids)))
    }
    found = []
    for product_id in ids:
        product = products[product_id]
        pending = by_product.get(product_id, [])
        requests = _requests(session, settings, product, pending, holders)
        found.append(ProductWaiting(product, requests, pending))
    return found


def _requests(
    session: Session,
    settings: Settings,
    product: Product,
    pending: list[Release],
    holders: dict[tuple[int, str, str], str],
) -> list[Waiting]:
    repo = repository_for(session, product, settings)
    if not repo.exists():
        return []
    found = []
    for request in repo.open_requests():
        if request.role.startswith(BIN_PREFIX + "-"):
            succinct = repo.succinct()
            key_role, keyids, threshold = "targets", list(succinct.keyids), succinct.threshold
            releases = [r for r in pending if role_of_bin(succinct, r.target_path) == request.role]
        else:
            role = repo.root().signed.roles[request.role]
            key_role, keyids, threshold = request.role, list(role.keyids), role.threshold
            previous = repo.latest("root") if request.role == "root" else None
            if previous is not None:
                # A new root is signed by the previous root's keys as well.
                keyids += [k for k in previous.signed.roles["root"].keyids if k not in keyids]
            # Top-level metadata unsigned: nothing new of the product is served.
            releases = list(pending)
        signers = [
            Signer(
                keyid, holders.get((product.id, key_role, keyid), ""), keyid in request.signatures
            )
            for keyid in keyids
        ]
        found.append(Waiting(request, key_role, threshold, signers, releases))
    return found

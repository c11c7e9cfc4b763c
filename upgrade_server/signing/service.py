"""Building a product's TufRepository from the app's settings."""

from __future__ import annotations

from sqlalchemy.orm import Session

from upgrade_server.config import Settings
from upgrade_server.products.models import Product
from upgrade_server.signing.keys import KeyFolder
from upgrade_server.signing.repository import Expiry, TufRepository


def expiry_from(settings: Settings) -> Expiry:
    return Expiry(
        root=settings.tuf_root_expiry_days,
        targets=settings.tuf_targets_expiry_days,
        snapshot=settings.tuf_snapshot_expiry_days,
        timestamp=settings.tuf_timestamp_expiry_days,
    )


def repository_for(
    session: Session, product: Product, settings: Settings, *, create: bool = False
) -> TufRepository:
    """The product's repository; with create=True, an all-online one is made if missing."""
    repo = TufRepository(
        session, product, KeyFolder(settings.resolved_keys_path()), expiry_from(settings)
    )
    if create and not repo.exists():
        repo.initialise(bin_bits=settings.tuf_bin_bits)
    return repo

"""Building a product's TufRepository from the app's settings."""

from __future__ import annotations

from sqlalchemy.orm import Session

from upgrade_server.config import Settings
from upgrade_server.products.models import Product
from upgrade_server.signing.export import Exporter, FolderExporter, S3Exporter
from upgrade_server.signing.keys import KeyFolder
from upgrade_server.signing.metadata_store import Expiry
from upgrade_server.signing.repository import TufRepository


def expiry_from(settings: Settings) -> Expiry:
    return Expiry(
        root=settings.tuf_root_expiry_days,
        targets=settings.tuf_targets_expiry_days,
        snapshot=settings.tuf_snapshot_expiry_days,
        timestamp=settings.tuf_timestamp_expiry_days,
    )


_exporters: dict[int, tuple[Settings, Exporter | None]] = {}


def exporter_from(settings: Settings) -> Exporter | None:
    """Where signed metadata is exported as static files, if anywhere (made once)."""
    cached = _exporters.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    exporter = _make_exporter(settings)
    _exporters[id(settings)] = (settings, exporter)
    return exporter


def _make_exporter(settings: Settings) -> Exporter | None:
    if settings.export_path:
        return FolderExporter(settings.export_path.expanduser().resolve())
    if settings.export_s3:
        from upgrade_server.storage.s3 import S3Store

        store = S3Store.from_settings(settings)
        return S3Exporter(store.client, store.bucket, f"{settings.s3_prefix}tuf/")
    return None


def repository_for(
    session: Session, product: Product, settings: Settings, *, create: bool = False
) -> TufRepository:
    """The product's repository; with create=True, an all-online one is made if missing."""
    repo = TufRepository(
        session,
        product,
        KeyFolder(settings.resolved_keys_path()),
        expiry_from(settings),
        exporter_from(settings),
    )
    if create and not repo.exists():
        repo.initialise(bin_bits=settings.tuf_bin_bits)
    return repo

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Date, ForeignKey, Index, String, func, select, text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import HardwareRevision, Product
from upgrade_server.sites.models import Site


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_organisation_id_id", "organisation_id", "id"),
        Index("ix_devices_product_id_id", "product_id", "id"),
        Index("ix_devices_site_id", "site_id"),
        Index("ix_devices_upgrade_through", "upgrade_through"),
        # The fleet by version and hardware revision, read from the index alone.
        Index(
            "ix_devices_product_version_hardware",
            "product_id",
            "current_version",
            "hardware_revision_id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(128), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    hardware_revision_id: Mapped[int] = mapped_column(
        ForeignKey("hardware_revisions.id", ondelete="RESTRICT")
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    # Where it stands (None: not said); its region and time zone are the
    # organisation's unless the site has its own.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    delivered_on: Mapped[date | None] = mapped_column(Date)
    accepted_on: Mapped[date | None] = mapped_column(Date)
    current_version: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32), default="stable")
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the device last reported of itself (hardware, free-form attributes).
    inventory: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=dict, server_default=text("'{}'")
    )
    # Upgrade coverage as the update check reads it (coverage.stored_form):
    # {"windows": [[from, until) POSIX seconds, null: open], "through": last
    # covered day}, kept by entitlements.service.refresh whenever a date,
    # contract, override, time zone or product term changes. NULL: no delivery
    # recorded yet, the vendor's own stock, not restricted.
    upgrade_windows: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # upgrade_windows' "through" as a date, kept with it: the last covered day
    # (None: open-ended, never covered, or not delivered), for the console's
    # counts and filters of coverage ending (indexed; it changes only when
    # coverage does, never per update check).
    upgrade_through: Mapped[date | None] = mapped_column(Date)
    # The release it is part-way through installing (its last install step
    # for it is not an outcome), kept by updates.service.record_event: a
    # hawkBit client's open action, cancelled when the release is withdrawn
    # or no longer offered (device_edge/ddi), read with the device's token.
    installing_release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    product: Mapped[Product] = relationship(lazy="joined")
    hardware_revision: Mapped[HardwareRevision] = relationship(lazy="joined")
    organisation: Mapped[Organisation] = relationship(lazy="joined")
    site_record: Mapped[Site | None] = relationship(lazy="joined")

    @hybrid_property
    def site(self) -> str:
        """The site's name ("" when none), as the API and CSV files give it."""
        return self.site_record.name if self.site_record is not None else ""

    @site.inplace.expression
    @classmethod
    def _site_name(cls) -> ColumnElement[str]:
        name = select(Site.name).where(Site.id == cls.site_id).scalar_subquery()
        return func.coalesce(name, "")

    @property
    def site_region(self) -> str:
        """The region its tickets' on-site deadlines use."""
        site = self.site_record
        return site.effective_region if site is not None else self.organisation.region

    @property
    def site_timezone(self) -> str:
        """The time zone its tickets' working days are counted in."""
        site = self.site_record
        return site.effective_timezone if site is not None else self.organisation.timezone

    def audit_view(self) -> dict[str, object]:
        return {
            "serial": self.serial,
            "product_id": self.product_id,
            "hardware_revision_id": self.hardware_revision_id,
            "organisation_id": self.organisation_id,
            "site": self.site,
            "site_id": self.site_id,
            "delivered_on": self.delivered_on.isoformat() if self.delivered_on else None,
            "accepted_on": self.accepted_on.isoformat() if self.accepted_on else None,
            "current_version": self.current_version,
            "channel": self.channel,
        }


class DeviceToken(Base):
    """A device's Bearer token for the device API. Only its SHA-256 is stored."""

    __tablename__ = "device_tokens"
    __table_args__ = (Index("ix_device_tokens_device_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    device: Mapped[Device] = relationship(lazy="joined")


class GatewayToken(Base):
    """An organisation's hawkBit gateway token: authenticates any of its
    devices on the DDI API (`Authorization: GatewayToken ...`), as a gateway
    or a device without a token of its own does. Only its SHA-256 is stored."""

    __tablename__ = "gateway_tokens"
    __table_args__ = (Index("ix_gateway_tokens_organisation_id", "organisation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organisation: Mapped[Organisation] = relationship(lazy="joined")

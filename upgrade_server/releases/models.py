from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base
from upgrade_server.products.models import Product

DEFAULT_CHANNELS = ("dev", "beta", "stable")


class ReleaseStatus(StrEnum):
    PENDING = "pending-signatures"  # stored, waiting for the targets threshold
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class Channel(Base):
    """A product's channel; a device on a channel also takes every higher-ranked one."""

    __tablename__ = "channels"
    __table_args__ = (
        UniqueConstraint("product_id", "name"),
        UniqueConstraint("product_id", "rank"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    rank: Mapped[int]


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("product_id", "version"),
        # 1.0.0+a and 1.0.0+b have the same precedence: one of them only.
        UniqueConstraint("product_id", "version_key"),
        Index("ix_releases_product_status_key", "product_id", "status", "version_key"),
        CheckConstraint(
            "status IN ('pending-signatures', 'published', 'withdrawn')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    version: Mapped[str] = mapped_column(String(64))
    version_key: Mapped[bytes] = mapped_column(LargeBinary(200))
    status: Mapped[str] = mapped_column(String(24), default=ReleaseStatus.PENDING.value)
    artifact_sha256: Mapped[str] = mapped_column(String(64), index=True)
    artifact_size: Mapped[int]
    # The digests hawkBit's DDI clients check (device_edge/ddi); taken at
    # upload. None for a release published before they were kept: filled from
    # the stored bytes the first time a DDI client asks (ddi.deployments).
    artifact_sha1: Mapped[str | None] = mapped_column(String(40))
    artifact_md5: Mapped[str | None] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(200))
    target_path: Mapped[str] = mapped_column(String(300))
    min_from_version: Mapped[str | None] = mapped_column(String(64))
    min_from_key: Mapped[bytes | None] = mapped_column(LargeBinary(200))
    security_fix: Mapped[bool] = mapped_column(default=False)
    # {"zh-CN": markdown, "en": markdown}
    notes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # {"installation"|"operation"|"maintenance": {"zh-CN": markdown, "en": markdown}}
    guidance: Mapped[dict[str, dict[str, str]]] = mapped_column(JSON, default=dict)
    # hardware revision codes it runs on
    hardware_revisions: Mapped[list[str]] = mapped_column(JSON, default=list)
    # ",rev-a,rev-b," so the update check can match a revision in SQL.
    hardware_key: Mapped[str] = mapped_column(String(2000), default=",", server_default=",")
    downloads: Mapped[int] = mapped_column(default=0, server_default="0")
    # [{"name", "value", "unit"}], e.g. minimum memory or bootloader version
    requirements: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # [{"name", "old_default", "new_default", "unit", "operator_action", "action"}]
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(254))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_reason: Mapped[str | None] = mapped_column(String(2000))

    product: Mapped[Product] = relationship(lazy="joined")
    channels: Mapped[list[Channel]] = relationship(
        secondary="release_channels", order_by="Channel.rank", lazy="selectin"
    )

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in sorted(self.channels, key=lambda c: c.rank)]

    def audit_view(self) -> dict[str, object]:
        return {
            "product_id": self.product_id,
            "version": self.version,
            "status": self.status,
            "artifact_sha256": self.artifact_sha256,
            "artifact_size": self.artifact_size,
            "channels": self.channel_names,
            "hardware_revisions": self.hardware_revisions,
            "min_from_version": self.min_from_version,
            "security_fix": self.security_fix,
            "withdrawn_reason": self.withdrawn_reason,
        }


class ReleaseChannel(Base):
    __tablename__ = "release_channels"

    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True
    )
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="RESTRICT"), primary_key=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

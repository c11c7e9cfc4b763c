"""Contracts and manual overrides: what adds to (or takes from) the promise."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base

KINDS_CHECK = "kind IN ('upgrades', 'warranty', 'support')"


class Contract(Base):
    """Coverage of one kind bought for one device, or for every device of an
    organisation (optionally of one product), from `starts_on` through `ends_on`."""

    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint(KINDS_CHECK, name="kind"),
        CheckConstraint("ends_on >= starts_on", name="dates"),
        Index("ix_contracts_organisation_id", "organisation_id"),
        Index("ix_contracts_device_id", "device_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def audit_view(self) -> dict[str, object]:
        return {
            "organisation_id": self.organisation_id,
            "device_id": self.device_id,
            "product_id": self.product_id,
            "kind": self.kind,
            "starts_on": self.starts_on.isoformat(),
            "ends_on": self.ends_on.isoformat(),
            "reference": self.reference,
            "note": self.note,
        }


class CoverageOverride(Base):
    """An admin's decision for one device, with its reason: grant coverage the
    rules do not give, or deny coverage they do. `ends_on` None: open-ended."""

    __tablename__ = "coverage_overrides"
    __table_args__ = (
        CheckConstraint(KINDS_CHECK, name="kind"),
        CheckConstraint("effect IN ('grant', 'deny')", name="effect"),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="dates"),
        Index("ix_coverage_overrides_device_id", "device_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    effect: Mapped[str] = mapped_column(String(8))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def audit_view(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "effect": self.effect,
            "starts_on": self.starts_on.isoformat(),
            "ends_on": self.ends_on.isoformat() if self.ends_on else None,
            "reason": self.reason,
        }

"""An organisation's update settings: its maintenance windows and the releases
its customer-admins approved (the setting that approval is needed at all is
`Organisation.updates_need_approval`)."""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Time,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.devices.models import Device
from upgrade_server.extensions import Base
from upgrade_server.releases.models import Release

MIN_DURATION_MINUTES = 15
MAX_DURATION_MINUTES = 24 * 60


class WindowKind(StrEnum):
    WEEKLY = "weekly"  # ISO weekdays and a start time, in the organisation's zone
    CRON = "cron"  # a cron expression's start times, in the organisation's zone


class MaintenanceWindowSetting(Base):
    """One window in which the organisation's devices may install updates."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (
        CheckConstraint("kind IN ('weekly', 'cron')", name="kind"),
        CheckConstraint(
            f"duration_minutes BETWEEN {MIN_DURATION_MINUTES} AND {MAX_DURATION_MINUTES}",
            name="duration_minutes",
        ),
        CheckConstraint(
            "(kind = 'weekly' AND start IS NOT NULL AND cron IS NULL)"
            " OR (kind = 'cron' AND cron IS NOT NULL AND start IS NULL)",
            name="kind_fields",
        ),
        Index("ix_maintenance_windows_organisation_id", "organisation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    # Weekly: ISO weekdays (1 Monday .. 7 Sunday) and the local start time.
    days: Mapped[list[int]] = mapped_column(JSON, default=list)
    start: Mapped[time | None] = mapped_column(Time)
    cron: Mapped[str | None] = mapped_column(String(100))
    duration_minutes: Mapped[int]
    label: Mapped[str] = mapped_column(String(100), default="", server_default="")

    def audit_view(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "days": self.days,
            "start": self.start.strftime("%H:%M") if self.start else None,
            "cron": self.cron,
            "duration_minutes": self.duration_minutes,
            "label": self.label,
        }


approval_devices = Table(
    "release_approval_devices",
    Base.metadata,
    Column("approval_id", ForeignKey("release_approvals.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
)


class ReleaseApproval(Base):
    """A customer-admin's approval of a release for all of the organisation's
    devices or chosen ones. Approvals add up: a later one for more devices is
    a row of its own, and each is kept as given."""

    __tablename__ = "release_approvals"
    __table_args__ = (
        Index("ix_release_approvals_organisation_id_release_id", "organisation_id", "release_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    all_devices: Mapped[bool]
    approved_by: Mapped[str] = mapped_column(String(254))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The upgrade-installation service request the approval asked for, if any.
    service_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_requests.id", ondelete="SET NULL")
    )

    release: Mapped[Release] = relationship(lazy="joined")
    devices: Mapped[list[Device]] = relationship(secondary=approval_devices, lazy="selectin")

    def audit_view(self) -> dict[str, object]:
        return {
            "release_id": self.release_id,
            "all_devices": self.all_devices,
            "devices": sorted(d.id for d in self.devices),
            "service_request_id": self.service_request_id,
        }

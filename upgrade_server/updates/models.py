from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base


class InstallStatus(StrEnum):
    # The update changes parameters that need the operator's action; the device
    # waits for the operator's acknowledgement before downloading it.
    WAITING = "waiting"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    VERIFIED = "verified"
    INSTALLING = "installing"
    INSTALLED = "installed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class InstallEvent(Base):
    """One step a device reported for one release (or an outside install)."""

    __tablename__ = "install_events"
    __table_args__ = (
        # The device chooses event_id, so a retried post counts once.
        UniqueConstraint("device_id", "event_id"),
        Index("ix_install_events_device_id_id", "device_id", "id"),
        Index("ix_install_events_release_id_status", "release_id", "status"),
        CheckConstraint(
            "status IN ('waiting', 'downloading', 'downloaded', 'verified', 'installing',"
            " 'installed', 'failed', 'rolled_back')",
            name="status",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="SET NULL"))
    version: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_text: Mapped[str | None] = mapped_column(String(2000))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base


class Region(StrEnum):
    """Where an organisation's sites are; sets on-site service deadlines later."""

    BEIJING = "beijing"
    OTHER = "other"


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (CheckConstraint("region IN ('beijing', 'other')", name="region"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    region: Mapped[str] = mapped_column(String(16), default=Region.OTHER.value)
    contact_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def audit_view(self) -> dict[str, object]:
        return {
            "slug": self.slug,
            "name": self.name,
            "timezone": self.timezone,
            "region": self.region,
            "contact_email": self.contact_email,
        }

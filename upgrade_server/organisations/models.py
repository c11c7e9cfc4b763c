from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, String, false
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
    # Updates for its devices wait for a customer-admin's approval (rollouts/approvals.py).
    updates_need_approval: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Bumped on every change of its maintenance windows, the approval setting
    # or an approval: the key a per-process cache of them is kept under.
    update_settings_generation: Mapped[int] = mapped_column(default=0, server_default="0")

    def audit_view(self) -> dict[str, object]:
        return {
            "slug": self.slug,
            "name": self.name,
            "timezone": self.timezone,
            "region": self.region,
            "contact_email": self.contact_email,
        }

"""Sites: where an organisation's devices stand. A site's region and time zone
decide a ticket's on-site deadlines and its working days; left empty, they
are the organisation's."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base
from upgrade_server.organisations.models import Organisation


class Site(Base):
    __tablename__ = "sites"
    __table_args__ = (
        UniqueConstraint("organisation_id", "name"),
        CheckConstraint("region IN ('beijing', 'other')", name="region"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    name: Mapped[str] = mapped_column(String(200))
    # None: the organisation's (followed when it changes).
    region: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Usually in the session already (its devices load theirs): no join.
    organisation: Mapped[Organisation] = relationship()

    @property
    def effective_region(self) -> str:
        return self.region or self.organisation.region

    @property
    def effective_timezone(self) -> str:
        return self.timezone or self.organisation.timezone

    def audit_view(self) -> dict[str, object]:
        return {
            "organisation_id": self.organisation_id,
            "name": self.name,
            "region": self.region,
            "timezone": self.timezone,
        }

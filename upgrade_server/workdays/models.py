"""Exceptions to the working-day calendar, recorded by staff."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base


class WorkingDayException(Base):
    """A day made a working day, or a day off, for one organisation or for
    everyone (organisation_id NULL). An organisation's exception wins over a
    global one on the same day."""

    __tablename__ = "working_day_exceptions"
    __table_args__ = (
        # One exception a day per organisation, and one global one a day
        # (a plain unique constraint would let global rows repeat: NULLs differ).
        Index(
            "uq_working_day_exceptions_organisation_day",
            "organisation_id",
            "day",
            unique=True,
            sqlite_where=text("organisation_id IS NOT NULL"),
            postgresql_where=text("organisation_id IS NOT NULL"),
        ),
        Index(
            "uq_working_day_exceptions_global_day",
            "day",
            unique=True,
            sqlite_where=text("organisation_id IS NULL"),
            postgresql_where=text("organisation_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    day: Mapped[date] = mapped_column(Date)
    working: Mapped[bool]
    reason: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def audit_view(self) -> dict[str, object]:
        return {
            "organisation_id": self.organisation_id,
            "day": self.day.isoformat(),
            "working": self.working,
            "reason": self.reason,
        }

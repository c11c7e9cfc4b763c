"""Fault alarms from devices, the tickets they open, pauses both sides
confirm, incident reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.devices.models import Device
from upgrade_server.extensions import Base
from upgrade_server.organisations.models import Organisation

STATUSES = (
    "new",
    "acknowledged",
    "on-the-way",
    "on-site",
    "resolved",
    "report-delivered",
    "closed",
)

ticket_devices = Table(
    "ticket_devices",
    Base.metadata,
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint("level BETWEEN 1 AND 4", name="level"),
        CheckConstraint(
            "status IN ('new', 'acknowledged', 'on-the-way', 'on-site', 'resolved',"
            " 'report-delivered', 'closed')",
            name="status",
        ),
        Index("ix_tickets_organisation_id_status", "organisation_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    # What its deadlines use, fixed when it opened (tickets.service.place_of):
    # its devices' sites' region (the most urgent) and time zone, else the
    # organisation's.
    region: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    level: Mapped[int]
    opened_level: Mapped[int]
    # [[iso time, new level], ...]
    level_changes: Mapped[list[list[Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="new")
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(10_000), default="")
    source: Mapped[str] = mapped_column(String(8))  # alarm, portal, phone, api
    alarm_code: Mapped[str | None] = mapped_column(String(64))
    alarm_count: Mapped[int] = mapped_column(default=0)
    last_alarm_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    opened_by: Mapped[str] = mapped_column(String(254))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_the_way_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_site_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    repair_notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    part_on_site_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    report_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Emergencies (deadlines.emergency_since): the levels its product counted
    # as emergencies when it opened, and staff's marks, each
    # {"at": iso time, "emergency": bool, "by": who, "reason": why}.
    emergency_levels: Mapped[list[int]] = mapped_column(
        JSON, default=lambda: [1], server_default="[1]"
    )
    emergency_marks: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default="[]"
    )

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    devices: Mapped[list[Device]] = relationship(secondary=ticket_devices, lazy="selectin")
    pauses: Mapped[list[TicketPause]] = relationship(
        back_populates="ticket", order_by="TicketPause.id", lazy="selectin"
    )

    def audit_view(self) -> dict[str, object]:
        return {
            "organisation_id": self.organisation_id,
            "level": self.level,
            "status": self.status,
            "title": self.title,
            "source": self.source,
            "alarm_code": self.alarm_code,
            "devices": [d.id for d in self.devices],
            "emergency_marks": self.emergency_marks,
        }


class TicketPause(Base):
    """The ticket waits on the customer: it counts once the customer confirmed."""

    __tablename__ = "ticket_pauses"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(2000))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    requested_by: Mapped[str] = mapped_column(String(254))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_by: Mapped[str | None] = mapped_column(String(254))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship(back_populates="pauses")


class Alarm(Base):
    __tablename__ = "alarms"
    __table_args__ = (
        UniqueConstraint("device_id", "alarm_id"),
        CheckConstraint("level BETWEEN 1 AND 4", name="level"),
        CheckConstraint("event IN ('raise', 'clear')", name="event"),
        Index("ix_alarms_device_id_received_at", "device_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    alarm_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(8), default="raise")
    code: Mapped[str] = mapped_column(String(64))
    level: Mapped[int]
    message: Mapped[str] = mapped_column(String(2000), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))


class IncidentReport(Base):
    """The report the promise names, due 48 hours after recovery."""

    __tablename__ = "incident_reports"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    fault_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fault_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    symptoms: Mapped[str] = mapped_column(String(10_000), default="")
    cause: Mapped[str] = mapped_column(String(10_000), default="")
    solution: Mapped[str] = mapped_column(String(10_000), default="")
    # [{"at": iso time, "step": text}], in time order
    recovery_steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    follow_up: Mapped[str] = mapped_column(String(10_000), default="")
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_by: Mapped[str | None] = mapped_column(String(254))

    def audit_view(self) -> dict[str, object]:
        return {
            "ticket_id": self.ticket_id,
            "symptoms": self.symptoms,
            "cause": self.cause,
            "solution": self.solution,
            "recovery_steps": self.recovery_steps,
            "follow_up": self.follow_up,
            "delivered": self.delivered_at is not None,
        }


class TicketBreach(Base):
    """A missed deadline, kept with how late (updated while it stays unmet)."""

    __tablename__ = "ticket_breaches"
    __table_args__ = (UniqueConstraint("ticket_id", "deadline"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    deadline: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    late_minutes: Mapped[int]
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

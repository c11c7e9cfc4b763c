"""The service record: sessions the vendor gives a customer (installation,
acceptance, training, upgrades, guidance, inspections, visits, calls) and the
customer's technical service requests, each confirmed by both sides."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Date,
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
from upgrade_server.releases.models import Release


class SessionKind(StrEnum):
    INSTALLATION = "installation"  # installation and commissioning
    ACCEPTANCE = "acceptance"  # trial-run acceptance: its sign-off starts coverage
    TRAINING = "training"
    UPGRADE = "upgrade"  # installing a new version
    OPERATION_GUIDANCE = "operation-guidance"
    MAINTENANCE_GUIDANCE = "maintenance-guidance"
    INSPECTION = "inspection"
    FOLLOW_UP = "follow-up"
    PHONE = "phone-consultation"


RELEASE_KINDS = {
    SessionKind.UPGRADE,
    SessionKind.OPERATION_GUIDANCE,
    SessionKind.MAINTENANCE_GUIDANCE,
}


class Mode(StrEnum):
    ON_SITE = "on-site"
    REMOTE = "remote"
    PHONE = "phone"


class Confirmed:
    """Start and end, each recorded by the vendor's engineer and confirmed by
    a customer user. Signed off once the customer confirms the end; then the
    row never changes again."""

    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_by: Mapped[str | None] = mapped_column(String(254))
    start_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    start_confirmed_by: Mapped[str | None] = mapped_column(String(254))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(254))
    end_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_confirmed_by: Mapped[str | None] = mapped_column(String(254))

    @property
    def state(self) -> str:
        if self.end_confirmed_at is not None:
            return "signed-off"
        if self.ended_at is not None:
            return "ended"
        if self.start_confirmed_at is not None:
            return "start-confirmed"
        if self.started_at is not None:
            return "started"
        return "planned"

    @property
    def signed_off(self) -> bool:
        return self.end_confirmed_at is not None

    def confirmation_view(self) -> dict[str, Any]:
        return {
            name: (value.isoformat() if isinstance(value, datetime) else value)
            for name in (
                "started_at",
                "started_by",
                "start_confirmed_at",
                "start_confirmed_by",
                "ended_at",
                "ended_by",
                "end_confirmed_at",
                "end_confirmed_by",
            )
            if (value := getattr(self, name)) is not None
        }


session_devices = Table(
    "service_session_devices",
    Base.metadata,
    Column("session_id", ForeignKey("service_sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
)
request_devices = Table(
    "service_request_devices",
    Base.metadata,
    Column("request_id", ForeignKey("service_requests.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
)


class ServiceRequest(Confirmed, Base):
    """A technical service request (技术服务申请单)."""

    __tablename__ = "service_requests"
    __table_args__ = (
        CheckConstraint("opened_via IN ('portal', 'api', 'phone')", name="opened_via"),
        Index("ix_service_requests_organisation_id", "organisation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(10_000), default="")
    contact: Mapped[str] = mapped_column(String(200), default="")
    opened_via: Mapped[str] = mapped_column(String(8))
    opened_by: Mapped[str] = mapped_column(String(254))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the vendor received it (a call or an e-mailed form may be recorded
    # later): the 24-hour response deadline runs from here.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The vendor's response: its first answer, or the start of work.
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    responded_by: Mapped[str | None] = mapped_column(String(254))
    response: Mapped[str] = mapped_column(String(2000), default="")

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    devices: Mapped[list[Device]] = relationship(secondary=request_devices, lazy="selectin")

    def audit_view(self) -> dict[str, object]:
        return {
            "organisation_id": self.organisation_id,
            "title": self.title,
            "opened_via": self.opened_via,
            "devices": [d.id for d in self.devices],
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "responded_at": self.responded_at.isoformat() if self.responded_at else None,
            "response": self.response,
            **self.confirmation_view(),
        }


class ServiceRequestBreach(Base):
    """A missed response deadline, kept with how late (as TicketBreach)."""

    __tablename__ = "service_request_breaches"
    __table_args__ = (UniqueConstraint("request_id", "deadline"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("service_requests.id", ondelete="CASCADE"))
    deadline: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    late_minutes: Mapped[int]
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceSession(Confirmed, Base):
    __tablename__ = "service_sessions"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('installation', 'acceptance', 'training', 'upgrade', 'operation-guidance',"
            " 'maintenance-guidance', 'inspection', 'follow-up', 'phone-consultation')",
            name="kind",
        ),
        CheckConstraint("mode IN ('on-site', 'remote', 'phone')", name="mode"),
        Index("ix_service_sessions_organisation_id", "organisation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    kind: Mapped[str] = mapped_column(String(24))
    mode: Mapped[str] = mapped_column(String(8))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="RESTRICT"))
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_requests.id", ondelete="RESTRICT")
    )
    # A correction of a signed-off session points at it; the original stays.
    corrects_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_sessions.id", ondelete="RESTRICT")
    )
    engineers: Mapped[list[str]] = mapped_column(JSON, default=list)
    customer_representative: Mapped[str] = mapped_column(String(200), default="")
    planned_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    planned_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Training: days given, and the delivery they count against (3 days each).
    training_days: Mapped[float | None]
    delivery: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str] = mapped_column(String(10_000), default="")
    # Inspections: findings and optimisation suggestions; any kind: its outcome.
    findings: Mapped[str] = mapped_column(String(10_000), default="")
    suggestions: Mapped[str] = mapped_column(String(10_000), default="")
    outcome: Mapped[str] = mapped_column(String(2000), default="")
    # [{"filename", "sha256", "size", "content_type"}], bytes in the artifact store
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(254))
    # A planned session that will not take place: called off, with the reason.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[str | None] = mapped_column(String(254))
    cancel_reason: Mapped[str] = mapped_column(String(2000), default="", server_default="")

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    release: Mapped[Release | None] = relationship(lazy="joined")
    devices: Mapped[list[Device]] = relationship(secondary=session_devices, lazy="selectin")

    @property
    def state(self) -> str:
        return "cancelled" if self.cancelled_at is not None else super().state

    def audit_view(self) -> dict[str, object]:
        return {
            "organisation_id": self.organisation_id,
            "kind": self.kind,
            "mode": self.mode,
            "release_id": self.release_id,
            "request_id": self.request_id,
            "corrects_id": self.corrects_id,
            "devices": [d.id for d in self.devices],
            "engineers": self.engineers,
            "customer_representative": self.customer_representative,
            "training_days": self.training_days,
            "delivery": self.delivery,
            "notes": self.notes,
            "findings": self.findings,
            "suggestions": self.suggestions,
            "outcome": self.outcome,
            "attachments": [a["sha256"] for a in self.attachments],
            "cancel_reason": self.cancel_reason,
            **self.confirmation_view(),
        }


notice_devices = Table(
    "pre_installation_notice_devices",
    Base.metadata,
    Column(
        "notice_id",
        ForeignKey("pre_installation_notices.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
)


class PreInstallationNotice(Base):
    """The written notice sent before equipment arrives (安装前期准备书面通知):
    what the site must prepare, sent on a date, confirmed as received by a
    customer user. Once received it never changes."""

    __tablename__ = "pre_installation_notices"
    __table_args__ = (
        CheckConstraint("sent_via IN ('email', 'post', 'hand', 'portal')", name="sent_via"),
        Index("ix_pre_installation_notices_organisation_id", "organisation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    site: Mapped[str] = mapped_column(String(200), default="")
    expected_on: Mapped[date | None] = mapped_column(Date)  # the equipment's expected arrival
    document: Mapped[str] = mapped_column(String(20_000))  # Markdown: what the site prepares
    # [{"filename", "sha256", "size", "content_type"}], bytes in the artifact store
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_via: Mapped[str] = mapped_column(String(8))
    sent_by: Mapped[str] = mapped_column(String(254))
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    devices: Mapped[list[Device]] = relationship(secondary=notice_devices, lazy="selectin")

    @property
    def state(self) -> str:
        return "received" if self.received_at is not None else "sent"

    def audit_view(self) -> dict[str, object]:
        return {
            "organisation_id": self.organisation_id,
            "devices": [d.id for d in self.devices],
            "site": self.site,
            "expected_on": self.expected_on.isoformat() if self.expected_on else None,
            "document": self.document,
            "attachments": [a["sha256"] for a in self.attachments],
            "sent_at": self.sent_at.isoformat(),
            "sent_via": self.sent_via,
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "received_by": self.received_by,
        }


class CustomerRepresentative(Base):
    """A trained technician the customer names as its representative for
    phone consultation (用户的代表)."""

    __tablename__ = "customer_representatives"
    __table_args__ = (Index("ix_customer_representatives_organisation_id", "organisation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(64), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    # The training session that trained them (one of the organisation's).
    training_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_sessions.id", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(254))

    training_session: Mapped[ServiceSession | None] = relationship(lazy="joined")

    def audit_view(self) -> dict[str, object]:
        return {
            "organisation_id": self.organisation_id,
            "name": self.name,
            "phone": self.phone,
            "email": self.email,
            "training_session_id": self.training_session_id,
        }


class HotlineChange(Base):
    """The vendor's hotline number changed: every customer is told in
    writing (e-mail counts) within 3 days."""

    __tablename__ = "hotline_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64))
    previous_number: Mapped[str] = mapped_column(String(64), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(2000), default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(254))

    notices: Mapped[list[HotlineNotice]] = relationship(
        back_populates="change", order_by="HotlineNotice.id", lazy="selectin"
    )

    def audit_view(self) -> dict[str, object]:
        return {
            "number": self.number,
            "previous_number": self.previous_number,
            "changed_at": self.changed_at.isoformat(),
            "note": self.note,
        }


class HotlineNotice(Base):
    """When (and how) one customer was told of a hotline change."""

    __tablename__ = "hotline_notices"
    __table_args__ = (
        UniqueConstraint("change_id", "organisation_id"),
        CheckConstraint("told_via IN ('email', 'post', 'fax', 'hand')", name="told_via"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("hotline_changes.id", ondelete="CASCADE"))
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    told_at: Mapped[datetime] = mapped_column(UTCDateTime)
    told_via: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(254), default="")
    recorded_by: Mapped[str] = mapped_column(String(254))

    change: Mapped[HotlineChange] = relationship(back_populates="notices")
    organisation: Mapped[Organisation] = relationship(lazy="joined")

    def audit_view(self) -> dict[str, object]:
        return {
            "change_id": self.change_id,
            "organisation_id": self.organisation_id,
            "told_at": self.told_at.isoformat(),
            "told_via": self.told_via,
            "recipient": self.recipient,
        }

"""Rollouts of a release to a channel, wave by wave: the rollout, the devices
pinned into it or excluded from it, and every decision taken on it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base
from upgrade_server.releases.models import Channel, Release


class RolloutState(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    PAUSED = "paused"  # by a person: the reached waves keep their offer, none is added
    # By the gates: offered to no one who had not started the install (those
    # part-way through keep the offer) until a person resumes.
    HALTED = "halted"
    ABORTED = "aborted"  # the offer withdrawn for good
    COMPLETED = "completed"  # every wave reached: as any release is, except to the excluded


# At most one of these per release and channel.
ACTIVE_STATES = (RolloutState.RUNNING, RolloutState.PAUSED, RolloutState.HALTED)
_ACTIVE_SQL = "state IN ('running', 'paused', 'halted')"


class Rollout(Base):
    __tablename__ = "rollouts"
    __table_args__ = (
        CheckConstraint(
            "state IN ('planned', 'running', 'paused', 'halted', 'aborted', 'completed')",
            name="state",
        ),
        Index(
            "uq_rollouts_active_release_channel",
            "release_id",
            "channel_id",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        Index("ix_rollouts_product_id_id", "product_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="RESTRICT"))
    # Mixed into each device's bucket: each rollout starts with other devices.
    salt: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=RolloutState.RUNNING.value)
    current_wave: Mapped[int] = mapped_column(default=0)
    wave_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # plan.Gates' fields; [{"share", "organisations", "devices", "hardware"}]
    gates: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    waves: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Hardware revision codes the release is not offered to under this rollout.
    excluded_hardware: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    halted_reason: Mapped[str | None] = mapped_column(String(2000))
    # Devices part-way through the install when the rollout halted: a halt
    # stops offering the release to devices that have not started, not to
    # those downloading or installing it (cut off, they would retry forever).
    in_progress: Mapped[list[int]] = mapped_column(JSON, default=list, server_default="[]")
    # An emergency security release: maintenance windows do not hold it back.
    emergency: Mapped[bool] = mapped_column(default=False)
    override_reason: Mapped[str | None] = mapped_column(String(2000))

    release: Mapped[Release] = relationship(lazy="joined")
    channel: Mapped[Channel] = relationship(lazy="joined")
    devices: Mapped[list[RolloutDevice]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="RolloutDevice.device_id"
    )

    @property
    def pinned(self) -> frozenset[int]:
        return frozenset(d.device_id for d in self.devices if d.kind == "pin")

    @property
    def excluded(self) -> frozenset[int]:
        return frozenset(d.device_id for d in self.devices if d.kind == "exclude")

    def audit_view(self) -> dict[str, object]:
        return {
            "release_id": self.release_id,
            "channel_id": self.channel_id,
            "state": self.state,
            "current_wave": self.current_wave,
            "waves": self.waves,
            "gates": self.gates,
            "excluded_hardware": self.excluded_hardware,
            "pinned": sorted(self.pinned),
            "excluded_devices": sorted(self.excluded),
            "halted_reason": self.halted_reason,
            "in_progress": self.in_progress,
            "emergency": self.emergency,
            "override_reason": self.override_reason,
        }


class RolloutDevice(Base):
    """A device pinned into the rollout (offered from the first wave) or
    excluded from it (never offered under it)."""

    __tablename__ = "rollout_devices"
    __table_args__ = (CheckConstraint("kind IN ('pin', 'exclude')", name="kind"),)

    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8))


class RolloutDecision(Base):
    """A step of a rollout, taken by the gates or by a person, with its figures."""

    __tablename__ = "rollout_decisions"
    __table_args__ = (Index("ix_rollout_decisions_rollout_id_id", "rollout_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # start, advance, wait-for-approval, complete, halt, pause, resume, abort
    action: Mapped[str] = mapped_column(String(32))
    wave: Mapped[int]
    actor: Mapped[str] = mapped_column(String(254))
    automatic: Mapped[bool] = mapped_column(default=False)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

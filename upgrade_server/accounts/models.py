from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, inspect
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base
from upgrade_server.organisations.models import Organisation

_ROLE_VALUES = "'admin','publisher','support','viewer','customer-admin','customer-viewer'"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN ({_ROLE_VALUES})", name="role"),
        # Customer roles belong to exactly one organisation; vendor roles to none.
        CheckConstraint(
            "(role LIKE 'customer-%' AND organisation_id IS NOT NULL)"
            " OR (role NOT LIKE 'customer-%' AND organisation_id IS NULL)",
            name="role_organisation",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    # Failed web logins in a row, and until when the account refuses logins.
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A portal session holds the generation it began in and ends when this
    # moves on: at logout, a new password, (de)activation.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[Organisation | None] = relationship(lazy="joined")

    def end_sessions(self) -> None:
        """Every portal session of this user ends, in every browser."""
        if inspect(self).has_identity:
            # Counted in SQL: two workers ending sessions at once both count.
            self.session_generation = User.session_generation + 1

    # Here rather than in the services: whatever sets a password (the API, the
    # CLI, a script) or deactivates the user, its sessions end with it.
    @validates("password_hash", "active")
    def _end_sessions_on_change(self, key: str, value: object) -> object:
        if value != getattr(self, key):
            self.end_sessions()
        return value

    def audit_view(self) -> dict[str, object]:
        # Never the password hash: the audit log is read by people.
        return {
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "organisation_id": self.organisation_id,
            "active": self.active,
            "has_password": self.password_hash is not None,
        }


class ApiToken(Base):
    """A staff or customer Bearer token. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, shown in listings so a holder can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")

    def audit_view(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "name": self.name,
            "prefix": self.prefix,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }

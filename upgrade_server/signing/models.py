from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base


class Repository(Base):
    """A product's TUF repository settings; its row is locked while metadata changes."""

    __tablename__ = "tuf_repositories"

    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    # Succinct hash-bin delegation from targets: 2**bin_bits bins named bins-XX.
    bin_bits: Mapped[int] = mapped_column(default=8)
    # Roles whose keys are held offline and sign through signing requests.
    offline_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Whether metadata and targets need a device token to be read.
    private: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SigningKey(Base):
    """A public key of a role. Private halves of online keys are files, never rows."""

    __tablename__ = "tuf_keys"
    __table_args__ = (UniqueConstraint("product_id", "role", "keyid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    keyid: Mapped[str] = mapped_column(String(64))
    public: Mapped[dict[str, Any]] = mapped_column(JSON)
    online: Mapped[bool] = mapped_column(default=True)
    holder: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MetadataFile(Base):
    """One signed version of one role's metadata, exactly as served."""

    __tablename__ = "tuf_metadata"
    __table_args__ = (
        UniqueConstraint("product_id", "role", "version"),
        Index("ix_tuf_metadata_current", "product_id", "role", "version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    expires: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SigningRequest(Base):
    """Metadata waiting for offline signatures until its role's threshold is met."""

    __tablename__ = "tuf_signing_requests"
    __table_args__ = (Index("ix_tuf_signing_requests_open", "product_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    # The unsigned metadata (JSON); signers sign its canonical "signed" part.
    unsigned: Mapped[bytes] = mapped_column(LargeBinary)
    signatures: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="open")  # open|done|superseded
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

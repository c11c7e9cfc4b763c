from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from upgrade_server.clock import utcnow
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base

COVERAGE_KINDS = ("upgrade", "warranty", "support")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    # Bumped whenever what the update check could answer changes (publish,
    # promotion, withdrawal, channels): it keys the answer cache.
    release_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    # Coverage terms (entitlements/coverage.py): months, and the event each
    # starts from ("delivery" or "acceptance").
    upgrade_months: Mapped[int] = mapped_column(default=36, server_default="36")
    upgrade_starts_from: Mapped[str] = mapped_column(
        String(16), default="acceptance", server_default="acceptance"
    )
    warranty_months: Mapped[int] = mapped_column(default=36, server_default="36")
    warranty_starts_from: Mapped[str] = mapped_column(
        String(16), default="acceptance", server_default="acceptance"
    )
    support_months: Mapped[int] = mapped_column(default=36, server_default="36")
    support_starts_from: Mapped[str] = mapped_column(
        String(16), default="delivery", server_default="delivery"
    )
    # Security-fix releases go to every device of the product, covered or not.
    security_fixes_free: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Periodic inspections during the warranty, every this many months.
    inspection_months: Mapped[int] = mapped_column(default=6, server_default="6")
    # Release notes readable without a login (the customer portal, the API).
    public_notes: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Fault levels whose tickets are emergencies (the 10-minute reaction).
    emergency_levels: Mapped[list[int]] = mapped_column(
        JSON, default=lambda: [1], server_default="[1]"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    hardware_revisions: Mapped[list[HardwareRevision]] = relationship(
        back_populates="product", order_by="HardwareRevision.code", lazy="selectin"
    )

    def audit_view(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "description": self.description,
            **{f"{kind}_months": getattr(self, f"{kind}_months") for kind in COVERAGE_KINDS},
            **{
                f"{kind}_starts_from": getattr(self, f"{kind}_starts_from")
                for kind in COVERAGE_KINDS
            },
            "security_fixes_free": self.security_fixes_free,
            "public_notes": self.public_notes,
            "emergency_levels": self.emergency_levels,
        }


class HardwareRevision(Base):
    __tablename__ = "hardware_revisions"
    __table_args__ = (UniqueConstraint("product_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    product: Mapped[Product] = relationship(back_populates="hardware_revisions")

    def audit_view(self) -> dict[str, object]:
        return {"product_id": self.product_id, "code": self.code, "name": self.name}

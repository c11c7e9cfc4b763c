from __future__ import annotations

import getpass
from dataclasses import dataclass

from upgrade_server.accounts.roles import Permission, Role, allows


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (through a token or a session), a device, or the CLI."""

    kind: str  # "user", "device" or "cli"
    id: int | None
    label: str
    role: Role | None = None
    organisation_id: int | None = None

    @classmethod
    def cli(cls) -> Principal:
        try:
            who = getpass.getuser()
        except Exception:  # no user name in a bare container
            who = "unknown"
        return cls(kind="cli", id=None, label=f"cli:{who}", role=Role.ADMIN)

    @property
    def is_vendor(self) -> bool:
        return self.role is not None and self.role.is_vendor

    def may(self, permission: Permission) -> bool:
        return self.role is not None and allows(self.role, permission)

    def sees_organisation(self, organisation_id: int | None) -> bool:
        """Vendor staff see every organisation; customer staff only their own."""
        if self.is_vendor:
            return True
        return organisation_id is not None and organisation_id == self.organisation_id

"""Roles and what each may do: the one table every endpoint is checked against."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    # Vendor staff see every organisation.
    ADMIN = "admin"
    PUBLISHER = "publisher"
    SUPPORT = "support"
    VIEWER = "viewer"
    # Customer staff are bound to one organisation and see only its data.
    CUSTOMER_ADMIN = "customer-admin"
    CUSTOMER_VIEWER = "customer-viewer"

    @property
    def is_vendor(self) -> bool:
        return self in VENDOR_ROLES


VENDOR_ROLES = frozenset({Role.ADMIN, Role.PUBLISHER, Role.SUPPORT, Role.VIEWER})
CUSTOMER_ROLES = frozenset({Role.CUSTOMER_ADMIN, Role.CUSTOMER_VIEWER})


class Permission(StrEnum):
    ORGANISATION_READ = "organisation:read"
    ORGANISATION_WRITE = "organisation:write"
    USER_READ = "user:read"
    USER_WRITE = "user:write"
    TOKEN_MANAGE_OWN = "token:manage-own"
    TOKEN_MANAGE_ANY = "token:manage-any"
    PRODUCT_READ = "product:read"
    PRODUCT_WRITE = "product:write"
    DEVICE_READ = "device:read"
    DEVICE_WRITE = "device:write"
    AUDIT_READ = "audit:read"
    RELEASE_READ = "release:read"
    RELEASE_PUBLISH = "release:publish"
    SIGNING_MANAGE = "signing:manage"
    COVERAGE_MANAGE = "coverage:manage"
    SERVICE_MANAGE = "service:manage"
    SERVICE_CONFIRM = "service:confirm"
    SERVICE_REQUEST = "service:request"
    REPRESENTATIVES_MANAGE = "service:representatives"
    UPDATES_APPROVE = "updates:approve"


_ALL = frozenset(Role)
_EVERY_VENDOR = VENDOR_ROLES

# Who may do what. Reads by customer roles are further limited to their own
# organisation by the services; this table only says whether the action is open
# to the role at all.
GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.ORGANISATION_READ: _ALL,
    Permission.ORGANISATION_WRITE: frozenset({Role.ADMIN}),
    Permission.USER_READ: _EVERY_VENDOR | {Role.CUSTOMER_ADMIN},
    Permission.USER_WRITE: frozenset({Role.ADMIN, Role.CUSTOMER_ADMIN}),
    Permission.TOKEN_MANAGE_OWN: _ALL,
    Permission.TOKEN_MANAGE_ANY: frozenset({Role.ADMIN}),
    Permission.PRODUCT_READ: _ALL,
    Permission.PRODUCT_WRITE: frozenset({Role.ADMIN, Role.PUBLISHER}),
    Permission.DEVICE_READ: _ALL,
    Permission.DEVICE_WRITE: frozenset({Role.ADMIN, Role.SUPPORT}),
    Permission.AUDIT_READ: frozenset({Role.ADMIN}),
    Permission.RELEASE_READ: _ALL,
    Permission.RELEASE_PUBLISH: frozenset({Role.ADMIN, Role.PUBLISHER}),
    # Creating repositories, rotating keys and uploading offline signatures.
    Permission.SIGNING_MANAGE: frozenset({Role.ADMIN, Role.PUBLISHER}),
    # Contracts and manual overrides of coverage.
    Permission.COVERAGE_MANAGE: frozenset({Role.ADMIN}),
    # Sessions: the vendor's engineers plan them and record start and end;
    # the customer's users confirm each. Either side opens service requests.
    Permission.SERVICE_MANAGE: frozenset({Role.ADMIN, Role.SUPPORT}),
    Permission.SERVICE_CONFIRM: CUSTOMER_ROLES,
    Permission.SERVICE_REQUEST: frozenset({Role.ADMIN, Role.SUPPORT}) | CUSTOMER_ROLES,
    # The customer names its trained representatives for phone consultation.
    Permission.REPRESENTATIVES_MANAGE: frozenset({Role.ADMIN, Role.CUSTOMER_ADMIN}),
    # An organisation's maintenance windows, whether its updates wait for
    # approval, and approving releases for its devices.
    Permission.UPDATES_APPROVE: frozenset({Role.ADMIN, Role.CUSTOMER_ADMIN}),
}


def roles_for(permission: Permission) -> list[str]:
    """Role names granted a permission, in the form Flask-HTTPAuth checks."""
    return sorted(role.value for role in GRANTS[permission])


def allows(role: Role | str, permission: Permission) -> bool:
    return Role(role) in GRANTS[permission]

"""Who is asking on the DDI API: a device with its own token
(`Authorization: TargetToken <token>`), or a gateway with its organisation's
token (`Authorization: GatewayToken <token>`) asking for one of its devices.

Either way the answer is one row (update_check.DEVICE_COLUMNS plus what DDI
needs), read in one query through compiled_queries.py, as the native update
check reads its device. A token that is not the tenant's or the controller's
is refused as an unknown one is, so neither leaks which devices exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.engine import Connection

from upgrade_server import tokens
from upgrade_server.compiled_queries import compiled
from upgrade_server.device_edge.update_check import DEVICE_BY_TOKEN, DEVICE_COLUMNS
from upgrade_server.devices.models import Device, GatewayToken
from upgrade_server.errors import AuthenticationError
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import HardwareRevision, Product

WWW_AUTHENTICATE = 'TargetToken realm="hawkBit DDI"'
COLUMNS = (*DEVICE_COLUMNS, Device.serial, Organisation.slug, Device.installing_release_id)

# The native check's query by device token, and what DDI needs beside it.
_BY_TARGET_TOKEN = DEVICE_BY_TOKEN.add_columns(
    Device.serial, Organisation.slug, Device.installing_release_id
)
_BY_GATEWAY_TOKEN = (
    select(*COLUMNS)
    .select_from(GatewayToken)
    .join(Organisation, Organisation.id == GatewayToken.organisation_id)
    .join(
        Device,
        and_(Device.organisation_id == Organisation.id, Device.serial == bindparam("serial")),
    )
    .join(HardwareRevision, HardwareRevision.id == Device.hardware_revision_id)
    .join(Product, Product.id == Device.product_id)
    .where(GatewayToken.token_hash == bindparam("token_hash"), GatewayToken.revoked_at.is_(None))
)


def find_target(conn: Connection, tenant: str, controller_id: str, authorization: str) -> Any:
    """The device `controller_id` of `tenant`, as its credentials allow.
    Raises AuthenticationError."""
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    row = None
    if scheme == "TargetToken" and secret.startswith(tokens.DEVICE_TOKEN_PREFIX):
        row = compiled(_BY_TARGET_TOKEN, conn).first(
            conn, {"token_hash": tokens.hash_secret(secret)}
        )
        if row is not None and row.serial != controller_id:
            row = None
    elif scheme == "GatewayToken" and secret.startswith(tokens.GATEWAY_TOKEN_PREFIX):
        row = compiled(_BY_GATEWAY_TOKEN, conn).first(
            conn, {"token_hash": tokens.hash_secret(secret), "serial": controller_id}
        )
    # Tenants are case-insensitive in hawkBit (SWUpdate's default is DEFAULT).
    if row is None or row.slug != tenant.lower():
        raise AuthenticationError(
            "a TargetToken of this controller or a GatewayToken of this tenant is required"
        )
    return row

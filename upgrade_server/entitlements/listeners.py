"""The stored coverage follows what it is computed from: devices' dates and
organisation, their product's terms, their organisation's time zone. The
domains that own those publish an event (upgrade_server.events) and these
listeners store the devices' upgrade windows again, in the same transaction.
Contracts and overrides are entitlements' own: their changes refresh directly.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from upgrade_server import events
from upgrade_server.devices.models import Device
from upgrade_server.entitlements.service import refresh, refresh_where
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import Product


@events.devices_changed.connect
def _devices_changed(session: Session, *, devices: list[Device]) -> None:
    refresh(session, devices)


@events.product_terms_changed.connect
def _product_terms_changed(session: Session, *, product: Product) -> None:
    refresh_where(session, Device.product_id == product.id)


@events.organisation_timezone_changed.connect
def _organisation_timezone_changed(session: Session, *, organisation: Organisation) -> None:
    refresh_where(session, Device.organisation_id == organisation.id)

"""A product with a published release and a small fleet, and what its devices
report (install steps, alarms), for the rollout tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.factories import Caller, Factory
from tests.helpers.publishing import publish
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import Product
from upgrade_server.tickets.models import Alarm
from upgrade_server.updates.models import InstallEvent

_events = itertools.count(1)


@dataclass
class Fleet:
    publisher: Caller
    product: Product
    organisation: Organisation
    release_id: int
    version: str
    devices: list[Device]  # rev-a first, then rev-b

    def start(self, client: Any, expect: int = 201, **body: Any) -> Any:
        """POST a rollout of the release (stable, two waves by default)."""
        body.setdefault("channel", "stable")
        body.setdefault("waves", [{"share": 100}, {"share": 10000}])
        r = client.post(
            f"/api/v1/releases/{self.release_id}/rollouts",
            json=body,
            headers=self.publisher.headers,
        )
        assert r.status_code == expect, r.get_data(as_text=True)
        return r.get_json()


def fleet(client: Any, factory: Factory, rev_a: int = 6, rev_b: int = 2) -> Fleet:
    """A product with releases 1.0.0 and 1.1.0 (stable, both revisions) and
    devices on 1.0.0: `rev_a` of revision rev-a, then `rev_b` of rev-b."""
    publisher = factory.caller("publisher")
    product = factory.product()
    organisation = factory.organisation()
    db.session.commit()
    hardware = ["rev-a", "rev-b"]
    publish(client, publisher.headers, product.id, "1.0.0", hardware_revisions=hardware)
    r = publish(client, publisher.headers, product.id, "1.1.0", b"fw2", hardware_revisions=hardware)
    devices = [
        factory.device(organisation, product, hardware_revision=code, current_version="1.0.0")[0]
        for code, count in (("rev-a", rev_a), ("rev-b", rev_b))
        for _ in range(count)
    ]
    return Fleet(publisher, product, organisation, r.get_json()["id"], "1.1.0", devices)


def report(device: Device, release_id: int, status: str, at: datetime) -> None:
    """The device reports an install step for the release."""
    db.session.add(
        InstallEvent(
            device_id=device.id,
            release_id=release_id,
            version="1.1.0",
            event_id=f"ev-{next(_events)}",
            status=status,
            occurred_at=at,
            received_at=at,
        )
    )
    db.session.flush()


def raise_alarms(device: Device, at: datetime, count: int = 1) -> None:
    for _ in range(count):
        db.session.add(
            Alarm(
                device_id=device.id,
                alarm_id=f"al-{next(_events)}",
                event="raise",
                code="LINK_DOWN",
                level=3,
                occurred_at=at,
                received_at=at,
            )
        )
    db.session.flush()

"""An organisation whose devices are offered a release, and its people: the
world the approval and maintenance-window tests start from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.clock import first_of_month, today
from tests.helpers.portal import PASSWORD
from tests.helpers.publishing import publish
from upgrade_server.accounts import service as accounts
from upgrade_server.extensions import db


@dataclass
class World:
    organisation: Any
    other: Any  # another customer organisation
    product: Any
    devices: list[Any]  # two devices on 1.0.0, both offered 1.1.0
    update: dict[str, Any]  # the release 1.1.0 as the API gave it
    admin: Any  # the customer-admin (API token; also logs in to the portal)
    viewer: Any  # the customer-viewer
    outsider: Any  # the other organisation's customer-admin
    vendor: Any  # a vendor admin


def approval_world(client: Any, factory: Any) -> World:
    publisher = factory.caller("publisher")
    organisation = factory.organisation(timezone="Asia/Shanghai")
    other = factory.organisation()
    product = factory.product(name="Edge Gateway")
    db.session.commit()
    publish(client, publisher.headers, product.id, "1.0.0", b"one")
    update = publish(
        client,
        publisher.headers,
        product.id,
        "1.1.0",
        b"one-one",
        notes={"zh-CN": "## 新功能", "en": "## New"},
    ).get_json()
    accepted = first_of_month(today(), -11).isoformat()
    devices = [
        factory.device(
            organisation=organisation,
            product=product,
            current_version="1.0.0",
            accepted_on=accepted,
        )[0]
        for _ in range(2)
    ]
    world = World(
        organisation=organisation,
        other=other,
        product=product,
        devices=devices,
        update=update,
        admin=factory.caller("customer-admin", organisation),
        viewer=factory.caller("customer-viewer", organisation),
        outsider=factory.caller("customer-admin", other),
        vendor=factory.caller("admin"),
    )
    for caller in (world.admin, world.viewer):
        caller.user.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    return world


def need_approval(client: Any, world: World) -> None:
    """Turn customer approval on for the world's organisation."""
    r = client.put(
        f"/api/v1/organisations/{world.organisation.id}/update-approval",
        json={"updates_need_approval": True},
        headers=world.admin.headers,
    )
    assert r.status_code == 200, r.get_data(as_text=True)

"""Domain events (upgrade_server/events.py): a device's dates change and its
stored coverage follows, a ticket turns urgent and a notification is queued,
whichever way the change comes in. The API's ways are in test_entitlements.py
(dates, product terms, time zone: the update check's answer changes) and
test_notifications.py (tickets opened and raised, device alarms); here
provisioning (API and CLI), the portal, the CLI's tickets, and a process that
has only just started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from tests.helpers.portal import PASSWORD, csrf, login
from upgrade_server.accounts import service as accounts
from upgrade_server.devices.models import Device
from upgrade_server.entitlements.service import coverage_of
from upgrade_server.extensions import db
from upgrade_server.tickets.notify import Notification

ACCEPTED = "2026-03-02"
UPGRADES_THROUGH = "2029-03-01"  # the products' 36 months of upgrades from acceptance


def _stored_through(serial: str) -> str | None:
    """The last covered day the update check reads (None: nothing stored)."""
    db.session.expire_all()
    device = db.session.scalars(select(Device).where(Device.serial == serial)).one()
    return (device.upgrade_windows or {}).get("through")


def _live_through(serial: str) -> str | None:
    """The same day as the coverage view works it out, from the rules."""
    device = db.session.scalars(select(Device).where(Device.serial == serial)).one()
    kinds = {k["kind"]: k for k in coverage_of(db.session, device)["kinds"]}
    through = kinds["upgrades"]["covered_through"]
    return through.isoformat() if through else None


def test_devices_provisioned_from_the_cli_have_their_coverage_stored(runner, factory, tmp_path):
    org = factory.organisation()
    product = factory.product()
    db.session.commit()
    created = runner.invoke(
        args=["device", "create", "--serial", "EV-1", "--product", product.code,
              "--revision", "rev-a", "--org", org.slug, "--accepted-on", ACCEPTED]
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    sheet = tmp_path / "devices.csv"
    sheet.write_text(
        "serial,product,hardware_revision,organisation,accepted_on\n"
        f"EV-2,{product.code},rev-a,{org.slug},{ACCEPTED}\n"
        f"EV-3,{product.code},rev-b,{org.slug},{ACCEPTED}\n"
    )
    imported = runner.invoke(
        args=["device", "import", str(sheet), "--tokens-out", str(tmp_path / "tokens.csv")]
    )
    assert imported.exit_code == 0, imported.output
    for serial in ("EV-1", "EV-2", "EV-3"):
        assert _stored_through(serial) == UPGRADES_THROUGH == _live_through(serial)


def test_devices_provisioned_through_the_api_have_their_coverage_stored(client, factory):
    org = factory.organisation()
    product = factory.product()
    admin = factory.caller("admin")
    db.session.commit()
    one = {"serial": "EV-4", "product": product.code, "hardware_revision": "rev-a",
           "organisation": org.slug, "accepted_on": ACCEPTED}  # fmt: skip
    r = client.post("/api/v1/devices", json=one, headers=admin.headers)
    assert r.status_code == 201, r.get_json()
    sheet = (
        "serial,product,hardware_revision,organisation,accepted_on\n"
        f"EV-5,{product.code},rev-a,{org.slug},{ACCEPTED}\n"
    )
    r = client.post(
        "/api/v1/devices/import",
        data=sheet.encode(),
        content_type="text/csv",
        headers=admin.headers,
    )
    assert r.status_code == 201, r.get_json()
    for serial in ("EV-4", "EV-5"):
        assert _stored_through(serial) == UPGRADES_THROUGH == _live_through(serial)


def test_an_acceptance_signed_off_in_the_portal_stores_the_coverage_it_starts(client, factory):
    org = factory.organisation()
    device, _ = factory.device(organisation=org, delivered_on="2026-02-10")
    support = factory.caller("support")
    customer = factory.user("customer-admin", org)
    customer.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    assert _stored_through(device.serial) is None  # delivered, in its trial run
    body = {
        "kind": "acceptance",
        "organisation_id": org.id,
        "device_ids": [device.id],
        "engineers": ["Wang Wei"],
        "customer_representative": "Li Na",
    }
    r = client.post("/api/v1/service-sessions", json=body, headers=support.headers)
    assert r.status_code == 201, r.get_json()
    session_id = r.get_json()["id"]
    url = f"/api/v1/service-sessions/{session_id}"
    portal_url = f"/portal/service/sessions/{session_id}"
    # Ended at 10:00 on 2 March in Shanghai, the organisation's zone: accepted that day.
    r = client.post(f"{url}/start", json={"at": "2026-03-02T01:00:00Z"}, headers=support.headers)
    assert r.status_code == 200, r.get_json()
    login(client, customer.email)
    page = client.get("/portal/service").get_data(as_text=True)
    r = client.post(f"{portal_url}/confirm-start", data={"csrf_token": csrf(page)})
    assert r.status_code == 302
    r = client.post(f"{url}/end", json={"at": "2026-03-02T02:00:00Z"}, headers=support.headers)
    assert r.status_code == 200, r.get_json()

    page = client.get("/portal/service").get_data(as_text=True)
    r = client.post(f"{portal_url}/confirm-end", data={"csrf_token": csrf(page)})
    assert r.status_code == 302
    assert db.session.get(Device, device.id).accepted_on.isoformat() == ACCEPTED
    assert _stored_through(device.serial) == UPGRADES_THROUGH == _live_through(device.serial)


def _queued(ticket_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(Notification.key).where(Notification.ticket_id == ticket_id).order_by("id")
        )
    )


def test_urgent_tickets_from_the_cli_and_the_portal_are_queued_for_notification(
    runner, client, factory
):
    org = factory.organisation()
    device, _ = factory.device(organisation=org)
    engineer = factory.user("support")
    engineer.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    as_engineer = ["--as", engineer.email]
    opened = runner.invoke(
        args=["tickets", "open", "--org", org.slug, "--level", "2", "--title", "Link down",
              "--device", device.serial, *as_engineer]
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    ticket_id = int(opened.output.split()[1])
    assert _queued(ticket_id) == [f"ticket:{ticket_id}:level:2"]

    login(client, engineer.email)
    page = client.get(f"/portal/tickets/{ticket_id}?lang=en").get_data(as_text=True)
    form = {"csrf_token": csrf(page), "emergency": "1", "reason": "the hospital's link"}
    assert client.post(f"/portal/tickets/{ticket_id}/emergency", data=form).status_code == 302
    queued = _queued(ticket_id)
    assert len(queued) == 2 and queued[1].startswith(f"ticket:{ticket_id}:emergency:")


LISTENED = """
import sys
from upgrade_server import events
{imports}
silent = [name for name in {names} if not getattr(events, name).receivers]
sys.exit(f"no listener: {{silent}}" if silent else 0)
"""

COVERAGE_EVENTS = ["devices_changed", "product_terms_changed", "organisation_timezone_changed"]
EVERY_EVENT = [*COVERAGE_EVENTS, "ticket_urgency_changed"]


def _listened(imports: str, names: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        "UPGRADE_SERVER_INSTANCE_PATH": str(tmp_path),
        "UPGRADE_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'events.db'}",
        # No background threads in this short-lived process.
        "UPGRADE_SERVER_TUF_UPKEEP_SECONDS": "0",
        "UPGRADE_SERVER_STAGING_CLEANUP_SECONDS": "0",
        "UPGRADE_SERVER_NOTIFY_INTERVAL_SECONDS": "0",
        "UPGRADE_SERVER_REPORT_BATCH_SECONDS": "0",
    }
    code = LISTENED.format(imports=imports, names=names)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_event_has_its_listener_in_a_new_process(tmp_path):
    # The app, as the server, the CLI and the background jobs build it.
    built = _listened("from upgrade_server import create_app\ncreate_app()", EVERY_EVENT, tmp_path)
    assert built.returncode == 0, built.stderr
    # The models alone (as Alembic loads them): the coverage is kept current.
    models = _listened("import upgrade_server.models", COVERAGE_EVENTS, tmp_path)
    assert models.returncode == 0, models.stderr
    # The tickets' service alone: its urgent tickets are queued.
    tickets = _listened(
        "import upgrade_server.tickets.service", ["ticket_urgency_changed"], tmp_path
    )
    assert tickets.returncode == 0, tickets.stderr

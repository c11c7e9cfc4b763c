"""Sites: an organisation's places, managed by admins; a device stands at one,
and its tickets' deadlines use the site's region and time zone."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from tests import clock
from tests.helpers.problems import assert_problem
from upgrade_server.audit.models import AuditEntry
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db
from upgrade_server.sites.models import Site


@pytest.fixture
def beijing(factory):
    """A Beijing customer with a site in Shanghai."""
    org = factory.organisation(region="beijing", timezone="Asia/Shanghai")
    db.session.commit()
    return {
        "org": org,
        "admin": factory.caller("admin"),
        "support": factory.caller("support"),
        "customer": factory.caller("customer-admin", org),
        "stranger": factory.caller("customer-admin", factory.organisation()),
    }


def _add_site(client, caller, org_id, **body):
    return client.post(f"/api/v1/organisations/{org_id}/sites", json=body, headers=caller.headers)


def _alarm(client, token, alarm_id="a-1", level=1):
    return client.post(
        "/api/device/v1/alarms",
        json={
            "alarm_id": alarm_id,
            "code": "PSU_FAIL",
            "level": level,
            "occurred_at": clock.NOW.isoformat(),
        },
        headers={"Authorization": f"Bearer {token}"},
    )


def _on_site_hours(ticket: dict) -> float:
    due = next(d for d in ticket["deadlines"] if d["name"] == "on_site")
    opened = datetime.fromisoformat(ticket["opened_at"])
    return (datetime.fromisoformat(due["due_at"]) - opened) / timedelta(hours=1)


def test_a_device_at_a_shanghai_site_of_a_beijing_customer_gets_other_region_times(
    client, factory, beijing
):
    org = beijing["org"]
    r = _add_site(client, beijing["admin"], org.id, name="Shanghai DC", region="other")
    assert r.status_code == 201, r.get_json()
    site = r.get_json()
    assert (site["region"], site["timezone"]) == ("other", None)
    assert (site["effective_region"], site["effective_timezone"]) == ("other", "Asia/Shanghai")
    device, token = factory.device(organisation=org, site="Shanghai DC")
    assert device.site_id == site["id"]
    ticket_id = _alarm(client, token).get_json()["ticket_id"]
    ticket = client.get(f"/api/v1/tickets/{ticket_id}", headers=beijing["customer"].headers)
    body = ticket.get_json()
    assert (body["region"], body["timezone"]) == ("other", "Asia/Shanghai")
    assert _on_site_hours(body) == 24  # level 1 elsewhere, not Beijing's 2 hours
    # A device of the same customer with no site: the organisation's region.
    _, at_home = factory.device(organisation=org)
    home = client.get(
        f"/api/v1/tickets/{_alarm(client, at_home, 'h-1').get_json()['ticket_id']}",
        headers=beijing["customer"].headers,
    ).get_json()
    assert (home["region"], _on_site_hours(home)) == ("beijing", 2)


def test_a_ticket_on_devices_at_several_sites_takes_the_most_urgent_region(
    client, factory, beijing
):
    org = beijing["org"]
    for name, region, zone in (("Urumqi", "other", "Asia/Urumqi"), ("Haidian", None, None)):
        r = _add_site(client, beijing["admin"], org.id, name=name, region=region, timezone=zone)
        assert r.status_code == 201
    far, _ = factory.device(organisation=org, site="Urumqi")
    near, _ = factory.device(organisation=org, site="Haidian")
    only_far = client.post(
        "/api/v1/tickets",
        json={"title": "link down", "level": 3, "device_ids": [far.id]},
        headers=beijing["customer"].headers,
    ).get_json()
    assert (only_far["region"], only_far["timezone"]) == ("other", "Asia/Urumqi")
    assert _on_site_hours(only_far) == 48
    both = client.post(
        "/api/v1/tickets",
        json={"title": "link down", "level": 3, "device_ids": [far.id, near.id]},
        headers=beijing["customer"].headers,
    ).get_json()
    # Haidian follows the organisation: Beijing, 4 hours at level 3.
    assert (both["region"], both["timezone"]) == ("beijing", "Asia/Shanghai")
    assert _on_site_hours(both) == 4


def test_sites_are_managed_by_admins_scoped_and_audited(client, factory, beijing):
    org = beijing["org"]
    assert_problem(_add_site(client, beijing["support"], org.id, name="X"), 403, "forbidden")
    assert_problem(_add_site(client, beijing["customer"], org.id, name="X"), 403, "forbidden")
    bad = _add_site(client, beijing["admin"], org.id, name="X", timezone="Mars/Olympus")
    assert_problem(bad, 422, "invalid-input")
    created = _add_site(client, beijing["admin"], org.id, name="Pudong", timezone="Asia/Shanghai")
    site = created.get_json()
    assert_problem(_add_site(client, beijing["admin"], org.id, name="Pudong"), 409, "conflict")
    # Customers read their own organisation's sites; another customer's are a 404.
    mine = client.get(f"/api/v1/organisations/{org.id}/sites", headers=beijing["customer"].headers)
    assert [s["name"] for s in mine.get_json()["items"]] == ["Pudong"]
    theirs = client.get(
        f"/api/v1/organisations/{org.id}/sites", headers=beijing["stranger"].headers
    )
    assert_problem(theirs, 404, "not-found")
    assert_problem(
        client.get(f"/api/v1/sites/{site['id']}", headers=beijing["stranger"].headers),
        404,
        "not-found",
    )
    changed = client.patch(
        f"/api/v1/sites/{site['id']}",
        json={"region": "other", "timezone": None},
        headers=beijing["admin"].headers,
    ).get_json()
    assert (changed["region"], changed["timezone"], changed["effective_timezone"]) == (
        "other",
        None,
        org.timezone,
    )
    # A site with devices stays; an empty one goes.
    factory.device(organisation=org, site="Pudong")
    used = client.delete(f"/api/v1/sites/{site['id']}", headers=beijing["admin"].headers)
    assert_problem(used, 409, "conflict")
    empty = _add_site(client, beijing["admin"], org.id, name="Old lab").get_json()
    gone = client.delete(f"/api/v1/sites/{empty['id']}", headers=beijing["admin"].headers)
    assert gone.status_code == 204
    actions = db.session.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.object_type == "sites", AuditEntry.organisation_id == org.id)
        .order_by(AuditEntry.id)
    ).all()
    assert actions == ["site.create", "site.update", "site.create", "site.delete"]


def test_devices_name_their_site_and_a_new_name_adds_one(client, factory, beijing):
    org = beijing["org"]
    product = factory.product()
    db.session.commit()
    csv = (
        "serial,product,hardware_revision,organisation,site\n"
        f"S-1,{product.code},rev-a,{org.slug},Line 1\n"
        f"S-2,{product.code},rev-a,{org.slug},Line 1\n"
        f"S-3,{product.code},rev-a,{org.slug},\n"
    )
    r = client.post(
        "/api/v1/devices/import",
        data=csv.encode(),
        content_type="text/csv",
        headers=beijing["support"].headers,
    )
    assert r.status_code == 201, r.get_json()
    sites = db.session.scalars(select(Site).where(Site.organisation_id == org.id)).all()
    assert [s.name for s in sites] == ["Line 1"]
    devices = {
        d.serial: d
        for d in db.session.scalars(select(Device).where(Device.organisation_id == org.id))
    }
    assert devices["S-1"].site_id == devices["S-2"].site_id == sites[0].id
    assert devices["S-3"].site_id is None
    listed = client.get(
        "/api/v1/devices", query_string={"site": "Line 1"}, headers=beijing["customer"].headers
    ).get_json()["items"]
    assert sorted(d["serial"] for d in listed) == ["S-1", "S-2"]
    assert listed[0]["site_region"] == "beijing" and listed[0]["site_id"] == sites[0].id
    # Moved to another site by name (a new one), then to none.
    moved = client.patch(
        f"/api/v1/devices/{devices['S-1'].id}",
        json={"site": "Line 2"},
        headers=beijing["support"].headers,
    ).get_json()
    assert moved["site"] == "Line 2" and moved["site_id"] not in (None, sites[0].id)
    cleared = client.patch(
        f"/api/v1/devices/{devices['S-1'].id}",
        json={"site": ""},
        headers=beijing["support"].headers,
    ).get_json()
    assert (cleared["site"], cleared["site_id"]) == ("", None)
    # A device moved to another organisation keeps its site's name, there.
    other = factory.organisation()
    db.session.commit()
    moved = client.patch(
        f"/api/v1/devices/{devices['S-2'].id}",
        json={"organisation_id": other.id},
        headers=beijing["support"].headers,
    ).get_json()
    assert moved["site"] == "Line 1"
    assert db.session.get(Site, moved["site_id"]).organisation_id == other.id


def test_upgrading_turns_free_text_sites_into_sites_and_back(scratch_url):
    """Migration 0012: each organisation's distinct site names become its sites
    (following the organisation), devices point at them; tickets get their
    organisation's zone. The downgrade gives the names back."""
    from sqlalchemy import create_engine, text

    from upgrade_server.migrate import downgrade, upgrade

    upgrade(scratch_url, "0011")
    at = clock.NOW.isoformat()
    engine = create_engine(scratch_url)
    with engine.begin() as conn:
        for org_id, zone in ((1, "Asia/Shanghai"), (2, "Asia/Urumqi")):
            conn.execute(
                text(
                    "INSERT INTO organisations (id, slug, name, timezone, region, created_at)"
                    " VALUES (:id, :slug, 'O', :zone, 'beijing', :at)"
                ),
                {"id": org_id, "slug": f"o-{org_id}", "zone": zone, "at": at},
            )
        conn.execute(
            text(
                "INSERT INTO products (id, code, name, description, created_at)"
                " VALUES (1, 'p', 'P', '', :at)"
            ),
            {"at": at},
        )
        conn.execute(
            text(
                "INSERT INTO hardware_revisions (id, product_id, code, name, created_at)"
                " VALUES (1, 1, 'r', 'R', :at)"
            ),
            {"at": at},
        )
        for n, org_id, site in ((1, 1, "Lab"), (2, 1, "Lab"), (3, 1, ""), (4, 2, "Lab")):
            conn.execute(
                text(
                    "INSERT INTO devices (id, serial, product_id, hardware_revision_id,"
                    " organisation_id, site, channel, created_at)"
                    " VALUES (:n, :serial, 1, 1, :org, :site, 'stable', :at)"
                ),
                {"n": n, "serial": f"S-{n}", "org": org_id, "site": site, "at": at},
            )
        conn.execute(
            text(
                "INSERT INTO tickets (id, organisation_id, region, level, opened_level,"
                " level_changes, status, title, description, source, alarm_count, opened_at,"
                " opened_by) VALUES (1, 2, 'beijing', 3, 3, '[]', 'new', 't', '', 'api', 0,"
                " :at, 'x')"
            ),
            {"at": at},
        )
    upgrade(scratch_url, "0012")
    with engine.connect() as conn:
        sites = conn.execute(
            text("SELECT id, organisation_id, name, region, timezone FROM sites ORDER BY id")
        ).all()
        assert [tuple(s[1:]) for s in sites] == [(1, "Lab", None, None), (2, "Lab", None, None)]
        devices = dict(conn.execute(text("SELECT id, site_id FROM devices")).all())
        assert devices == {1: sites[0][0], 2: sites[0][0], 3: None, 4: sites[1][0]}
        zone = conn.execute(text("SELECT timezone FROM tickets")).scalar_one()
        assert zone == "Asia/Urumqi"
    downgrade(scratch_url, "0011")
    with engine.connect() as conn:
        names = dict(conn.execute(text("SELECT id, site FROM devices")).all())
        assert names == {1: "Lab", 2: "Lab", 3: "", 4: "Lab"}
    engine.dispose()

"""The console's devices: finding devices (search, filters, order, pages,
CSV), a device's page with its facts and its one timeline, who may change what."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from tests.clock import NOW, at, today
from tests.helpers.console import Statements, as_staff, page
from tests.helpers.portal import csrf
from tests.helpers.publishing import publish
from upgrade_server.accounts.principal import Principal
from upgrade_server.devices import service as device_service
from upgrade_server.devices.models import Device
from upgrade_server.entitlements import contracts
from upgrade_server.entitlements.service import coverage_of_each
from upgrade_server.extensions import db
from upgrade_server.service import sessions
from upgrade_server.tickets import service as tickets
from upgrade_server.tickets.models import Alarm
from upgrade_server.updates.models import InstallEvent


def serials(html: str) -> list[str]:
    """The serial numbers the list shows, in its order."""
    return re.findall(r'<td class="mono"><a href="/console/devices/\d+">([^<]+)</a>', html)


@pytest.fixture
def fleet(factory):
    """Six devices of two organisations, two products, in several states."""
    day = today()
    acme = factory.organisation(name="Acme", slug="acme")
    zenith = factory.organisation(name="Zenith", slug="zenith", timezone="America/New_York")
    gw, cam = factory.product(code="gw"), factory.product(code="cam", revisions=("r1",))
    made = {}
    for serial, org, product, kw in (
        ("AB-100", acme, gw, {"accepted_on": (day - timedelta(days=100)).isoformat()}),
        ("AB-101", acme, gw, {"accepted_on": (day - timedelta(days=3 * 365)).isoformat()}),
        ("AB-200", acme, cam, {"accepted_on": (day - timedelta(days=5 * 365)).isoformat()}),
        ("ZX-100", zenith, gw, {"channel": "beta", "hardware_revision": "rev-b"}),
        ("ZX-101", zenith, gw, {"current_version": "1.10.0"}),
        ("ZX-102", zenith, gw, {"current_version": "1.9.0"}),
    ):
        made[serial], _secret = factory.device(org, product, serial=serial, **kw)
    made["AB-100"].last_seen_at = NOW - timedelta(hours=2)
    made["AB-101"].last_seen_at = NOW - timedelta(days=40)
    made["ZX-100"].last_seen_at = NOW - timedelta(days=3)
    db.session.commit()
    return made


def test_a_serial_is_found_by_its_beginning_whatever_the_case(client, factory, fleet):
    as_staff(client, factory, "support")
    assert serials(page(client, "/console/devices?q=ab-1")) == ["AB-100", "AB-101"]
    assert serials(page(client, "/console/devices?q=zx-101")) == ["ZX-101"]
    html = page(client, "/console/devices?q=nothing-like-it")
    assert serials(html) == [] and "No device matches these filters." in html
    # The % of a LIKE pattern is a character like any other.
    assert serials(page(client, "/console/devices?q=%25")) == []
    # Nonsense in the query string is ignored, never a 500.
    for odd in ("silent=-1", "page=x", "sort=evil", "organisation=1e9", "coverage=all"):
        assert len(serials(page(client, f"/console/devices?{odd}"))) == 6, odd
    page(client, "/console/devices?q=%00", 400)  # the app refuses a NUL anywhere
    assert serials(page(client, "/console/devices?q=ab-10&silent=0")) == ["AB-100", "AB-101"]


FILTERS = [
    ("organisation={zenith}", ["ZX-100", "ZX-101", "ZX-102"]),
    ("product={cam}", ["AB-200"]),
    ("version=1.10.0", ["ZX-101"]),
    ("hardware=rev-b", ["ZX-100"]),
    ("hardware=r1", ["AB-200"]),
    ("channel=beta", ["ZX-100"]),
    ("coverage=covered", ["AB-100", "AB-101"]),
    ("coverage=ending", ["AB-101"]),
    ("coverage=ended", ["AB-200"]),
    ("coverage=not-started", ["ZX-100", "ZX-101", "ZX-102"]),
    ("silent=30", ["AB-101", "AB-200", "ZX-101", "ZX-102"]),
    ("silent=1", ["AB-101", "AB-200", "ZX-100", "ZX-101", "ZX-102"]),
    ("organisation={acme}&coverage=covered&silent=30", ["AB-101"]),
]


def test_each_filter_narrows_the_list(client, factory, fleet):
    as_staff(client, factory, "viewer")
    ids = {
        "zenith": fleet["ZX-100"].organisation_id,
        "acme": fleet["AB-100"].organisation_id,
        "cam": fleet["AB-200"].product_id,
    }
    for query, expected in FILTERS:
        html = page(client, "/console/devices?" + query.format(**ids))
        assert serials(html) == expected, query
        assert f"{len(expected)} devices match." in html or (
            len(expected) == 1 and "One device matches." in html
        )


def test_the_list_shows_each_devices_upgrade_coverage(client, factory, fleet):
    as_staff(client, factory, "viewer")
    html = page(client, "/console/devices?organisation=" + str(fleet["AB-100"].organisation_id))
    rows = html.split("<tr>")[2:]
    assert "covered</span>" in rows[0] and "through" in rows[0]
    assert "covered, ending within 30 days" in rows[1]
    assert "ended" in rows[2]


def test_sorting_by_each_column_both_ways(client, factory, fleet):
    as_staff(client, factory, "viewer")
    assert serials(page(client, "/console/devices?sort=serial&order=desc"))[:2] == [
        "ZX-102",
        "ZX-101",
    ]
    assert serials(page(client, "/console/devices?sort=seen&order=desc"))[:3] == [
        "AB-100",
        "ZX-100",
        "AB-101",
    ]
    by_org = serials(page(client, "/console/devices?sort=organisation&order=desc"))
    assert by_org[:3] == ["ZX-102", "ZX-101", "ZX-100"]
    html = page(client, "/console/devices?sort=seen")
    assert 'aria-sort="ascending"' in html
    # A column's link turns the order round, keeping the filters.
    html = page(client, "/console/devices?q=ab&sort=seen")
    assert 'href="/console/devices?q=ab&amp;sort=seen&amp;order=desc"' in html


def test_versions_sort_in_version_order_where_a_release_names_them(client, factory, fleet):
    publisher = factory.caller("publisher")
    for version in ("1.9.0", "1.10.0"):
        publish(client, publisher.headers, fleet["ZX-101"].product_id, version)
    as_staff(client, factory, "viewer")
    # 1.9 before 1.10 (not as text), devices without a version last.
    assert serials(page(client, "/console/devices?q=zx&sort=version")) == [
        "ZX-102",
        "ZX-101",
        "ZX-100",
    ]
    assert serials(page(client, "/console/devices?q=zx&sort=version&order=desc")) == [
        "ZX-101",
        "ZX-102",
        "ZX-100",
    ]


def test_pages_of_fifty_in_a_stable_order(client, factory):
    organisation, product = factory.organisation(), factory.product()
    for i in range(55):
        factory.device(organisation, product, serial=f"PG-{i:03d}")
    as_staff(client, factory, "viewer")
    first = page(client, "/console/devices?q=pg")
    assert serials(first) == [f"PG-{i:03d}" for i in range(50)]
    assert "55 devices match." in first and 'rel="next"' in first and 'rel="prev"' not in first
    second = page(client, "/console/devices?q=pg&page=2")
    assert serials(second) == [f"PG-{i:03d}" for i in range(50, 55)]
    assert 'rel="prev"' in second and 'rel="next"' not in second
    # Filtered by coverage, the first page is not counted (that reads every
    # device's windows); the last one knows.
    first = page(client, "/console/devices?q=pg&coverage=not-started")
    assert "Devices matching the filters, 50 a page:" in first and "match." not in first
    second = page(client, "/console/devices?q=pg&coverage=not-started&page=2")
    assert "55 devices match." in second


def test_the_csv_file_holds_the_filtered_set(client, factory, fleet):
    as_staff(client, factory, "viewer")
    zenith = fleet["ZX-100"].organisation_id
    html = page(client, f"/console/devices?organisation={zenith}&sort=serial&order=desc")
    assert f'href="/console/devices.csv?organisation={zenith}&amp;order=desc"' in html
    r = client.get(f"/console/devices.csv?organisation={zenith}&order=desc")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == 'attachment; filename="devices.csv"'
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["serial"] for row in rows] == ["ZX-102", "ZX-101", "ZX-100"]
    assert rows[2]["organisation"] == "zenith" and rows[2]["channel"] == "beta"
    assert rows[2]["hardware_revision"] == "rev-b" and rows[2]["upgrade_coverage"] == "not-started"
    assert rows[2]["last_seen_at"] == (NOW - timedelta(days=3)).isoformat()
    # A customer's site name is never a formula in the reader's spreadsheet.
    device_service.update_device(
        db.session, Principal.cli(), fleet["ZX-100"].id, {"site": "=HYPERLINK(1)"}
    )
    db.session.commit()
    r = client.get(f"/console/devices.csv?organisation={zenith}&q=zx-100")
    assert next(csv.DictReader(io.StringIO(r.get_data(True))))["site"] == "'=HYPERLINK(1)"
    covered = list(
        csv.DictReader(io.StringIO(client.get("/console/devices.csv?q=ab-100").get_data(True)))
    )
    assert covered[0]["upgrades_covered_through"] and covered[0]["upgrade_coverage"] == "covered"


def _statements_for_list(client, factory, n):
    organisation, product = factory.organisation(), factory.product()
    for _ in range(n):
        factory.device(organisation, product, accepted_on=today().isoformat())
    with Statements() as sql:
        page(client, "/console/devices")
        page(client, "/console/devices?coverage=covered&sort=version")
    return sql.count


def test_statements_per_page_do_not_grow_with_the_rows(client, factory):
    as_staff(client, factory, "viewer")
    few = _statements_for_list(client, factory, 3)
    many = _statements_for_list(client, factory, 30)
    assert few == many and few <= 24


@pytest.fixture
def history(factory, fleet):
    """AB-100's history, from every source, at known times."""
    cli = Principal.cli()
    device = fleet["AB-100"]
    day = today()
    db.session.add(
        InstallEvent(
            device_id=device.id,
            version="2.0.0",
            event_id="e-1",
            status="installed",
            occurred_at=at(day - timedelta(days=5), 3),
        )
    )
    db.session.add(
        Alarm(
            device_id=device.id,
            alarm_id="a-1",
            code="FAN-STALL",
            level=2,
            message="fan 2 stopped",
            occurred_at=at(day - timedelta(days=4), 3),
        )
    )
    ticket = tickets.open_ticket(
        db.session,
        cli,
        {
            "organisation_id": device.organisation_id,
            "level": 2,
            "title": "Fan noise",
            "device_ids": [device.id],
        },
        via="api",
    )
    ticket.opened_at = at(day - timedelta(days=3), 3)
    entry = sessions.create_session(
        db.session,
        cli,
        {
            "organisation_id": device.organisation_id,
            "kind": "inspection",
            "mode": "on-site",
            "device_ids": [device.id],
            "planned_start": at(day - timedelta(days=2), 3),
        },
    )
    contracts.create_contract(
        db.session,
        cli,
        {
            "device_id": device.id,
            "kind": "upgrades",
            "starts_on": day,
            "ends_on": day + timedelta(days=400),
            "reference": "C-77",
        },
    )
    # The organisation's contract for every device of a product is its too.
    contracts.create_contract(
        db.session,
        cli,
        {
            "organisation_id": device.organisation_id,
            "product_id": device.product_id,
            "kind": "support",
            "starts_on": day,
            "ends_on": day + timedelta(days=30),
            "reference": "C-ALL",
        },
    )
    # Another device's contract is not this one's history.
    contracts.create_contract(
        db.session,
        cli,
        {
            "device_id": fleet["AB-101"].id,
            "kind": "support",
            "starts_on": day,
            "ends_on": day + timedelta(days=10),
            "reference": "C-OTHER",
        },
    )
    db.session.commit()
    return {"device": device, "ticket": ticket, "session": entry}


def test_the_timeline_merges_every_source_newest_first(client, factory, history):
    as_staff(client, factory, "support")
    device = history["device"]
    html = page(client, f"/console/devices/{device.id}")
    timeline = html[html.index('id="timeline"') :]
    items = re.findall(r'<li class="timeline-(\w+)">\s*<time datetime="[^"]+">([^<]+)<', timeline)
    kinds = [kind for kind, _ in items]
    # The contracts today, the registration just before; then 2, 3, 4 and 5 days ago.
    assert kinds == ["coverage", "coverage", "device", "session", "ticket", "alarm", "install"]
    assert "Contract C-ALL added" in timeline and "(every device of the organisation)" in timeline
    assert "C-OTHER" not in timeline
    # Times in the organisation's zone: 03:00 UTC is 11:00 in Shanghai.
    day = today()
    assert (f"{day - timedelta(days=5)} 11:00 (Asia/Shanghai)") in timeline
    assert "Alarm FAN-STALL raised, level 2: fan 2 stopped" in timeline
    assert f"Ticket #{history['ticket'].id} opened, level 2: Fan noise" in timeline
    assert "Version 2.0.0: installed" in timeline and "Contract C-77 added" in timeline
    assert f"Service session #{history['session'].id}, inspection (on site): planned" in timeline
    accepted = (day - timedelta(days=100)).isoformat()
    assert re.search(rf"Registered by cli:[^;<]+; accepted: {accepted}<", timeline)


def test_a_zenith_devices_times_are_in_new_york(client, factory, fleet):
    as_staff(client, factory, "viewer")
    html = page(client, f"/console/devices/{fleet['ZX-100'].id}")
    assert "(America/New_York)" in html and "Asia/Shanghai" not in html


def test_the_device_page_shows_its_facts_and_coverage(client, factory, history):
    as_staff(client, factory, "viewer")
    device = history["device"]
    html = page(client, f"/console/devices/{device.id}")
    assert "Device AB-100" in html and "Acme" in html and "rev-a" in html
    assert "Software upgrades" in html and "Technical support" in html
    assert (today() + timedelta(days=400)).isoformat() in html  # the contract's last day
    page(client, "/console/devices/999999", 404)


def _statements_for_device(client, device, n):
    for i in range(n):
        occurred = NOW - timedelta(hours=i + 1)
        db.session.add(
            InstallEvent(
                device_id=device.id,
                version="2.0.0",
                event_id=f"n-{n}-{i}",
                status="downloading",
                occurred_at=occurred,
            )
        )
        db.session.add(
            Alarm(
                device_id=device.id,
                alarm_id=f"n-{n}-{i}",
                code="X",
                level=3,
                occurred_at=occurred,
            )
        )
    db.session.commit()
    with Statements() as sql:
        html = page(client, f"/console/devices/{device.id}")
    return sql.count, html.count('<li class="timeline-')


def test_statements_on_the_device_page_do_not_grow_with_its_history(client, factory, history):
    as_staff(client, factory, "support")
    few, _ = _statements_for_device(client, history["device"], 3)
    many, shown_many = _statements_for_device(client, factory.device()[0], 30)
    assert few == many and few <= 16
    assert shown_many == 61  # 30 installs, 30 alarms, its registration


def test_a_viewer_sees_no_write_action_and_cannot_post_one(client, factory, fleet):
    as_staff(client, factory, "viewer")
    device = fleet["AB-100"]
    html = page(client, f"/console/devices/{device.id}")
    assert 'method="post"' not in html.replace('method="post" action="/console/logout"', "")
    token = csrf(html)
    r = client.post(
        f"/console/devices/{device.id}/channel", data={"channel": "beta", "csrf_token": token}
    )
    assert r.status_code == 403
    assert db.session.get(Device, device.id).channel == "stable"


def test_a_support_engineer_moves_a_device_to_another_channel(client, factory, fleet):
    as_staff(client, factory, "support")
    device = fleet["AB-100"]
    html = page(client, f"/console/devices/{device.id}")
    token = csrf(html)
    r = client.post(
        f"/console/devices/{device.id}/channel", data={"channel": "beta", "csrf_token": token}
    )
    assert r.status_code == 302
    html = page(client, r.headers["Location"])
    assert "The device is now on the beta channel." in html
    assert "channel: stable → beta" in html  # and the timeline says so
    r = client.post(
        f"/console/devices/{device.id}/channel", data={"channel": "nightly", "csrf_token": token}
    )
    assert r.status_code == 422 and 'role="alert"' in r.get_data(as_text=True)


def test_zh_cn_pages_show_no_raw_code(client, factory, history):
    as_staff(client, factory, "support", lang="zh-CN")
    device = history["device"]
    for path in ("/console/devices", f"/console/devices/{device.id}"):
        html = page(client, path)
        text = re.sub(r"<[^>]+>", " ", html)
        for code in ("not-started", "installed", "inspection", "on-site", "upgrades", "covered"):
            assert not re.search(rf"(?<![\w-]){code}(?![\w-])", text), (path, code)
        assert "设备" in html


def _expected_state(kind: dict) -> str:
    """The list's word for what entitlements computes of upgrade coverage."""
    if kind["status"] in ("covered", "trial"):
        through = kind["covered_through"]
        return "ending" if through and through <= today() + timedelta(days=30) else "covered"
    return "ended" if kind["status"] == "expired" else "not-started"


def test_the_lists_coverage_agrees_with_entitlements(client, factory):
    """Read from the stored windows, the list says what the rules say."""
    cli = Principal.cli()
    day = today()
    organisation, product = factory.organisation(), factory.product()
    cases = {
        "CV-COVERED": {"accepted_on": day - timedelta(days=100)},
        "CV-TRIAL": {"delivered_on": day - timedelta(days=10)},
        "CV-ENDING": {"accepted_on": day - timedelta(days=3 * 365 - 10)},
        "CV-ENDED": {"accepted_on": day - timedelta(days=5 * 365)},
        "CV-STOCK": {},
        "CV-RENEWED": {"accepted_on": day - timedelta(days=5 * 365)},
        "CV-DENIED": {"accepted_on": day - timedelta(days=100)},
        "CV-CONTRACT-ONLY": {},
    }
    devices = {
        serial: factory.device(
            organisation, product, serial=serial, **{k: v.isoformat() for k, v in kw.items()}
        )[0]
        for serial, kw in cases.items()
    }
    for serial in ("CV-RENEWED", "CV-CONTRACT-ONLY"):
        contracts.create_contract(
            db.session,
            cli,
            {
                "device_id": devices[serial].id,
                "kind": "upgrades",
                "starts_on": day - timedelta(days=5),
                "ends_on": day + timedelta(days=200),
                "reference": f"R-{serial}",
            },
        )
    contracts.create_override(
        db.session,
        cli,
        devices["CV-DENIED"].id,
        {
            "kind": "upgrades",
            "effect": "deny",
            "starts_on": day - timedelta(days=200),
            "ends_on": None,
            "reason": "returned",
        },
    )
    db.session.commit()
    as_staff(client, factory, "viewer")
    r = client.get("/console/devices.csv?q=cv-")
    listed = {
        row["serial"]: row["upgrade_coverage"]
        for row in csv.DictReader(io.StringIO(r.get_data(True)))
    }
    computed = coverage_of_each(db.session, list(devices.values()))
    expected = {
        d.serial: _expected_state(
            next(k for k in computed[d.id]["kinds"] if k["kind"] == "upgrades")
        )
        for d in devices.values()
    }
    assert listed == expected
    assert set(listed.values()) == {"covered", "ending", "ended", "not-started"}

"""The console's overview: the fleet by version and hardware, adoption of the
newest release, rollouts in progress, coverage ending, open tickets by their
nearest deadline, silent devices; from a bounded number of statements."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from tests.clock import NOW, today
from tests.helpers.console import Statements, as_staff, page
from tests.helpers.rollouts import fleet, report
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_fleet_by_version_and_hardware_with_its_figures(client, factory):
    f = fleet(client, factory, 5, 2)
    for device in f.devices[:2]:
        device.current_version = "1.1.0"
    db.session.commit()
    as_staff(client, factory, "viewer")
    html = page(client, f"/console/?product={f.product.id}")
    assert 'role="img"' in html and "<title>rev-a: 3</title>" in html
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', html)
    figures = {v: re.findall(r'class="num">(\d+)<', cells) for v, cells in rows}
    assert figures == {"1.1.0": ["2", "0", "2"], "1.0.0": ["3", "2", "5"]}  # newest first


def test_adoption_of_the_newest_release_counts_each_device_once_by_day(client, factory):
    f = fleet(client, factory, 4, 0)
    first, second = f.devices[:2]
    report(first, f.release_id, "installed", NOW - timedelta(days=3))
    report(first, f.release_id, "installed", NOW - timedelta(days=1))  # again: still one
    report(second, f.release_id, "installed", NOW - timedelta(days=1))
    report(f.devices[2], f.release_id, "failed", NOW - timedelta(days=1))
    db.session.commit()
    as_staff(client, factory, "viewer")
    text = _text(page(client, "/console/"))
    assert "1.1.0: installed on 2 of 4 devices." in text


def test_rollouts_in_progress_with_their_wave_and_the_gates_word(client, factory):
    f = fleet(client, factory, 4, 0)
    body = f.start(client, waves=[{"share": 100}, {"share": 10000}])
    report(f.devices[0], f.release_id, "installed", NOW)
    report(f.devices[1], f.release_id, "downloading", NOW)
    db.session.commit()
    client.post(f"/api/v1/rollouts/{body['id']}/pause", json={}, headers=f.publisher.headers)
    as_staff(client, factory, "viewer", lang="zh-CN")
    html = page(client, "/console/")
    text = _text(html)
    assert "第 1 批，共 2 批（1 %）" in text
    assert "已暂停" in text and "paused" not in text  # a code is never shown raw
    cells = re.findall(r'<td class="num[^"]*">(\d+)</td>', html.split('id="rollouts-heading"')[1])
    assert cells[:3] == ["1", "1", "0"]  # installed, in progress, failed


def test_coverage_ending_and_silent_devices(client, factory):
    f = fleet(client, factory, 6, 0)
    ends = [10, 60, 200, None, -5, 20]
    for device, days in zip(f.devices, ends, strict=True):
        through = today() + timedelta(days=days) if days is not None else None
        # As entitlements.refresh stores them.
        device.upgrade_windows = {"windows": [], "through": through and through.isoformat()}
        device.upgrade_through = through
    db.session.execute(
        update(Device)
        .where(Device.id.in_([d.id for d in f.devices[:2]]))
        .values(last_seen_at=NOW - timedelta(hours=5))
    )
    db.session.execute(
        update(Device)
        .where(Device.id.in_([d.id for d in f.devices[2:]]))
        .values(last_seen_at=NOW - timedelta(minutes=10))
    )
    db.session.commit()
    as_staff(client, factory, "viewer")
    text = _text(page(client, "/console/"))
    assert "In the next 30 days 2 In the next 90 days 3" in text
    assert "2 devices have not checked in for 3 poll intervals" in text
    assert f.devices[0].serial in text and f.devices[3].serial not in text


def test_open_tickets_by_nearest_deadline_with_a_countdown(client, factory):
    f = fleet(client, factory, 2, 0)
    support = factory.caller("support")
    opened = []
    for level in (3, 1):
        r = client.post(
            "/api/v1/tickets",
            json={
                "title": f"Level {level}",
                "level": level,
                "device_ids": [f.devices[0].id],
                "organisation_id": f.organisation.id,
            },
            headers=support.headers,
        )
        assert r.status_code == 201, r.get_data(as_text=True)
        opened.append(r.get_json()["id"])
    as_staff(client, factory, "support")
    html = page(client, "/console/")
    section = html.split('id="tickets-heading"')[1].split("</section>")[0]
    assert section.index(f"#{opened[1]}") < section.index(f"#{opened[0]}")  # level 1 first
    assert "(2)" in section and "data-deadline=" in section and " left" in section
    assert "data-countdown-units=" in html


def test_the_overview_costs_the_same_statements_for_a_bigger_fleet(client, factory):
    small = fleet(client, factory, 2, 1)
    small.start(client)
    as_staff(client, factory, "viewer")
    with Statements() as sql:
        page(client, "/console/")
    before = sql.count
    big = fleet(client, factory, 25, 5)
    big.start(client)
    for device in big.devices[:10]:
        report(device, big.release_id, "installed", NOW)
    db.session.commit()
    with Statements() as sql:
        page(client, "/console/")
    assert sql.count <= before + 1, (before, sql.count)  # the product chosen may differ

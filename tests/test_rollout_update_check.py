"""What a device is told by the update check while a rollout runs, while its
organisation's approval is pending, and outside its maintenance window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.clock import NOW, first_of_month, today
from tests.helpers.publishing import publish
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db
from upgrade_server.rollouts.models import Rollout
from upgrade_server.rollouts.plan import Target, Wave, in_wave

CHECK = "/api/device/v1/update-check"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class World:
    publisher: Any
    admin: Any
    organisation: Any
    release_id: int
    devices: list[tuple[Device, str]]


def _world(client: Any, factory: Any, count: int = 40) -> World:
    publisher, admin = factory.caller("publisher"), factory.caller("admin")
    organisation = factory.organisation(timezone="Asia/Shanghai")
    product = factory.product()
    db.session.commit()
    publish(client, publisher.headers, product.id, "1.0.0", b"one")
    release = publish(client, publisher.headers, product.id, "1.1.0", b"two").get_json()
    accepted = first_of_month(today(), -11).isoformat()
    devices = [
        factory.device(organisation, product, current_version="1.0.0", accepted_on=accepted)
        for _ in range(count)
    ]
    return World(publisher, admin, organisation, release["id"], devices)


def _check(client: Any, token: str) -> Any:
    return client.post(
        CHECK, json={"current_version": "1.0.0"}, headers={"Authorization": f"Bearer {token}"}
    )


def _offered(client: Any, world: World) -> list[bool]:
    """For each device: is it offered the new release now?"""
    found = []
    for _, token in world.devices:
        r = _check(client, token)
        assert r.status_code in (200, 204), r.get_data(as_text=True)
        found.append(r.status_code == 200 and r.get_json().get("release_id") == world.release_id)
    return found


def _start(client: Any, world: World, **body: Any) -> dict[str, Any]:
    body.setdefault("channel", "stable")
    r = client.post(
        f"/api/v1/releases/{world.release_id}/rollouts", json=body, headers=world.publisher.headers
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def test_the_first_wave_is_offered_to_its_buckets_and_named_devices_only(client, factory):
    world = _world(client, factory)
    assert all(_offered(client, world))  # before the rollout: every covered device
    pinned = world.devices[0][0]
    waves = [{"share": 2500, "devices": [pinned.id]}, {"share": 10000}]
    rollout = _start(client, world, waves=waves)
    salt = db.session.scalars(select(Rollout.salt).where(Rollout.id == rollout["id"])).one()
    first = (Wave(2500, frozenset(), frozenset({pinned.id}), frozenset()),)
    expected = [
        in_wave(first, 0, salt, Target(d.id, d.organisation_id, d.hardware_revision.code))
        for d, _ in world.devices
    ]
    offered = _offered(client, world)
    assert offered == expected
    assert offered[0] and 0 < sum(offered) < len(offered)  # a quarter, give or take

    r = client.post(f"/api/v1/rollouts/{rollout['id']}/advance", headers=world.publisher.headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert all(_offered(client, world))  # the last wave: everyone, at the next check


def test_a_rollout_into_a_channel_promotes_the_release_staged_in_one_step(client, factory):
    """Published to beta (the fleet follows stable), then rolled out to
    stable: no stable device is offered it before or outside its wave."""
    world = _world(client, factory, 12)
    beta = publish(
        client,
        world.publisher.headers,
        world.devices[0][0].product_id,
        "1.2.0",
        b"three",
        channels=["beta"],
    ).get_json()
    world.release_id = beta["id"]
    assert not any(_offered(client, world))
    pinned = world.devices[0][0]
    bad = {"channel": "stable", "waves": [{"share": 100, "devices": [10**9]}, {"share": 10000}]}
    r = client.post(
        f"/api/v1/releases/{beta['id']}/rollouts", json=bad, headers=world.publisher.headers
    )
    assert r.status_code == 422  # refused: nothing promoted either
    assert not any(_offered(client, world))
    _start(client, world, waves=[{"share": 0, "devices": [pinned.id]}, {"share": 10000}])
    release = client.get(f"/api/v1/releases/{beta['id']}", headers=world.publisher.headers)
    assert release.get_json()["channels"] == ["beta", "stable"]
    assert _offered(client, world) == [d is pinned for d, _ in world.devices]


def test_an_aborted_rollout_offers_the_release_to_no_one(client, factory):
    world = _world(client, factory, 6)
    rollout = _start(client, world, waves=[{"share": 10000}])
    assert all(_offered(client, world))
    r = client.post(
        f"/api/v1/rollouts/{rollout['id']}/abort",
        json={"reason": "bricks rev-a"},
        headers=world.publisher.headers,
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert not any(_offered(client, world))
    assert all(_check(client, token).status_code == 204 for _, token in world.devices)


def test_a_completed_rollout_still_leaves_out_the_revision_and_devices_it_excluded(client, factory):
    world = _world(client, factory, 3)
    accepted = first_of_month(today(), -11).isoformat()
    rev_b = factory.device(
        world.organisation,
        world.devices[0][0].product,
        hardware_revision="rev-b",
        current_version="1.0.0",
        accepted_on=accepted,
    )
    world.devices.append(rev_b)
    left_out = world.devices[1][0]
    rollout = _start(client, world, waves=[{"share": 10000}], excluded_hardware=["rev-b"])
    url, headers = f"/api/v1/rollouts/{rollout['id']}", world.publisher.headers
    r = client.post(f"{url}/devices/{left_out.id}?kind=exclude", headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert _offered(client, world) == [True, False, True, False]
    r = client.post(f"{url}/advance", json={}, headers=headers)
    assert r.get_json()["state"] == "completed"
    # Offered as any release is, but never to what the rollout left out (the
    # revision it fails on, say): completing the rollout does not lift that.
    assert _offered(client, world) == [True, False, True, False]


def test_a_release_waits_for_the_customers_approval_device_by_device(client, factory):
    world = _world(client, factory, 3)
    url = f"/api/v1/organisations/{world.organisation.id}"
    r = client.put(
        f"{url}/update-approval", json={"updates_need_approval": True}, headers=world.admin.headers
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert _offered(client, world) == [False, False, False]
    chosen = world.devices[1][0]
    r = client.post(
        f"{url}/approvals",
        json={"release_id": world.release_id, "device_ids": [chosen.id]},
        headers=world.admin.headers,
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    assert _offered(client, world) == [False, True, False]
    r = client.post(
        f"{url}/approvals",
        json={"release_id": world.release_id},  # no device ids: all of them
        headers=world.admin.headers,
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    assert _offered(client, world) == [True, True, True]


def _window(client: Any, world: World, start: datetime, minutes: int) -> None:
    window = {
        "kind": "weekly",
        "days": [1, 2, 3, 4, 5, 6, 7],
        "start": start.strftime("%H:%M"),
        "duration_minutes": minutes,
    }
    r = client.put(
        f"/api/v1/organisations/{world.organisation.id}/maintenance-windows",
        json={"windows": [window]},
        headers=world.admin.headers,
    )
    assert r.status_code == 200, r.get_data(as_text=True)


def test_outside_its_window_a_device_is_told_to_wait_and_until_when(client, factory):
    world = _world(client, factory, 2)
    later = (NOW + timedelta(hours=3)).astimezone(SHANGHAI).replace(second=0, microsecond=0)
    _window(client, world, later, 60)
    r = _check(client, world.devices[0][1])
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert "release_id" not in body and "download_url" not in body
    assert body["wait"]["reason"] == "maintenance-window"
    assert datetime.fromisoformat(body["wait"]["until"]) == later
    # A window open now: offered.
    earlier = (NOW - timedelta(minutes=30)).astimezone(SHANGHAI).replace(second=0, microsecond=0)
    _window(client, world, earlier, 120)
    assert _offered(client, world) == [True, True]


def test_an_emergency_rollout_of_a_security_fix_ignores_the_window(client, factory):
    world = _world(client, factory, 2)
    later = (NOW + timedelta(hours=3)).astimezone(SHANGHAI).replace(second=0, microsecond=0)
    _window(client, world, later, 60)
    assert _offered(client, world) == [False, False]
    product_id = world.devices[0][0].product_id
    fix = publish(
        client, world.publisher.headers, product_id, "1.1.1", b"fix", security_fix=True
    ).get_json()
    world.release_id = fix["id"]
    assert _offered(client, world) == [False, False]  # a security fix alone waits too
    body = {
        "channel": "stable",
        "waves": [{"share": 10000}],
        "emergency": True,
        "override_reason": "CVE-2026-0001 is exploited in the field",
    }
    _start(client, world, **body)
    assert _offered(client, world) == [True, True]


def test_a_check_under_a_rollout_with_approval_and_windows_is_still_one_statement(
    client, factory, app
):
    """What a rollout, approval and windows add is read once per generation,
    not per check: a repeated check runs the device query alone."""
    world = _world(client, factory, 4)
    url = f"/api/v1/organisations/{world.organisation.id}"
    headers = world.admin.headers
    client.put(f"{url}/update-approval", json={"updates_need_approval": True}, headers=headers)
    client.post(f"{url}/approvals", json={"release_id": world.release_id}, headers=headers)
    earlier = (NOW - timedelta(minutes=30)).astimezone(SHANGHAI).replace(second=0, microsecond=0)
    _window(client, world, earlier, 120)
    _start(client, world, waves=[{"share": 5000}, {"share": 10000}])
    token = world.devices[0][1]
    assert _check(client, token).status_code in (200, 204)  # fills the caches
    with app.extensions["hot_connection"]() as conn:
        raw = conn.connection.dbapi_connection
        if not hasattr(raw, "set_trace_callback"):
            pytest.skip("counted by SQLite's trace hook")
        statements: list[str] = []
        raw.set_trace_callback(statements.append)
        try:
            assert _check(client, token).status_code in (200, 204)
        finally:
            raw.set_trace_callback(None)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1, statements


def test_a_rollout_never_offers_a_release_to_a_device_not_covered_for_it(client, factory):
    """Pinned into the first wave, a device whose upgrade coverage ended is
    still not offered the release; it is told why (the renewal hint)."""
    from tests.clock import ExpiredDevice

    world = _world(client, factory, 2)
    dates = ExpiredDevice.relative_to(today())
    expired, token = factory.device(
        world.organisation,
        world.devices[0][0].product,
        current_version="1.0.0",
        delivered_on=dates.delivered_on.isoformat(),
        accepted_on=dates.accepted_on.isoformat(),
    )
    covered = world.devices[0][0]
    waves = [{"share": 0, "devices": [expired.id, covered.id]}, {"share": 10000}]
    _start(client, world, waves=waves)
    assert _offered(client, world) == [True, False]  # the covered device, in the wave
    r = _check(client, token)
    body = r.get_json() if r.status_code == 200 else {}
    assert body.get("release_id") != world.release_id
    assert body["newer_not_entitled"]["version"] == "1.1.0"
    assert body["newer_not_entitled"]["coverage_ends_on"] == dates.ended_on.isoformat()

"""What a customer reads in the portal is what the device gets: a release a
staged rollout has not reached the device with is not shown as available,
one waiting for the customer's approval says so (and is listed as pending
only for the devices the rollout reached), and one held by the maintenance
window says when the window opens."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.clock import NOW
from tests.helpers.approvals import approval_world, need_approval
from tests.helpers.portal import login

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def world(client, factory):
    world = approval_world(client, factory)
    login(client, world.admin.user.email)
    return world


def _rollout_to_the_first_device(client, world):
    """A rollout whose first wave is the first device alone."""
    first = world.devices[0]
    waves = [{"share": 0, "devices": [first.id]}, {"share": 10000}]
    r = client.post(
        f"/api/v1/releases/{world.update['id']}/rollouts",
        json={"channel": "stable", "waves": waves},
        headers=world.vendor.headers,
    )
    assert r.status_code == 201, r.get_data(as_text=True)


def _offered_in_list(client, world, lang="en"):
    """{serial: what the device list says is available}."""
    page = client.get(f"/portal/devices?lang={lang}").get_data(as_text=True)
    found = {}
    for device in world.devices:
        row = re.search(rf">{re.escape(device.serial)}</a>.*?</tr>", page, re.S)
        assert row, page
        found[device.serial] = re.sub(r"<[^>]+>", "", row.group(0).split("<td>")[-1]).strip()
    return found


def test_a_release_the_rollout_has_not_reached_a_device_with_is_not_shown_to_it(client, world):
    first, second = world.devices
    assert _offered_in_list(client, world) == {first.serial: "1.1.0", second.serial: "1.1.0"}
    _rollout_to_the_first_device(client, world)
    assert _offered_in_list(client, world) == {first.serial: "1.1.0", second.serial: "—"}
    page = client.get(f"/portal/devices/{second.id}?lang=en").get_data(as_text=True)
    assert "Up to date." in page and "Release notes of 1.1.0" not in page


def test_approval_waits_only_for_the_devices_the_rollout_reached(client, world):
    first, second = world.devices
    _rollout_to_the_first_device(client, world)
    need_approval(client, world)
    assert _offered_in_list(client, world) == {
        first.serial: "1.1.0 (awaiting approval)",
        second.serial: "—",
    }
    assert _offered_in_list(client, world, "zh-CN")[first.serial] == "1.1.0 (待批准)"
    page = client.get(f"/portal/devices/{first.id}?lang=en").get_data(as_text=True)
    assert "Version 1.1.0 waits for your organisation's approval" in page
    assert "Up to date." not in page
    r = client.get(
        f"/api/v1/organisations/{world.organisation.id}/approvals", headers=world.admin.headers
    )
    [waiting] = r.get_json()["pending"]
    assert [d["serial"] for d in waiting["devices"]] == [first.serial]
    approvals_page = client.get("/portal/approvals?lang=en").get_data(as_text=True)
    assert first.serial in approvals_page and second.serial not in approvals_page


def test_an_update_held_by_the_window_says_when_the_window_opens(client, world):
    first, _ = world.devices
    opens = (NOW + timedelta(hours=3)).astimezone(SHANGHAI).replace(second=0, microsecond=0)
    window = {"kind": "weekly", "days": [1, 2, 3, 4, 5, 6, 7], "start": opens.strftime("%H:%M")}
    r = client.put(
        f"/api/v1/organisations/{world.organisation.id}/maintenance-windows",
        json={"windows": [{**window, "duration_minutes": 60}]},
        headers=world.admin.headers,
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert _offered_in_list(client, world)[first.serial] == "1.1.0 (in the maintenance window)"
    page = client.get(f"/portal/devices/{first.id}?lang=zh-CN").get_data(as_text=True)
    assert "设备将在贵方的维护时段内安装" in page
    assert opens.strftime("%H:%M") in page  # in the organisation's zone

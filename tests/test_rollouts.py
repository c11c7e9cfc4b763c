"""Rollouts through the API: start, refusals, progress in JSON and CSV, the
people's actions, pins and exclusions, and what the update check is told."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from tests.helpers.problems import assert_problem
from tests.helpers.publishing import publish
from tests.helpers.rollouts import fleet, report
from upgrade_server.audit.models import AuditEntry
from upgrade_server.clock import utcnow
from upgrade_server.extensions import db
from upgrade_server.products.models import Product
from upgrade_server.rollouts.offer import load_active, offered
from upgrade_server.rollouts.plan import Target


def _generation(product_id: int) -> int:
    return db.session.scalars(
        select(Product.release_generation).where(Product.id == product_id)
    ).one()


def _audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _offered(f, device) -> bool | None:
    active = load_active(db.session.connection(), f.product.id)
    return offered(
        active,
        f.release_id,
        Target(device.id, device.organisation_id, device.hardware_revision.code),
    )


def test_a_publisher_starts_a_rollout_at_its_first_wave(client, factory):
    f = fleet(client, factory)
    before = _generation(f.product.id)
    body = f.start(
        client,
        waves=[{"share": 100, "devices": [f.devices[0].id]}, {"share": 10000}],
        gates={"min_soak_seconds": 600},
    )
    assert body["state"] == "running" and body["current_wave"] == 0
    assert body["version"] == "1.1.0" and body["channel"] == "stable"
    assert body["waves"][0] == {
        "share": 100,
        "organisations": [],
        "devices": [f.devices[0].id],
        "hardware": [],
    }
    assert body["gates"]["min_soak_seconds"] == 600 and body["gates"]["min_reported"] == 20
    assert [d["action"] for d in body["decisions"]] == ["start"]
    assert _generation(f.product.id) > before
    (entry,) = _audit("rollout.start")
    assert entry.object_id == str(body["id"]) and entry.after["figures"]["eligible"] >= 1
    listed = client.get(
        f"/api/v1/rollouts?product={f.product.id}&state=running", headers=f.publisher.headers
    )
    assert [r["id"] for r in listed.get_json()["items"]] == [body["id"]]


@pytest.mark.parametrize(
    ("waves", "field"),
    [
        ([{"share": 100}, {"share": 5000}], "waves"),  # the last wave is not the whole fleet
        ([{"share": 5000}, {"share": 100}, {"share": 10000}], "waves.1.share"),  # descending
        ([{"share": 100}, {"share": 100}, {"share": 10000}], "waves.1.share"),  # adds nothing
        ([{"share": 100, "hardware": ["rev-z"]}, {"share": 10000}], "waves.0.hardware"),
        ([{"share": 100, "organisations": [2_000_000]}, {"share": 10000}], "waves.0.organisations"),
    ],
)
def test_bad_waves_are_refused(client, factory, waves, field):
    f = fleet(client, factory, 1, 0)
    r = client.post(
        f"/api/v1/releases/{f.release_id}/rollouts",
        json={"channel": "stable", "waves": waves},
        headers=f.publisher.headers,
    )
    body = assert_problem(r, 422, "invalid-input")
    assert field in [e["field"] for e in body["errors"]]


def test_other_refusals(client, factory):
    f = fleet(client, factory, 1, 0)
    stranger = factory.product()
    (other_device, _) = factory.device(product=stranger)
    url = f"/api/v1/releases/{f.release_id}/rollouts"
    waves = [{"share": 10000}]
    cases = [
        ({"channel": "nightly", "waves": waves}, 422, "invalid-input"),  # no such channel
        (
            {
                "channel": "stable",
                "waves": [{"share": 100, "devices": [other_device.id]}, {"share": 10000}],
            },
            422,
            "invalid-input",
        ),
        (
            {"channel": "stable", "waves": waves, "gates": {"min_success_rate": 2}},
            422,
            "invalid-input",
        ),
        ({"channel": "stable", "waves": waves, "gates": {"no_such_gate": 1}}, 422, "invalid-input"),
        (
            {"channel": "stable", "waves": waves, "emergency": True, "override_reason": "x"},
            422,
            "invalid-input",
        ),
        ({"channel": "stable", "waves": []}, 422, "invalid-input"),
    ]
    for body, status, slug in cases:
        assert_problem(client.post(url, json=body, headers=f.publisher.headers), status, slug)
    f.start(client)
    assert_problem(
        client.post(url, json={"channel": "stable", "waves": waves}, headers=f.publisher.headers),
        409,
        "conflict",
    )
    assert_problem(
        client.get("/api/v1/rollouts/2147483000", headers=f.publisher.headers), 404, "not-found"
    )


def test_roles_customers_never_see_rollouts_and_readers_only_read(client, factory):
    f = fleet(client, factory, 1, 0)
    rollout = f.start(client)
    customer = factory.caller("customer-admin", f.organisation)
    support = factory.caller("support")
    for caller in (customer,):
        assert client.get("/api/v1/rollouts", headers=caller.headers).status_code == 403
        assert (
            client.get(f"/api/v1/rollouts/{rollout['id']}", headers=caller.headers).status_code
            == 403
        )
    assert (
        client.get(f"/api/v1/rollouts/{rollout['id']}", headers=support.headers).status_code == 200
    )
    for path in ("pause", "abort"):
        r = client.post(
            f"/api/v1/rollouts/{rollout['id']}/{path}", json={}, headers=support.headers
        )
        assert_problem(r, 403, "forbidden")
    r = client.post(
        f"/api/v1/releases/{f.release_id}/rollouts",
        json={"channel": "stable", "waves": [{"share": 10000}]},
        headers=customer.headers,
    )
    assert_problem(r, 403, "forbidden")
    assert client.get("/api/v1/rollouts").status_code == 401


def test_progress_per_wave_in_json_and_csv(client, factory):
    f = fleet(client, factory, 4, 0)
    first, second = f.devices[0], f.devices[1]
    rollout = f.start(
        client, waves=[{"share": 0, "devices": [first.id, second.id]}, {"share": 10000}]
    )
    now = utcnow()
    report(first, f.release_id, "downloading", now)
    report(first, f.release_id, "installed", now)
    report(second, f.release_id, "failed", now)
    body = client.get(f"/api/v1/rollouts/{rollout['id']}", headers=f.publisher.headers).get_json()
    wave0, wave1 = body["progress"]["waves"]
    assert (wave0["eligible"], wave0["offered"], wave0["installed"], wave0["failed"]) == (
        2,
        2,
        1,
        1,
    )
    assert (wave1["eligible"], wave1["offered"], wave1["reached"]) == (2, 0, False)
    assert body["progress"]["current"]["reported"] == 2
    assert body["progress"]["current"]["success_rate"] == 0.5
    r = client.get(f"/api/v1/rollouts/{rollout['id']}/progress.csv", headers=f.publisher.headers)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [(row["wave"], row["eligible"], row["installed"], row["failed"]) for row in rows] == [
        ("0", "2", "1", "1"),
        ("1", "2", "0", "0"),
    ]


def test_pause_resume_advance_abort_and_what_devices_are_offered(client, factory):
    f = fleet(client, factory, 3, 0)
    first, later = f.devices[0], f.devices[1]
    rollout = f.start(
        client,
        waves=[
            {"share": 0, "devices": [first.id]},
            {"share": 0, "devices": [first.id, later.id]},
            {"share": 10000},
        ],
    )
    url = f"/api/v1/rollouts/{rollout['id']}"
    h = f.publisher.headers
    assert (_offered(f, first), _offered(f, later)) == (True, False)
    assert (
        client.post(f"{url}/pause", json={"reason": "weekend"}, headers=h).get_json()["state"]
        == "paused"
    )
    assert _offered(f, first) is True  # the reached wave keeps its offer
    assert_problem(client.post(f"{url}/advance", json={}, headers=h), 409, "conflict")
    assert client.post(f"{url}/resume", json={}, headers=h).get_json()["state"] == "running"
    advanced = client.post(f"{url}/advance", json={"reason": "looks good"}, headers=h).get_json()
    assert advanced["current_wave"] == 1 and _offered(f, later) is True
    assert (
        advanced["decisions"][0]["action"] == "advance"
        and "looks good" in advanced["decisions"][0]["reasons"]
    )
    aborted = client.post(f"{url}/abort", json={"reason": "bad build"}, headers=h).get_json()
    assert aborted["state"] == "aborted"
    assert (_offered(f, first), _offered(f, later)) == (False, False)  # the offer is withdrawn
    assert_problem(client.post(f"{url}/resume", json={}, headers=h), 409, "conflict")
    actions = [
        e.action
        for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "rollouts").order_by(AuditEntry.id)
        )
    ]
    assert actions == [
        "rollout.start",
        "rollout.pause",
        "rollout.resume",
        "rollout.advance",
        "rollout.abort",
    ]
    # A new rollout of the release may start once the last one is over.
    assert f.start(client)["state"] == "running"


def test_advancing_past_the_last_wave_completes_and_lifts_the_rollout(client, factory):
    f = fleet(client, factory, 2, 0)
    rollout = f.start(client, waves=[{"share": 0, "devices": [f.devices[0].id]}, {"share": 10000}])
    url = f"/api/v1/rollouts/{rollout['id']}/advance"
    client.post(url, json={}, headers=f.publisher.headers)
    assert client.post(url, json={}, headers=f.publisher.headers).get_json()["state"] == "completed"
    assert _offered(f, f.devices[1]) is None  # offered as any release is


def test_pins_and_exclusions_of_devices_and_hardware(client, factory):
    f = fleet(client, factory, 2, 2)
    pinned, excluded = f.devices[0], f.devices[1]
    rev_b = f.devices[2]
    rollout = f.start(
        client,
        waves=[
            {"share": 0, "devices": [excluded.id]},
            {"share": 0, "hardware": ["rev-b"]},
            {"share": 10000},
        ],
    )
    url = f"/api/v1/rollouts/{rollout['id']}"
    h = f.publisher.headers
    before = _generation(f.product.id)
    body = client.post(f"{url}/devices/{pinned.id}?kind=pin", headers=h).get_json()
    assert body["pinned"] == [pinned.id] and _generation(f.product.id) > before
    body = client.post(f"{url}/devices/{excluded.id}?kind=exclude", headers=h).get_json()
    assert body["excluded_devices"] == [excluded.id]
    assert (_offered(f, pinned), _offered(f, excluded)) == (True, False)
    assert body["progress"]["waves"][0]["eligible"] == 1  # the pinned device, not the excluded
    body = client.post(f"{url}/excluded-hardware", json={"code": "rev-b"}, headers=h).get_json()
    assert body["excluded_hardware"] == ["rev-b"] and body["progress"]["totals"]["excluded"] == 3
    client.post(f"{url}/advance", json={}, headers=h)
    assert _offered(f, rev_b) is False
    client.delete(f"{url}/excluded-hardware/rev-b", headers=h)
    assert _offered(f, rev_b) is True
    body = client.delete(f"{url}/devices/{excluded.id}", headers=h).get_json()
    assert body["excluded_devices"] == [] and _offered(f, excluded) is True
    stranger, _ = factory.device()
    assert_problem(
        client.post(f"{url}/devices/{stranger.id}?kind=pin", headers=h), 404, "not-found"
    )
    assert_problem(
        client.post(f"{url}/devices/{pinned.id}?kind=maybe", headers=h), 422, "invalid-input"
    )
    assert_problem(
        client.post(f"{url}/excluded-hardware", json={"code": "rev-z"}, headers=h), 404, "not-found"
    )
    actions = {
        e.action
        for e in db.session.scalars(select(AuditEntry).where(AuditEntry.object_type == "rollouts"))
    }
    assert {
        "rollout.pin-device",
        "rollout.exclude-device",
        "rollout.release-device",
        "rollout.exclude-hardware",
        "rollout.include-hardware",
    } <= actions


def test_an_emergency_rollout_of_a_security_fix_is_audited_with_its_reason(client, factory):
    f = fleet(client, factory, 1, 0)
    r = publish(client, f.publisher.headers, f.product.id, "1.2.0", b"fw3", security_fix=True)
    url = f"/api/v1/releases/{r.get_json()['id']}/rollouts"
    body = {"channel": "stable", "waves": [{"share": 10000}], "emergency": True}
    assert_problem(client.post(url, json=body, headers=f.publisher.headers), 422, "invalid-input")
    body["override_reason"] = "CVE-2026-0001 is exploited in the field"
    started = client.post(url, json=body, headers=f.publisher.headers)
    assert started.status_code == 201, started.get_json()
    assert started.get_json()["emergency"] is True
    (entry,) = _audit("rollout.start")
    assert entry.after["override_reason"] == "CVE-2026-0001 is exploited in the field"
    assert any("emergency" in reason for reason in entry.after["reasons"])
    active = load_active(db.session.connection(), f.product.id)
    assert active.by_release[r.get_json()["id"]].emergency is True

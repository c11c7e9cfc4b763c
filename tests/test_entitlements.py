"""Entitlements through the API: what a device is offered and may download,
contracts, overrides, the coverage views and reports."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from tests.clock import ExpiredDevice, at, first_of_month, today
from tests.helpers.problems import assert_problem
from tests.helpers.publishing import publish
from upgrade_server.audit.models import AuditEntry
from upgrade_server.extensions import db
from upgrade_server.releases.models import Release
from upgrade_server.releases.service import bump_generation

CHECK = "/api/device/v1/update-check"


def _published_at(product, release_id: int, when: datetime) -> None:
    """History: this release came out at `when`."""
    db.session.get(Release, release_id).published_at = when
    bump_generation(product)
    db.session.commit()


def _check(client, token, version="0.9.0"):
    return client.post(
        CHECK, json={"current_version": version}, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
def history(client, factory):
    """A device whose upgrade coverage ended about a year ago (tests/clock.py):
    1.0.0 came out while it was covered, 1.1.0 three weeks after coverage
    ended, 2.0.0 today. And a customer admin of its organisation."""
    dates = ExpiredDevice.relative_to(today())
    publisher = factory.caller("publisher")
    admin = factory.caller("admin")
    org = factory.organisation()
    product = factory.product()
    db.session.commit()
    releases = {
        v: publish(client, publisher.headers, product.id, v, v.encode()).get_json()
        for v in ("1.0.0", "1.1.0", "2.0.0")
    }
    _published_at(product, releases["1.0.0"]["id"], dates.covered_release)
    _published_at(product, releases["1.1.0"]["id"], dates.gap_release)
    expired, token = factory.device(
        organisation=org,
        product=product,
        delivered_on=dates.delivered_on.isoformat(),
        accepted_on=dates.accepted_on.isoformat(),
    )
    return {
        "dates": dates,
        "org": org,
        "product": product,
        "releases": releases,
        "device": expired,
        "token": token,
        "admin": admin,
        "customer": factory.caller("customer-admin", org),
    }


def _audited(action: str) -> dict:
    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)).one().after


def _removed_and_back(client, history, url: str) -> None:
    """Delete what granted the cover: the expired device is back on 1.0.0."""
    assert client.delete(url, headers=history["admin"].headers).status_code == 204
    assert _check(client, history["token"]).get_json()["version"] == "1.0.0"


def _changed_and_covered(client, history, url: str, change: dict) -> None:
    """An admin's change after which the expired device is offered 2.0.0."""
    r = client.patch(url, json=change, headers=history["admin"].headers)
    assert r.status_code == 200, r.get_json()
    assert _check(client, history["token"]).get_json()["version"] == "2.0.0"


def _contract(client, headers, **body):
    r = client.post(
        "/api/v1/contracts",
        json={"kind": "upgrades", "reference": "SC-2025-117", **body},
        headers=headers,
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_expired_device_gets_what_came_out_while_covered_and_is_told_what_it_misses(
    client, history
):
    r = _check(client, history["token"])
    assert r.status_code == 200
    body = r.get_json()
    assert body["version"] == "1.0.0"
    assert body["newer_not_entitled"]["version"] == "2.0.0"
    assert body["newer_not_entitled"]["coverage_ends_on"] == history["dates"].ended_on.isoformat()
    # Already on it: nothing to install, still the honest hint.
    r = _check(client, history["token"], "1.0.0")
    assert r.status_code == 200
    body = r.get_json()
    assert "version" not in body
    assert body["newer_not_entitled"]["version"] == "2.0.0"


def test_download_outside_coverage_is_not_entitled(client, history):
    headers = {"Authorization": f"Bearer {history['token']}"}
    newest = history["releases"]["2.0.0"]["id"]
    body = assert_problem(
        client.get(f"/api/device/v1/releases/{newest}/artifact", headers=headers),
        403,
        "not-entitled",
    )
    assert body["coverage_ends_on"] == history["dates"].ended_on.isoformat()
    assert "2.0.0" in body["detail"]
    # Its notes stay readable: the update check names it.
    hint = _check(client, history["token"]).get_json()["newer_not_entitled"]
    assert hint["notes_url"] == f"/api/device/v1/releases/{newest}"
    r = client.get(hint["notes_url"], headers=headers)
    assert r.status_code == 200 and r.get_json()["version"] == "2.0.0"
    old = history["releases"]["1.0.0"]["id"]
    assert client.get(f"/api/device/v1/releases/{old}/artifact", headers=headers).status_code == 200


def test_a_contract_brings_the_newest_release_at_the_next_check(client, history):
    contract = _contract(
        client,
        history["admin"].headers,
        device_id=history["device"].id,
        starts_on=history["dates"].renewal_starts.isoformat(),
        ends_on=(today() + timedelta(days=365)).isoformat(),
    )
    body = _check(client, history["token"]).get_json()
    assert body["version"] == "2.0.0"
    assert "newer_not_entitled" not in body
    assert _audited("contract.create")["reference"] == "SC-2025-117"
    # Removed (recorded in error): back to what the promise gives.
    _removed_and_back(client, history, f"/api/v1/contracts/{contract['id']}")


def test_a_contract_with_a_gap_does_not_cover_what_came_out_in_the_gap(client, history):
    # The renewal starts a month after coverage ended: 1.1.0 came out in the gap.
    _contract(
        client,
        history["admin"].headers,
        device_id=history["device"].id,
        starts_on=(history["dates"].ended_on + timedelta(days=32)).isoformat(),
        ends_on=(today() + timedelta(days=365)).isoformat(),
    )
    headers = {"Authorization": f"Bearer {history['token']}"}
    gap = history["releases"]["1.1.0"]["id"]
    r = client.get(f"/api/device/v1/releases/{gap}/artifact", headers=headers)
    assert_problem(r, 403, "not-entitled")
    assert _check(client, history["token"]).get_json()["version"] == "2.0.0"


def test_an_organisation_contract_covers_its_devices_of_that_product_only(client, history, factory):
    dates = history["dates"]
    _, other_token = factory.device(
        product=history["product"],
        delivered_on=dates.delivered_on.isoformat(),
        accepted_on=dates.accepted_on.isoformat(),
    )
    _contract(
        client,
        history["admin"].headers,
        organisation_id=history["org"].id,
        product_id=history["product"].id,
        starts_on=dates.renewal_starts.isoformat(),
        ends_on=(today() + timedelta(days=730)).isoformat(),
    )
    assert _check(client, history["token"]).get_json()["version"] == "2.0.0"
    assert _check(client, other_token).get_json()["version"] == "1.0.0"
    # A device added to the organisation later is covered by it too.
    _, late_token = factory.device(
        organisation=history["org"],
        product=history["product"],
        delivered_on=dates.delivered_on.isoformat(),
        accepted_on=dates.accepted_on.isoformat(),
    )
    assert _check(client, late_token).get_json()["version"] == "2.0.0"


def test_manual_overrides_need_a_reason_and_are_audited(client, history, factory):
    url = f"/api/v1/devices/{history['device'].id}/coverage-overrides"
    renewal = history["dates"].renewal_starts.isoformat()
    grant = {"kind": "upgrades", "effect": "grant", "starts_on": renewal}
    r = client.post(url, json={**grant, "reason": " "}, headers=history["admin"].headers)
    assert_problem(r, 422, "invalid-input")
    r = client.post(
        url,
        json={**grant, "reason": "goodwill after field failure"},
        headers=history["admin"].headers,
    )
    assert r.status_code == 201
    override = r.get_json()
    assert _check(client, history["token"]).get_json()["version"] == "2.0.0"
    assert _audited("coverage.override")["reason"] == "goodwill after field failure"
    _removed_and_back(client, history, f"{url}/{override['id']}")

    # Deny: a covered device loses what came out while the denial holds.
    covered, covered_token = factory.device(
        organisation=history["org"],
        product=history["product"],
        accepted_on=(history["dates"].covered_release.date() - timedelta(days=30)).isoformat(),
    )
    assert _check(client, covered_token).get_json()["version"] == "2.0.0"
    r = client.post(
        f"/api/v1/devices/{covered.id}/coverage-overrides",
        json={
            "kind": "upgrades",
            "effect": "deny",
            "starts_on": renewal,
            "reason": "reported stolen",
        },
        headers=history["admin"].headers,
    )
    assert r.status_code == 201
    assert _check(client, covered_token).get_json()["version"] == "1.0.0"


def test_security_fixes_can_be_free_for_every_device(client, history, factory):
    publisher = factory.caller("publisher")
    fix = publish(
        client, publisher.headers, history["product"].id, "1.0.1", b"fix", security_fix=True
    ).get_json()
    # Not free yet: the expired device stays on 1.0.0 (1.0.1 came out today).
    assert _check(client, history["token"], "1.0.0").get_json().get("version") is None
    r = client.patch(
        f"/api/v1/products/{history['product'].id}",
        json={"security_fixes_free": True},
        headers=publisher.headers,
    )
    assert r.status_code == 403  # coverage terms are the admins'
    r = client.patch(
        f"/api/v1/products/{history['product'].id}",
        json={"security_fixes_free": True},
        headers=history["admin"].headers,
    )
    assert r.status_code == 200
    body = _check(client, history["token"], "1.0.0").get_json()
    assert body["version"] == "1.0.1"
    assert body["newer_not_entitled"]["version"] == "2.0.0"
    headers = {"Authorization": f"Bearer {history['token']}"}
    r = client.get(f"/api/device/v1/releases/{fix['id']}/artifact", headers=headers)
    assert r.status_code == 200


def test_product_terms_change_coverage(client, history):
    # Five years of upgrades from acceptance: the device is covered again.
    r = client.patch(
        f"/api/v1/products/{history['product'].id}",
        json={"upgrade_months": 60},
        headers=history["admin"].headers,
    )
    assert r.status_code == 200 and r.get_json()["upgrade_months"] == 60
    assert _check(client, history["token"]).get_json()["version"] == "2.0.0"


def test_trial_run_and_undelivered_devices(client, history, factory):
    _, trial = factory.device(
        organisation=history["org"],
        product=history["product"],
        delivered_on=(today() - timedelta(days=400)).isoformat(),
    )
    assert _check(client, trial).get_json()["version"] == "2.0.0"
    stock, stock_token = factory.device(organisation=history["org"], product=history["product"])
    assert _check(client, stock_token).get_json()["version"] == "2.0.0"
    r = client.get(f"/api/v1/devices/{stock.id}/coverage", headers=history["admin"].headers)
    assert {k["kind"]: k["status"] for k in r.get_json()["kinds"]} == {
        "upgrades": "undelivered",
        "warranty": "undelivered",
        "support": "undelivered",
    }


def test_a_device_in_its_trial_run_has_its_warranty_not_started_not_expired(
    client, history, factory
):
    """Delivered, not yet accepted: the trial run covers upgrades, support runs
    from delivery, and the warranty waits for acceptance (it has not ended)."""
    trial, _ = factory.device(
        organisation=history["org"],
        product=history["product"],
        delivered_on=(today() - timedelta(days=20)).isoformat(),
    )
    r = client.get(f"/api/v1/devices/{trial.id}/coverage", headers=history["customer"].headers)
    kinds = {k["kind"]: k for k in r.get_json()["kinds"]}
    assert {kind: k["status"] for kind, k in kinds.items()} == {
        "upgrades": "trial",
        "warranty": "awaiting-acceptance",
        "support": "covered",
    }
    assert kinds["warranty"]["covered_through"] is None

    # The summary counts it apart: the history's device is the one expired.
    r = client.get(
        f"/api/v1/organisations/{history['org'].id}/coverage", headers=history["customer"].headers
    )
    warranty = r.get_json()["kinds"]["warranty"]
    assert (warranty["awaiting-acceptance"], warranty["expired"]) == (1, 1)

    # Accepted today: the warranty starts.
    r = client.patch(
        f"/api/v1/devices/{trial.id}",
        json={"accepted_on": today().isoformat()},
        headers=history["admin"].headers,
    )
    assert r.status_code == 200, r.get_json()
    r = client.get(f"/api/v1/devices/{trial.id}/coverage", headers=history["customer"].headers)
    assert {k["kind"]: k["status"] for k in r.get_json()["kinds"]}["warranty"] == "covered"


def test_the_time_zone_decides_the_last_day(client, history):
    # 2.0.0 out at 23:30 UTC on the device's last covered day: already the
    # next day in Shanghai, still the last covered day in UTC.
    _published_at(
        history["product"],
        history["releases"]["2.0.0"]["id"],
        at(history["dates"].ended_on, 23) + timedelta(minutes=30),
    )
    assert _check(client, history["token"]).get_json()["version"] == "1.0.0"
    _changed_and_covered(
        client, history, f"/api/v1/organisations/{history['org'].id}", {"timezone": "UTC"}
    )


def test_coverage_views(client, history, factory):
    device = history["device"]
    r = client.get(f"/api/v1/devices/{device.id}/coverage", headers=history["customer"].headers)
    assert r.status_code == 200
    kinds = {k["kind"]: k for k in r.get_json()["kinds"]}
    assert kinds["upgrades"]["status"] == "expired"
    assert kinds["upgrades"]["covered_through"] == history["dates"].ended_on.isoformat()
    assert (
        kinds["support"]["covered_through"] == history["dates"].support_through.isoformat()
    )  # from delivery
    # Its trial run (delivery to acceptance), then the promise.
    assert [g["source"] for g in kinds["upgrades"]["grants"]] == ["trial", "promise"]
    # The device reads its own.
    r = client.get(
        "/api/device/v1/coverage", headers={"Authorization": f"Bearer {history['token']}"}
    )
    assert r.status_code == 200 and r.get_json()["device_id"] == device.id
    # Another organisation's customer does not see it.
    stranger = factory.caller("customer-admin", factory.organisation())
    r = client.get(f"/api/v1/devices/{device.id}/coverage", headers=stranger.headers)
    assert_problem(r, 404, "not-found")
    r = client.get(f"/api/v1/organisations/{history['org'].id}/coverage", headers=stranger.headers)
    assert_problem(r, 404, "not-found")


def test_expiring_report_and_summary(client, history, factory):
    # Accepted on the first of the month after next, three years ago: covered
    # through the end of next month, 28 to 61 days from today.
    ends_on = first_of_month(today(), 2) - timedelta(days=1)
    factory.device(
        organisation=history["org"],
        product=history["product"],
        accepted_on=first_of_month(today(), 2 - 36).isoformat(),
        serial="SOON-1",
    )
    factory.device(
        organisation=history["org"],
        product=history["product"],
        accepted_on=today().isoformat(),
        serial="FRESH-1",
    )
    r = client.get("/api/v1/coverage/expiring?days=62", headers=history["customer"].headers)
    assert r.status_code == 200
    rows = r.get_json()["items"]
    assert [row["serial"] for row in rows] == ["SOON-1"]
    days_left = (ends_on - today()).days
    assert (rows[0]["days_left"], rows[0]["covered_through"]) == (days_left, ends_on.isoformat())
    r = client.get("/api/v1/coverage/expiring?days=30", headers=history["customer"].headers)
    assert [row["serial"] for row in r.get_json()["items"]] == (
        ["SOON-1"] if days_left <= 30 else []
    )
    r = client.get(
        "/api/v1/coverage/expiring?days=62&format=csv", headers=history["customer"].headers
    )
    assert r.mimetype == "text/csv"
    parsed = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["serial"] for row in parsed] == ["SOON-1"]
    # Another organisation sees none of them.
    stranger = factory.caller("customer-viewer", factory.organisation())
    r = client.get("/api/v1/coverage/expiring?days=3660", headers=stranger.headers)
    assert r.get_json()["items"] == []

    r = client.get(
        f"/api/v1/organisations/{history['org'].id}/coverage", headers=history["customer"].headers
    )
    summary = r.get_json()
    assert summary["devices"] == 3
    assert summary["today"] == today().isoformat()
    assert {status: set(counts) for status, counts in summary["kinds"].items()} == {
        kind: {
            "covered",
            "trial",
            "awaiting-acceptance",
            "expired",
            "not-started",
            "undelivered",
            "ending_90_days",
        }
        for kind in ("upgrades", "warranty", "support")
    }
    upgrades = summary["kinds"]["upgrades"]
    assert (upgrades["covered"], upgrades["expired"], upgrades["ending_90_days"]) == (2, 1, 1)


def test_changing_a_devices_dates_changes_what_it_is_offered(client, history):
    _changed_and_covered(
        client,
        history,
        f"/api/v1/devices/{history['device'].id}",
        {"accepted_on": (today() - timedelta(days=330)).isoformat()},
    )


def test_refresh_rederives_what_the_check_reads(client, history, runner):
    device = history["device"]
    # As if restored from an old backup: the stored windows are lost.
    device.upgrade_windows = None
    db.session.commit()
    assert _check(client, history["token"]).get_json()["version"] == "2.0.0"  # unrestricted
    result = runner.invoke(args=["coverage", "refresh"])
    assert result.exit_code == 0, result.output
    assert "devices refreshed" in result.output
    assert _check(client, history["token"]).get_json()["version"] == "1.0.0"
    result = runner.invoke(args=["coverage", "expiring", "--days", "3660"])
    # Nothing covered ends: it expired.
    assert result.exit_code == 0
    assert result.output.strip() == "No coverage ends in the next 3660 days."


def test_tuf_targets_check_coverage_for_a_device_that_asks(client, history):
    product = history["product"]
    newest = history["releases"]["2.0.0"]["artifact"]
    directory, name = newest["target_path"].rsplit("/", 1)
    url = f"/tuf/{product.code}/targets/{directory}/{newest['sha256']}.{name}"
    headers = {"Authorization": f"Bearer {history['token']}"}
    assert_problem(client.get(url, headers=headers), 403, "not-entitled")
    old = history["releases"]["1.0.0"]["artifact"]
    directory, name = old["target_path"].rsplit("/", 1)
    url = f"/tuf/{product.code}/targets/{directory}/{old['sha256']}.{name}"
    assert client.get(url, headers=headers).status_code == 200


def test_the_last_covered_day_is_kept_as_a_date_beside_the_windows(factory):
    """devices.upgrade_through (the console's counts read it) follows every refresh."""
    from datetime import date

    accepted = first_of_month(today(), -6)
    device, _ = factory.device(accepted_on=accepted.isoformat())
    stored = device.upgrade_windows["through"]
    assert stored and device.upgrade_through == date.fromisoformat(stored)
    stock, _ = factory.device()  # not delivered: not restricted, no last day
    assert stock.upgrade_windows is None and stock.upgrade_through is None

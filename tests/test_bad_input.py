"""Bad input of every shape is a 4xx problem, on SQLite and PostgreSQL alike:
ids past the database's range, text no store can hold, NaN, deep nesting,
chunked and oddly framed bodies. Each of these answered 500 once."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.clock import at, today
from tests.helpers.problems import assert_problem
from upgrade_server.clock import utcnow
from upgrade_server.extensions import db
from upgrade_server.routing import MAX_ID
from upgrade_server.tickets.models import TicketBreach

CHECK = "/api/device/v1/update-check"


@pytest.fixture
def admin(factory):
    return factory.caller("admin")


@pytest.mark.parametrize(
    "number",
    [str(MAX_ID + 1), str(2**63), "9" * 23, "9" * 5000],
    ids=["2^31", "2^63", "23 digits", "5000 digits"],
)
def test_ids_past_the_database_range_name_nothing(client, admin, number):
    url = f"/api/v1/devices/{number}"
    assert_problem(client.get(url, headers=admin.headers), 404, "not-found")
    assert_problem(client.get(url), 404, "not-found")  # without a token too
    r = client.patch(f"/api/v1/products/{number}", json={"name": "x"}, headers=admin.headers)
    assert r.status_code in (404, 405) and r.mimetype == "application/problem+json"


def test_an_id_in_range_but_absent_is_still_a_plain_404(client, admin):
    assert_problem(client.get(f"/api/v1/devices/{MAX_ID}", headers=admin.headers), 404, "not-found")


def test_tuf_metadata_versions_past_the_range(client, factory):
    product = factory.product()
    for name in ("99999999999999999999999.root.json", f"{MAX_ID + 1}.root.json"):
        r = client.get(f"/tuf/{product.code}/metadata/{name}")
        assert_problem(r, 404, "not-found")


@pytest.mark.parametrize("number", [2**31, 2**63, 10**30])
def test_ids_in_bodies_and_queries_past_the_range(client, admin, number):
    r = client.post(
        "/api/v1/contracts",
        json={
            "kind": "upgrades",
            "device_id": number,
            "starts_on": "2026-01-01",
            "ends_on": "2026-12-31",
            "reference": "X",
        },
        headers=admin.headers,
    )
    assert 400 <= r.status_code < 500, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    r = client.get(f"/api/v1/devices?organisation_id={number}", headers=admin.headers)
    assert 400 <= r.status_code < 500 or r.get_json()["items"] == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('"x\\ud800"', "surrogate"),
        ('"\\udfff x"', "surrogate"),
        ('"x\\u0000y"', "NUL"),
    ],
)
def test_text_no_store_can_hold_is_refused(client, admin, text, reason):
    body = f'{{"slug": "acme", "name": {text}}}'
    r = client.post(
        "/api/v1/organisations", data=body, content_type="application/json", headers=admin.headers
    )
    assert reason in assert_problem(r, 400, "bad-request")["detail"]
    # In a key, and in the query string, too.
    body = f'{{"slug": "acme", "name": "Acme", {text}: 1}}'
    r = client.post(
        "/api/v1/organisations", data=body, content_type="application/json", headers=admin.headers
    )
    assert_problem(r, 400, "bad-request")
    r = client.get("/api/v1/devices?serial=a%00b", headers=admin.headers)
    assert_problem(r, 400, "bad-request")
    # A real character outside the BMP (a surrogate pair in JSON) is fine.
    r = client.post(
        "/api/v1/organisations",
        data='{"slug": "acme", "name": "Acme \\ud83d\\ude80"}',
        content_type="application/json",
        headers=admin.headers,
    )
    assert r.status_code == 201 and r.get_json()["name"] == "Acme \U0001f680"


def test_deeply_nested_json_is_a_400(client, admin):
    for depth in (40, 100_000):
        body = "[" * depth + "]" * depth
        r = client.post(
            "/api/v1/organisations",
            data=body,
            content_type="application/json",
            headers=admin.headers,
        )
        assert "nested" in assert_problem(r, 400, "bad-request")["detail"]


def test_update_check_refuses_nan_and_unstorable_text(client, factory):
    _, token = factory.device()
    headers = {"Authorization": f"Bearer {token}"}
    for attributes in ('{"t": NaN}', '{"t": -Infinity}', '{"t": 1e999}', '{"n": "x\\ud800"}'):
        body = f'{{"current_version": "1.0.0", "attributes": {attributes}}}'
        r = client.post(CHECK, data=body, content_type="application/json", headers=headers)
        assert_problem(r, 400, "bad-request")
    r = client.post(
        CHECK, data="[" * 30_000 + "]" * 30_000, content_type="application/json", headers=headers
    )
    assert_problem(r, 400, "bad-request")


def _chunked(client, token: str, document: dict):
    """POST the document as a chunked body, with no Content-Length."""
    return client.post(
        CHECK,
        input_stream=io.BytesIO(json.dumps(document).encode()),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
    )


def test_update_check_takes_a_chunked_body(client, factory):
    _, token = factory.device()
    r = _chunked(client, token, {"current_version": "1.0.0"})
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    # Chunked and too large: 413, as with a declared length.
    big = {"current_version": "1.0.0", "attributes": {"x": "y" * 70_000}}
    assert_problem(_chunked(client, token, big), 413, "payload-too-large")


def test_update_check_with_a_garbled_content_length(client, factory):
    _, token = factory.device()
    r = client.post(
        CHECK,
        data=b"{}",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Length": "12abc",
        },
    )
    assert 400 <= r.status_code < 500


# --- timestamps ------------------------------------------------------------------------------


@pytest.fixture
def desk(factory):
    """A Shanghai customer with a device, a support engineer, and a ticket."""
    org = factory.organisation(timezone="Asia/Shanghai")
    device, token = factory.device(organisation=org)
    support = factory.caller("support")
    return {
        "org": org,
        "device": device,
        "device_headers": {"Authorization": f"Bearer {token}"},
        "support": support,
    }


def _open(client, desk) -> int:
    r = client.post(
        "/api/v1/tickets",
        json={"title": "PSU", "level": 3, "organisation_id": desk["org"].id},
        headers=desk["support"].headers,
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()["id"]


def _fields(body) -> set[str]:
    return {e["field"] for e in body["errors"]}


@pytest.mark.parametrize(
    "value",
    ["2026-12-01T10:00:00", "2026-12-01", "yesterday", "2026-13-01T10:00:00Z", 5],
    ids=["naive", "date only", "words", "no such month", "number"],
)
def test_a_step_time_without_an_offset_or_malformed_is_a_422_naming_it(client, desk, value):
    ticket_id = _open(client, desk)
    r = client.post(
        f"/api/v1/tickets/{ticket_id}/status",
        json={"status": "acknowledged", "at": value},
        headers=desk["support"].headers,
    )
    assert _fields(assert_problem(r, 422, "invalid-input")) == {"at"}
    # Other timestamps the API takes, by staff and by devices, say the same.
    r = client.post(
        "/api/device/v1/alarms",
        json={"alarm_id": "t-1", "code": "PSU", "level": 3, "occurred_at": value},
        headers=desk["device_headers"],
    )
    assert _fields(assert_problem(r, 422, "invalid-input")) == {"occurred_at"}
    r = client.put(
        f"/api/v1/tickets/{ticket_id}/report",
        json={"fault_started_at": value},
        headers=desk["support"].headers,
    )
    assert _fields(assert_problem(r, 422, "invalid-input")) == {"fault_started_at"}


def test_a_time_whose_offset_takes_it_past_the_calendar_is_a_422(client, desk):
    ticket_id = _open(client, desk)
    r = client.put(
        f"/api/v1/tickets/{ticket_id}/report",
        json={"fault_started_at": "0001-01-01T00:00:00+14:00"},
        headers=desk["support"].headers,
    )
    assert _fields(assert_problem(r, 422, "invalid-input")) == {"fault_started_at"}


def test_a_step_dated_in_the_future_is_refused_not_recorded_as_a_breach(client, desk):
    ticket_id = _open(client, desk)
    url = f"/api/v1/tickets/{ticket_id}/status"
    later = (utcnow() + timedelta(days=3)).isoformat()
    r = client.post(
        url, json={"status": "acknowledged", "at": later}, headers=desk["support"].headers
    )
    body = assert_problem(r, 422, "invalid-input")
    assert _fields(body) == {"at"}
    ticket = client.get(f"/api/v1/tickets/{ticket_id}", headers=desk["support"].headers).get_json()
    assert ticket["status"] == "new" and ticket["acknowledged_at"] is None
    assert db.session.scalars(select(TicketBreach)).all() == []
    # A clock a minute or two ahead of the server's is not the future.
    skewed = (utcnow() + timedelta(minutes=2)).isoformat()
    r = client.post(
        url, json={"status": "acknowledged", "at": skewed}, headers=desk["support"].headers
    )
    assert r.status_code == 200, r.get_data(as_text=True)


def test_a_step_dated_before_the_tickets_last_step_is_refused(client, desk):
    ticket_id = _open(client, desk)
    url, headers = f"/api/v1/tickets/{ticket_id}/status", desk["support"].headers
    before_opening = (utcnow() - timedelta(hours=1)).isoformat()
    r = client.post(url, json={"status": "acknowledged", "at": before_opening}, headers=headers)
    assert _fields(assert_problem(r, 422, "invalid-input")) == {"at"}
    assert client.post(url, json={"status": "acknowledged"}, headers=headers).status_code == 200
    earlier = (utcnow() - timedelta(minutes=30)).isoformat()
    r = client.post(url, json={"status": "on-site", "at": earlier}, headers=headers)
    assert _fields(assert_problem(r, 422, "invalid-input")) == {"at"}
    ticket = client.get(f"/api/v1/tickets/{ticket_id}", headers=headers).get_json()
    assert ticket["status"] == "acknowledged" and ticket["on_site_at"] is None


def test_recovery_steps_need_times_with_their_offset_and_are_kept_in_utc(client, desk):
    ticket_id = _open(client, desk)
    url, headers = f"/api/v1/tickets/{ticket_id}/report", desk["support"].headers
    naive = {"recovery_steps": [{"at": "2026-01-01T10:00:00", "step": "reboot"}]}
    r = client.put(url, json=naive, headers=headers)
    assert assert_problem(r, 422, "invalid-input")
    local = (utcnow() - timedelta(hours=2)).astimezone(ZoneInfo("Asia/Shanghai"))
    steps = {"recovery_steps": [{"at": local.isoformat(), "step": "reboot"}]}
    r = client.put(url, json=steps, headers=headers)
    assert r.status_code == 200, r.get_json()
    kept = r.get_json()["recovery_steps"][0]["at"]
    assert datetime.fromisoformat(kept) == local and kept.endswith("+00:00")


def test_report_bounds_take_a_plain_date_as_its_start_in_the_organisations_zone(
    client, desk, clock
):
    # 20:00 UTC is 04:00 the next day in Shanghai: the ticket is of that next day there.
    utc_day = today("UTC") + timedelta(days=1)
    clock.move_to(at(utc_day, 20))
    ticket_id = _open(client, desk)
    r = client.post(
        f"/api/v1/tickets/{ticket_id}/status",
        json={"status": "acknowledged"},
        headers=desk["support"].headers,
    )
    assert r.status_code == 200
    headers = desk["support"].headers

    def tickets_on(day, organisation=desk["org"].id):
        url = (
            f"/api/v1/tickets/deadline-report?from={day}&to={day + timedelta(days=1)}"
            f"&organisation_id={organisation}"
        )
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.get_data(as_text=True)
        return {row["ticket_id"] for row in r.get_json()["items"]}

    shanghai_day = utc_day + timedelta(days=1)
    assert tickets_on(shanghai_day) == {ticket_id}
    assert tickets_on(utc_day) == set()
    # Times with their offsets are taken as they are, and may be mixed with a date.
    start = quote(at(utc_day, 19).isoformat())
    r = client.get(
        f"/api/v1/tickets/deadline-report?from={start}&to={shanghai_day + timedelta(days=1)}",
        headers=headers,
    )
    assert {row["ticket_id"] for row in r.get_json()["items"]} == {ticket_id}
    # A bound without its offset is refused, naming it.
    r = client.get(
        f"/api/v1/tickets/deadline-report?from={utc_day}T00:00:00&to={shanghai_day}",
        headers=headers,
    )
    assert _fields(assert_problem(r, 422, "invalid-input")) == {"from"}

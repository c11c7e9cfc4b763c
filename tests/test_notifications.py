"""Notifications of urgent tickets, against a local webhook receiver and a
local SMTP server started here, including a failing and a hanging receiver."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.live import live_server
from upgrade_server.clock import utcnow
from upgrade_server.extensions import db
from upgrade_server.tickets import notify
from upgrade_server.tickets.notify import Notification


class Receiver:
    """A webhook endpoint: records JSON bodies; fails the first `failures`
    requests with a 500; `hang` holds every answer until released."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.failures = 0
        self.hang = threading.Event()
        self.hang.set()
        self.arrived = threading.Event()
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.set()
                receiver.hang.wait(timeout=30)
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                receiver.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.hang.set()
    found.server.shutdown()


@pytest.fixture
def wired(app, monkeypatch, receiver, mailbox):
    box, port = mailbox
    settings = app.config["SETTINGS"]
    monkeypatch.setattr(settings, "notify_webhook_url", receiver.url)
    monkeypatch.setattr(settings, "smtp_host", "127.0.0.1")
    monkeypatch.setattr(settings, "smtp_port", port)
    monkeypatch.setattr(settings, "notify_email_to", "oncall@vendor.test")
    monkeypatch.setattr(settings, "notify_timeout_seconds", 2.0)
    # The emergency acknowledgement (10 minutes) is not "about to pass" at once.
    monkeypatch.setattr(settings, "notify_before_minutes", 5)
    return receiver, box


@pytest.fixture
def line(client, factory):
    org = factory.organisation(region="beijing")
    _, token = factory.device(organisation=org)
    db.session.commit()
    return {"org": org, "headers": {"Authorization": f"Bearer {token}"}, "factory": factory}


def _alarm(client, line, alarm_id, level=1, code="PSU_FAIL"):
    r = client.post(
        "/api/device/v1/alarms",
        json={
            "alarm_id": alarm_id,
            "code": code,
            "level": level,
            "message": "no power",
            "occurred_at": utcnow().isoformat(),
        },
        headers=line["headers"],
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()["ticket_id"]


def test_a_new_level_1_ticket_is_sent_by_webhook_and_mail(client, app, wired, line):
    receiver, box = wired
    ticket_id = _alarm(client, line, "a-1")
    assert receiver.bodies == [] and box.messages == []  # the request did not send it
    assert notify.run_once(app) == 1
    assert receiver.bodies[0]["ticket_id"] == ticket_id
    assert receiver.bodies[0]["event"] == "ticket-opened" and receiver.bodies[0]["level"] == 1
    assert len(box.messages) == 1
    assert f"Level 1 ticket #{ticket_id}" in box.messages[0].content.decode()
    assert box.messages[0].rcpt_tos == ["oncall@vendor.test"]
    # Sent once: another pass and another alarm on the same ticket add nothing.
    _alarm(client, line, "a-2")
    assert notify.run_once(app) == 0
    assert len(receiver.bodies) == 1 and len(box.messages) == 1
    # Level 3 is not urgent.
    _alarm(client, line, "c-1", level=3, code="FAN_SLOW")
    notify.run_once(app)
    assert len(receiver.bodies) == 1


def test_a_failing_receiver_is_retried_and_the_other_channel_not_repeated(client, app, wired, line):
    receiver, box = wired
    receiver.failures = 1
    _alarm(client, line, "a-1")
    assert notify.run_once(app) == 0
    note = db.session.query(Notification).one()
    assert note.attempts == 1 and "webhook" in note.last_error
    assert note.email_done_at is not None and note.webhook_done_at is None
    assert notify.run_once(app) == 0  # not due again yet
    later = utcnow() + timedelta(hours=2)
    assert notify.run_once(app, now=later) == 1
    assert len(receiver.bodies) == 1 and len(box.messages) == 1


def test_a_hanging_receiver_blocks_neither_the_request_nor_delivery_for_long(
    client, app, wired, line
):
    receiver, _ = wired
    receiver.hang.clear()
    app.config["SETTINGS"].notify_timeout_seconds = 0.5  # restored by monkeypatch
    _alarm(client, line, "a-1")  # answered without waiting for anyone
    assert notify.run_once(app) == 0
    note = db.session.query(Notification).one()
    assert "webhook" in note.last_error and note.email_done_at is not None


def test_a_deadline_about_to_pass_is_notified_once(client, app, wired, line):
    receiver, _ = wired
    customer = line["factory"].caller("customer-viewer", line["org"])
    r = client.post("/api/v1/tickets", json={"title": "Slow", "level": 3}, headers=customer.headers)
    assert r.status_code == 201
    notify.run_once(app)
    assert receiver.bodies == []  # level 3: nothing at opening
    # Within a day and 5 minutes: acknowledgement (24 h) and on site (4 h in Beijing).
    app.config["SETTINGS"].notify_before_minutes = 24 * 60 + 5  # restored by monkeypatch
    assert notify.run_once(app) == 2
    assert {b["event"] for b in receiver.bodies} == {"deadline-acknowledge", "deadline-on_site"}
    assert notify.run_once(app) == 0


@pytest.mark.own_app
def test_the_notifier_runs_by_itself_in_a_serving_process(scratch_url, tmp_path, receiver):
    settings = {"notify_webhook_url": receiver.url, "notify_interval_seconds": 0.05}
    with live_server(scratch_url, tmp_path / "instance", **settings) as live:
        client = live.app.test_client()
        org = client.post(
            "/api/v1/organisations", json={"slug": "acme", "name": "ACME"}, headers=live.headers
        ).get_json()
        r = client.post(
            "/api/v1/tickets",
            json={"title": "Down", "level": 2, "organisation_id": org["id"]},
            headers=live.headers,
        )
        assert r.status_code == 201, r.get_json()
        urllib.request.urlopen(f"{live.url}/healthz").read()  # the process serves
        assert receiver.got.wait(timeout=30), "the notifier never delivered"
        assert receiver.bodies[0]["ticket_id"] == r.get_json()["id"]


@pytest.mark.own_app
def test_while_a_receiver_hangs_the_notifier_holds_no_transaction(scratch_url, tmp_path, receiver):
    """Claimed, then sent outside any transaction: on SQLite an open one would
    hold the write lock, and every request that writes would wait for it."""
    settings = {"notify_webhook_url": receiver.url, "notify_timeout_seconds": 30}
    with live_server(scratch_url, tmp_path / "instance", **settings) as live:
        client = live.app.test_client()
        org = client.post(
            "/api/v1/organisations", json={"slug": "acme", "name": "ACME"}, headers=live.headers
        ).get_json()
        ticket = {"title": "Down", "level": 2, "organisation_id": org["id"]}
        opened = client.post("/api/v1/tickets", json=ticket, headers=live.headers)
        assert opened.status_code == 201, opened.get_json()
        receiver.hang.clear()
        sending = threading.Thread(target=notify.run_once, args=(live.app,))
        sending.start()
        try:
            assert receiver.arrived.wait(timeout=30)
            other = {"slug": "other", "name": "Other"}
            r = client.post("/api/v1/organisations", json=other, headers=live.headers)
            assert r.status_code == 201, r.get_json()
        finally:
            receiver.hang.set()
            sending.join(timeout=30)
        assert [body["ticket_id"] for body in receiver.bodies] == [opened.get_json()["id"]]


# --- stale notifications (issue 14, point 9): checked when due, not only when queued ------------


def test_a_deadline_notice_queued_before_the_deadline_was_met_is_not_sent(client, app, wired, line):
    receiver, _ = wired
    support = line["factory"].caller("support")
    customer = line["factory"].caller("customer-viewer", line["org"])
    r = client.post("/api/v1/tickets", json={"title": "Slow", "level": 3}, headers=customer.headers)
    settings = app.config["SETTINGS"]
    settings.notify_before_minutes = 24 * 60 + 5  # restored by monkeypatch
    assert notify.due_soon(db.session, settings) == 2  # acknowledge and on site, queued
    db.session.commit()
    url = f"/api/v1/tickets/{r.get_json()['id']}/status"
    assert client.post(url, json={"status": "acknowledged"}, headers=support.headers).status_code
    assert notify.deliver(db.session, settings) == 1
    assert [b["event"] for b in receiver.bodies] == ["deadline-on_site"]
    ack = db.session.query(Notification).filter(Notification.key.like("%acknowledge%")).one()
    assert ack.delivered_at is None and ack.cancelled_at is not None
    assert ack.cancelled_reason == "the acknowledge deadline was met"
    assert notify.run_once(app) == 0 and len(receiver.bodies) == 1  # and never after


def test_nothing_queued_for_a_ticket_goes_out_once_it_is_resolved_or_closed(
    client, app, wired, line
):
    receiver, box = wired
    support = line["factory"].caller("support")
    ticket_id = _alarm(client, line, "a-1")  # level 1: "ticket opened" is queued
    settings = app.config["SETTINGS"]
    settings.notify_before_minutes = 48 * 60  # restored by monkeypatch
    assert notify.due_soon(db.session, settings) == 2
    db.session.commit()
    r = client.post(
        f"/api/v1/tickets/{ticket_id}/status", json={"status": "resolved"}, headers=support.headers
    )
    assert r.status_code == 200
    assert notify.run_once(app) == 0
    assert receiver.bodies == [] and box.messages == []
    notes = db.session.query(Notification).all()
    assert len(notes) == 3
    reasons = {(n.cancelled_reason, n.delivered_at) for n in notes}
    assert reasons == {("the ticket is resolved", None)}


def test_no_deadline_notice_while_the_ticket_waits_on_the_customer(client, app, wired, line):
    receiver, _ = wired
    support = line["factory"].caller("support")
    customer = line["factory"].caller("customer-viewer", line["org"])
    r = client.post("/api/v1/tickets", json={"title": "Slow", "level": 3}, headers=customer.headers)
    url = f"/api/v1/tickets/{r.get_json()['id']}"
    client.post(f"{url}/pause", json={"reason": "remote access"}, headers=support.headers)
    client.post(f"{url}/pause/confirm", headers=customer.headers)
    app.config["SETTINGS"].notify_before_minutes = 24 * 60 + 5  # restored by monkeypatch
    assert notify.run_once(app) == 0 and receiver.bodies == []
    client.post(f"{url}/pause/end", headers=support.headers)
    assert notify.run_once(app) == 2

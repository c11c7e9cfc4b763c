"""The gates at work (rollouts/evaluation.py): a wave advances, completes,
waits for a person, or the rollout halts by itself; each decision is in the
audit log with its figures, and a halt is notified by mail and webhook."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.helpers.rollouts import fleet, raise_alarms, report
from upgrade_server.audit.models import AuditEntry
from upgrade_server.clock import utcnow
from upgrade_server.extensions import db
from upgrade_server.rollouts import evaluation
from upgrade_server.rollouts.models import Rollout, RolloutDecision
from upgrade_server.rollouts.offer import load_active, offered
from upgrade_server.rollouts.plan import Target
from upgrade_server.tickets import notify
from upgrade_server.tickets.notify import Notification
from upgrade_server.updates import service

# Small waves judged quickly: two reports, alarms judged from the start.
QUICK = {
    "min_soak_seconds": 600,
    "min_reported": 2,
    "min_reported_to_halt": 3,
    "min_failures_to_halt": 2,
    "min_device_days_to_judge_alarms": 0,
    "confidence_z": 0,
    "max_alarm_ratio": 2.0,
}


def _start(client, f, wave0, **gates):
    waves = [{"share": 0, "devices": [d.id for d in wave0]}, {"share": 10000}]
    return f.start(client, waves=waves, gates={**QUICK, **gates})


def _rollout(body) -> Rollout:
    rollout = db.session.get(Rollout, body["id"])
    db.session.refresh(rollout)
    return rollout


def _entries(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_a_wave_whose_gates_hold_advances_after_its_soak(client, factory):
    f = fleet(client, factory, 6, 0)
    wave0 = f.devices[:3]
    body = _start(client, f, wave0)
    started = utcnow()
    for device in wave0:
        report(device, f.release_id, "installed", started + timedelta(minutes=1))
    assert evaluation.evaluate_all(db.session(), started + timedelta(minutes=5)) == []  # soaking
    (decision,) = evaluation.evaluate_all(db.session(), started + timedelta(hours=2))
    assert decision.action == "advance" and decision.automatic and decision.actor == "rollout-gates"
    assert decision.figures["installed"] == 3 and decision.figures["success_rate"] == 1.0
    rollout = _rollout(body)
    assert rollout.current_wave == 1 and rollout.state == "running"
    (entry,) = _entries("rollout.advance")
    assert entry.actor_type == "system" and entry.after["figures"]["installed"] == 3
    assert entry.after["reasons"] and "Gates hold" in entry.after["reasons"][0]
    later = f.devices[5]
    active = load_active(db.session.connection(), f.product.id)
    assert offered(active, f.release_id, Target(later.id, later.organisation_id, "rev-a")) is True


def test_failures_over_the_stop_threshold_halt_notify_and_withdraw_the_offer(
    client, factory, app, monkeypatch, mailbox
):
    f = fleet(client, factory, 6, 0)
    wave0 = f.devices[:5]
    body = _start(client, f, wave0)
    now = utcnow()
    report(wave0[0], f.release_id, "installed", now)
    for device in wave0[1:4]:
        report(device, f.release_id, "failed", now)
    downloading = wave0[4]  # part-way through when the rollout halts
    report(downloading, f.release_id, "downloading", now)
    db.session.refresh(f.product)
    generation = f.product.release_generation
    (decision,) = evaluation.evaluate_all(db.session(), now + timedelta(minutes=1))
    assert decision.action == "halt"
    rollout = _rollout(body)
    db.session.refresh(f.product)
    assert f.product.release_generation > generation  # the update check sees it at once
    assert rollout.state == "halted" and "3 of 4 devices" in rollout.halted_reason
    (entry,) = _entries("rollout.halt")
    assert entry.after["figures"]["failed"] == 3 and entry.after["figures"]["reported"] == 4
    assert rollout.in_progress == [downloading.id] and entry.after["figures"]["in_progress"] == 1
    shown = client.get(f"/api/v1/rollouts/{body['id']}", headers=f.publisher.headers)
    assert shown.get_json()["in_progress"] == [downloading.id]
    # The offer stops for the devices that had not started, not for the one
    # downloading it (cut off half-way, it would retry forever).
    active = load_active(db.session.connection(), f.product.id)
    assert [
        offered(active, f.release_id, Target(device.id, device.organisation_id, "rev-a"))
        for device in f.devices
    ] == [device is downloading for device in f.devices]
    # Once it reports how the install ended, it is not part-way any more: the
    # offer stops for it too (a failed device would retry at every check).
    generation = f.product.release_generation
    service.record_event(
        db.session(),
        downloading,
        service.EventReport("ev-outcome", "failed", release_id=f.release_id, error_code="E1"),
    )
    assert _rollout(body).in_progress == []
    db.session.refresh(f.product)
    assert f.product.release_generation > generation
    active = load_active(db.session.connection(), f.product.id)
    target = Target(downloading.id, downloading.organisation_id, "rev-a")
    assert offered(active, f.release_id, target) is False
    # Nothing more to evaluate while it is halted.
    assert evaluation.evaluate_all(db.session(), now + timedelta(hours=3)) == []

    (note,) = db.session.scalars(select(Notification).where(Notification.kind == "rollout"))
    assert note.ticket_id is None and note.payload["event"] == "rollout-halted"
    assert note.payload["figures"]["failed"] == 3 and note.payload["version"] == "1.1.0"
    box, port = mailbox
    settings = app.config["SETTINGS"]
    monkeypatch.setattr(settings, "smtp_host", "127.0.0.1")
    monkeypatch.setattr(settings, "smtp_port", port)
    monkeypatch.setattr(settings, "notify_email_to", "release-team@vendor.test")
    assert notify.deliver(db.session(), settings) == 1  # not cancelled as a ticket's would be
    (mail,) = box.messages
    assert b"rollout-halted" in mail.content and b"halted" in mail.content

    resumed = client.post(
        f"/api/v1/rollouts/{body['id']}/resume", json={}, headers=f.publisher.headers
    )
    assert resumed.get_json()["state"] == "running" and resumed.get_json()["halted_reason"] is None
    assert _rollout(body).in_progress == []


def test_updated_devices_raising_alarms_over_the_stop_ratio_halt(client, factory):
    f = fleet(client, factory, 8, 0)
    wave0, control = f.devices[:4], f.devices[4:]
    body = _start(client, f, wave0, stop_alarm_ratio=3.0)
    now = utcnow()
    for device in wave0:
        report(device, f.release_id, "installed", now)
        raise_alarms(device, now + timedelta(minutes=30), 6)
    for device in control:
        raise_alarms(device, now + timedelta(minutes=30), 1)
    (decision,) = evaluation.evaluate_all(db.session(), now + timedelta(hours=2))
    assert decision.action == "halt"
    assert decision.figures["alarms_treated"] == 24 and decision.figures["alarms_control"] == 4
    assert decision.figures["alarm_ratio"] >= 3
    assert "alarms" in _rollout(body).halted_reason


def test_without_auto_advance_the_gates_wait_for_a_person_once(client, factory):
    f = fleet(client, factory, 4, 0)
    wave0 = f.devices[:2]
    body = _start(client, f, wave0, auto_advance=False)
    now = utcnow()
    for device in wave0:
        report(device, f.release_id, "installed", now)
    (decision,) = evaluation.evaluate_all(db.session(), now + timedelta(hours=2))
    assert decision.action == "wait-for-approval" and _rollout(body).current_wave == 0
    assert evaluation.evaluate_all(db.session(), now + timedelta(hours=3)) == []
    r = client.post(f"/api/v1/rollouts/{body['id']}/advance", json={}, headers=f.publisher.headers)
    assert r.get_json()["current_wave"] == 1
    actions = db.session.scalars(
        select(RolloutDecision.action)
        .where(RolloutDecision.rollout_id == body["id"])
        .order_by(RolloutDecision.id)
    ).all()
    assert actions == ["start", "wait-for-approval", "advance"]


def test_the_last_wave_completes(client, factory):
    f = fleet(client, factory, 4, 0)
    body = f.start(client, waves=[{"share": 10000}], gates=QUICK)
    now = utcnow()
    for device in f.devices[:3]:  # the fourth, not yet updated, is the control
        report(device, f.release_id, "installed", now)
    (decision,) = evaluation.evaluate_all(db.session(), now + timedelta(hours=1))
    assert decision.action == "complete" and _rollout(body).state == "completed"


def test_the_background_pass_evaluates_in_units_of_work_of_its_own(client, factory, app):
    f = fleet(client, factory, 4, 0)
    wave0 = f.devices[:2]
    body = _start(client, f, wave0)
    now = utcnow()
    for device in wave0:
        report(device, f.release_id, "installed", now)
    db.session.commit()
    assert evaluation.run_once(app, now + timedelta(hours=2)) == 1
    assert _rollout(body).current_wave == 1


def test_resumed_without_the_failing_revision_the_wave_is_judged_on_the_rest(client, factory):
    f = fleet(client, factory, 4, 2)
    wave0 = [f.devices[0], f.devices[1], f.devices[4]]  # two rev-a, one rev-b
    body = _start(client, f, wave0, min_failures_to_halt=1)
    now = utcnow()
    report(wave0[0], f.release_id, "installed", now)
    report(wave0[1], f.release_id, "installed", now)
    report(wave0[2], f.release_id, "failed", now)
    (halt,) = evaluation.evaluate_all(db.session(), now + timedelta(minutes=1))
    assert halt.action == "halt" and halt.figures["failed"] == 1

    url, headers = f"/api/v1/rollouts/{body['id']}", f.publisher.headers
    r = client.post(f"{url}/excluded-hardware", json={"code": "rev-b"}, headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    r = client.post(f"{url}/resume", json={}, headers=headers)
    current = r.get_json()["progress"]["current"]
    # The failed rev-b device is no longer the wave's: its failure no longer counts.
    assert (current["eligible"], current["installed"], current["failed"]) == (2, 2, 0)
    (decision,) = evaluation.evaluate_all(db.session(), utcnow() + timedelta(hours=1))
    assert decision.action == "advance" and decision.figures["failed"] == 0
    assert _rollout(body).current_wave == 1

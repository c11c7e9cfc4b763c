"""A running rollout steered from its release's page: pause, resume, advance,
abort (confirmed first), through the same service as the API, audited."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests.helpers.console import as_staff, page
from tests.helpers.portal import csrf
from tests.helpers.rollouts import fleet
from upgrade_server.audit.models import AuditEntry
from upgrade_server.extensions import db
from upgrade_server.rollouts.models import Rollout


def _state(rollout_id: int) -> tuple[str, int]:
    rollout = db.session.get(Rollout, rollout_id)
    db.session.refresh(rollout)
    return rollout.state, rollout.current_wave


def test_a_publisher_pauses_resumes_advances_and_aborts_with_a_reason(client, factory):
    f = fleet(client, factory, 4, 0)
    body = f.start(client, waves=[{"share": 100}, {"share": 1000}, {"share": 10000}])
    as_staff(client, factory, "publisher")
    detail = f"/console/releases/{f.release_id}"
    base = f"{detail}/rollouts/{body['id']}"
    html = page(client, detail)
    assert "Pause the rollout" in html and "Advance to the next wave now" in html
    assert "Resume the rollout" not in html
    token = csrf(html)
    assert client.post(f"{base}/pause", data={"csrf_token": token}).status_code == 303
    assert _state(body["id"]) == ("paused", 0)
    html = page(client, detail)
    assert "Resume the rollout" in html and "Pause the rollout" not in html
    client.post(f"{base}/resume", data={"csrf_token": token})
    client.post(f"{base}/advance", data={"csrf_token": token})
    assert _state(body["id"]) == ("running", 1)
    # Abort: first a page that says what it stops; the POST without "confirm" acts not.
    confirm = page(client, f"{base}/abort")
    assert "withdraws the offer for good" in confirm
    client.post(f"{base}/abort", data={"csrf_token": token, "reason": "bad build"})
    assert _state(body["id"]) == ("running", 1)
    r = client.post(
        f"{base}/abort", data={"csrf_token": token, "reason": "bad build", "confirm": "yes"}
    )
    assert r.status_code == 303 and _state(body["id"]) == ("aborted", 1)
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.action.like("rollout.%")).order_by(AuditEntry.id)
    ).all()
    assert actions[-4:] == ["rollout.pause", "rollout.resume", "rollout.advance", "rollout.abort"]
    # A step the state does not allow is refused with a page, never a 500.
    r = client.post(f"{base}/resume", data={"csrf_token": token})
    assert r.status_code == 409 and "Not possible now" in r.get_data(as_text=True)
    assert client.post(f"{base}/jump", data={"csrf_token": token}).status_code == 404


def test_a_viewer_sees_no_control_and_is_refused(client, factory):
    f = fleet(client, factory, 2, 0)
    body = f.start(client)
    as_staff(client, factory, "viewer", lang="zh-CN")
    html = page(client, f"/console/releases/{f.release_id}")
    assert "/rollouts/" not in html and not re.search(r"暂停|中止", html.split("<main")[1])
    r = client.post(
        f"/console/releases/{f.release_id}/rollouts/{body['id']}/pause",
        data={"csrf_token": csrf(html)},
    )
    assert r.status_code == 403 and _state(body["id"])[0] == "running"


def test_controls_need_the_forms_token_and_the_right_release(client, factory):
    f = fleet(client, factory, 2, 0)
    body = f.start(client)
    other = fleet(client, factory, 1, 0)
    as_staff(client, factory, "admin")
    base = f"/console/releases/{f.release_id}/rollouts/{body['id']}"
    assert client.post(f"{base}/pause").status_code == 400
    html = page(client, f"/console/releases/{f.release_id}")
    wrong = f"/console/releases/{other.release_id}/rollouts/{body['id']}/pause"
    assert client.post(wrong, data={"csrf_token": csrf(html)}).status_code == 404
    assert _state(body["id"])[0] == "running"

"""End to end: an agent (a separate process) uploads alarms to gunicorn; the
ticket is worked to closed over HTTP; the customer reads the report."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, update

from tests.agent_helpers import write_config
from tests.gunicorn_server import gunicorn, provision, seed_publisher, user_token
from upgrade_server.tickets.models import Ticket

pytestmark = [pytest.mark.own_app, pytest.mark.slow]


def _call(url: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def _agent_alarm(config, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "upgrade_agent.cli", "--config", str(config), "alarm", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_agent_alarm_becomes_a_ticket_worked_to_closed(scratch_url, tmp_path):
    instance = tmp_path / "instance"
    seed_publisher(scratch_url, instance)
    secret = provision(scratch_url, instance, "gw", "rev-a", "F-1")
    support = user_token(scratch_url, instance, "eng@vendor.test", "support")
    customer = user_token(scratch_url, instance, "ops@acme.test", "customer-viewer", "acme")
    with gunicorn(scratch_url, instance, workers=2) as url:
        config = write_config(tmp_path / "device", url, secret, "rev-a", b"{}")
        first = _agent_alarm(config, "--code", "PSU_FAIL", "--level", "1", "--message", "no power")
        again = _agent_alarm(config, "--code", "PSU_FAIL", "--level", "1")
        ticket_id = int(first.split()[-1])
        assert again.split()[-1] == str(ticket_id)  # added to the open ticket
        ticket = _call(f"{url}/api/v1/tickets/{ticket_id}", customer)
        assert ticket["alarm_count"] == 2 and ticket["level"] == 1
        opened = datetime.fromisoformat(ticket["opened_at"])
        due = {d["name"]: datetime.fromisoformat(d["due_at"]) for d in ticket["deadlines"]}
        assert due["acknowledge"] == opened + timedelta(minutes=10)
        assert due["on_site"] == opened + timedelta(hours=24)  # "acme" is outside Beijing

        base = f"{url}/api/v1/tickets/{ticket_id}"
        for status in ("acknowledged", "on-the-way", "on-site", "resolved"):
            _call(f"{base}/status", support, "POST", {"status": status})
        report = {
            "fault_started_at": ticket["opened_at"],
            "fault_ended_at": datetime.now(UTC).isoformat(),
            "symptoms": "no power",
            "cause": "power supply unit failed",
            "solution": "replaced it",
            "recovery_steps": [{"at": datetime.now(UTC).isoformat(), "step": "replaced the PSU"}],
            "follow_up": "check the spare stock",
        }
        _call(f"{base}/report", support, "PUT", report)
        _call(f"{base}/report/deliver", support, "POST")
        closed = _call(f"{base}/status", support, "POST", {"status": "closed"})
        assert closed["status"] == "closed"
        assert _call(f"{base}/report", customer)["cause"] == "power supply unit failed"
        assert all(d["late_minutes"] is None for d in closed["deadlines"])

        # Another fault nobody acknowledged for an hour shows as breached.
        late = int(_agent_alarm(config, "--code", "LINK_DOWN", "--level", "1").split()[-1])
        engine = create_engine(scratch_url)
        with engine.begin() as conn:
            conn.execute(
                update(Ticket)
                .where(Ticket.id == late)
                .values(opened_at=datetime.now(UTC) - timedelta(hours=1))
            )
        engine.dispose()
        window = {
            "from": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "to": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        }
        query = urllib.parse.urlencode(window)
        found = _call(f"{url}/api/v1/tickets/deadline-report?{query}", customer)
        breached = [r for r in found["items"] if not r["met"]]
        assert [(r["ticket_id"], r["deadline"]) for r in breached] == [(late, "acknowledge")]
        with pytest.raises(urllib.error.HTTPError) as refused:
            _call(f"{base}/status", customer, "POST", {"status": "closed"})
        assert refused.value.code == 403

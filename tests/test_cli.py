"""The command line: first admin, inventory, import, demo, tickets, passwords, version."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from tests.clock import today
from tests.helpers.console import console_login
from tests.helpers.portal import csrf, login
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.models import User
from upgrade_server.audit.models import AuditEntry
from upgrade_server.cli.main import cli
from upgrade_server.clock import utcnow
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db
from upgrade_server.service import service
from upgrade_server.service.models import ServiceSession


def _last_line(output: str) -> str:
    return output.strip().splitlines()[-1].strip()


def test_admin_create_prints_a_working_token(runner, client):
    result = runner.invoke(args=["admin", "create", "--email", "root@example.test"])
    assert result.exit_code == 0, result.output
    token = _last_line(result.output)
    assert token.startswith("usk_")
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["role"] == "admin"
    again = runner.invoke(args=["admin", "create", "--email", "root@example.test"])
    assert again.exit_code == 1
    assert "exists" in again.output


def test_inventory_commands(runner, tmp_path):
    steps = [
        ["org", "create", "--slug", "acme", "--name", "ACME", "--region", "beijing"],
        ["product", "create", "--code", "gw", "--name", "Gateway", "--revision", "r1"],
        ["product", "add-revision", "gw", "r2"],
        [
            "device",
            "create",
            "--serial",
            "CLI-1",
            "--product",
            "gw",
            "--revision",
            "r2",
            "--org",
            "acme",
            "--accepted-on",
            "2025-01-01",
        ],
    ]
    for args in steps:
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
    listed = runner.invoke(args=["device", "list", "--org", "acme"])
    assert "CLI-1" in listed.output and "gw/r2" in listed.output
    products = runner.invoke(args=["product", "list"])
    assert "[r1,r2]" in products.output


def test_cli_reports_bad_input_plainly(runner):
    result = runner.invoke(args=["org", "create", "--slug", "Bad Slug!", "--name", "x"])
    assert result.exit_code == 1
    assert "bad slug" in result.output
    assert "Traceback" not in result.output


def test_device_import_all_or_nothing(runner, tmp_path):
    runner.invoke(args=["org", "create", "--slug", "imp", "--name", "Imp"])
    runner.invoke(args=["product", "create", "--code", "imp-gw", "--name", "G", "--revision", "a"])
    good = tmp_path / "good.csv"
    good.write_text(
        "serial,product,hardware_revision,organisation\nIMP-1,imp-gw,a,imp\nIMP-2,imp-gw,a,imp\n"
    )
    out = tmp_path / "tokens.csv"
    result = runner.invoke(args=["device", "import", str(good), "--tokens-out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "serial,token" and len(lines) == 3
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "serial,product,hardware_revision,organisation\nIMP-3,imp-gw,a,imp\nIMP-4,imp-gw,zz,imp\n"
    )
    before = db.session.execute(select(func.count()).select_from(Device)).scalar_one()
    result = runner.invoke(args=["device", "import", str(bad), "--tokens-out", str(out)])
    assert result.exit_code == 1
    assert "line 3" in result.output
    after = db.session.execute(select(func.count()).select_from(Device)).scalar_one()
    assert before == after


def test_demo_is_repeatable(runner, client):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    assert "http://127.0.0.1:8000" in first.output
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    token = next(line.split()[-1] for line in second.output.splitlines() if "admin admin@" in line)
    headers = {"Authorization": f"Bearer {token}"}
    r = client.get("/api/v1/devices?serial_prefix=DEMO-", headers=headers)
    assert len(r.get_json()["items"]) == 3
    product_id = r.get_json()["items"][0]["product_id"]
    releases = client.get(f"/api/v1/products/{product_id}/releases", headers=headers).get_json()
    assert [(r["version"], r["status"]) for r in releases["items"]] == [("1.0.0", "published")]
    assert releases["items"][0]["notes"]["zh-CN"].startswith("## 1.0.0 版本说明")
    timestamp = client.get("/tuf/edge-gw/metadata/timestamp.json")
    assert timestamp.status_code == 200
    # The printed portal password logs the demo customer in; the update shows.
    password = next(
        line.split()[-1] for line in second.output.splitlines() if "portal password" in line
    )
    email = next(
        line.split()[-2] for line in second.output.splitlines() if "portal password" in line
    )
    assert login(client, email, password).status_code == 302
    page = client.get("/portal/devices?lang=en").get_data(as_text=True)
    assert "DEMO-" in page and ">1.0.0</a>" in page
    # The printed console password logs the demo admin in to the staff console.
    line = next(line for line in second.output.splitlines() if "console password" in line)
    client.post("/portal/logout", data={"csrf_token": csrf(page)})
    assert console_login(client, line.split()[-2], password=line.split()[-1]).status_code == 302
    assert "/console/" in second.output
    assert "Fleet by version" in client.get("/console/?lang=en").get_data(as_text=True)


def test_service_commands(runner, factory):
    org = factory.organisation()
    device, _ = factory.device(organisation=org, delivered_on="2026-02-01")
    customer = factory.caller("customer-viewer", org)
    db.session.commit()
    planned = runner.invoke(
        args=[
            "service", "plan", "--kind", "training", "--org", org.slug,
            "--device", device.serial, "--engineer", "Wang Wei", "--training-days", "1",
        ]
    )  # fmt: skip
    assert planned.exit_code == 0, planned.output
    session_id = int(planned.output.split()[1])
    started = runner.invoke(
        args=["service", "start", str(session_id), "--at", "2026-03-01T09:00+0800"]
    )
    assert started.exit_code == 0 and "started" in started.output
    # Out of order: the customer has not confirmed the start yet.
    early = runner.invoke(args=["service", "end", str(session_id)])
    assert early.exit_code == 1 and "start-confirmed" in early.output
    confirmer = accounts.principal_for(customer.user)
    service.advance(db.session, confirmer, ServiceSession, session_id, "confirm-start")
    db.session.commit()
    ended = runner.invoke(args=["service", "end", str(session_id), "--outcome", "trained 4 people"])
    assert ended.exit_code == 0 and "ended" in ended.output
    record = runner.invoke(args=["service", "record", device.serial])
    # Delivered with no pre-installation notice on record: a warning at its delivery first.
    assert record.output.splitlines()[1].startswith("2026-02-01 00:00,warning,")
    assert record.output.splitlines()[2].startswith("2026-03-01 09:00,session,training")
    training = runner.invoke(args=["service", "reminders", "training"])
    assert training.output.split("\t")[1:] == ["2026-02-01", "1.0", "2.0\n"]
    phone = runner.invoke(args=["service", "phone-request", "--org", org.slug, "--title", "Q"])
    assert phone.exit_code == 0 and "opened" in phone.output
    # A planned visit that will not take place is cancelled, with the reason.
    visit = runner.invoke(
        args=["service", "plan", "--kind", "follow-up", "--org", org.slug, "--engineer", "Li"]
    )
    visit_id = visit.output.split()[1]
    refused = runner.invoke(args=["service", "cancel", str(session_id), "--reason", "x"])
    assert refused.exit_code == 1 and "only a planned session" in refused.output
    cancelled = runner.invoke(args=["service", "cancel", visit_id, "--reason", "customer asked"])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output


# --- staff tools: tickets, passwords, version, coverage -----------------------------------------


def test_tickets_from_the_cli_run_the_apis_services_as_staff_and_are_audited(
    runner, client, factory
):
    org = factory.organisation()
    device, _ = factory.device(organisation=org)
    support = factory.caller("support")
    customer = factory.user("customer-admin", org)
    db.session.commit()
    as_support = ["--as", support.user.email]
    opened = runner.invoke(
        args=["tickets", "open", "--org", org.slug, "--level", "3", "--title", "PSU fails",
              "--device", device.serial, *as_support]
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    ticket_id = int(opened.output.split()[1])
    listed = runner.invoke(args=["tickets", "list"])
    assert listed.exit_code == 0 and f"{ticket_id}\tL3\tnew\t{org.slug}" in listed.output
    assert "PSU fails" in listed.output and "acknowledge" in listed.output
    # A step time later than now, or without its offset, is refused as the API refuses it.
    future = (utcnow() + timedelta(hours=2)).isoformat()
    for bad in (future, "2026-12-01T09:30:00"):
        r = runner.invoke(args=["tickets", "advance", str(ticket_id), "acknowledged", "--at", bad])
        assert r.exit_code == 1 and "--at" in r.output and "Traceback" not in r.output
    moved = runner.invoke(args=["tickets", "advance", str(ticket_id), "acknowledged", *as_support])
    assert moved.exit_code == 0 and "acknowledged" in moved.output, moved.output
    again = runner.invoke(args=["tickets", "advance", str(ticket_id), "acknowledged"])
    assert again.exit_code == 1 and "already acknowledged" in again.output
    level = runner.invoke(args=["tickets", "level", str(ticket_id), "2", *as_support])
    assert level.exit_code == 0 and "level 2" in level.output
    # The API sees what the CLI did.
    body = client.get(f"/api/v1/tickets/{ticket_id}", headers=support.headers).get_json()
    assert (body["status"], body["level"], body["device_ids"]) == ("acknowledged", 2, [device.id])
    shown = runner.invoke(args=["tickets", "show", str(ticket_id), "--json"])
    view = json.loads(shown.output)
    assert view["steps"]["acknowledged"] == body["acknowledged_at"]
    assert {d["name"] for d in view["deadlines"]} == {d["name"] for d in body["deadlines"]}
    text = runner.invoke(args=["tickets", "show", str(ticket_id)]).output
    assert f"ticket {ticket_id}: PSU fails" in text and "deadline" in text
    assert f"working days in {body['timezone']}" in text
    # Audited, naming the staff user it acted as.
    actions = dict(
        db.session.execute(
            select(AuditEntry.action, AuditEntry.actor_label).where(
                AuditEntry.object_type == "tickets", AuditEntry.object_id == str(ticket_id)
            )
        ).all()
    )
    assert actions == {
        "ticket.open": support.user.email,
        "ticket.acknowledged": support.user.email,
        "ticket.level": support.user.email,
    }
    # Only vendor staff: a customer's account is not a staff principal.
    r = runner.invoke(args=["tickets", "list", "--as", customer.email])
    assert r.exit_code == 1 and "not vendor staff" in r.output
    missing = runner.invoke(args=["tickets", "show", "999999"])
    assert missing.exit_code == 1 and "no ticket" in missing.output


def test_set_password_prompts_twice_or_reads_stdin_and_ends_the_users_sessions(
    runner, client, factory, caplog
):
    caplog.set_level(logging.DEBUG)
    org = factory.organisation()
    user = factory.user("customer-viewer", org, email="ops@pw.test")
    user.password_hash = accounts.hash_password("the old password")
    db.session.commit()
    assert login(client, "ops@pw.test", "the old password").status_code == 302
    assert client.get("/portal/devices").status_code == 200
    new = "a brand new password"
    r = runner.invoke(args=["accounts", "set-password", "ops@pw.test"], input=f"{new}\n{new}\n")
    assert r.exit_code == 0, r.output
    assert new not in r.output
    # The session that began before the change has ended; the new password logs in.
    assert client.get("/portal/devices").status_code == 302
    assert login(client, "ops@pw.test", "the old password").status_code == 200
    assert login(client, "ops@pw.test", new).status_code == 302
    # From standard input, for scripts.
    piped = "piped in from a secret store"
    r = runner.invoke(
        args=["accounts", "set-password", "ops@pw.test", "--password-stdin"], input=f"{piped}\n"
    )
    assert r.exit_code == 0 and piped not in r.output
    assert accounts.check_password(db.session.get(User, user.id), piped)
    # The API's rules: too short (or empty) is refused and changes nothing.
    for bad in ("short", ""):
        r = runner.invoke(
            args=["accounts", "set-password", "ops@pw.test", "--password-stdin"], input=f"{bad}\n"
        )
        assert r.exit_code == 1 and "12 to 1024 characters" in r.output, r.output
    assert accounts.check_password(db.session.get(User, user.id), piped)
    # Two prompts that differ are asked again, never taken.
    r = runner.invoke(
        args=["accounts", "set-password", "ops@pw.test"], input=f"{new}\nsomething else!!\n"
    )
    assert r.exit_code != 0 and "do not match" in r.output
    assert (
        runner.invoke(args=["accounts", "set-password", "nobody@pw.test"], input="x\nx\n").exit_code
        == 1
    )
    # Audited as a change of the user, and the password is nowhere in the log or the audit.
    changes = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "user.update", AuditEntry.object_id == str(user.id)
        )
    ).all()
    assert len(changes) == 2
    stored = json.dumps([[c.before, c.after] for c in changes])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (new, piped):
        assert secret not in stored and secret not in logged


def test_version_prints_this_servers_version():
    expected = f"upgrade-server {version('upgrade-server')}"
    r = CliRunner().invoke(cli(), ["--version"])
    assert r.exit_code == 0 and r.output.strip() == expected
    installed = Path(sys.executable).with_name("upgrade-server")
    found = subprocess.run([installed, "--version"], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0 and found.stdout.strip() == expected


def test_coverage_expiring_says_so_when_nothing_expires(runner, factory):
    factory.device(accepted_on=today().isoformat())
    r = runner.invoke(args=["coverage", "expiring", "--days", "30"])
    assert r.exit_code == 0 and r.output == "No coverage ends in the next 30 days.\n"


RFC_822 = re.compile(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4}")


def test_the_apis_json_for_the_demo_data_has_no_rfc_822_date(runner, client):
    shown = runner.invoke(args=["demo"])
    assert shown.exit_code == 0, shown.output
    tokens = {
        role: next(line.split()[-1] for line in shown.output.splitlines() if marker in line)
        for role, marker in (
            ("admin", "admin admin@"),
            ("customer", "customer operator@"),
            ("device", "device DEMO-0001"),
        )
    }
    headers = {role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}
    # More kinds of record than the demo holds: a ticket from an alarm, with a step.
    r = client.post(
        "/api/device/v1/alarms",
        json={"alarm_id": "rfc-1", "code": "PSU", "level": 2, "occurred_at": utcnow().isoformat()},
        headers=headers["device"],
    )
    ticket_id = r.get_json()["ticket_id"]
    client.post(
        f"/api/v1/tickets/{ticket_id}/status",
        json={"status": "acknowledged"},
        headers=headers["admin"],
    )
    spec = client.get("/api/openapi.json").get_json()
    answers = {}
    for path, operations in spec["paths"].items():
        if "get" not in operations:
            continue
        url = re.sub(r"\{ticket_id\}", str(ticket_id), path)
        url = re.sub(r"\{[^}]+\}", "1", url)
        if "deadline-report" in url:
            url += f"?from={today()}&to={today() + timedelta(days=1)}"
        for role, h in headers.items():
            r = client.get(url, headers=h)
            if r.is_json:
                answers[f"{role} {url}"] = r.get_data(as_text=True)
    days = f"from={today()}&to={today() + timedelta(days=1)}"
    r = client.get(f"/api/v1/tickets/deadline-report?{days}&format=csv", headers=headers["admin"])
    answers["deadline-report.csv"] = r.get_data(as_text=True)
    r = client.post(
        "/api/device/v1/update-check", json={"current_version": "0.9.0"}, headers=headers["device"]
    )
    answers["update-check"] = r.get_data(as_text=True)
    # The CLI's JSON too.
    answers["device list --json"] = runner.invoke(args=["device", "list", "--json"]).output
    answers["tickets show --json"] = runner.invoke(
        args=["tickets", "show", str(ticket_id), "--json"]
    ).output
    assert sum(1 for a in answers.values() if re.search(r"\d{4}-\d{2}-\d{2}", a)) > 20
    found = {
        where: RFC_822.search(text).group(0)
        for where, text in answers.items()
        if RFC_822.search(text)
    }
    assert found == {}

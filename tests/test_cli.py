"""The command line: first admin, inventory, import, demo."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.test_portal import login
from upgrade_server.accounts import service as accounts
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
    assert record.output.splitlines()[1].startswith("2026-03-01 09:00,session,training")
    training = runner.invoke(args=["service", "reminders", "training"])
    assert training.output.split("\t")[1:] == ["2026-02-01", "1.0", "2.0\n"]
    phone = runner.invoke(args=["service", "phone-request", "--org", org.slug, "--title", "Q"])
    assert phone.exit_code == 0 and "opened" in phone.output

"""`demo`: a working server with a demo organisation, product, devices and a
signed release."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.models import User
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Role
from upgrade_server.cli import transaction
from upgrade_server.clock import today_in
from upgrade_server.devices import provisioning
from upgrade_server.devices import service as devices
from upgrade_server.devices.models import Device
from upgrade_server.extensions import artifact_store, current_settings
from upgrade_server.migrate import upgrade as migrate_upgrade
from upgrade_server.organisations import service as organisations
from upgrade_server.products import service as products
from upgrade_server.products.models import Product

DEMO_ORG = "demo-customer"
DEMO_PRODUCT = "edge-gw"
DEMO_ADMIN = "admin@demo.invalid"
DEMO_CUSTOMER = "operator@demo-customer.invalid"
DEMO_DEVICES = (
    ("DEMO-0001", "rev-a", 400),  # serial, revision, days since acceptance
    ("DEMO-0002", "rev-b", 200),
    ("DEMO-0003", "rev-b", 1200),  # past its three covered years
)
# The device whose agent config the demo writes and prints.
DEMO_AGENT_DEVICE = "DEMO-0002"


def load_demo() -> dict[str, str]:
    """Create the demo data if missing; return fresh tokens to show once."""
    cli = Principal.cli()
    shown: dict[str, str] = {}
    with transaction() as session:
        org = organisations.find_by_slug(session, DEMO_ORG) or organisations.create_organisation(
            session,
            cli,
            slug=DEMO_ORG,
            name="Demo Customer Ltd. 演示客户",
            timezone="Asia/Shanghai",
            region="beijing",
        )
        product = products.find_by_code(session, DEMO_PRODUCT) or products.create_product(
            session,
            cli,
            code=DEMO_PRODUCT,
            name="Edge Gateway EG-100",
            description="Demo device line",
            hardware_revisions=[{"code": "rev-a"}, {"code": "rev-b"}],
        )
        users: dict[str, User] = {}
        for email, name, role, org_id in (
            (DEMO_ADMIN, "Demo Administrator", Role.ADMIN, None),
            (DEMO_CUSTOMER, "Demo Operator", Role.CUSTOMER_ADMIN, org.id),
        ):
            user = session.execute(select(User).where(User.email == email)).scalar_one_or_none()
            users[email] = user or accounts.create_user(
                session, cli, email=email, name=name, role=role.value, organisation_id=org_id
            )
        today = today_in("UTC")
        for serial, revision, age in DEMO_DEVICES:
            existing = session.execute(
                select(Device).where(Device.serial == serial)
            ).scalar_one_or_none()
            if existing is None:
                provisioned = provisioning.create_device(
                    session,
                    cli,
                    {
                        "serial": serial,
                        "product": product.code,
                        "hardware_revision": revision,
                        "organisation": org.slug,
                        "site": "Beijing Lab",
                        "delivered_on": (today - timedelta(days=age + 30)).isoformat(),
                        "accepted_on": (today - timedelta(days=age)).isoformat(),
                        "current_version": "0.9.0",
                    },
                )
            else:
                provisioned = devices.rotate_device_token(session, cli, existing)
            shown[f"device {serial}"] = provisioned.secret
        _publish_demo_release(session, cli, product)
        # The customer logs in to the portal, the admin to the staff console,
        # each with a password made for this run.
        for email, where in ((DEMO_CUSTOMER, "portal"), (DEMO_ADMIN, "console")):
            password = secrets.token_urlsafe(12)
            user = users[email]
            user.password_hash = accounts.hash_password(password)
            user.failed_logins, user.locked_until = 0, None
            shown[f"{where} password of {email}"] = password
        for label, email in (("admin", DEMO_ADMIN), ("customer", DEMO_CUSTOMER)):
            shown[f"{label} {email}"] = accounts.create_api_token(
                session, cli, name="demo", user_id=users[email].id, expires_in_days=30
            ).secret
    return shown


DEMO_RELEASE = {
    "version": "1.0.0",
    "filename": "edge-gw-1.0.0.bin",
    "channels": ["stable"],
    "security_fix": True,
    "notes": {
        "zh-CN": "## 1.0.0 版本说明\n\n- 新增远程诊断功能\n- 修复了若干安全问题",
        "en": "## Release 1.0.0\n\n- Adds remote diagnostics\n- Fixes several security issues",
    },
    "guidance": {
        "installation": {
            "zh-CN": "升级前请备份配置。升级约需 10 分钟，期间设备会重启一次。",
            "en": "Back up the configuration first. The upgrade takes about 10 minutes "
            "and restarts the device once.",
        },
        "operation": {
            "zh-CN": "远程诊断在“维护”菜单中开启。",
            "en": "Turn remote diagnostics on in the Maintenance menu.",
        },
        "maintenance": {
            "zh-CN": "每月检查一次诊断日志。",
            "en": "Check the diagnostics log monthly.",
        },
    },
    "requirements": [{"name": "memory", "value": "512", "unit": "MiB"}],
    "parameters": [
        {
            "name": "watchdog_timeout",
            "old_default": "30",
            "new_default": "60",
            "unit": "s",
            "operator_action": True,
            "action": "Check that monitoring tolerates the longer timeout.",
        }
    ],
}


def _publish_demo_release(session: Session, cli: Principal, product: Product) -> None:
    """A signed demo release, so one command gives a working signed repository."""
    from upgrade_server.releases import service as releases
    from upgrade_server.releases.models import Release
    from upgrade_server.signing.service import repository_for

    exists = session.execute(select(Release.id).where(Release.product_id == product.id)).first()
    if exists:
        return
    store = artifact_store()
    writer = store.writer()
    block = hashlib.sha256(b"demo firmware").digest() * 2048  # 64 KiB, reproducible
    for _ in range(4):
        writer.write(block)
    staged = writer.finish()
    repository = repository_for(session, product, current_settings(), create=True)
    releases.publish_release(
        session, cli, product, dict(DEMO_RELEASE), staged, store, repository, lambda undo: None
    )


# The demo's stand-in for a device's installer: it only says what it would install.
_DEMO_INSTALLER = (
    "import sys; print('demo device: would install', sys.argv[2], 'from', sys.argv[1])"
)


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only (mode 0600), even if the file existed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def write_agent_config(serial: str, token: str, server: str) -> tuple[Path, str]:
    """Write what `upgrade-agent` needs for a demo device into the instance
    folder (its token in a file of mode 0600, the product's trusted TUF root)
    and its config; returns the config's path and text. The config names the
    token file: the token itself is never printed."""
    from upgrade_server.signing.service import repository_for

    folder = current_settings().resolved_instance_path() / "demo-agent" / serial
    folder.mkdir(parents=True, exist_ok=True)
    token_file = folder / "token"
    _write_private(token_file, token.encode() + b"\n")
    with transaction() as session:
        device = session.execute(select(Device).where(Device.serial == serial)).scalar_one()
        root = repository_for(session, device.product, current_settings()).latest_file("root")
        if root is None:
            raise click.ClickException(f"product {device.product.code} has no TUF root")
        root_file = folder / "root.json"
        root_file.write_bytes(root.data)
        settings = {
            "server": server,
            "token_file": str(token_file),
            "root": str(root_file),
            "product": device.product.code,
            "hardware_revision": device.hardware_revision.code,
            "channel": device.channel,
            "state_dir": str(folder / "state"),
        }
    # No initial_version: the agent asks the server, which knows the device's.
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    command = [sys.executable, "-c", _DEMO_INSTALLER, "{file}", "{version}"]
    lines.append(f"install_command = {json.dumps(command)}")
    text = "\n".join(lines) + "\n"
    config = folder / "agent.toml"
    config.write_text(text)
    return config, text


@click.command("demo", help="Migrate, load demo data and print tokens; --serve runs it.")
@click.option("--serve", is_flag=True, help="Start gunicorn afterwards.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def demo_command(serve: bool, host: str, port: int) -> None:
    migrate_upgrade(str(current_app.config["SQLALCHEMY_DATABASE_URI"]))
    shown = load_demo()
    base = f"http://{host}:{port}"
    agent_label = f"device {DEMO_AGENT_DEVICE}"
    config, text = write_agent_config(DEMO_AGENT_DEVICE, shown[agent_label], base)
    click.echo("Demo data ready. Tokens (shown once; run `demo` again for new ones):")
    for label, secret in shown.items():
        if label == agent_label:
            secret = f"(in {config.parent / 'token'}, mode 0600)"
        click.echo(f"  {label:<42} {secret}")
    click.echo(f"\nAgent config for {DEMO_AGENT_DEVICE} (written to {config}):\n")
    click.echo(text)
    # The agent is its own distribution (agent/): the server does not ship it.
    click.echo("Install the agent (its own package): pip install ./agent")
    click.echo(f"Run it: upgrade-agent --config {config} run --until-idle")
    click.echo(
        f"\nServer: {base}\n  Portal:   {base}/portal/ (log in as {DEMO_CUSTOMER} with the"
        " portal password above)\n"
        f"  Console:  {base}/console/ (log in as {DEMO_ADMIN} with the console password"
        " above)\n"
        f"  API docs: {base}/api/docs\n  Health:   {base}/readyz\n"
        f"  TUF:      {base}/tuf/{DEMO_PRODUCT}/metadata/1.root.json "
        f"(trusted root of the demo release {DEMO_RELEASE['version']})\n"
        f"  Try:      curl -H 'Authorization: Bearer <admin token>' {base}/api/v1/devices\n"
        f"  hawkBit:  SWUpdate or RAUC clients poll {base}/{DEMO_ORG}/controller/v1/<serial>"
        " (tenant = the organisation, TargetToken = the device's token)"
    )
    if serve:
        _exec_gunicorn(host, port)


@click.command("serve", help="Run the app under gunicorn (settings: see the README).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve_command(host: str, port: int) -> None:
    _exec_gunicorn(host, port)


def _exec_gunicorn(host: str, port: int) -> None:
    # The settings and the app come from the package, so an installed server
    # (no checkout) serves too; the instance folder is the one of the folder
    # the command runs in, as for `demo`.
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
    os.environ.setdefault("GUNICORN_BIND", f"{host}:{port}")
    config = "python:upgrade_server.gunicorn_conf"
    sys.stdout.flush()
    os.execv(gunicorn, [gunicorn, "--config", config, "upgrade_server:create_app()"])  # noqa: S606

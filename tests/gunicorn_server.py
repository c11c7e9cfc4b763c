"""The app under gunicorn, as in production, on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.moto_server import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def gunicorn(database_url: str, instance: Path, workers: int = 2, **env: str) -> Iterator[str]:
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "UPGRADE_SERVER_INSTANCE_PATH": str(instance),
        "UPGRADE_SERVER_LOG_LEVEL": "WARNING",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_ACCESS_LOG": "/dev/null",
        "UPGRADE_SERVER_TUF_BIN_BITS": "4",
        **env,
    }
    log = (instance / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        urllib.request.urlopen(url + "/healthz").close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def seed_publisher(
    database_url: str,
    instance: Path,
    product: str = "gw",
    revisions: tuple[str, ...] = ("rev-a",),
) -> tuple[str, int]:
    """Migrate a fresh database; add a publisher (returns its token) and a product."""
    from upgrade_server import create_app
    from upgrade_server.accounts import service as accounts
    from upgrade_server.accounts.principal import Principal
    from upgrade_server.config import Settings
    from upgrade_server.extensions import db
    from upgrade_server.migrate import upgrade
    from upgrade_server.products import service as products

    upgrade(database_url)
    app = create_app({"SETTINGS": Settings(instance_path=instance, database_url=database_url)})
    with app.app_context():
        cli = Principal.cli()
        user = accounts.create_user(
            db.session, cli, email="publisher@example.test", name="P", role="publisher"
        )
        token = accounts.create_api_token(db.session, cli, name="ci", user_id=user.id).secret
        created = products.create_product(
            db.session,
            cli,
            code=product,
            name=product,
            hardware_revisions=[{"code": r} for r in revisions],
        )
        db.session.commit()
        product_id = created.id
        db.engine.dispose()
    return token, product_id


def provision(
    database_url: str, instance: Path, product: str, revision: str, serial: str, **dates: str
) -> str:
    """A device of an organisation "acme", on 0.9.0 (delivered_on, accepted_on
    as given); returns its token."""
    from upgrade_server import create_app
    from upgrade_server.accounts.principal import Principal
    from upgrade_server.config import Settings
    from upgrade_server.devices import provisioning
    from upgrade_server.extensions import db
    from upgrade_server.organisations import service as organisations

    app = create_app({"SETTINGS": Settings(instance_path=instance, database_url=database_url)})
    with app.app_context():
        cli = Principal.cli()
        if organisations.find_by_slug(db.session, "acme") is None:
            organisations.create_organisation(db.session, cli, slug="acme", name="ACME")
        provisioned = provisioning.create_device(
            db.session,
            cli,
            {
                "serial": serial,
                "product": product,
                "hardware_revision": revision,
                "organisation": "acme",
                "current_version": "0.9.0",
                **dates,
            },
        )
        db.session.commit()
        secret = provisioned.secret
        db.engine.dispose()
    return secret


def user_token(
    database_url: str, instance: Path, email: str, role: str, org: str | None = None
) -> str:
    """A user of `role` (of organisation `org` for customer roles); returns an API token."""
    from upgrade_server import create_app
    from upgrade_server.accounts import service as accounts
    from upgrade_server.accounts.principal import Principal
    from upgrade_server.config import Settings
    from upgrade_server.extensions import db
    from upgrade_server.organisations import service as organisations

    app = create_app({"SETTINGS": Settings(instance_path=instance, database_url=database_url)})
    with app.app_context():
        cli = Principal.cli()
        organisation = organisations.find_by_slug(db.session, org) if org else None
        user = accounts.create_user(
            db.session,
            cli,
            email=email,
            name=email,
            role=role,
            organisation_id=organisation.id if organisation else None,
        )
        token = accounts.create_api_token(db.session, cli, name="e2e", user_id=user.id).secret
        db.session.commit()
        db.engine.dispose()
    return token


def operator(url: str, token: str, *args: str) -> str:
    """`upgrade-server remote …` against the server at `url`, as the operator
    types it, with the publisher's `token`; its output (the command must succeed)."""
    from click.testing import CliRunner

    from upgrade_server.cli.main import cli

    result = CliRunner().invoke(
        cli(),
        ["remote", "--server", url, *args],
        env={"UPGRADE_SERVER_TOKEN": token},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output

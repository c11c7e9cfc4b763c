"""A real HTTP server running the app on a loopback port, on its own database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.serving import served
from upgrade_server import background, create_app
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.config import Settings
from upgrade_server.extensions import db
from upgrade_server.migrate import upgrade
from upgrade_server.products import service as products


@dataclass
class Live:
    app: Any
    url: str
    admin_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@contextmanager
def live_server(database_url: str, instance: Path, **settings: Any) -> Iterator[Live]:
    upgrade(database_url)
    app = create_app(
        {
            "SETTINGS": Settings(
                instance_path=instance,
                database_url=database_url,
                log_level="WARNING",
                **{"tuf_bin_bits": 4, "report_batch_seconds": 0, **settings},
            )
        }
    )
    with app.app_context():
        cli = Principal.cli()
        admin = accounts.create_user(
            db.session, cli, email="live-admin@example.test", name="Admin", role="admin"
        )
        token = accounts.create_api_token(db.session, cli, name="live", user_id=admin.id).secret
        db.session.commit()
    try:
        with served(app) as url:
            yield Live(app, url, token)
    finally:
        background.stop(app)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def add_product(live: Live, code: str, revisions: tuple[str, ...] = ("rev-a", "rev-b")) -> int:
    with live.app.app_context():
        product = products.create_product(
            db.session,
            Principal.cli(),
            code=code,
            name=code,
            hardware_revisions=[{"code": r} for r in revisions],
        )
        db.session.commit()
        return product.id


def publish(live: Live, product_id: int, version: str, **metadata: Any) -> int:
    """Publish `version` (a small artifact; stable unless `channels` says
    otherwise) through the live app's API; its release id."""
    import io
    import json

    r = live.app.test_client().post(
        f"/api/v1/products/{product_id}/releases",
        data={
            "metadata": json.dumps({"version": version, "channels": ["stable"], **metadata}),
            "artifact": (io.BytesIO(version.encode() * 100), f"gw-{version}.bin"),
        },
        headers=live.headers,
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    return int(r.get_json()["id"])

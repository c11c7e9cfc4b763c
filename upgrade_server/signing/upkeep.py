"""Re-signing expiring online metadata in the background, in every worker.

The timestamp (1 day) and snapshot (1 week) must be re-signed before they
expire even when no device reaches the server (devices may poll a static
export). Each worker runs this every few minutes; the unique (product, role,
version) key lets one worker win and the others' attempts roll back.
"""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from upgrade_server import background
from upgrade_server.products.models import Product
from upgrade_server.signing.service import repository_for
from upgrade_server.unit_of_work import unit_of_work

log = logging.getLogger(__name__)


def refresh_all(app: Flask) -> dict[str, list[str]]:
    """One pass over every product, a unit of work each (one product's conflict
    undoes no other's); returns what was re-signed per product."""
    settings = app.config["SETTINGS"]
    with unit_of_work(app, writes=False) as s:
        product_ids = s.execute(select(Product.id).order_by(Product.id)).scalars().all()
    renewed: dict[str, list[str]] = {}
    for product_id in product_ids:
        try:
            with unit_of_work(app) as s:
                product = s.get(Product, product_id)
                if product is None:
                    continue  # deleted since
                code, repo = product.code, repository_for(s, product, settings)
                roles = repo.refresh_expiring() if repo.exists() else []
        except (IntegrityError, OperationalError):
            continue  # another worker re-signed it first (this unit rolled back)
        renewed[code] = roles
    return {code: roles for code, roles in renewed.items() if roles}


def start(app: Flask, interval: float) -> None:
    """Run refresh_all every `interval` seconds in each process serving the app."""

    def work(app: Flask) -> None:
        done = refresh_all(app)
        if done:
            log.info("re-signed %s", done)

    background.add(app, "tuf-upkeep", interval, work)

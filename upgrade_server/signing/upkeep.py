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
from upgrade_server.database import write_intent
from upgrade_server.extensions import db, session
from upgrade_server.products.models import Product
from upgrade_server.signing.service import repository_for

log = logging.getLogger(__name__)


def refresh_all(app: Flask) -> dict[str, list[str]]:
    """One pass over every product; returns what was re-signed per product."""
    renewed: dict[str, list[str]] = {}
    token = write_intent.set(True)
    try:
        with app.app_context():
            settings = app.config["SETTINGS"]
            s = session()
            products = s.execute(select(Product).order_by(Product.id)).scalars().all()
            for product in products:
                repo = repository_for(s, product, settings)
                try:
                    if repo.exists():
                        renewed[product.code] = repo.refresh_expiring()
                    s.commit()
                except (IntegrityError, OperationalError):
                    s.rollback()  # another worker re-signed it first
            db.session.remove()
    finally:
        write_intent.reset(token)
    return {code: roles for code, roles in renewed.items() if roles}


def start(app: Flask, interval: float) -> None:
    """Run refresh_all every `interval` seconds in each process serving the app."""

    def work(app: Flask) -> None:
        done = refresh_all(app)
        if done:
            log.info("re-signed %s", done)

    background.every(app, interval, work, "tuf-upkeep")

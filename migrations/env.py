"""Alembic environment: the schema comes only from these migrations.

The database URL is the app's (DATABASE_URL or the instance SQLite file),
unless the caller put a connection in config.attributes["connection"].
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import upgrade_server.models  # noqa: F401  (registers every table)
from upgrade_server.config import Settings
from upgrade_server.extensions import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    return url or Settings().resolved_database_url()


def run_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

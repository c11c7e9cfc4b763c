"""The schema comes only from Alembic, and the migrations match the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import upgrade_server.models  # noqa: F401
from upgrade_server.extensions import Base
from upgrade_server.migrate import downgrade, upgrade


def _diff(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return diff


def test_models_and_migrations_agree(database_url):
    """Autogenerate finds nothing to add: every model change has its migration."""
    assert _diff(database_url) == []


def test_every_model_table_exists(database_url):
    engine = create_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_downgrade_to_base_and_up_again(scratch_url):
    upgrade(scratch_url)
    assert _diff(scratch_url) == []
    downgrade(scratch_url, "base")
    engine = create_engine(scratch_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(scratch_url)
    assert _diff(scratch_url) == []


@pytest.mark.own_app
def test_app_never_creates_tables(tmp_path):
    """A new database stays empty until `db upgrade` runs: no create_all anywhere."""
    from upgrade_server import create_app
    from upgrade_server.config import Settings

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    fresh = create_app({"SETTINGS": Settings(instance_path=tmp_path, database_url=url)})
    fresh.test_client().get("/readyz")
    engine = create_engine(url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()

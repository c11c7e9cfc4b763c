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


def test_0019_fills_the_last_covered_day_from_the_stored_windows(scratch_url):
    """Devices stored before 0019 get upgrade_through from their windows' "through"."""
    import json

    from sqlalchemy import text

    from tests.clock import NOW, today

    upgrade(scratch_url, "0018")
    at, through = NOW.isoformat(), today().isoformat()
    engine = create_engine(scratch_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organisations (id, slug, name, timezone, region, created_at)"
                " VALUES (1, 'o', 'O', 'Asia/Shanghai', 'beijing', :at)"
            ),
            {"at": at},
        )
        conn.execute(
            text(
                "INSERT INTO products (id, code, name, description, created_at)"
                " VALUES (1, 'p', 'P', '', :at)"
            ),
            {"at": at},
        )
        conn.execute(
            text(
                "INSERT INTO hardware_revisions (id, product_id, code, name, created_at)"
                " VALUES (1, 1, 'r', 'R', :at)"
            ),
            {"at": at},
        )
        for n, windows in (
            (1, {"windows": [], "through": through}),
            (2, None),
            (3, {"windows": [], "through": None}),
        ):
            conn.execute(
                text(
                    "INSERT INTO devices (id, serial, product_id, hardware_revision_id,"
                    " organisation_id, channel, created_at, upgrade_windows)"
                    " VALUES (:n, :serial, 1, 1, 1, 'stable', :at, :w)"
                ),
                {
                    "n": n,
                    "serial": f"S-{n}",
                    "at": at,
                    "w": json.dumps(windows) if windows else None,
                },
            )
    upgrade(scratch_url, "0019")
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT id, upgrade_through FROM devices")).all())
    engine.dispose()
    assert {k: str(v)[:10] if v else None for k, v in found.items()} == {
        1: through,
        2: None,
        3: None,
    }

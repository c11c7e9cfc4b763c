"""Fixtures: one migrated database per run, each test in a rolled-back transaction.

The database is SQLite unless TEST_DATABASE_URL names another (CI also runs the
suite against PostgreSQL). Migrations run once per database; each test binds
the session to one connection with join_transaction_mode="create_savepoint", so
the commits a request makes are savepoints that the test's rollback undoes
(tests/test_isolation.py proves it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import time_machine
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from flask_sqlalchemy.session import _app_ctx_id
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import scoped_session, sessionmaker

from tests.clock import NOW
from tests.factories import Factory
from tests.helpers.databases import scratch_database
from tests.helpers.mail import Mailbox
from tests.moto_server import free_port
from upgrade_server import create_app
from upgrade_server.audit.checkpoints import FILE_NAME, CheckpointFile
from upgrade_server.config import Settings
from upgrade_server.extensions import db
from upgrade_server.migrate import upgrade
from upgrade_server.rollouts.gatekeeper import Gatekeeper
from upgrade_server.updates.offers import AnswerCache

# Background work (metadata upkeep, the ticket notifier, the staging cleaner, the rollouts' gates)
# stays off in apps the tests build: a thread outliving its test would use a
# later test's session, or another test's files.
# The tests of that work turn it on explicitly.
os.environ.setdefault("UPGRADE_SERVER_TUF_UPKEEP_SECONDS", "0")
os.environ.setdefault("UPGRADE_SERVER_NOTIFY_INTERVAL_SECONDS", "0")
os.environ.setdefault("UPGRADE_SERVER_STAGING_CLEANUP_SECONDS", "0")
os.environ.setdefault("UPGRADE_SERVER_ROLLOUT_EVALUATE_SECONDS", "0")


def _database_url(tmp: Path) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{tmp / 'test.db'}"
    resolved = Settings(database_url=url).resolved_database_url()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return resolved
    # Each xdist worker migrates and resets a database of its own beside the given one.
    given = make_url(resolved)
    own = f"{given.database}_{worker}"
    admin = create_engine(resolved, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": own})
        if exists.first() is None:
            conn.execute(text(f'CREATE DATABASE "{own}"'))
    admin.dispose()
    return given.set(database=own).render_as_string(hide_password=False)


def reset_database(url: str) -> None:
    """An empty database: PostgreSQL's public schema recreated, SQLite file removed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            for suffix in ("", "-wal", "-shm"):
                Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = _database_url(tmp_path_factory.mktemp("db"))
    reset_database(url)
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    instance = tmp_path_factory.mktemp("instance")
    return Settings(
        instance_path=instance,
        database_url=database_url,
        secret_key="test-secret-key",
        log_level="WARNING",
        # 16 hash bins instead of 256: the same code paths, faster set-up.
        tuf_bin_bits=4,
        # Reports written in the request, inside the test's transaction.
        report_batch_seconds=0,
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> Any:
    application = create_app({"SETTINGS": settings, "TESTING": True})
    return application


@pytest.fixture(autouse=True)
def clock(request: pytest.FixtureRequest) -> Iterator[time_machine.Coordinates | None]:
    """Each test starts at NOW (tests/clock.py), and time runs on from there;
    `clock.shift(...)` moves it. End-to-end tests (`slow`) keep the real clock:
    the servers they start run on it."""
    if request.node.get_closest_marker("slow"):
        yield None
        return
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def _transaction(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("own_app"):
        # The test builds its own app on its own database; leave db.session alone.
        yield
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original = db.session
        # A plain SQLAlchemy session: Flask-SQLAlchemy's own Session.get_bind
        # returns the engine and would escape the test's transaction.
        db.session = scoped_session(
            sessionmaker(bind=connection, join_transaction_mode="create_savepoint"),
            scopefunc=_app_ctx_id,
        )
        # The update check's hot path reads on its own connection: give it ours.
        hot_source = app.extensions["hot_connection"]
        app.extensions["hot_connection"] = lambda: nullcontext(connection)
        # Ids and release generations come back after each test's rollback:
        # answers cached by an earlier test must not answer this one.
        app.extensions["answer_cache"] = AnswerCache()
        app.extensions["gatekeeper"] = Gatekeeper()
        # The audit log is rolled back too: so goes the checkpoint of its head.
        checkpoints = app.extensions["audit_checkpoints"]
        app.extensions["audit_checkpoints"] = CheckpointFile(
            request.getfixturevalue("tmp_path") / FILE_NAME,
            app.config["SETTINGS"].resolved_audit_key(),
        )
        try:
            yield
        finally:
            app.extensions["audit_checkpoints"] = checkpoints
            app.extensions["hot_connection"] = hot_source
            db.session.remove()
            db.session = original
            outer.rollback()
            connection.close()


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def factory() -> Factory:
    return Factory(db.session)


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


@pytest.fixture
def scratch_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as the suite's."""
    with scratch_database(database_url, tmp_path) as url:
        yield url


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A local SMTP server: its mailbox and port."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()

"""Running the Alembic migrations from the app, the CLI and the tests, and
saying in one log line where the database stands."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, make_url

log = logging.getLogger(__name__)


def _migrations_dir() -> Path:
    """The repository's top-level migrations/, which an installed server
    carries inside its package (upgrade_server/migrations, pyproject's
    package-dir); UPGRADE_SERVER_MIGRATIONS names another."""
    if "UPGRADE_SERVER_MIGRATIONS" in os.environ:
        return Path(os.environ["UPGRADE_SERVER_MIGRATIONS"])
    here = Path(__file__).resolve().parent
    installed = here / "migrations"
    return installed if installed.is_dir() else here.parent / "migrations"


MIGRATIONS_DIR = _migrations_dir()


def quiet_alembic() -> None:
    """Alembic logs at INFO each built-in plugin it sets up (seven lines, once
    per process that imports it, so once per gunicorn worker) and each step of
    a migration; an operator needs only the outcome, which this module logs.
    Call it before alembic is first imported (gunicorn.conf.py does)."""
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against this code's migrations."""

    url: str  # without its password
    current: tuple[str, ...]  # the database's revisions; () when it has none
    heads: tuple[str, ...]  # the newest revisions this code has

    @property
    def up_to_date(self) -> bool:
        return set(self.current) == set(self.heads)

    def describe(self) -> str:
        where = f"database {self.url}"
        if not self.current:
            return f"{where} has no schema yet: run `upgrade-server db upgrade`"
        at = ", ".join(self.current)
        if self.up_to_date:
            return f"{where} at revision {at}, the newest"
        return (
            f"{where} at revision {at}, this code needs {', '.join(self.heads)}:"
            " run `upgrade-server db upgrade`"
        )


def _public(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def schema_state(url: str) -> SchemaState:
    """Read the database's revision. Raises SQLAlchemy's errors when it cannot
    be reached."""
    heads = tuple(sorted(ScriptDirectory.from_config(alembic_config(url)).get_heads()))
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            current = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    finally:
        engine.dispose()
    return SchemaState(_public(url), current, heads)


def log_schema_state(url: str, logger: Any = log) -> SchemaState | None:
    """One line at startup: the database's revision and whether it is migrated
    (INFO), or what is wrong (WARNING), on a logging.Logger or gunicorn's.
    Never raises: the server still starts, and /readyz says whether it can serve."""
    try:
        state = schema_state(url)
    except Exception as exc:
        logger.warning(
            "database %s cannot be read: %s: %s",
            _public(url),
            type(exc).__name__,
            str(getattr(exc, "orig", None) or exc).splitlines()[0][:200],
        )
        return None
    logger.log(logging.INFO if state.up_to_date else logging.WARNING, "%s", state.describe())
    return state


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate, and log in one line from which revision to which."""
    quiet_alembic()
    before = schema_state(url).current
    command.upgrade(alembic_config(url), revision)
    after = schema_state(url).current
    if before == after:
        log.info("database %s already at revision %s", _public(url), ", ".join(after) or "none")
    else:
        log.info(
            "database %s migrated from revision %s to %s",
            _public(url),
            ", ".join(before) or "none",
            ", ".join(after),
        )


def downgrade(url: str, revision: str) -> None:
    quiet_alembic()
    command.downgrade(alembic_config(url), revision)

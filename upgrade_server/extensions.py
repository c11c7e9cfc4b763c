"""Extensions, created unbound and bound to the app in create_app()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Session

if TYPE_CHECKING:
    from upgrade_server.config import Settings
    from upgrade_server.storage import ArtifactStore

# Named constraints, so that Alembic migrations can alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def session() -> Session:
    """The current request's (or CLI command's) session."""
    return db.session()


def current_settings() -> Settings:
    """The running app's settings."""
    settings: Settings = current_app.config["SETTINGS"]
    return settings


def artifact_store() -> ArtifactStore:
    """The running app's artifact store."""
    store: ArtifactStore = current_app.extensions["artifact_store"]
    return store

"""Database plumbing shared by every domain: column types and SQLite settings."""

from __future__ import annotations

import sqlite3
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator


def escape_like(value: str) -> str:
    """Make a value literal inside a LIKE pattern (with ESCAPE '\\')."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone; PostgreSQL keeps timestamptz. Either way the app only
    ever sees aware UTC datetimes, and a naive value is refused on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


SQLITE_MMAP_BYTES = 1 << 30  # address space, not memory: the OS's page cache backs it


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin), so that
    # SAVEPOINT and transaction boundaries behave as on PostgreSQL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # WAL lets readers (update checks) go on while one writer commits.
    cursor.execute("PRAGMA journal_mode=WAL")
    # Pages read through a memory map rather than a read() call each: an
    # update check reads a random page or two of a large fleet's tables,
    # which SQLite's own cache (2 MB per connection) rarely still holds.
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Set by code that is about to write outside a request (the CLI's transaction()),
# and for requests whose view does not write as its method suggests (`writes`,
# `read_only`). None: decide by the request method.
write_intent: ContextVar[bool | None] = ContextVar("write_intent", default=None)


def writes(view: Any) -> Any:
    """Mark a GET view that writes, so SQLite takes the write lock up front."""
    view.writes = True
    return view


def read_only(view: Any) -> Any:
    """Mark a POST view that only reads, so it never waits for the write lock."""
    view.writes = False
    return view


@event.listens_for(Engine, "begin")
def _sqlite_on_begin(conn: Any) -> None:
    if conn.dialect.name != "sqlite":
        return
    options = conn.get_execution_options()
    if options.get("autocommit_engine") or options.get("isolation_level") == "AUTOCOMMIT":
        return  # each statement is its own transaction
    # A deferred transaction that reads and then writes fails at once with
    # SQLITE_BUSY when another writer committed meanwhile (busy_timeout does
    # not help). Requests that change things, and CLI commands, take the write
    # lock up front instead and queue for it; reads stay concurrent.
    from flask import has_request_context, request

    writing = write_intent.get()
    if writing is None:
        writing = has_request_context() and request.method not in _READ_ONLY_METHODS
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


_SQLITE_READONLY = 8  # the primary result code; extended ones add bits above 0xFF
_PG_READ_ONLY_SQL_TRANSACTION = "25006"


def refuses_writes(error: BaseException) -> bool:
    """The database refused a write because it is read-only for this
    connection: a SQLite file the process may only read, a PostgreSQL standby
    or default_transaction_read_only. Takes the driver's error or SQLAlchemy's."""
    orig = getattr(error, "orig", None) or error
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", 0) & 0xFF == _SQLITE_READONLY
    return getattr(orig, "sqlstate", None) == _PG_READ_ONLY_SQL_TRANSACTION


@event.listens_for(Engine, "handle_error")
def _replace_read_only_connections(context: Any) -> None:
    # A connection that found the database read-only stays so when the database
    # can be written again: SQLite opened the file read-only for good, and
    # PostgreSQL fixed default_transaction_read_only when the session began (a
    # failover leaves it on the old primary, now a standby). Handled like a
    # lost connection, so the pool replaces it and every connection as old as
    # it, and the next write opens one that sees the database as it is now.
    if refuses_writes(context.original_exception):
        context.is_disconnect = True


def flush_unique(session: Any, message: str) -> None:
    """Flush pending rows; a unique or foreign-key clash becomes ConflictError."""
    from sqlalchemy.exc import IntegrityError

    from upgrade_server.errors import ConflictError

    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise ConflictError(message) from exc

"""Core selects compiled once and run on a connection's raw DBAPI cursor.

For the few queries that run on every device request (the update check):
SQLAlchemy's per-execution work (pool checkout, execution context, result
object) cost three quarters of a check on SQLite. A statement is compiled once
per dialect and run on the raw cursor of a connection each thread keeps, with
the same bind values, type conversions and wrapped errors as
Connection.execute. On PostgreSQL they run as prepared statements through
libpq itself (_LibpqStatement).
"""

from __future__ import annotations

import itertools
import threading
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import Error as PsycopgError
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import Select, create_engine
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError

from upgrade_server import process


class CompiledQuery:
    """A Core select compiled once for one dialect and run on the raw DBAPI
    cursor, with the same bind values, type conversions and wrapped errors as
    Connection.execute, minus its per-call work."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.bind_converters = {
            compiled.bind_names[b]: convert
            for b in compiled.binds.values()
            if (convert := b.type.dialect_impl(dialect).bind_processor(dialect))
        }
        self.sql = compiled.string
        self.defaults = compiled.construct_params(_check=False)
        self.positions = compiled.positiontup if dialect.positional else None
        columns = statement.selected_columns
        self.row: Any = namedtuple("row", [c.name for c in columns])  # type: ignore[misc]
        self.converters = [
            (i, convert)
            for i, c in enumerate(columns)
            if (convert := c.type.dialect_impl(dialect).result_processor(dialect, None))
        ]
        self.native = _LibpqStatement.for_dialect(statement, dialect)

    def first(self, conn: Connection, values: dict[str, Any]) -> Any:
        rows = self.rows(conn, values, 1)
        return rows[0] if rows else None

    def rows(self, conn: Connection, values: dict[str, Any], limit: int = 0) -> list[Any]:
        """The rows (at most `limit`, 0: all) as named tuples."""
        params: Any = {**self.defaults, **values}
        for name, convert in self.bind_converters.items():
            params[name] = convert(params[name])
        raw = conn.connection.dbapi_connection
        if self.native is not None:
            native = self.native.rows(conn, raw, params, limit)
            if native is not None:
                return [self._convert(row) for row in native]
        if self.positions is not None:
            params = tuple(params[name] for name in self.positions)
        dialect, dbapi = conn.dialect, conn.dialect.loaded_dbapi
        try:
            cursor = raw.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(self.sql, params)
                found = cursor.fetchmany(limit) if limit else cursor.fetchall()
            finally:
                cursor.close()
        except dbapi.Error as exc:
            gone = dialect.is_disconnect(exc, raw, None)
            raise DBAPIError.instance(
                self.sql, params, exc, dbapi.Error, connection_invalidated=gone
            ) from exc
        return [self._convert(row) for row in found]

    def _convert(self, row: Any) -> Any:
        if self.converters:
            row = list(row)
            for i, convert in self.converters:
                row[i] = convert(row[i])
        return self.row._make(row)


_NO_SUCH_STATEMENT = b"26000"  # invalid_sql_statement_name
_ALREADY_PREPARED = b"42P05"  # duplicate_prepared_statement


class _LibpqStatement:
    """A query run as a named prepared statement straight through psycopg's
    libpq binding (PQexecPrepared), with psycopg's own adapters for the values
    and the rows: the same answer as its cursor, for half of the client's CPU
    per check (its cursor machinery cost ~35 us of a ~60 us round trip).

    Only on a connection in autocommit mode (the kept ones): in a transaction
    psycopg must send its BEGIN first. Any failure, a dead connection included,
    returns None and the caller runs the cursor path, which raises the driver's
    own error (so a lost connection is still detected and replaced)."""

    _names = itertools.count(1)

    def __init__(self, sql: str, order: tuple[str, ...]) -> None:
        self.sql = sql.encode()
        self.order = order
        self.name = f"upgrade_server_hot_{next(self._names)}".encode()

    @classmethod
    def for_dialect(cls, statement: Select[Any], dialect: Dialect) -> _LibpqStatement | None:
        if dialect.name != "postgresql" or dialect.driver != "psycopg":
            return None
        # The same statement with $n placeholders, as libpq takes them.
        numeric = type(dialect)(paramstyle="numeric_dollar")  # type: ignore[call-arg]
        compiled = statement.compile(dialect=numeric)
        return cls(compiled.string, tuple(compiled.positiontup or ()))

    def rows(self, conn: Connection, raw: Any, params: Any, limit: int) -> list[Any] | None:
        if not getattr(raw, "autocommit", False):
            return None
        info = conn.connection.info  # this connection's, gone when it is replaced
        prepared: set[bytes] = info.setdefault("upgrade_server_prepared", set())
        pgconn = raw.pgconn
        try:
            transformer = info.get("upgrade_server_transformer")
            if transformer is None:
                transformer = info["upgrade_server_transformer"] = Transformer(raw)
            values = [params[name] for name in self.order]
            dumped = transformer.dump_sequence(values, [PyFormat.TEXT] * len(values))
            for _attempt in range(2):
                if self.name not in prepared:
                    made = pgconn.prepare(self.name, self.sql)
                    if made.status != pq.ExecStatus.COMMAND_OK and (
                        made.error_field(pq.DiagnosticField.SQLSTATE) != _ALREADY_PREPARED
                    ):
                        return None
                    prepared.add(self.name)
                result = pgconn.exec_prepared(self.name, dumped)
                if result.status == pq.ExecStatus.TUPLES_OK:
                    break
                prepared.discard(self.name)
                # Gone (DISCARD ALL by a pooling proxy): prepare it again, once.
                if result.error_field(pq.DiagnosticField.SQLSTATE) != _NO_SUCH_STATEMENT:
                    return None
            else:
                return None
            transformer.set_pgresult(result)
            count = min(limit, result.ntuples) if limit else result.ntuples
            return list(transformer.load_rows(0, count, tuple))
        except PsycopgError:
            prepared.discard(self.name)
            return None


_compiled: dict[tuple[int, str], CompiledQuery] = {}


def compiled(statement: Select[Any], conn: Connection) -> CompiledQuery:
    key = (id(statement), conn.dialect.name)
    query = _compiled.get(key)
    if query is None:
        query = _compiled[key] = CompiledQuery(statement, conn.dialect)
    return query


class KeptConnections:
    """The check's connections: one per thread, kept between checks, from an
    engine of its own in autocommit mode (a read is one round trip, with no
    BEGIN/COMMIT). A connection that fails is dropped and the next check opens
    a new one. Tests replace this with their own transaction's connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = create_engine(
            engine.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None
        ).execution_options(autocommit_engine=True)
        self._local = threading.local()

    @contextmanager
    def __call__(self) -> Iterator[Connection]:
        local = self._local
        # A connection made before gunicorn forked belongs to the parent.
        if getattr(local, "pid", None) != process.pid() or local.conn is None:
            local.conn, local.pid = self.engine.connect(), process.pid()
        conn: Connection = local.conn
        try:
            yield conn
            if conn.in_transaction():  # a report written through Core
                conn.commit()
        except DBAPIError:
            local.conn = None
            conn.invalidate()
            raise

"""The update check's hot path, in SQLAlchemy Core.

A million devices polling every 30 minutes is ~560 checks a second, and most
find nothing new. So the check loads no ORM objects: one query finds the device
from its token (with what the answer depends on), the answer comes from a
per-process cache keyed by the product's release generation (bumped on every
publish, promotion, withdrawal or channel change), or else from one release
query; what the device reported is written behind in batches (reports.py).

Both queries are written in Core but compiled once per dialect and run on the
raw DBAPI cursor of a connection each thread keeps: SQLAlchemy's per-execution
work (pool checkout, execution context, result object) cost three quarters of
a check on SQLite. On PostgreSQL they run as prepared statements through
libpq itself (_LibpqStatement). The token is still looked up on every check,
so a revoked token is refused at once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
from collections import OrderedDict, namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import Error as PsycopgError
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from semver import Version
from sqlalchemy import Select, bindparam, create_engine, select, update
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from werkzeug.http import parse_etags

from upgrade_server import jsonbody, tokens
from upgrade_server.clock import utcnow
from upgrade_server.database import escape_like
from upgrade_server.devices.models import Device, DeviceToken
from upgrade_server.entitlements.coverage import release_allowed
from upgrade_server.errors import AuthenticationError, BadRequestError, InvalidInputError
from upgrade_server.products.models import HardwareRevision, Product
from upgrade_server.releases import versions
from upgrade_server.releases.models import Channel, Release, ReleaseChannel, ReleaseStatus
from upgrade_server.updates.reports import ReportWriter, report_values

_DEVICE = (
    select(
        Device.id,
        Device.product_id,
        Device.organisation_id,
        Device.channel,
        Device.current_version,
        Device.inventory,
        Device.upgrade_windows,
        HardwareRevision.code.label("hardware"),
        Product.release_generation,
        Product.security_fixes_free,
    )
    .select_from(DeviceToken)
    .join(Device, Device.id == DeviceToken.device_id)
    .join(HardwareRevision, HardwareRevision.id == Device.hardware_revision_id)
    .join(Product, Product.id == Device.product_id)
    .where(DeviceToken.token_hash == bindparam("token_hash"), DeviceToken.revoked_at.is_(None))
)

_RANK = (
    select(Channel.rank)
    .where(Channel.product_id == bindparam("product_id"), Channel.name == bindparam("channel"))
    .scalar_subquery()
)
_IN_CHANNEL = (
    select(ReleaseChannel.release_id)
    .join(Channel, Channel.id == ReleaseChannel.channel_id)
    .where(ReleaseChannel.release_id == Release.id, Channel.rank >= _RANK)
    .exists()
)
_RELEASE = (
    select(
        Release.id,
        Release.version,
        Release.target_path,
        Release.artifact_size,
        Release.artifact_sha256,
        Release.security_fix,
        Release.parameters,
        Release.published_at,
    )
    .where(
        Release.product_id == bindparam("product_id"),
        Release.status == ReleaseStatus.PUBLISHED.value,
        Release.version_key > bindparam("current_key"),
        Release.min_from_key.is_(None) | (Release.min_from_key <= bindparam("current_key")),
        Release.hardware_key.like(bindparam("hardware_like"), escape="\\"),
        _IN_CHANNEL,
    )
    .order_by(Release.version_key.desc())
)


@dataclass(frozen=True)
class Answer:
    """What the check answers: a JSON body (None: nothing to install) and its ETag."""

    body: bytes | None
    etag: str


class AnswerCache:
    """An LRU of candidate lists, bounded by the number of candidates it holds;
    the product's generation makes stale keys unreachable."""

    def __init__(self, max_candidates: int = 100_000) -> None:
        self.max_candidates = max_candidates
        self._data: OrderedDict[tuple[Any, ...], tuple[Candidate, ...]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> tuple[Candidate, ...] | None:
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], found: tuple[Candidate, ...]) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            self._held += len(found) + 1 - (len(old) + 1 if old is not None else 0)
            self._data[key] = found
            while self._held > self.max_candidates and len(self._data) > 1:
                _, dropped = self._data.popitem(last=False)
                self._held -= len(dropped) + 1


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


def _query(statement: Select[Any], conn: Connection) -> CompiledQuery:
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
        if getattr(local, "pid", None) != os.getpid() or local.conn is None:
            local.conn, local.pid = self.engine.connect(), os.getpid()
        conn: Connection = local.conn
        try:
            yield conn
            if conn.in_transaction():  # a report written through Core
                conn.commit()
        except DBAPIError:
            local.conn = None
            conn.invalidate()
            raise


def find_device(conn: Connection, raw_token: str) -> Any:
    if not raw_token.startswith(tokens.DEVICE_TOKEN_PREFIX):
        return None
    return _query(_DEVICE, conn).first(conn, {"token_hash": tokens.hash_secret(raw_token)})


class Candidate:
    """A release a device of some hardware, channel and version could be
    offered; its offer is serialised when first chosen."""

    __slots__ = ("_answer", "offer", "published", "security_fix", "version")

    def __init__(
        self, version: str, published: float, security_fix: bool, offer: dict[str, Any]
    ) -> None:
        self.version = version
        self.published = published  # POSIX seconds
        self.security_fix = security_fix
        self.offer = offer
        self._answer: Answer | None = None

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            body = json.dumps(self.offer, separators=(",", ":")).encode()
            self._answer = Answer(body, _etag(body))
        return self._answer


def candidates(
    conn: Connection,
    device: Any,
    current_version: str,
    channel: str,
    poll_seconds: int,
    url_prefix: str,
) -> tuple[Candidate, ...]:
    """Every release newer than `current_version` that fits the device's
    hardware and channel and is reachable from that version, newest first.
    Which one the device gets depends on its coverage (choose())."""
    current_key = versions.sort_key(versions.parse(current_version, "current_version"))
    rows = _query(_RELEASE, conn).rows(
        conn,
        {
            "product_id": device.product_id,
            "channel": channel,
            "current_key": current_key,
            "hardware_like": f"%,{escape_like(device.hardware)},%",
        },
    )
    found = []
    for row in rows:
        offer = {
            "release_id": row.id,
            "version": row.version,
            "target_path": row.target_path,
            "length": row.artifact_size,
            "hashes": {"sha256": row.artifact_sha256},
            "download_url": f"{url_prefix}/releases/{row.id}/artifact",
            "notes_url": f"{url_prefix}/releases/{row.id}",
            "security_fix": row.security_fix,
            "parameters": row.parameters,
            "operator_action_required": any(p.get("operator_action") for p in row.parameters),
            "poll_seconds": poll_seconds,
        }
        published = row.published_at.timestamp() if row.published_at else 0.0
        found.append(Candidate(row.version, published, row.security_fix, offer))
    return tuple(found)


def pick(found: tuple[Candidate, ...], device: Any) -> tuple[Candidate | None, Candidate | None]:
    """(the newest candidate the device's coverage includes, the newest
    candidate when that is a newer one it does not include)."""
    chosen = next(
        (
            c
            for c in found
            if release_allowed(
                device.upgrade_windows, c.published, c.security_fix, device.security_fixes_free
            )
        ),
        None,
    )
    missed = found[0] if found and chosen is not found[0] else None
    return chosen, missed


def choose(found: tuple[Candidate, ...], device: Any, poll_seconds: int) -> Answer:
    """The newest candidate the device's coverage includes; and, when a newer
    one exists that it does not, say so (the version and when coverage ended)."""
    if not found:
        return Answer(None, _etag(f"none:{poll_seconds}".encode()))
    chosen, newest = pick(found, device)
    if newest is None:
        assert chosen is not None
        return chosen.answer
    coverage_state = device.upgrade_windows
    hint = {
        "version": newest.version,
        "notes_url": newest.offer["notes_url"],
        "published_at": datetime.fromtimestamp(newest.published, UTC).isoformat(),
        "coverage_ends_on": coverage_state["through"],
        "reason": "published after this device's upgrade coverage ended;"
        " a contract that covers it brings it",
    }
    document: dict[str, Any] = dict(chosen.offer) if chosen else {"poll_seconds": poll_seconds}
    document["newer_not_entitled"] = hint
    body = json.dumps(document, separators=(",", ":")).encode()
    return Answer(body, _etag(body))


def record_report(conn: Connection, device_id: int, values: dict[str, Any]) -> None:
    """Write what the device reported now, in the request's transaction."""
    conn.execute(update(Device).where(Device.id == device_id).values(**values))


def _etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


class UpdateCheck:
    """The update check itself, free of Flask: called by the WSGI fast path
    (fastpath.py) for every request, and by the documented Flask view."""

    URL_PREFIX = "/api/device/v1"

    def __init__(self, extensions: dict[str, Any], poll_seconds: int) -> None:
        # Read at each call, so tests can swap the connection source.
        self.extensions = extensions
        self.poll_seconds = poll_seconds

    def __call__(
        self, authorization: str, body: bytes, if_none_match: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, body) of the answer. Raises AuthenticationError,
        InvalidInputError or OperationalError."""
        raw = authorization[7:] if authorization.startswith("Bearer ") else ""
        # Not JSON is refused before the token is looked up, as on every device endpoint.
        data = load_body(body)
        try:
            answer = self._answer(raw, data)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # The kept connection had died (the database restarted, a proxy
            # closed it): once more, on a new one.
            answer = self._answer(raw, data)
        etag = f'"{answer.etag}"'
        if if_none_match and parse_etags(if_none_match).contains(answer.etag):
            return 304, [("ETag", etag)], b""
        headers = [("ETag", etag), ("Cache-Control", "private, no-cache")]
        if answer.body is None:
            return 204, headers, b""
        headers.append(("Content-Type", "application/json"))
        headers.append(("Content-Length", str(len(answer.body))))
        return 200, headers, answer.body

    def _answer(self, raw: str, data: Any) -> Answer:
        with self.extensions["hot_connection"]() as conn:
            device = find_device(conn, raw)
            if device is None:
                raise AuthenticationError("a valid device token is required")
            reported, hardware, channel_asked, attributes = parse_body(data)
            # A device that does not know its version sends none: the one the
            # server knows stands (and is never replaced by nothing).
            version = reported or device.current_version
            if version is None:
                raise InvalidInputError(
                    "the server does not know this device's version either",
                    [{"field": "current_version", "message": "send the installed version"}],
                )
            channel = channel_asked or device.channel
            cache: AnswerCache = self.extensions["answer_cache"]
            key = (device.product_id, device.release_generation, device.hardware, channel, version)
            found = cache.get(key)
            if found is None:
                found = candidates(
                    conn, device, version, channel, self.poll_seconds, self.URL_PREFIX
                )
                cache.put(key, found)
            answer = choose(found, device, self.poll_seconds)
            inventory = dict(attributes or {})
            if hardware:
                inventory["hardware_revision"] = hardware
            values = report_values(device, utcnow(), version, channel, inventory)
            writer: ReportWriter | None = self.extensions.get("report_writer")
            if writer is None:
                record_report(conn, device.id, values)
            else:
                writer.add(device.id, values)
        return answer


# The body's fields, as the documented schema (device_api.CheckIn) names them.
CHECK_FIELDS = frozenset({"current_version", "hardware_revision", "channel", "attributes"})


def load_body(body: bytes) -> Any:
    """The body as JSON (None when empty); BadRequestError when it is not JSON."""
    try:
        return jsonbody.loads(body) if body else None
    except ValueError as exc:
        raise BadRequestError(f"the body is not JSON this server takes: {exc}") from exc


def parse_body(
    data: Any,
) -> tuple[str | None, str | None, str | None, dict[str, Any] | None]:
    """Validate the update check's body (as load_body read it) by hand: it is
    the hot path. The version is None when the device sent none (absent or null)."""
    if not isinstance(data, dict):
        raise InvalidInputError("the body must be a JSON object", [{"field": "", "message": "{}"}])
    errors: list[dict[str, str]] = []
    if not data.keys() <= CHECK_FIELDS:
        errors = [
            {"field": name, "message": "not a field of the update check"}
            for name in data
            if name not in CHECK_FIELDS
        ]
    version = data.get("current_version")
    if version is not None and (not isinstance(version, str) or not Version.is_valid(version)):
        errors.append({"field": "current_version", "message": "a semantic version, or none"})
    fields: dict[str, Any] = {}
    for name, limit in (("hardware_revision", 64), ("channel", 32)):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
            errors.append({"field": name, "message": f"a string of 1 to {limit} characters"})
        fields[name] = value
    attributes = data.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        errors.append({"field": "attributes", "message": "an object"})
    if errors:
        raise InvalidInputError("the update check is invalid", errors)
    return version, fields["hardware_revision"], fields["channel"], attributes

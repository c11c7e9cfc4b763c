"""The update check, served by the device edge without Flask.

A million devices polling every 30 minutes is ~560 checks a second, and most
find nothing new. So the check loads no ORM objects: one query finds the device
from its token (with what the answer depends on), the answer comes from a
per-process cache keyed by the product's release generation (bumped on every
publish, promotion, withdrawal or channel change), or else from one release
query (updates/offers.py); what the device reported is written behind in
batches (updates/reports.py).

Both queries run through compiled_queries.py, below SQLAlchemy's per-call
work. The token is still looked up on every check, so a revoked token is
refused at once. The body is specified once, by BODY: the hand-written parser
and the documented schema (device_edge/updates.py) both come from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from werkzeug.http import parse_etags

from upgrade_server import jsonbody, tokens
from upgrade_server.clock import utcnow
from upgrade_server.compiled_queries import compiled
from upgrade_server.devices.models import Device, DeviceToken
from upgrade_server.errors import AuthenticationError, BadRequestError, InvalidInputError
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import HardwareRevision, Product
from upgrade_server.rollouts.gatekeeper import Admitted, Gatekeeper, wait_answer
from upgrade_server.updates.offers import Answer, AnswerCache, candidates, choose, pick
from upgrade_server.updates.reports import ReportWriter, report_values

# What the answer depends on, read with the token in one query (the DDI
# poll reads the same columns: device_edge/ddi/targets.py).
DEVICE_COLUMNS = (
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
    Organisation.update_settings_generation,
    Organisation.timezone,
)
DEVICE_BY_TOKEN = (
    select(*DEVICE_COLUMNS)
    .select_from(DeviceToken)
    .join(Device, Device.id == DeviceToken.device_id)
    .join(Organisation, Organisation.id == Device.organisation_id)
    .join(HardwareRevision, HardwareRevision.id == Device.hardware_revision_id)
    .join(Product, Product.id == Device.product_id)
    .where(DeviceToken.token_hash == bindparam("token_hash"), DeviceToken.revoked_at.is_(None))
)


def find_device(conn: Connection, raw_token: str) -> Any:
    if not raw_token.startswith(tokens.DEVICE_TOKEN_PREFIX):
        return None
    return compiled(DEVICE_BY_TOKEN, conn).first(
        conn, {"token_hash": tokens.hash_secret(raw_token)}
    )


def record_report(conn: Connection, device_id: int, values: dict[str, Any]) -> None:
    """Write what the device reported now, in the request's transaction."""
    conn.execute(update(Device).where(Device.id == device_id).values(**values))


class UpdateCheck:
    """The update check itself, free of Flask: called by the WSGI fast path
    (wsgi.respond) for every request, Flask view or not."""

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
            now = utcnow()
            device = find_device(conn, raw)
            if device is None:
                raise AuthenticationError("a valid device token is required")
            fields = parse_body(data)
            reported, hardware = fields.get("current_version"), fields.get("hardware_revision")
            channel_asked, attributes = fields.get("channel"), fields.get("attributes")
            # A device that does not know its version sends none: the one the
            # server knows stands (and is never replaced by nothing).
            version = reported or device.current_version
            if version is None:
                raise InvalidInputError(
                    "the server does not know this device's version either",
                    [{"field": "current_version", "message": "send the installed version"}],
                )
            channel = channel_asked or device.channel
            admitted = self.admitted(conn, device, version, channel, now)
            gate: Gatekeeper = self.extensions["gatekeeper"]
            answer = choose(admitted.found, device, self.poll_seconds)
            if admitted.closed is not None and answer.body is not None:
                # Outside its organisation's maintenance window: told to wait,
                # never offered an install (unless an emergency rollout says so).
                chosen, _ = pick(admitted.found, device)
                if chosen is not None and not gate.emergency(admitted, chosen):
                    answer = wait_answer(self.poll_seconds, admitted.closed)
            inventory = dict(attributes or {})
            if hardware:
                inventory["hardware_revision"] = hardware
            self.seen(conn, device.id, report_values(device, now, version, channel, inventory))
        return answer

    def admitted(
        self, conn: Connection, device: Any, version: str, channel: str, now: datetime
    ) -> Admitted:
        """The releases `device` (a row of DEVICE_COLUMNS) on `version` may be
        offered now in `channel`, newest first, and whether its window is
        closed: the candidates (cached per product generation) less what
        rollouts and approvals keep from it. Its coverage is asked by pick()."""
        cache: AnswerCache = self.extensions["answer_cache"]
        key = (device.product_id, device.release_generation, device.hardware, channel, version)
        found = cache.get(key)
        if found is None:
            found = candidates(conn, device, version, channel, self.poll_seconds, self.URL_PREFIX)
            cache.put(key, found)
        gate: Gatekeeper = self.extensions["gatekeeper"]
        return gate.admit(conn, found, device, now, key)

    def seen(self, conn: Connection, device_id: int, values: dict[str, Any]) -> None:
        """Keep what the device reported (written behind in batches when the
        report writer runs)."""
        writer: ReportWriter | None = self.extensions.get("report_writer")
        if writer is None:
            record_report(conn, device_id, values)
        else:
            writer.add(device_id, values)


@dataclass(frozen=True)
class Field:
    """One field of the update check's body: a string of at most `limit`
    characters (`semver`: a semantic version), or an object (`limit` 0)."""

    limit: int
    description: str
    semver: bool = False


# The update check's body, specified once: parse_body validates by it (by hand:
# it is the hot path) and the documented schema (updates.CheckIn) is made from it.
BODY: dict[str, Field] = {
    "current_version": Field(
        64,
        "the installed version; absent or null when the device does not know it:"
        " the version the server knows is used (and kept)",
        semver=True,
    ),
    "hardware_revision": Field(64, "the hardware revision the device reports"),
    "channel": Field(32, "the channel to follow; absent: the device's own"),
    "attributes": Field(0, "free-form inventory"),
}


def load_body(body: bytes) -> Any:
    """The body as JSON (None when empty); BadRequestError when it is not JSON."""
    try:
        return jsonbody.loads(body) if body else None
    except ValueError as exc:
        raise BadRequestError(f"the body is not JSON this server takes: {exc}") from exc


# A semantic version, as semver.org and the semver library (Version.parse)
# define it, matched without building a Version: a tenth of is_valid's cost.
SEMVER = re.compile(
    r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?\Z",
    re.ASCII,
)


def parse_body(data: Any) -> dict[str, Any]:
    """The update check's body (as load_body read it), checked by BODY and
    returned as it came; absent fields read as None (a device that does not
    know its version sends none, or null). Only the fields sent are looked at:
    it is the hot path."""
    if not isinstance(data, dict):
        raise InvalidInputError("the body must be a JSON object", [{"field": "", "message": "{}"}])
    errors: list[dict[str, str]] = []
    for name, value in data.items():
        field = BODY.get(name)
        if field is None:
            errors.append({"field": name, "message": "not a field of the update check"})
        elif value is None:
            continue
        elif not field.limit:
            if not isinstance(value, dict):
                errors.append({"field": name, "message": "an object"})
        elif field.semver:
            if not isinstance(value, str) or not SEMVER.match(value):
                errors.append({"field": name, "message": "a semantic version, or none"})
        elif not isinstance(value, str) or not 0 < len(value) <= field.limit:
            errors.append({"field": name, "message": f"a string of 1 to {field.limit} characters"})
    if errors:
        raise InvalidInputError("the update check is invalid", errors)
    return data

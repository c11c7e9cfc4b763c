"""Provisioning devices, one at a time or from a CSV file (every device of the
file, or none).

Errors raised: InvalidInputError, PermissionDeniedError.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server import events, tokens
from upgrade_server.accounts.principal import Principal
from upgrade_server.audit.service import record, record_change
from upgrade_server.database import flush_unique
from upgrade_server.devices.models import Device, DeviceToken
from upgrade_server.devices.service import (
    _MAX_ID,
    ProvisionedDevice,
    _check_channel,
    _check_version,
    _require_write,
    _shown,
    channel_names,
)
from upgrade_server.errors import InvalidInputError
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import HardwareRevision, Product
from upgrade_server.sites.models import Site
from upgrade_server.sites.service import site_named

CSV_COLUMNS = (
    "serial",
    "product",
    "hardware_revision",
    "organisation",
    "site",
    "delivered_on",
    "accepted_on",
    "channel",
    "current_version",
)


REQUIRED_CSV_COLUMNS = ("serial", "product", "hardware_revision", "organisation")


MAX_CSV_ROWS = 100_000


MAX_REPORTED_ERRORS = 100


@dataclass
class _Row:
    """A device description with its references checked."""

    serial: str
    product: Product
    revision: HardwareRevision
    organisation: Organisation
    site: str = ""
    delivered_on: date | None = None
    accepted_on: date | None = None
    channel: str = "stable"
    current_version: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


class _Resolver:
    """Looks up products, channels and organisations once per import, not once per row."""

    def __init__(self, session: Session, actor: Principal) -> None:
        self.session = session
        self.actor = actor
        self.products: dict[str, Product | None] = {}
        self.channels: dict[int, tuple[str, ...]] = {}
        self.organisations: dict[str, Organisation | None] = {}
        self.sites: dict[tuple[int, str], Site] = {}

    def product(self, code: str) -> Product | None:
        if code not in self.products:
            self.products[code] = self.session.execute(
                select(Product).where(Product.code == code)
            ).scalar_one_or_none()
        return self.products[code]

    def channels_of(self, product: Product) -> tuple[str, ...]:
        if product.id not in self.channels:
            self.channels[product.id] = channel_names(self.session, product)
        return self.channels[product.id]

    def organisation(self, ref: str) -> Organisation | None:
        if ref not in self.organisations:
            org = None
            if not (ref.isascii() and ref.isdigit()):
                stmt = select(Organisation).where(Organisation.slug == ref)
                org = self.session.execute(stmt).scalar_one_or_none()
            elif len(ref) <= len(str(_MAX_ID)) and int(ref) <= _MAX_ID:
                org = self.session.get(Organisation, int(ref))
            self.organisations[ref] = org if org and self.actor.sees_organisation(org.id) else None
        return self.organisations[ref]

    def site(self, organisation: Organisation, name: str) -> Site | None:
        """The organisation's site of that name, made if it has none yet."""
        return site_named(self.session, self.actor, organisation, name, self.sites)


def _parse_date(value: str | None, name: str, errors: list[dict[str, Any]]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append({"field": name, "message": f"{value!r} is not a date (YYYY-MM-DD)"})
        return None


def _describe(
    resolver: _Resolver, data: dict[str, Any]
) -> tuple[_Row | None, list[dict[str, Any]]]:
    """Check one device description; returns the row or the reasons it is bad."""
    # No database keeps a NUL in text (PostgreSQL refuses even to compare one).
    errors: list[dict[str, Any]] = [
        {"field": name, "message": "contains a NUL character"}
        for name, value in data.items()
        if isinstance(value, str) and "\x00" in value
    ]
    if errors:
        return None, errors
    serial = (data.get("serial") or "").strip()
    if not serial or len(serial) > 128:
        errors.append({"field": "serial", "message": "required, up to 128 characters"})
    product = resolver.product(str(data.get("product") or ""))
    revision = None
    if product is None:
        errors.append({"field": "product", "message": f"no product {_shown(data.get('product'))}"})
    else:
        revision = next(
            (r for r in product.hardware_revisions if r.code == data.get("hardware_revision")),
            None,
        )
        if revision is None:
            errors.append(
                {
                    "field": "hardware_revision",
                    "message": f"product {product.code} has no revision "
                    f"{_shown(data.get('hardware_revision'))}",
                }
            )
    organisation = resolver.organisation(str(data.get("organisation") or ""))
    if organisation is None:
        errors.append(
            {
                "field": "organisation",
                "message": f"no organisation {_shown(data.get('organisation'))}",
            }
        )
    site = (data.get("site") or "").strip()
    if len(site) > 200:
        errors.append({"field": "site", "message": "up to 200 characters"})
    delivered_on = _parse_date(data.get("delivered_on"), "delivered_on", errors)
    accepted_on = _parse_date(data.get("accepted_on"), "accepted_on", errors)
    if delivered_on and accepted_on and accepted_on < delivered_on:
        errors.append({"field": "accepted_on", "message": "before delivered_on"})
    version = _check_version(data.get("current_version"), errors)
    channel = (data.get("channel") or "stable").strip()
    if product is not None:
        _check_channel(resolver.channels_of(product), product, channel, errors)
    if errors or product is None or revision is None or organisation is None:
        return None, errors
    return (
        _Row(
            serial=serial,
            product=product,
            revision=revision,
            organisation=organisation,
            site=site,
            delivered_on=delivered_on,
            accepted_on=accepted_on,
            channel=channel,
            current_version=version,
        ),
        [],
    )


def _provision(
    session: Session, actor: Principal, row: _Row, resolver: _Resolver
) -> ProvisionedDevice:
    site = resolver.site(row.organisation, row.site)
    device = Device(
        serial=row.serial,
        product=row.product,
        hardware_revision=row.revision,
        organisation=row.organisation,
        site_record=site,
        delivered_on=row.delivered_on,
        accepted_on=row.accepted_on,
        channel=row.channel,
        current_version=row.current_version,
    )
    session.add(device)
    secret = tokens.new_secret(tokens.DEVICE_TOKEN_PREFIX)
    session.add(
        DeviceToken(
            device=device,
            token_hash=tokens.hash_secret(secret),
            prefix=tokens.shown_prefix(secret),
        )
    )
    return ProvisionedDevice(device, secret)


def create_device(session: Session, actor: Principal, data: dict[str, Any]) -> ProvisionedDevice:
    """Provision one device and its token. The token secret is returned once."""
    _require_write(actor)
    resolver = _Resolver(session, actor)
    row, errors = _describe(resolver, data)
    if row is None:
        raise InvalidInputError("the device description is invalid", errors)
    provisioned = _provision(session, actor, row, resolver)
    flush_unique(session, f"a device with serial {row.serial!r} exists")
    events.devices_changed.send(session, devices=[provisioned.device])
    record_change(
        session,
        actor,
        "device.create",
        provisioned.device,
        None,
        organisation_id=provisioned.device.organisation_id,
    )
    return provisioned


def _decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            "the CSV file is not UTF-8; nothing was imported",
            [{"row": data[: exc.start].count(b"\n") + 1, "message": "not UTF-8 text"}],
        ) from exc


def import_devices_csv(session: Session, actor: Principal, data: bytes) -> list[ProvisionedDevice]:
    """Provision every device of a CSV file (UTF-8), or none.

    Each bad row is reported with its line number (the header is line 1) and
    reasons; a single bad row, or a file that is not UTF-8 CSV, rejects the
    whole file.
    """
    _require_write(actor)
    # newline="" as the csv module asks: a CR alone ends a line, as in old Mac
    # files. Strict: a stray or unclosed quote is an error, not part of a value.
    reader = csv.DictReader(io.StringIO(_decoded(data), newline=""), strict=True)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise InvalidInputError(
            "the CSV file is malformed", [{"row": 1, "message": str(exc)}]
        ) from exc
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        raise InvalidInputError(
            "the CSV header is wrong",
            [{"row": 1, "field": c, "message": "missing column"} for c in missing]
            + [{"row": 1, "field": c, "message": "unknown column"} for c in unknown],
        )
    reader.fieldnames = header
    resolver = _Resolver(session, actor)
    rows: list[_Row] = []
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    line = 1
    try:
        for line, fields in enumerate(reader, start=2):
            if line - 1 > MAX_CSV_ROWS:
                raise InvalidInputError(f"more than {MAX_CSV_ROWS} rows", [{"row": line}])
            if None in fields:
                problems.append({"row": line, "message": "more fields than columns"})
                continue
            row, errors = _describe(resolver, {k: (v or "").strip() for k, v in fields.items()})
            if row is not None and row.serial in seen:
                errors = [{"field": "serial", "message": f"repeats line {seen[row.serial]}"}]
                row = None
            if row is None:
                problems.extend({"row": line, **e} for e in errors)
            else:
                seen[row.serial] = line
                rows.append(row)
    except csv.Error as exc:
        # The line after the last one read (an unclosed quote, a field past the
        # csv module's size limit); nothing after it can be read either.
        problems.append({"row": line + 1, "message": str(exc)})
    if rows and not problems:
        existing: set[str] = set()
        serials = list(seen)
        for start in range(0, len(serials), 500):
            existing.update(
                session.execute(
                    select(Device.serial).where(Device.serial.in_(serials[start : start + 500]))
                ).scalars()
            )
        problems = [
            {"row": seen[s], "field": "serial", "message": f"device {s!r} exists"}
            for s in serials
            if s in existing
        ]
    if problems:
        raise InvalidInputError(
            f"{len({p['row'] for p in problems})} bad row(s); nothing was imported",
            problems[:MAX_REPORTED_ERRORS],
        )
    if not rows:
        raise InvalidInputError("the CSV file has no rows", [{"row": 2, "message": "no data"}])
    for row in rows:  # the new sites first, before any device is pending
        resolver.site(row.organisation, row.site)
    provisioned = [_provision(session, actor, row, resolver) for row in rows]
    flush_unique(session, "a device in the file was created meanwhile; nothing was imported")
    events.devices_changed.send(session, devices=[p.device for p in provisioned])
    record(
        session,
        actor,
        "device.import",
        "devices",
        None,
        after={"count": len(provisioned), "serials": [p.device.serial for p in provisioned]},
    )
    return provisioned

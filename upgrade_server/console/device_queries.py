"""The console's device list as SQL: its filters, its order, one page of
rows, and the whole filtered set for a CSV file.

The same statements per page whatever the number of rows: the organisations'
time zones, the page's ids in order, those devices' columns (not models, so
nothing is loaded per row), and a capped count. Upgrade coverage is read from what the update
check reads, `Device.upgrade_windows` (kept by entitlements.service.refresh):
its last covered day ("through"), compared with today in the organisation's
time zone. The device page shows each kind of coverage as entitlements
computes it; the list does not re-derive those rules.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, String, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.clock import today_in, utcnow
from upgrade_server.database import escape_like
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import DeviceFilters, visible_devices
from upgrade_server.organisations.models import Organisation
from upgrade_server.products.models import HardwareRevision, Product
from upgrade_server.releases.models import Release
from upgrade_server.sites.models import Site

PAGE_SIZE = 50
# Counting the matches stops here: the page says "more than 10,000" rather
# than scanning the whole fleet for an exact number. A page filtered by
# coverage is not counted at all (it has "next page" links only).
COUNT_CAP = 10_000
ENDING_DAYS = 30
# Upgrade coverage states the list filters on; "covered" includes "ending".
STATES = ("covered", "ending", "ended", "not-started")
SORTS = ("serial", "organisation", "version", "seen")
# The longest silence the "not seen for" filter takes, in days.
MAX_SILENT_DAYS = 3660


@dataclass(frozen=True)
class DeviceQuery:
    """The list's filters, order and page, as the URL's query string gives them."""

    q: str = ""
    organisation: int | None = None
    product: int | None = None
    version: str = ""
    hardware: str = ""
    channel: str = ""
    coverage: str = ""
    silent: int | None = None  # not seen for more than this many days (or never)
    sort: str = "serial"
    desc: bool = False
    page: int = 1

    @classmethod
    def from_args(cls, args: Any) -> DeviceQuery:
        """Read the query string; a value that makes no sense is ignored."""

        def text(name: str, size: int) -> str:
            # (PostgreSQL refuses a NUL character in a text parameter.)
            return str(args.get(name, "")).replace("\x00", "").strip()[:size]

        return cls(
            q=text("q", 128),
            organisation=_number(args.get("organisation")),
            product=_number(args.get("product")),
            version=text("version", 64),
            hardware=text("hardware", 64),
            channel=text("channel", 32),
            coverage=c if (c := args.get("coverage", "")) in STATES else "",
            silent=s
            if (s := _number(args.get("silent"))) is not None and s <= MAX_SILENT_DAYS
            else None,
            sort=s if (s := args.get("sort", "")) in SORTS else "serial",
            desc=args.get("order") == "desc",
            page=max(1, min(_number(args.get("page")) or 1, 100_000)),
        )

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query string of this query with `changes` (defaults left out),
        for links: the next page, another order."""
        query = replace(self, **changes)
        out: dict[str, Any] = {}
        for f in fields(query):
            value = getattr(query, f.name)
            if value is None or value is False or value == "":
                continue
            if (f.name, value) in (("sort", "serial"), ("page", 1)):
                continue
            out["order" if f.name == "desc" else f.name] = "desc" if f.name == "desc" else value
        return out

    @property
    def filtered(self) -> bool:
        return any(self.args(sort="serial", desc=False, page=1).values())


def _number(value: str | None) -> int | None:
    if value and value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    return None


@dataclass(frozen=True)
class _Coverage:
    """Upgrade coverage in SQL, from a device's stored windows and today in
    its organisation's time zone (which needs organisations joined)."""

    state: Any  # one of STATES, as a CASE
    predicates: dict[str, Any]  # each of STATES: the same, as a cheaper WHERE


def _coverage(session: Session) -> _Coverage:
    zones = session.scalars(select(Organisation.timezone).distinct()).all()
    now = utcnow()
    return _coverage_on(tuple(sorted((zone, today_in(zone, now)) for zone in zones)))


@functools.lru_cache(maxsize=8)
def _coverage_on(days: tuple[tuple[str, date], ...]) -> _Coverage:
    """_coverage for these days in these zones (built once a day, not per page)."""
    today = dict(days)
    today_text = case(
        {z: d.isoformat() for z, d in today.items()}, value=Organisation.timezone, else_=None
    )
    soon_text = case(
        {z: (d + timedelta(days=ENDING_DAYS)).isoformat() for z, d in today.items()},
        value=Organisation.timezone,
        else_=None,
    )
    stored = Device.upgrade_windows
    windowless = stored[("windows", 0)].as_string().is_(None)
    through = stored["through"].as_string()
    # Coverage starts with the trial run (delivery), else with acceptance.
    later = cast(func.coalesce(Device.delivered_on, Device.accepted_on), String) > today_text
    never_delivered = and_(Device.delivered_on.is_(None), Device.accepted_on.is_(None))
    state = case(
        # Not delivered: the vendor's stock, nothing started (nor restricted).
        (and_(windowless, never_delivered), literal("not-started")),
        (windowless, literal("ended")),  # every day denied
        (later, literal("not-started")),
        (through.is_(None), literal("covered")),  # open-ended
        (through < today_text, literal("ended")),
        (through <= soon_text, literal("ending")),
        else_=literal("covered"),
    )
    # The same cases as WHEREs, the cheap test first (SQLite stops at the
    # first false term): a filtered count reads every device.
    started = and_(~windowless, or_(~later, later.is_(None)))
    predicates = {
        "covered": and_(or_(through.is_(None), through >= today_text), started),
        "ending": and_(through >= today_text, through <= soon_text, started),
        "ended": or_(
            and_(through < today_text, started),
            and_(windowless, ~never_delivered),
        ),
        "not-started": or_(and_(never_delivered, windowless), and_(later, ~windowless)),
    }
    return _Coverage(state, predicates)


def _filtered(
    session: Session, actor: Principal, query: DeviceQuery, coverage: _Coverage
) -> Select[Any]:
    """The ids of the devices the filters keep, with only the joins they need."""
    stmt = (
        visible_devices(
            actor,
            DeviceFilters(
                organisation_id=query.organisation,
                product_id=query.product,
                channel=query.channel or None,
                current_version=query.version or None,
            ),
        )
        .with_only_columns(Device.id, maintain_column_froms=False)
        .select_from(Device)
    )
    if query.q:
        pattern = f"{escape_like(query.q.lower())}%"
        stmt = stmt.where(func.lower(Device.serial).like(pattern, escape="\\"))
    if query.silent is not None:
        since = utcnow() - timedelta(days=query.silent)
        stmt = stmt.where(or_(Device.last_seen_at.is_(None), Device.last_seen_at < since))
    if query.hardware:
        stmt = stmt.join(HardwareRevision, HardwareRevision.id == Device.hardware_revision_id)
        stmt = stmt.where(HardwareRevision.code == query.hardware)
    if query.coverage or query.sort == "organisation":
        stmt = stmt.join(Organisation, Organisation.id == Device.organisation_id)
    if query.coverage:
        stmt = stmt.where(coverage.predicates[query.coverage])
    return stmt


def _ordered(stmt: Select[Any], query: DeviceQuery) -> Select[Any]:
    def way(column: Any) -> Any:
        return (column.desc() if query.desc else column.asc()).nulls_last()

    if query.sort == "seen":
        keys = [way(Device.last_seen_at)]
    elif query.sort == "organisation":
        keys = [way(Organisation.name)]
    elif query.sort == "version":
        # In version order (1.10 after 1.9) where a release names it.
        stmt = stmt.outerjoin(
            Release,
            and_(
                Release.product_id == Device.product_id,
                Release.version == Device.current_version,
            ),
        )
        keys = [way(Release.version_key), way(Device.current_version)]
    else:
        keys = []
    # With a search, the matches are sorted after they are found: walking the
    # serial index in order would read half the fleet before a match deep in it.
    by_serial = func.coalesce(Device.serial, "") if query.q else Device.serial
    serial = by_serial.desc() if query.desc else by_serial.asc()
    return stmt.order_by(*keys, serial)


def _columns(coverage: _Coverage) -> Select[Any]:
    """What a row of the list (and of the CSV file) shows."""
    return (
        select(
            Device.id,
            Device.serial,
            Device.current_version,
            Device.channel,
            Device.last_seen_at,
            Device.delivered_on,
            Device.accepted_on,
            Device.upgrade_windows["through"].as_string().label("through"),
            Organisation.id.label("organisation_id"),
            Organisation.slug.label("organisation_slug"),
            Organisation.name.label("organisation"),
            Organisation.timezone.label("timezone"),
            Product.code.label("product"),
            HardwareRevision.code.label("hardware"),
            func.coalesce(Site.name, "").label("site"),
            coverage.state.label("state"),
        )
        .select_from(Device)
        .join(Organisation, Organisation.id == Device.organisation_id)
        .join(Product, Product.id == Device.product_id)
        .join(HardwareRevision, HardwareRevision.id == Device.hardware_revision_id)
        .outerjoin(Site, Site.id == Device.site_id)
    )


@dataclass(frozen=True)
class DevicePage:
    rows: list[Any]
    # How many match, capped at COUNT_CAP + 1 ("more than COUNT_CAP"); None:
    # not counted (a coverage filter reads every device's windows to count).
    total: int | None
    more: bool

    @property
    def capped(self) -> bool:
        return self.total is not None and self.total > COUNT_CAP


def device_page(session: Session, actor: Principal, query: DeviceQuery) -> DevicePage:
    """One page of the filtered, sorted list, and how many match (capped).

    Two steps: the page's ids in order (a sort reads only the keys of the
    devices it passes over), then the columns of those ids alone."""
    coverage = _coverage(session)
    filtered = _filtered(session, actor, query, coverage)
    offset = (query.page - 1) * PAGE_SIZE
    ids = list(session.scalars(_ordered(filtered, query).offset(offset).limit(PAGE_SIZE + 1)))
    found = {r.id: r for r in session.execute(_columns(coverage).where(Device.id.in_(ids)))}
    more = len(ids) > PAGE_SIZE
    total = None
    if not more and (ids or query.page == 1):  # the last page: counted already
        total = offset + len(ids)
    elif not query.coverage:
        counted = filtered.limit(COUNT_CAP + 1).subquery()
        total = session.scalar(select(func.count()).select_from(counted)) or 0
    rows = [found[i] for i in ids[:PAGE_SIZE] if i in found]
    return DevicePage(rows, total, more)


def device_rows(
    session: Session, actor: Principal, query: DeviceQuery, batch: int = 2000
) -> Iterator[Any]:
    """Every row of the filtered set in the list's order, read a batch at a
    time (a CSV file of the whole fleet does not sit in memory)."""
    coverage = _coverage(session)
    kept = _columns(coverage).where(Device.id.in_(_filtered(session, actor, query, coverage)))
    stmt = _ordered(kept, query)
    yield from session.execute(stmt.execution_options(yield_per=batch))


def choices(session: Session) -> dict[str, list[Any]]:
    """What the filters' lists offer: organisations, products, hardware
    revisions' codes, channels' names."""
    from upgrade_server.releases.models import DEFAULT_CHANNELS, Channel

    hardware = session.scalars(select(HardwareRevision.code).distinct()).all()
    channels = set(session.scalars(select(Channel.name).distinct())) | set(DEFAULT_CHANNELS)
    return {
        "organisations": list(
            session.execute(select(Organisation.id, Organisation.name).order_by(Organisation.name))
        ),
        "products": list(session.execute(select(Product.id, Product.code).order_by(Product.code))),
        "hardware": sorted(hardware),
        "channels": sorted(channels),
    }

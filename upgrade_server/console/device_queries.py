"""The console's device list as SQL: its filters, its order, one page of
rows, and the whole filtered set for a CSV file.

One statement per page (plus the organisations' time zones, and a capped
count), whatever the number of rows: the list selects columns, not devices,
so nothing is loaded per row. Upgrade coverage is read from what the update
check reads, `Device.upgrade_windows` (kept by entitlements.service.refresh):
its last covered day ("through"), compared with today in the organisation's
time zone. The device page shows each kind of coverage as entitlements
computes it; the list does not re-derive those rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import timedelta
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
# than scanning the whole fleet for an exact number.
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
        return cls(
            q=args.get("q", "").strip()[:128],
            organisation=_number(args.get("organisation")),
            product=_number(args.get("product")),
            version=args.get("version", "").strip()[:64],
            hardware=args.get("hardware", "").strip()[:64],
            channel=args.get("channel", "").strip()[:32],
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
            if value in ("", None, False) or (f.name, value) in (("sort", "serial"), ("page", 1)):
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


def _upgrade_state(session: Session) -> Any:
    """The SQL for a device's upgrade coverage state (one of STATES), from its
    stored windows and today in its organisation's time zone."""
    zones = session.scalars(select(Organisation.timezone).distinct()).all()
    now = utcnow()
    today = {zone: today_in(zone, now) for zone in zones}
    today_text = case(
        {z: d.isoformat() for z, d in today.items()}, value=Organisation.timezone, else_=None
    )
    soon_text = case(
        {z: (d + timedelta(days=ENDING_DAYS)).isoformat() for z, d in today.items()},
        value=Organisation.timezone,
        else_=None,
    )
    stored = Device.upgrade_windows
    first_window = stored[("windows", 0)].as_string()
    through = stored["through"].as_string()
    start = func.coalesce(Device.delivered_on, Device.accepted_on)
    never_delivered = and_(Device.delivered_on.is_(None), Device.accepted_on.is_(None))
    return case(
        # Not delivered: the vendor's stock, nothing started (nor restricted).
        (and_(first_window.is_(None), never_delivered), literal("not-started")),
        (first_window.is_(None), literal("ended")),  # every day denied
        (cast(start, String) > today_text, literal("not-started")),
        (through.is_(None), literal("covered")),  # open-ended
        (through < today_text, literal("ended")),
        (through <= soon_text, literal("ending")),
        else_=literal("covered"),
    )


def _statement(session: Session, actor: Principal, query: DeviceQuery) -> Select[Any]:
    state = _upgrade_state(session).label("state")
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
        .with_only_columns(
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
            state,
            maintain_column_froms=False,
        )
        .select_from(Device)
        .join(Organisation, Organisation.id == Device.organisation_id)
        .join(Product, Product.id == Device.product_id)
        .join(HardwareRevision, HardwareRevision.id == Device.hardware_revision_id)
        .outerjoin(Site, Site.id == Device.site_id)
    )
    if query.q:
        pattern = f"{escape_like(query.q.lower())}%"
        stmt = stmt.where(func.lower(Device.serial).like(pattern, escape="\\"))
    if query.hardware:
        stmt = stmt.where(HardwareRevision.code == query.hardware)
    if query.coverage == "covered":
        stmt = stmt.where(state.in_(("covered", "ending")))
    elif query.coverage:
        stmt = stmt.where(state == query.coverage)
    if query.silent is not None:
        since = utcnow() - timedelta(days=query.silent)
        stmt = stmt.where(or_(Device.last_seen_at.is_(None), Device.last_seen_at < since))
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
    serial = Device.serial.desc() if query.desc else Device.serial.asc()
    return stmt.order_by(*keys, serial)


@dataclass(frozen=True)
class DevicePage:
    rows: list[Any]
    total: int  # capped at COUNT_CAP + 1 ("more than COUNT_CAP")
    more: bool

    @property
    def capped(self) -> bool:
        return self.total > COUNT_CAP


def device_page(session: Session, actor: Principal, query: DeviceQuery) -> DevicePage:
    """One page of the filtered, sorted list, and how many match (capped)."""
    stmt = _statement(session, actor, query)
    offset = (query.page - 1) * PAGE_SIZE
    rows = list(session.execute(_ordered(stmt, query).offset(offset).limit(PAGE_SIZE + 1)))
    counted = stmt.with_only_columns(Device.id, maintain_column_froms=False).limit(COUNT_CAP + 1)
    total = session.scalar(select(func.count()).select_from(counted.subquery())) or 0
    return DevicePage(rows[:PAGE_SIZE], total, len(rows) > PAGE_SIZE)


def device_rows(
    session: Session, actor: Principal, query: DeviceQuery, batch: int = 2000
) -> Iterator[Any]:
    """Every row of the filtered set in the list's order, read a batch at a
    time (a CSV file of the whole fleet does not sit in memory)."""
    stmt = _ordered(_statement(session, actor, query), query)
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

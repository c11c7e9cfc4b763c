"""A device's history as one timeline, newest first: what it installed, the
alarms it raised, the tickets and service sessions it was part of, and the
changes to its coverage (contracts, overrides, delivery and acceptance).

One query per source, each limited, whatever the length of the history;
columns rather than models, so no relationship is loaded per entry. Changes
to coverage are read from the audit log, which keeps contracts and overrides
even after they were deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from flask import current_app, url_for
from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from werkzeug.routing import BuildError

from upgrade_server.audit.models import AuditEntry
from upgrade_server.devices.models import Device
from upgrade_server.service.models import ServiceSession, session_devices
from upgrade_server.tickets.models import Alarm, Ticket, ticket_devices
from upgrade_server.updates.models import InstallEvent
from upgrade_server.web.labels import label

# How many entries each source gives at most; the timeline shows the newest.
PER_SOURCE = 50
SHOWN = 100
# Other sections' pages an entry may link to (the first that exists).
SESSION_PAGES = ("console.service_sessions_detail", "console.service_session")
KINDS = ("install", "alarm", "ticket", "session", "coverage", "device")


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # one of KINDS ("timeline-kind" labels)
    text: str
    link: str | None = None
    tone: str = ""  # ok, warn, bad: how the entry reads at a glance


def console_link(endpoints: tuple[str, ...], **values: Any) -> str | None:
    """A link to the first of these console pages that exists (other sections
    are built alongside this one), else None."""
    for endpoint in endpoints:
        if endpoint in current_app.view_functions:
            try:
                return url_for(endpoint, **values)
            except BuildError:
                continue
    return None


def timeline(session: Session, device: Device) -> list[Entry]:
    """The device's newest entries from every source, newest first."""
    entries: list[Entry] = []
    for source in (_installs, _alarms, _tickets, _sessions, _audit):
        entries.extend(source(session, device))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:SHOWN]


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _installs(session: Session, device: Device) -> list[Entry]:
    rows = session.execute(
        select(
            InstallEvent.occurred_at,
            InstallEvent.version,
            InstallEvent.status,
            InstallEvent.release_id,
            InstallEvent.error_code,
        )
        .where(InstallEvent.device_id == device.id)
        .order_by(InstallEvent.occurred_at.desc(), InstallEvent.id.desc())
        .limit(PER_SOURCE)
    )
    tones = {"installed": "ok", "failed": "bad", "rolled_back": "bad"}
    out = []
    for r in rows:
        status = label(r.status, "install-status")
        text = _("Version %(version)s: %(status)s", version=r.version, status=status)
        if r.error_code:
            text += " (" + r.error_code + ")"
        link = (
            console_link(("console.releases_detail",), release_id=r.release_id)
            if r.release_id
            else None
        )
        out.append(Entry(_utc(r.occurred_at), "install", text, link, tones.get(r.status, "")))
    return out


def _alarms(session: Session, device: Device) -> list[Entry]:
    rows = session.execute(
        select(
            Alarm.occurred_at,
            Alarm.event,
            Alarm.code,
            Alarm.level,
            Alarm.message,
            Alarm.ticket_id,
        )
        .where(Alarm.device_id == device.id)
        .order_by(Alarm.occurred_at.desc(), Alarm.id.desc())
        .limit(PER_SOURCE)
    )
    out = []
    for r in rows:
        if r.event == "clear":
            text = _("Alarm %(code)s cleared", code=r.code)
        else:
            text = _("Alarm %(code)s raised, level %(level)s", code=r.code, level=r.level)
        if r.message:
            text += ": " + r.message
        out.append(
            Entry(
                _utc(r.occurred_at),
                "alarm",
                text,
                _ticket_link(r.ticket_id) if r.ticket_id else None,
                "ok" if r.event == "clear" else "bad",
            )
        )
    return out


def _ticket_link(ticket_id: int) -> str | None:
    return console_link(("console.tickets_detail", "console.tickets_ticket"), ticket_id=ticket_id)


def _tickets(session: Session, device: Device) -> list[Entry]:
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.title,
            Ticket.level,
            Ticket.status,
            Ticket.opened_at,
            Ticket.resolved_at,
            Ticket.closed_at,
        )
        .join(ticket_devices, ticket_devices.c.ticket_id == Ticket.id)
        .where(ticket_devices.c.device_id == device.id)
        .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
        .limit(PER_SOURCE)
    )
    out = []
    for r in rows:
        link = _ticket_link(r.id)
        out.append(
            Entry(
                _utc(r.opened_at),
                "ticket",
                _(
                    "Ticket #%(id)s opened, level %(level)s: %(title)s (now %(status)s)",
                    id=r.id,
                    level=r.level,
                    title=r.title,
                    status=label(r.status, "ticket-status"),
                ),
                link,
                "warn",
            )
        )
        if r.resolved_at is not None:
            resolved = _("Ticket #%(id)s resolved", id=r.id)
            out.append(Entry(_utc(r.resolved_at), "ticket", resolved, link, "ok"))
        if r.closed_at is not None:
            closed = _("Ticket #%(id)s closed", id=r.id)
            out.append(Entry(_utc(r.closed_at), "ticket", closed, link))
    return out


def _sessions(session: Session, device: Device) -> list[Entry]:
    at = func.coalesce(
        ServiceSession.started_at, ServiceSession.planned_start, ServiceSession.created_at
    )
    rows = session.execute(
        select(
            ServiceSession.id,
            ServiceSession.kind,
            ServiceSession.mode,
            ServiceSession.started_at,
            ServiceSession.planned_start,
            ServiceSession.created_at,
            ServiceSession.ended_at,
            ServiceSession.end_confirmed_at,
            ServiceSession.cancelled_at,
            ServiceSession.engineers,
        )
        .join(session_devices, session_devices.c.session_id == ServiceSession.id)
        .where(session_devices.c.device_id == device.id)
        .order_by(at.desc(), ServiceSession.id.desc())
        .limit(PER_SOURCE)
    )
    out = []
    for r in rows:
        when = r.started_at or r.planned_start or r.created_at
        if r.cancelled_at is not None:
            state = "cancelled"
        elif r.end_confirmed_at is not None:
            state = "signed-off"
        elif r.ended_at is not None:
            state = "ended"
        elif r.started_at is not None:
            state = "started"
        else:
            state = "planned"
        text = _(
            "Service session #%(id)s, %(kind)s (%(mode)s): %(state)s",
            id=r.id,
            kind=label(r.kind, "session-kind"),
            mode=label(r.mode, "mode"),
            state=label(state, "entry-state"),
        )
        if r.engineers:
            text += " · " + ", ".join(str(e) for e in r.engineers)
        link = console_link(
            SESSION_PAGES,
            session_id=r.id,
        )
        out.append(Entry(_utc(when), "session", text, link, "ok" if state == "signed-off" else ""))
    return out


# Device fields whose change the timeline tells (others are bookkeeping).
FIELDS = ("delivered_on", "accepted_on", "channel", "current_version", "site", "organisation_id")


def _touches(device: Device, view: dict[str, Any] | None) -> bool:
    """Does this contract's or override's audit view apply to the device?"""
    if not view:
        return False
    if view.get("device_id") is not None:
        return bool(view["device_id"] == device.id)
    product = view.get("product_id")
    return product is None or product == device.product_id


def _audit(session: Session, device: Device) -> list[Entry]:
    rows = session.scalars(
        select(AuditEntry)
        .where(
            or_(
                and_(AuditEntry.object_type == "devices", AuditEntry.object_id == str(device.id)),
                and_(
                    AuditEntry.object_type.in_(("contracts", "coverage_overrides")),
                    AuditEntry.organisation_id == device.organisation_id,
                ),
            )
        )
        .order_by(AuditEntry.id.desc())
        .limit(PER_SOURCE * 4)  # contracts of the organisation's other devices are skipped
    )
    out: list[Entry] = []
    for entry in rows:
        made = _audit_entry(device, entry)
        if made is not None:
            out.append(made)
        if len(out) >= PER_SOURCE:
            break
    return out


def _audit_entry(device: Device, entry: AuditEntry) -> Entry | None:
    at, who = _utc(entry.at), entry.actor_label
    before, after = entry.before or {}, entry.after or {}
    builders: dict[str, Callable[[], Entry | None]] = {
        "device.create": lambda: _created(at, who, after),
        "device.token.rotate": lambda: Entry(
            at, "device", _("Device token replaced by %(who)s", who=who), tone="warn"
        ),
        "device.token.revoke": lambda: Entry(
            at, "device", _("Device tokens revoked by %(who)s", who=who), tone="bad"
        ),
        "device.update": lambda: _change(at, who, before, after),
        "contract.create": lambda: (
            _contract(at, who, after, created=True) if _touches(device, after) else None
        ),
        "contract.delete": lambda: (
            _contract(at, who, before, created=False) if _touches(device, before) else None
        ),
        "coverage.override": lambda: (
            _override(at, who, after, created=True) if _touches(device, after) else None
        ),
        "coverage.override.delete": lambda: (
            _override(at, who, before, created=False) if _touches(device, before) else None
        ),
    }
    build = builders.get(entry.action)
    return build() if build is not None else None


def _day(value: Any) -> str:
    if not value:
        return "—"
    return date.fromisoformat(str(value)).isoformat()


def _created(at: datetime, who: str, after: dict[str, Any]) -> Entry:
    """The registration, with the dates coverage counts from if it had them."""
    text = _("Registered by %(who)s", who=who)
    dates = [
        f"{label(name, 'device-field')}: {_day(after[name])}"
        for name in ("delivered_on", "accepted_on")
        if after.get(name)
    ]
    return Entry(at, "device", "; ".join([text, *dates]))


def _change(at: datetime, who: str, before: dict[str, Any], after: dict[str, Any]) -> Entry | None:
    changed = [f for f in FIELDS if before.get(f) != after.get(f)]
    if not changed:
        return None
    parts = []
    for name in changed:
        old, new = before.get(name), after.get(name)
        if name in ("delivered_on", "accepted_on"):
            old, new = _day(old), _day(new)
        parts.append(f"{label(name, 'device-field')}: {old or '—'} → {new or '—'}")
    coverage = {"delivered_on", "accepted_on", "organisation_id"} & set(changed)
    return Entry(
        at,
        "coverage" if coverage else "device",
        _("Changed by %(who)s: %(changes)s", who=who, changes="; ".join(parts)),
    )


def _contract(at: datetime, who: str, view: dict[str, Any], created: bool) -> Entry:
    values = {
        "kind": label(view.get("kind"), "coverage-kind"),
        "reference": view.get("reference", ""),
        "start": _day(view.get("starts_on")),
        "end": _day(view.get("ends_on")),
        "who": who,
    }
    scope = (
        _("this device")
        if view.get("device_id") is not None
        else _("every device of the organisation")
    )
    if created:
        text = _(
            "Contract %(reference)s added by %(who)s: %(kind)s from %(start)s through %(end)s",
            **values,
        )
        return Entry(at, "coverage", f"{text} ({scope})", tone="ok")
    text = _(
        "Contract %(reference)s removed by %(who)s: %(kind)s from %(start)s through %(end)s",
        **values,
    )
    return Entry(at, "coverage", f"{text} ({scope})", tone="warn")


def _override(at: datetime, who: str, view: dict[str, Any], created: bool) -> Entry:
    values = {
        "kind": label(view.get("kind"), "coverage-kind"),
        "effect": label(view.get("effect"), "override-effect"),
        "start": _day(view.get("starts_on")),
        "end": _day(view.get("ends_on")),
        "reason": view.get("reason", ""),
        "who": who,
    }
    if created:
        text = _(
            "Override by %(who)s: %(kind)s %(effect)s from %(start)s through %(end)s,"
            " because: %(reason)s",
            **values,
        )
    else:
        text = _(
            "Override removed by %(who)s: %(kind)s %(effect)s from %(start)s through %(end)s",
            **values,
        )
    return Entry(at, "coverage", text, tone="warn" if view.get("effect") == "deny" else "ok")

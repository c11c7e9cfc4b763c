"""The console's audit log (administrators): the entries newest first,
filtered by actor, action, object and dates and paged by id; an entry with
its before and after; and the hash chain's check (audit/service.py
verify_chain, the same as `upgrade-server audit verify`) run on request,
since it reads the whole log. The page shows the checkpoint kept outside the
database meanwhile."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import render_template, request
from flask_babel import gettext as _
from sqlalchemy import select

from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.checkpoints import CheckpointError
from upgrade_server.audit.hooks import audit_checkpoints
from upgrade_server.audit.models import AuditEntry, AuditHead
from upgrade_server.audit.service import ChainReport, verify_chain
from upgrade_server.console.views import bp, require
from upgrade_server.errors import NotFoundError
from upgrade_server.extensions import session as db_session
from upgrade_server.organisations.models import Organisation

PAGE_SIZE = 50
# The filters a page keeps in its links, as the query string names them.
FILTERS = ("actor", "action", "object_type", "object_id", "organisation", "since", "until")


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def _filtered(args: Any) -> tuple[Any, dict[str, str]]:
    """The entries the filters select, and the filters as given (bad ones dropped)."""
    stmt = select(AuditEntry)
    kept: dict[str, str] = {}
    actor = args.get("actor", "").strip()[:254]
    if actor:
        stmt = stmt.where(AuditEntry.actor_label == actor)
        kept["actor"] = actor
    action = args.get("action", "").strip()[:64]
    if action:
        # "ticket." (ending in a dot): every action of that kind.
        clause = (
            AuditEntry.action.startswith(action, autoescape=True)
            if action.endswith(".")
            else AuditEntry.action == action
        )
        stmt = stmt.where(clause)
        kept["action"] = action
    for name in ("object_type", "object_id"):
        value = args.get(name, "").strip()[:64]
        if value:
            stmt = stmt.where(getattr(AuditEntry, name) == value)
            kept[name] = value
    organisation = args.get("organisation", type=int)
    if organisation is not None:
        stmt = stmt.where(AuditEntry.organisation_id == organisation)
        kept["organisation"] = str(organisation)
    since, until = _day(args.get("since", "")), _day(args.get("until", ""))
    # Days in UTC, as the log keeps its times; `until` is the last day included.
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= datetime.combine(since, time(), UTC))
        kept["since"] = since.isoformat()
    if until is not None:
        stmt = stmt.where(AuditEntry.at < datetime.combine(until + timedelta(days=1), time(), UTC))
        kept["until"] = until.isoformat()
    return stmt, kept


@bp.get("/audit")
def audit() -> str:
    """A page of entries, newest first: those before `before` (an entry id)."""
    require(Permission.AUDIT_READ)
    stmt, kept = _filtered(request.args)
    before = request.args.get("before", type=int)
    if before is not None:
        stmt = stmt.where(AuditEntry.id < before)
    session = db_session()
    rows = list(session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(PAGE_SIZE + 1)))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_template(
        "console/audit/list.html",
        entries=rows,
        organisations=_names({e.organisation_id for e in rows}),
        filters=kept,
        paged=before is not None,
        next_before=rows[-1].id if more else None,
        **_chain_facts(),
    )


def _names(ids: set[int | None]) -> dict[int, str]:
    """The organisations' names for a page of entries, in one query."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    found = db_session().execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(wanted))
    )
    return {i: name for i, name in found.all()}


def _chain_facts() -> dict[str, Any]:
    """What is known without reading the log: its head, and the checkpoint."""
    head = db_session().get(AuditHead, 1)
    try:
        checkpoint, unreadable = audit_checkpoints().read(), False
    except CheckpointError:
        checkpoint, unreadable = None, True
    return {
        "head": head.last_entry_id if head is not None else 0,
        "checkpoint": checkpoint,
        "checkpoint_unreadable": unreadable,
    }


@bp.get("/audit/<int:entry_id>")
def audit_entry(entry_id: int) -> str:
    """One entry: who, what, when, its before and after, its links in the chain."""
    require(Permission.AUDIT_READ)
    entry = db_session().get(AuditEntry, entry_id)
    if entry is None:
        raise NotFoundError(f"no audit entry {entry_id}")
    organisation = (
        db_session().get(Organisation, entry.organisation_id) if entry.organisation_id else None
    )
    return render_template(
        "console/audit/entry.html",
        entry=entry,
        organisation=organisation,
        before=_pretty(entry.before),
        after=_pretty(entry.after),
    )


def _pretty(value: dict[str, Any] | None) -> str | None:
    # Escaped by the template, like every other text.
    if value is None:
        return None
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@bp.post("/audit/verify")
def audit_verify() -> str:
    """Check the whole chain now and say what was found."""
    require(Permission.AUDIT_READ)
    report = verify_chain(db_session(), audit_checkpoints())
    return render_template(
        "console/audit/verify.html", report=report, finding=finding(report), **_chain_facts()
    )


# What verify_chain's English reasons say, in the reader's language.
_REASONS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"head row is missing"), lambda m: _("The log's head record is missing.")),
    (
        re.compile(r"entry (\d+) is missing"),
        lambda m: _("Entry %(id)s is missing.", id=m.group(1)),
    ),
    (
        re.compile(r"does not link to the entry before it"),
        lambda m: _("The entry does not link to the entry before it."),
    ),
    (
        re.compile(r"does not match its hash"),
        lambda m: _("The entry's content does not match its hash: it was changed."),
    ),
    (
        re.compile(r"log ends at entry (\d+) but the head records (\d+)"),
        lambda m: _(
            "The log ends at entry %(end)s but its head records %(head)s.",
            end=m.group(1),
            head=m.group(2),
        ),
    ),
    (
        re.compile(r"checkpoint of .* counted (\d+)"),
        lambda m: _(
            "The checkpoint counted %(count)s entries: entries were removed from the end.",
            count=m.group(1),
        ),
    ),
    (
        re.compile(r"entries up to it were rewritten"),
        lambda m: _(
            "The log no longer ends the chain the checkpoint recorded: entries were rewritten."
        ),
    ),
    (
        re.compile(r"checkpoint .* (cannot be read|is malformed|does not verify)"),
        lambda m: _("The checkpoint outside the database cannot be read or does not verify."),
    ),
)


def finding(report: ChainReport) -> str:
    """The report's reason as a sentence of the reader's language."""
    if report.ok:
        return _("The chain is whole.")
    for pattern, sentence in _REASONS:
        found = pattern.search(report.reason or "")
        if found is not None:
            return str(sentence(found))
    return _("The chain does not verify.")

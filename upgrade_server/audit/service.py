"""Appending to and verifying the hash-chained audit log, and anchoring its
head outside the database (audit/checkpoints.py)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.audit.checkpoints import CheckpointError, CheckpointFile
from upgrade_server.audit.models import AuditEntry, AuditHead
from upgrade_server.clock import utcnow
from upgrade_server.errors import ConflictError

GENESIS_HASH = "0" * 64
# Where a session keeps the entries it appended, for the checkpoint written
# after its commit (audit/hooks.py).
APPENDED = "upgrade_server.audit.appended"


class Audited(Protocol):
    id: Any

    def audit_view(self) -> dict[str, object]: ...


def _canonical(entry: AuditEntry) -> bytes:
    fields = {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor_type": entry.actor_type,
        "actor_id": entry.actor_id,
        "actor_label": entry.actor_label,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "organisation_id": entry.organisation_id,
        "before": entry.before,
        "after": entry.after,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(entry)).hexdigest()


def record(
    session: Session,
    actor: Principal,
    action: str,
    object_type: str,
    object_id: object | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    organisation_id: int | None = None,
) -> AuditEntry:
    """Append one entry. Call inside the transaction that makes the change.

    The head row is locked (FOR UPDATE on PostgreSQL; SQLite has one writer at
    a time), so concurrent requests extend the chain one after another.
    """
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    entry = AuditEntry(
        id=head.last_entry_id + 1,
        at=utcnow(),
        actor_type=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        organisation_id=organisation_id,
        before=_jsonable(before),
        after=_jsonable(after),
        prev_hash=head.last_hash,
    )
    entry.entry_hash = compute_hash(head.last_hash, entry)
    session.add(entry)
    head.last_entry_id = entry.id
    head.last_hash = entry.entry_hash
    head.updated_at = entry.at
    session.info.setdefault(APPENDED, []).append(entry)
    return entry


def record_change(
    session: Session,
    actor: Principal,
    action: str,
    obj: Audited,
    before: dict[str, Any] | None,
    *,
    organisation_id: int | None = None,
    deleted: bool = False,
) -> AuditEntry:
    """Record a change to a model that has audit_view(), after it was flushed."""
    after = None if deleted else obj.audit_view()
    return record(
        session,
        actor,
        action,
        type(obj).__tablename__,  # type: ignore[attr-defined]
        obj.id,
        before=before,
        after=after,
        organisation_id=organisation_id,
    )


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    # Round-trip through JSON so the hash covers exactly what the database keeps.
    return json.loads(json.dumps(value, default=_default))


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str | None = None
    # How many entries the checkpoint outside the database vouches for, and when
    # it was written: changes to entries after it show only as broken links.
    anchored: int = 0
    anchored_at: datetime | None = None


def verify_chain(session: Session, checkpoints: CheckpointFile | None) -> ChainReport:
    """Walk the log in order; name the first entry that does not chain. Then
    hold it against the checkpoint (None: the links only): the log must still
    have the entries it counted, the last of them with the head hash it recorded."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    if head is None:
        return ChainReport(False, 0, None, "the head row is missing")
    checkpoint, unreadable = None, None
    try:
        checkpoint = checkpoints.read() if checkpoints else None
    except CheckpointError as exc:
        unreadable = str(exc)
    prev_hash = GENESIS_HASH
    expected_id = 1
    checked = 0
    hash_at_checkpoint = None
    stmt = select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=1000)
    for entry in session.execute(stmt).scalars():
        if entry.id != expected_id:
            return ChainReport(False, checked, expected_id, f"entry {expected_id} is missing")
        if entry.prev_hash != prev_hash:
            return ChainReport(False, checked, entry.id, "does not link to the entry before it")
        if compute_hash(prev_hash, entry) != entry.entry_hash:
            return ChainReport(False, checked, entry.id, "its content does not match its hash")
        prev_hash = entry.entry_hash
        expected_id += 1
        checked += 1
        if checkpoint is not None and entry.id == checkpoint.entries:
            hash_at_checkpoint = entry.entry_hash
    if head.last_entry_id != checked or head.last_hash != prev_hash:
        return ChainReport(
            False,
            checked,
            checked + 1 if head.last_entry_id > checked else head.last_entry_id,
            f"the log ends at entry {checked} but the head records {head.last_entry_id}",
        )
    if unreadable is not None:
        return ChainReport(False, checked, None, unreadable)
    if checkpoint is None:
        return ChainReport(True, checked)
    at = checkpoint.at
    if checked < checkpoint.entries:
        return ChainReport(
            False,
            checked,
            checked + 1,
            f"the log ends at entry {checked} but the checkpoint of {at.isoformat()} counted"
            f" {checkpoint.entries}: entries were removed from its end",
            checkpoint.entries,
            at,
        )
    if hash_at_checkpoint != checkpoint.head:
        # The chain is whole again, so which entry changed cannot be told.
        return ChainReport(
            False,
            checked,
            None,
            f"entry {checkpoint.entries} does not end the chain the checkpoint of"
            f" {at.isoformat()} recorded: entries up to it were rewritten",
            checkpoint.entries,
            at,
        )
    return ChainReport(True, checked, anchored=checkpoint.entries, anchored_at=at)


def anchor_chain(
    session: Session, actor: Principal, checkpoints: CheckpointFile, *, replace: bool = False
) -> int:
    """Write a checkpoint of the whole log now (for entries other hosts wrote,
    or, with replace, after a database backup was restored); returns the
    entries it covers. A replacement is itself recorded in the log.

    Raises ConflictError if the log does not verify (with replace: if its own
    links do not).
    """
    # Locked first: no entry is appended between the check and the checkpoint.
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    report = verify_chain(session, None if replace else checkpoints)
    if head is None or not report.ok:
        raise ConflictError(f"the audit log does not verify: {report.reason}")
    if not replace:
        checkpoints.advance(head.last_entry_id, head.last_hash)
        return head.last_entry_id
    try:
        replaced = checkpoints.read()
        before = {"entries": replaced.entries, "head": replaced.head} if replaced else None
    except CheckpointError as exc:
        before = {"unreadable": str(exc)}
    checkpoints.replace(head.last_entry_id, head.last_hash)
    # Appended after the new checkpoint, so the commit moves it on over this entry.
    record(
        session,
        actor,
        "audit.checkpoint.replace",
        "audit_log",
        None,
        before=before,
        after={"entries": head.last_entry_id, "head": head.last_hash},
    )
    return head.last_entry_id + 1

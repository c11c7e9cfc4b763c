"""The audit checkpoint follows every commit that appended entries.

Whatever commits (a request, a CLI command, background work), a session that
appended entries checks before its commit that the log still ends the chain
the checkpoint recorded, and after the commit moves the checkpoint to its new
head. A log that no longer matches its checkpoint is not anchored again: its
next entry must not make a rewritten past look checkpointed.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, SessionTransaction

from upgrade_server.audit.checkpoints import FILE_NAME, CheckpointError, CheckpointFile
from upgrade_server.audit.models import AuditEntry
from upgrade_server.audit.service import APPENDED

log = logging.getLogger(__name__)

_EXTENSION = "audit_checkpoints"
# The head a session may record once its commit has succeeded.
_NEXT_HEAD = "upgrade_server.audit.next_head"


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.extensions[_EXTENSION] = CheckpointFile(
        settings.resolved_instance_path() / FILE_NAME, settings.resolved_audit_key()
    )
    # Every session of every app, once: the app is found at commit time.
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_rollback)


def audit_checkpoints() -> CheckpointFile:
    """The running app's checkpoint file."""
    checkpoints: CheckpointFile = current_app.extensions[_EXTENSION]
    return checkpoints


def _before_commit(session: Session) -> None:
    # Entries of a savepoint rolled back meanwhile were expunged: not ours to record.
    appended = [
        entry
        for entry in session.info.pop(APPENDED, [])
        if inspect(entry).pending or inspect(entry).persistent
    ]
    if not appended or not has_app_context() or _EXTENSION not in current_app.extensions:
        return
    first = min(entry.id for entry in appended)
    last = max(appended, key=lambda entry: entry.id)
    try:
        checkpoint = audit_checkpoints().read()
    except CheckpointError:
        log.error("the audit checkpoint does not verify; it is not moved on")
        return
    if checkpoint is not None:
        anchored = session.execute(
            select(AuditEntry.entry_hash).where(AuditEntry.id == checkpoint.entries)
        ).scalar_one_or_none()
        if checkpoint.entries >= first or anchored != checkpoint.head:
            log.error(
                "the audit log no longer ends the chain its checkpoint recorded at entry %d;"
                " it is not moved on (run `upgrade-server audit verify`)",
                checkpoint.entries,
            )
            return
    session.info[_NEXT_HEAD] = (last.id, last.entry_hash)


def _after_commit(session: Session) -> None:
    head = session.info.pop(_NEXT_HEAD, None)
    if head is None or not has_app_context():
        return
    try:
        audit_checkpoints().advance(*head)
    except OSError:
        # The change is committed; the next one moves the checkpoint on.
        log.exception("the audit checkpoint could not be written")


def _after_rollback(session: Session, previous: SessionTransaction, *_: Any) -> None:
    if not previous.nested:
        session.info.pop(APPENDED, None)
        session.info.pop(_NEXT_HEAD, None)

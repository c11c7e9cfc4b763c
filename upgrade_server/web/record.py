"""The service record as a reader sees it: the page and the PDF word each
entry in the reader's language, where the record's JSON and CSV keep the codes
(`installation`, `signed-off`, `rolled_back`) that programs read.

The service composes each entry's title from codes; here the entry is worded
again from what it refers to (`ref`: install:7, session:3, ...), looked up once
per kind of entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.service.models import ServiceSession
from upgrade_server.updates.models import InstallEvent
from upgrade_server.web.labels import label
from upgrade_server.web.times import when

# What the state of each kind of entry is a code of.
_STATE_DOMAIN = {
    "install": "install-status",
    "session": "entry-state",
    "request": "entry-state",
    "notice": "notice-state",
    "warning": "notice-state",
}


def _ids(entries: Sequence[Any], kind: str) -> list[int]:
    return [int(e.ref.split(":")[1]) for e in entries if e.ref.split(":")[0] == kind]


def present(session: Session, entries: Sequence[Any], zone: str) -> list[dict[str, str]]:
    """Rows for record.html and record_document.html: when (with its zone),
    kind, what, status, devices, details; in the reader's language."""
    installs = {
        e.id: e
        for e in session.scalars(
            select(InstallEvent).where(InstallEvent.id.in_(_ids(entries, "install")))
        )
    }
    sessions = {
        s.id: s
        for s in session.scalars(
            select(ServiceSession).where(ServiceSession.id.in_(_ids(entries, "session")))
        )
    }
    return [_row(entry, zone, installs, sessions) for entry in entries]


def _row(
    entry: Any,
    zone: str,
    installs: dict[int, InstallEvent],
    sessions: dict[int, ServiceSession],
) -> dict[str, str]:
    noun, _sep, rest = entry.ref.partition(":")
    title, detail = entry.title, entry.detail
    if noun == "install" and int(rest) in installs:
        title = installs[int(rest)].version
    elif noun == "session" and int(rest) in sessions:
        found = sessions[int(rest)]
        title = label(found.kind, "session-kind")
        if found.release is not None:
            title += f" {found.release.version}"
        if found.corrects_id:
            title += " (" + _("corrects #%(id)s", id=found.corrects_id) + ")"
    elif noun == "notice":
        title = _("Pre-installation notice #%(id)s", id=rest)
    elif noun == "warning":  # the state says what is wrong; the details are the service's
        title, detail = _("Delivered"), ""
    domain = _STATE_DOMAIN.get(noun)
    return {
        "at": when(entry.at, zone),
        "kind": label(entry.kind, "record-kind"),
        "title": title,
        "state": label(entry.state, domain) if domain else entry.state,
        "devices": " ".join(entry.devices),
        "detail": detail,
    }

"""The service record: sessions, requests, pre-installation notices, responses and
installs of an organisation in time order, and as flat rows (API, CSV, PDF, CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import visible_devices
from upgrade_server.errors import (
    NotFoundError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.service import notices
from upgrade_server.service.models import (
    PreInstallationNotice,
    ServiceRequest,
    ServiceSession,
)
from upgrade_server.service.service import local_time
from upgrade_server.updates.models import InstallEvent


def record_rows(entries: list[RecordEntry], zone: str) -> list[dict[str, Any]]:
    """The record as flat rows, times in the organisation's zone (API, CSV, PDF, CLI)."""
    return [
        {
            "at": local_time(e.at, zone),
            "kind": e.kind,
            "title": e.title,
            "state": e.state,
            "devices": " ".join(e.devices),
            "detail": e.detail,
            "ref": e.ref,
        }
        for e in entries
    ]


@dataclass(frozen=True)
class RecordEntry:
    at: datetime
    kind: str  # install, session, request, notice, warning
    title: str
    detail: str
    state: str
    devices: tuple[str, ...]
    ref: str


def service_record(
    session: Session,
    actor: Principal,
    *,
    device_id: int | None = None,
    organisation_id: int | None = None,
) -> tuple[Organisation, list[RecordEntry]]:
    """The install log and the sessions and requests, oldest first, for one
    device or one organisation."""
    if device_id is not None:
        device = session.scalars(visible_devices(actor).where(Device.id == device_id)).first()
        if device is None:
            raise NotFoundError(f"no device {device_id}")
        organisation = device.organisation
        device_ids = [device.id]
    else:
        organisation_found = session.get(Organisation, organisation_id)
        if organisation_found is None or not actor.sees_organisation(organisation_id):
            raise NotFoundError(f"no organisation {organisation_id}")
        organisation = organisation_found
        device_ids = list(
            session.scalars(select(Device.id).where(Device.organisation_id == organisation.id))
        )
    serials: dict[int, str] = {
        row.id: row.serial
        for row in session.execute(
            select(Device.id, Device.serial).where(Device.id.in_(device_ids))
        )
    }
    entries: list[RecordEntry] = []
    for event in session.scalars(
        select(InstallEvent).where(InstallEvent.device_id.in_(device_ids))
    ):
        detail = " ".join(filter(None, [event.error_code, event.error_text]))
        entries.append(
            RecordEntry(
                event.occurred_at,
                "install",
                f"{event.version} {event.status}",
                detail,
                event.status,
                (serials[event.device_id],),
                f"install:{event.id}",
            )
        )
    wanted = set(device_ids)
    for entry in session.scalars(
        select(ServiceSession).where(ServiceSession.organisation_id == organisation.id)
    ):
        ids = {d.id for d in entry.devices}
        if device_id is not None and not ids & wanted:
            continue
        title = entry.kind + (f" {entry.release.version}" if entry.release else "")
        if entry.corrects_id:
            title += f" (corrects session {entry.corrects_id})"
        entries.append(
            RecordEntry(
                entry.started_at or entry.planned_start or entry.created_at,
                "session",
                title,
                " ".join(filter(None, [entry.outcome, entry.notes])),
                entry.state,
                tuple(d.serial for d in entry.devices),
                f"session:{entry.id}",
            )
        )
    for request in session.scalars(
        select(ServiceRequest).where(ServiceRequest.organisation_id == organisation.id)
    ):
        ids = {d.id for d in request.devices}
        if device_id is not None and not ids & wanted:
            continue
        entries.append(
            RecordEntry(
                request.opened_at,
                "request",
                request.title,
                request.description,
                request.state,
                tuple(d.serial for d in request.devices),
                f"request:{request.id}",
            )
        )
    entries.extend(_notice_entries(session, organisation, device_id, wanted))
    entries.sort(key=lambda e: (e.at, e.ref))
    return organisation, entries


def _notice_entries(
    session: Session, organisation: Organisation, device_id: int | None, wanted: set[int]
) -> list[RecordEntry]:
    """Pre-installation notices, and a warning at the delivery of each device
    that had none in time."""
    found = []
    for notice in session.scalars(
        select(PreInstallationNotice).where(
            PreInstallationNotice.organisation_id == organisation.id
        )
    ):
        if device_id is not None and not {d.id for d in notice.devices} & wanted:
            continue
        # The arrival and the site; a notice sent too late shows as the warning
        # at its devices' delivery. No code here: the portal shows the detail.
        detail = [notice.expected_on.isoformat() if notice.expected_on else "", notice.site]
        found.append(
            RecordEntry(
                notice.sent_at,
                "notice",
                f"pre-installation notice {notice.id}",
                " · ".join(filter(None, detail)),
                notice.state,
                tuple(d.serial for d in notice.devices),
                f"notice:{notice.id}",
            )
        )
    devices = list(session.scalars(select(Device).where(Device.id.in_(wanted))))
    for missing in notices.missing_notices(session, devices):
        why = (
            "delivered without a pre-installation notice"
            if missing.problem == "none"
            else f"the pre-installation notice {missing.notice_id} was sent on"
            f" {missing.sent_on}, not before the delivery"
        )
        found.append(
            RecordEntry(
                missing.at,
                "warning",
                f"delivered {missing.device.delivered_on}",
                why,
                f"notice-{missing.problem}",
                (missing.device.serial,),
                f"warning:delivery:{missing.device.id}",
            )
        )
    return found

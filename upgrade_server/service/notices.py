"""The written pre-installation notice (安装前期准备书面通知): before the
equipment arrives, the vendor tells the customer in writing what the site
must prepare. A notice names its devices, carries its document (generated
text the engineer may replace, and attachments), is sent on a date and
confirmed as received by a customer user; then it never changes.

A delivered device without a notice sent before the day of its delivery is
a warning in the service record and in the reminders.

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError,
ConflictError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import local_day, utcnow
from upgrade_server.devices.models import Device
from upgrade_server.devices.service import visible_devices
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    PermissionDeniedError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.service import access
from upgrade_server.service.models import PreInstallationNotice
from upgrade_server.service.responses import check_time


class Via(StrEnum):
    EMAIL = "email"
    POST = "post"
    HAND = "hand"
    PORTAL = "portal"


def get_notice(session: Session, actor: Principal, notice_id: int) -> PreInstallationNotice:
    return access.get(session, actor, PreInstallationNotice, notice_id)


def list_notices(
    session: Session, actor: Principal, organisation_id: int | None = None
) -> list[PreInstallationNotice]:
    stmt = access.visible(actor, PreInstallationNotice)
    if organisation_id is not None:
        stmt = stmt.where(PreInstallationNotice.organisation_id == organisation_id)
    return list(session.scalars(stmt.order_by(PreInstallationNotice.id.desc()).limit(1000)))


def sent_on(notice: PreInstallationNotice) -> date:
    """The day it was sent, in the organisation's calendar."""
    return local_day(notice.sent_at, notice.organisation.timezone)


def late_devices(notice: PreInstallationNotice) -> list[Device]:
    """Its devices that had already arrived on the day it was sent."""
    day = sent_on(notice)
    return [d for d in notice.devices if d.delivered_on is not None and d.delivered_on <= day]


# --- the document ---------------------------------------------------------------------------

_DOCUMENT = {
    "zh-CN": """# 安装前期准备书面通知

致 {organisation}：

我司设备预计于 **{expected}** 到达贵方项目现场{site}。

为保证安装调试顺利进行，请在设备到达前完成以下准备：

1. **场地**：机房或安装位置的空间、承重和搬运通道满足设备要求。
2. **供电**：按设备功率提供专用电源及可靠接地。
3. **环境**：温度、湿度、防尘符合设备运行条件，空调正常运行。
4. **网络**：预留所需的 IP 地址、端口和线缆，并为远程诊断开通访问。
5. **人员**：指定现场联系人，安装调试期间到场配合。

到货设备：

{devices}

收到本通知后，请在门户中确认收到。
""",
    "en": """# Written pre-installation notice

To {organisation}:

Our equipment is expected at your project site{site} on **{expected}**. For
installation and commissioning to go smoothly, please have the following ready
before it arrives:

1. **Space**: room or position, floor load and a way in for the equipment.
2. **Power**: a dedicated supply for the equipment's power, and a reliable earth.
3. **Environment**: temperature, humidity and dust within the operating range;
   air conditioning working.
4. **Network**: the IP addresses, ports and cables it needs, and access for
   remote diagnosis.
5. **People**: a named contact on site, present during installation.

Equipment arriving:

{devices}

Please confirm in the portal that you received this notice.
""",
}
LANGUAGES = tuple(_DOCUMENT)


def default_document(
    organisation: Organisation,
    devices: list[Device],
    expected_on: date | None,
    site: str,
    language: str = "zh-CN",
) -> str:
    """What the site must prepare, as Markdown, in the customer's language."""
    unknown = "待定" if language == "zh-CN" else "to be confirmed"
    lines = [f"- {d.serial}: {d.product.name} ({d.hardware_revision.code})" for d in devices] or [
        f"- {unknown}"
    ]
    return _DOCUMENT[language].format(
        organisation=organisation.name,
        expected=expected_on.isoformat() if expected_on else unknown,
        site=f"（{site}）" if site and language == "zh-CN" else f" ({site})" if site else "",
        devices="\n".join(lines),
    )


# --- writing --------------------------------------------------------------------------------


def create_notice(
    session: Session, actor: Principal, data: dict[str, Any]
) -> PreInstallationNotice:
    """Record a notice the vendor sent (`sent_at`, default now; never in the
    future). Without a `document`, the standard one is written in `language`."""
    access.require(actor, Permission.SERVICE_MANAGE, "send pre-installation notices")
    organisation = session.get(Organisation, data.get("organisation_id"))
    if organisation is None:
        raise InvalidInputError(
            "the notice is invalid", [{"field": "organisation_id", "message": "no such one"}]
        )
    ids = list(data.get("device_ids") or [])
    devices = list(session.scalars(visible_devices(actor).where(Device.id.in_(ids)))) if ids else []
    errors = []
    if not ids or len(devices) != len(set(ids)):
        errors.append({"field": "device_ids", "message": "the devices it announces"})
    if any(d.organisation_id != organisation.id for d in devices):
        errors.append({"field": "device_ids", "message": "devices of this organisation"})
    language = data.get("language") or "zh-CN"
    if language not in LANGUAGES:
        errors.append({"field": "language", "message": ", ".join(LANGUAGES)})
    if errors:
        raise InvalidInputError("the notice is invalid", errors)
    now = utcnow()
    sent = data.get("sent_at") or now
    check_time(sent, now, field="sent_at")
    site = data.get("site") or next((d.site for d in devices if d.site), "")
    notice = PreInstallationNotice(
        organisation_id=organisation.id,
        organisation=organisation,
        devices=devices,
        site=site,
        expected_on=data.get("expected_on"),
        document=data.get("document")
        or default_document(organisation, devices, data.get("expected_on"), site, language),
        attachments=[],
        sent_at=sent,
        sent_via=Via(data.get("sent_via") or Via.EMAIL).value,
        sent_by=actor.label,
        created_at=now,
    )
    session.add(notice)
    session.flush()
    record_change(
        session, actor, "service.notice.send", notice, None, organisation_id=organisation.id
    )
    return notice


def _not_received(notice: PreInstallationNotice) -> None:
    if notice.received_at is not None:
        raise ConflictError("the customer confirmed it received this notice: it no longer changes")


def confirm_receipt(session: Session, actor: Principal, notice_id: int) -> PreInstallationNotice:
    """A customer user of the organisation confirms the notice reached it."""
    notice = get_notice(session, actor, notice_id)
    if not actor.may(Permission.SERVICE_CONFIRM):
        raise PermissionDeniedError("confirming receipt is for the customer to do")
    _not_received(notice)
    before = notice.audit_view()
    notice.received_at, notice.received_by = utcnow(), actor.label
    session.flush()
    record_change(
        session,
        actor,
        "service.notice.confirm-receipt",
        notice,
        before,
        organisation_id=notice.organisation_id,
    )
    return notice


def check_open(notice: PreInstallationNotice) -> None:
    """Raise ConflictError once the customer confirmed receipt."""
    _not_received(notice)


def add_attachment(
    session: Session, actor: Principal, notice: PreInstallationNotice, attachment: dict[str, Any]
) -> None:
    """Record a file already in the artifact store (the signed letter, a site plan)."""
    access.require(actor, Permission.SERVICE_MANAGE, "attach files to notices")
    _not_received(notice)
    before = notice.audit_view()
    notice.attachments = [
        *[a for a in notice.attachments if a["sha256"] != attachment["sha256"]],
        attachment,
    ]
    session.flush()
    record_change(
        session,
        actor,
        "service.notice.attach",
        notice,
        before,
        organisation_id=notice.organisation_id,
    )


# --- what is missing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Missing:
    """A delivered device without a notice sent before its delivery."""

    device: Device
    problem: str  # "none": no notice at all; "late": only one sent on or after delivery
    notice_id: int | None
    sent_on: date | None

    @property
    def at(self) -> datetime:
        """Its delivery, as an instant: the start of that day where it is."""
        assert self.device.delivered_on is not None
        zone = ZoneInfo(self.device.organisation.timezone)
        return datetime.combine(self.device.delivered_on, time(), tzinfo=zone)


def missing_notices(session: Session, devices: list[Device]) -> list[Missing]:
    """Of `devices`, the delivered ones that had no notice sent before the day
    they arrived (in their organisation's calendar)."""
    delivered = {d.id: d for d in devices if d.delivered_on is not None}
    if not delivered:
        return []
    best: dict[int, PreInstallationNotice] = {}
    for notice in session.scalars(
        select(PreInstallationNotice).where(
            PreInstallationNotice.organisation_id.in_(
                {d.organisation_id for d in delivered.values()}
            )
        )
    ):
        for device in notice.devices:
            if device.id in delivered and (
                device.id not in best or notice.sent_at < best[device.id].sent_at
            ):
                best[device.id] = notice
    found = []
    for device_id, device in sorted(delivered.items()):
        first = best.get(device_id)
        assert device.delivered_on is not None
        if first is None:
            found.append(Missing(device, "none", None, None))
        elif sent_on(first) >= device.delivered_on:
            found.append(Missing(device, "late", first.id, sent_on(first)))
    return found


def missing_report(session: Session, actor: Principal) -> list[dict[str, Any]]:
    """Delivered devices the caller may see that had no notice in time."""
    devices = list(
        session.scalars(
            visible_devices(actor).where(Device.delivered_on.is_not(None)).order_by(Device.id)
        )
    )
    return [
        {
            "device_id": m.device.id,
            "serial": m.device.serial,
            "organisation": m.device.organisation.slug,
            "site": m.device.site,
            "delivered_on": m.device.delivered_on,
            "problem": m.problem,
            "notice_id": m.notice_id,
            "sent_on": m.sent_on,
        }
        for m in missing_notices(session, devices)
    ]

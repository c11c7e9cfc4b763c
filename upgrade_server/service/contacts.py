"""Phone consultation: the customer's named representatives (trained
technicians who call the vendor for it, 用户的代表) and the vendor's hotline.

A change of the hotline number is announced to every customer in writing
(e-mail counts) within 3 days of the change; each organisation's notice is
recorded with when and how it was told, and the ones not yet told (and those
past the 3 days) are listed.

Errors raised: InvalidInputError, NotFoundError, PermissionDeniedError,
ConflictError.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.clock import utcnow
from upgrade_server.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from upgrade_server.organisations.models import Organisation
from upgrade_server.service import access
from upgrade_server.service.models import (
    CustomerRepresentative,
    HotlineChange,
    HotlineNotice,
    ServiceSession,
    SessionKind,
)
from upgrade_server.service.responses import check_time

TELL_WITHIN = timedelta(days=3)
# A change may be recorded ahead of the day it takes effect, within reason.
ANNOUNCE_AHEAD = timedelta(days=366)
_REPRESENTATIVE_FIELDS = ("name", "phone", "email", "training_session_id")


class Told(StrEnum):
    EMAIL = "email"
    POST = "post"
    FAX = "fax"
    HAND = "hand"


# --- representatives ------------------------------------------------------------------------


def _organisation(session: Session, actor: Principal, organisation_id: int) -> Organisation:
    found = session.get(Organisation, organisation_id)
    if found is None or not actor.sees_organisation(organisation_id):
        raise NotFoundError(f"no organisation {organisation_id}")
    return found


def representatives(
    session: Session, actor: Principal, organisation_id: int
) -> list[CustomerRepresentative]:
    _organisation(session, actor, organisation_id)
    return list(
        session.scalars(
            select(CustomerRepresentative)
            .where(CustomerRepresentative.organisation_id == organisation_id)
            .order_by(CustomerRepresentative.id)
        )
    )


def _representative(
    session: Session, actor: Principal, organisation_id: int, representative_id: int
) -> CustomerRepresentative:
    _organisation(session, actor, organisation_id)
    found = session.get(CustomerRepresentative, representative_id)
    if found is None or found.organisation_id != organisation_id:
        raise NotFoundError(f"no representative {representative_id}")
    return found


def _check_training(session: Session, organisation_id: int, session_id: int | None) -> None:
    if session_id is None:
        return
    training = session.get(ServiceSession, session_id)
    if (
        training is None
        or training.organisation_id != organisation_id
        or training.kind != SessionKind.TRAINING
    ):
        raise InvalidInputError(
            "the representative is invalid",
            [{"field": "training_session_id", "message": "a training session of the organisation"}],
        )


def add_representative(
    session: Session, actor: Principal, organisation_id: int, data: dict[str, Any]
) -> CustomerRepresentative:
    """Name a representative: a name, a phone number and the training session
    that trained them (optional: one given before this server knew)."""
    access.require(actor, Permission.REPRESENTATIVES_MANAGE, "name representatives")
    _organisation(session, actor, organisation_id)
    _check_training(session, organisation_id, data.get("training_session_id"))
    found = CustomerRepresentative(
        organisation_id=organisation_id,
        created_by=actor.label,
        **{name: data[name] for name in _REPRESENTATIVE_FIELDS if data.get(name) is not None},
    )
    session.add(found)
    session.flush()
    record_change(
        session,
        actor,
        "service.representative.add",
        found,
        None,
        organisation_id=organisation_id,
    )
    return found


def update_representative(
    session: Session,
    actor: Principal,
    organisation_id: int,
    representative_id: int,
    changes: dict[str, Any],
) -> CustomerRepresentative:
    access.require(actor, Permission.REPRESENTATIVES_MANAGE, "change representatives")
    found = _representative(session, actor, organisation_id, representative_id)
    if "training_session_id" in changes:
        _check_training(session, organisation_id, changes["training_session_id"])
    before = found.audit_view()
    for name in _REPRESENTATIVE_FIELDS:
        if name in changes and (changes[name] is not None or name == "training_session_id"):
            setattr(found, name, changes[name])
    session.flush()
    record_change(
        session,
        actor,
        "service.representative.update",
        found,
        before,
        organisation_id=organisation_id,
    )
    return found


def remove_representative(
    session: Session, actor: Principal, organisation_id: int, representative_id: int
) -> None:
    access.require(actor, Permission.REPRESENTATIVES_MANAGE, "remove representatives")
    found = _representative(session, actor, organisation_id, representative_id)
    before = found.audit_view()
    session.delete(found)
    session.flush()
    record_change(
        session,
        actor,
        "service.representative.remove",
        found,
        before,
        organisation_id=organisation_id,
        deleted=True,
    )


# --- the hotline ---------------------------------------------------------------------------------


def current_hotline(session: Session) -> HotlineChange | None:
    """The latest change in effect: its number is the hotline."""
    return session.scalars(
        select(HotlineChange)
        .where(HotlineChange.changed_at <= utcnow())
        .order_by(HotlineChange.changed_at.desc(), HotlineChange.id.desc())
    ).first()


def hotline_changes(session: Session) -> list[HotlineChange]:
    return list(session.scalars(select(HotlineChange).order_by(HotlineChange.id.desc()).limit(100)))


def get_change(session: Session, change_id: int) -> HotlineChange:
    found = session.get(HotlineChange, change_id)
    if found is None:
        raise NotFoundError(f"no hotline change {change_id}")
    return found


def record_change_of_hotline(
    session: Session, actor: Principal, data: dict[str, Any]
) -> HotlineChange:
    """Staff record a new hotline number and when it took (or takes) effect;
    every customer is then due a written notice within 3 days of it."""
    access.require(actor, Permission.SERVICE_MANAGE, "change the hotline")
    now = utcnow()
    changed = data.get("changed_at") or now
    check_time(changed, now + ANNOUNCE_AHEAD, field="changed_at")
    previous = current_hotline(session)
    change = HotlineChange(
        number=data["number"],
        previous_number=data.get("previous_number") or (previous.number if previous else ""),
        changed_at=changed,
        note=data.get("note") or "",
        recorded_at=now,
        recorded_by=actor.label,
    )
    if change.number == change.previous_number:
        raise InvalidInputError(
            "the number did not change", [{"field": "number", "message": "a new number"}]
        )
    session.add(change)
    session.flush()
    record_change(session, actor, "service.hotline.change", change, None)
    return change


def _customers(session: Session, change: HotlineChange) -> list[Organisation]:
    """The organisations to tell: every one that existed when it was recorded."""
    return list(
        session.scalars(
            select(Organisation)
            .where(Organisation.created_at <= change.recorded_at)
            .order_by(Organisation.slug)
        )
    )


def notice_rows(
    session: Session, actor: Principal, change: HotlineChange, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each customer's notice of a change: told (when, how, in time or late),
    or not yet (overdue past the 3 days). Customers see their own row only."""
    now = now or utcnow()
    due = change.changed_at + TELL_WITHIN
    told = {n.organisation_id: n for n in change.notices}
    rows = []
    for organisation in _customers(session, change):
        if not actor.sees_organisation(organisation.id):
            continue
        notice = told.get(organisation.id)
        if notice is not None:
            status = "told" if notice.told_at <= due else "told-late"
        else:
            status = "overdue" if now > due else "pending"
        rows.append(
            {
                "change_id": change.id,
                "number": change.number,
                "organisation_id": organisation.id,
                "organisation": organisation.slug,
                "contact_email": organisation.contact_email if actor.is_vendor else None,
                "due_at": due,
                "status": status,
                "told_at": notice.told_at if notice else None,
                "told_via": notice.told_via if notice else None,
                "recipient": notice.recipient if notice else None,
            }
        )
    return rows


def not_told(
    session: Session, actor: Principal, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Customers not yet told of a hotline change, overdue ones first."""
    rows = [
        row
        for change in hotline_changes(session)
        for row in notice_rows(session, actor, change, now)
        if row["status"] in ("pending", "overdue")
    ]
    rows.sort(key=lambda r: (r["due_at"], r["organisation"]))
    return rows


def record_told(
    session: Session,
    actor: Principal,
    change_id: int,
    organisation_id: int,
    via: str,
    at: datetime | None = None,
    recipient: str = "",
) -> HotlineNotice:
    """Record that a customer was told in writing (`at`, default now)."""
    access.require(actor, Permission.SERVICE_MANAGE, "record hotline notices")
    change = get_change(session, change_id)
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise InvalidInputError(
            "the notice is invalid", [{"field": "organisation_id", "message": "no such one"}]
        )
    if any(n.organisation_id == organisation_id for n in change.notices):
        raise ConflictError(f"{organisation.slug} was already told of hotline change {change_id}")
    now = utcnow()
    when = at or now
    check_time(when, now)
    notice = HotlineNotice(
        change=change,
        organisation_id=organisation_id,
        told_at=when,
        told_via=Told(via).value,
        recipient=recipient,
        recorded_by=actor.label,
    )
    session.add(notice)
    session.flush()
    record_change(
        session, actor, "service.hotline.told", notice, None, organisation_id=organisation_id
    )
    return notice


Mailer = Callable[[list[str], str, str], None]


def letter(change: HotlineChange, organisation: Organisation) -> tuple[str, str]:
    """The written notice: subject and text, in Chinese and English."""
    from upgrade_server.service.service import local_time

    when = local_time(change.changed_at, organisation.timezone)
    subject = f"服务热线号码变更 / Service hotline number change: {change.number}"
    text = (
        f"{organisation.name}：\n\n"
        f"自 {when}（{organisation.timezone}）起，我司技术服务热线号码变更为 {change.number}"
        + (f"（原号码 {change.previous_number}）" if change.previous_number else "")
        + "。\n\n"
        f"From {when} ({organisation.timezone}) our service hotline number is {change.number}"
        + (f" (was {change.previous_number})" if change.previous_number else "")
        + ".\n"
        + (f"\n{change.note}\n" if change.note else "")
    )
    return subject, text


def send_by_email(
    session: Session, actor: Principal, change_id: int, mailer: Mailer
) -> dict[str, list[str]]:
    """E-mail the change to every customer not yet told that has a contact
    address, recording each one sent; returns the slugs sent, skipped (no
    address) and failed (the mail server refused or could not be reached)."""
    access.require(actor, Permission.SERVICE_MANAGE, "send hotline notices")
    change = get_change(session, change_id)
    told = {n.organisation_id for n in change.notices}
    result: dict[str, list[str]] = {"sent": [], "skipped": [], "failed": []}
    for organisation in _customers(session, change):
        if organisation.id in told:
            continue
        if not organisation.contact_email:
            result["skipped"].append(organisation.slug)
            continue
        subject, text = letter(change, organisation)
        try:
            mailer([organisation.contact_email], subject, text)
        except (OSError, ValueError) as exc:  # smtplib's errors are OSErrors
            result["failed"].append(f"{organisation.slug}: {exc.__class__.__name__}")
            continue
        record_told(
            session,
            actor,
            change.id,
            organisation.id,
            Told.EMAIL,
            recipient=organisation.contact_email,
        )
        result["sent"].append(organisation.slug)
    return result

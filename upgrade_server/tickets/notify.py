"""Notifications of urgent tickets: a new level 1-2 ticket (or one raised to
level 2 or 1), an emergency (from its start), and a deadline about to pass.
They are written to an outbox in the transaction that caused them and
delivered by a background thread (a webhook POST and an e-mail), retried with
backoff: a receiver that fails never blocks or fails the request. What is no
longer so when a notification is due (its ticket resolved or closed, its
deadline met or moved) is cancelled then, not sent."""

from __future__ import annotations

import json
import logging
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import urllib3
from flask import Flask
from sqlalchemy import JSON, ForeignKey, String, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session

from upgrade_server import events
from upgrade_server.clock import utcnow
from upgrade_server.config import Settings
from upgrade_server.database import UTCDateTime
from upgrade_server.extensions import Base, db
from upgrade_server.service import responses
from upgrade_server.tickets import breaches, service
from upgrade_server.tickets.models import Ticket
from upgrade_server.unit_of_work import unit_of_work
from upgrade_server.workdays.service import working_calendars

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=2)
MAX_BACKOFF = timedelta(hours=1)


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Enqueued once per key (a ticket opened, a deadline due soon).
    key: Mapped[str] = mapped_column(String(200), unique=True)
    # "ticket" (about ticket_id), or another subject, e.g. "rollout" (a halt).
    kind: Mapped[str] = mapped_column(String(16), default="ticket", server_default="ticket")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    webhook_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(2000))
    # Not sent, and never will be: what it was about is no longer so (the
    # ticket resolved or closed, the deadline met), found when it was due.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_reason: Mapped[str | None] = mapped_column(String(200))


def enqueue_note(
    session: Session, key: str, kind: str, subject: str, payload: dict[str, Any]
) -> bool:
    """Add a notification about something other than a ticket (`kind`, e.g.
    "rollout") unless one with this key exists; True if it was added."""
    if session.scalars(select(Notification.id).where(Notification.key == key)).first():
        return False
    session.add(
        Notification(key=key, kind=kind, subject=subject, payload=payload, next_attempt_at=utcnow())
    )
    session.flush()
    return True


def enqueue(
    session: Session,
    key: str,
    ticket: Ticket,
    subject: str,
    event: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Add a notification unless one with this key exists."""
    if session.scalars(select(Notification.id).where(Notification.key == key)).first():
        return
    session.add(
        Notification(
            key=key,
            ticket_id=ticket.id,
            subject=subject,
            payload={
                "event": event,
                "ticket_id": ticket.id,
                "organisation": ticket.organisation.slug,
                "level": ticket.level,
                "status": ticket.status,
                "title": ticket.title,
                "opened_at": ticket.opened_at.isoformat(),
                **(extra or {}),
            },
            next_attempt_at=utcnow(),
        )
    )
    session.flush()


@events.ticket_urgency_changed.connect
def ticket_opened(session: Session, ticket: Ticket) -> None:
    """A ticket opened, raised or marked an emergency: once per emergency (from
    its start), else once per urgent level."""
    since = service.emergency_since(ticket)
    if since is not None:
        opened = since == ticket.opened_at
        enqueue(
            session,
            f"ticket:{ticket.id}:emergency:{since.isoformat()}",
            ticket,
            f"Level {ticket.level} ticket #{ticket.id}, an emergency: {ticket.title}",
            "ticket-opened" if opened else "ticket-emergency",
            {"emergency": True, "emergency_since": since.isoformat()},
        )
    elif ticket.level <= 2:
        enqueue(
            session,
            f"ticket:{ticket.id}:level:{ticket.level}",
            ticket,
            f"Level {ticket.level} ticket #{ticket.id}: {ticket.title}",
            "ticket-opened",
        )


def due_soon(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Enqueue a notification for each open ticket's deadline that passes
    within `notify_before_minutes`; returns how many were new."""
    now = now or utcnow()
    before = timedelta(minutes=settings.notify_before_minutes)
    added = 0
    open_tickets = session.scalars(select(Ticket).where(Ticket.status.in_(service.OPEN)))
    for ticket in open_tickets:
        if any(p.confirmed_at and p.ended_at is None for p in ticket.pauses):
            continue  # its deadlines hold while it waits on the customer
        for deadline in _deadlines(ticket, settings, now):
            if deadline.met_at is None and now < deadline.due_at <= now + before:
                key = f"ticket:{ticket.id}:due:{deadline.name}:{deadline.due_at.isoformat()}"
                exists = session.scalars(select(Notification.id).where(Notification.key == key))
                if exists.first() is None:
                    enqueue(
                        session,
                        key,
                        ticket,
                        f"Ticket #{ticket.id}: {deadline.name} due at {deadline.due_at:%H:%M} UTC",
                        f"deadline-{deadline.name}",
                        {"deadline": deadline.name, "due_at": deadline.due_at.isoformat()},
                    )
                    added += 1
    return added


def _deadlines(ticket: Ticket, settings: Settings, now: datetime) -> list[service.Deadline]:
    return service.deadlines_of(ticket, working_calendars(object_session(ticket), settings), now)


def stale_because(
    session: Session, settings: Settings, note: Notification, now: datetime
) -> str | None:
    """Why a notification must not go out any more, if so: its ticket was
    resolved or closed (or deleted), or the deadline it warns of was met or
    moved. Notifications about other things than tickets always go out."""
    if note.kind != "ticket":
        return None
    ticket = session.get(Ticket, note.ticket_id) if note.ticket_id is not None else None
    if ticket is None:
        return "the ticket no longer exists"
    if ticket.status not in service.OPEN:
        return f"the ticket is {ticket.status}"
    event = str(note.payload.get("event", ""))
    if not event.startswith("deadline-"):
        return None
    name = event.removeprefix("deadline-")
    deadline = next((d for d in _deadlines(ticket, settings, now) if d.name == name), None)
    if deadline is None or deadline.met_at is not None:
        return f"the {name} deadline was met"
    queued = note.payload.get("due_at")
    if queued is not None and datetime.fromisoformat(queued) != deadline.due_at:
        return f"the {name} deadline moved"
    return None


# --- delivery -------------------------------------------------------------------------------


def _webhook(settings: Settings, note: Notification) -> None:
    url = settings.notify_webhook_url
    assert url is not None
    if not url.startswith(("http://", "https://")):
        raise ValueError("the webhook URL must be http or https")
    response = urllib3.request(
        "POST",
        url,
        body=json.dumps({"subject": note.subject, **note.payload}).encode(),
        headers={"Content-Type": "application/json"},
        timeout=settings.notify_timeout_seconds,
        retries=False,
    )
    if response.status >= 300:
        raise OSError(f"webhook answered {response.status}")


def _email(settings: Settings, note: Notification) -> None:
    text = json.dumps(note.payload, indent=2, ensure_ascii=False)
    send_mail(settings, [settings.notify_email_to], note.subject, text)


def send_mail(settings: Settings, to: list[str], subject: str, text: str) -> None:
    """One plain-text e-mail through the configured SMTP server (the
    notifications' and the hotline change notices'); raises OSError (smtplib's
    errors) when it is refused or cannot be reached."""
    assert settings.smtp_host is not None
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(text)
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.notify_timeout_seconds
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)


def deliver(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Try every notification that is due; returns how many were completed.

    Each is claimed, checked and recorded in units of work of its own, and
    sent outside any: a receiver that hangs holds no transaction (nor, on
    SQLite, the write lock). A claim is a lease: another worker takes the
    notification only once the lease ran out without a record."""
    now = now or utcnow()
    completed = 0
    if not settings.notify_webhook_url and not (settings.smtp_host and settings.notify_email_to):
        return 0  # nowhere to send: they wait until a channel is configured
    with unit_of_work(session=session, writes=False):
        due = session.scalars(
            select(Notification.id).where(
                Notification.delivered_at.is_(None),
                Notification.cancelled_at.is_(None),
                Notification.next_attempt_at <= now,
                or_(Notification.lease_until.is_(None), Notification.lease_until < now),
            )
        ).all()
    for note_id in due:
        if _deliver_one(session, settings, note_id, now):
            completed += 1
    return completed


def _deliver_one(session: Session, settings: Settings, note_id: int, now: datetime) -> bool:
    with unit_of_work(session=session):
        # Claim it, so another worker does not send it too.
        claimed = session.execute(
            update(Notification)
            .where(
                Notification.id == note_id,
                or_(Notification.lease_until.is_(None), Notification.lease_until < now),
            )
            .values(lease_until=now + LEASE)
        )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    with unit_of_work(session=session):
        note = session.get(Notification, note_id)
        assert note is not None
        # Checked now, not only when queued: the ticket may have moved on since.
        stale = stale_because(session, settings, note, now)
        if stale is not None:
            note.cancelled_at, note.cancelled_reason, note.lease_until = now, stale, None
            log.info("notification %s cancelled: %s", note.key, stale)
            return False
        # Sent from a copy outside the session: its commit expires the row.
        session.expunge(note)
    errors, done = [], {}
    channels = [
        ("webhook_done_at", settings.notify_webhook_url, _webhook),
        ("email_done_at", settings.smtp_host and settings.notify_email_to, _email),
    ]
    for column, configured, send in channels:
        if not configured or getattr(note, column) is not None:
            continue
        try:
            send(settings, note)
            done[column] = utcnow()
        except Exception as exc:  # any failure of a receiver: retried
            errors.append(f"{column.split('_')[0]}: {exc.__class__.__name__}: {exc}")
    with unit_of_work(session=session):
        note = session.get(Notification, note_id)
        assert note is not None
        for column, at in done.items():
            setattr(note, column, at)
        note.attempts += 1
        note.lease_until = None
        if errors:
            note.last_error = "; ".join(errors)[:2000]
            note.next_attempt_at = now + min(MAX_BACKOFF, timedelta(seconds=10 * 2**note.attempts))
            log.warning("notification %s not delivered: %s", note.key, note.last_error)
            return False
        note.delivered_at = utcnow()
        return True


def run_once(app: Flask, now: datetime | None = None) -> int:
    """One pass: record missed deadlines of open tickets and of service
    requests awaiting their response, enqueue deadlines due soon, deliver what
    is due; returns how many were delivered."""
    settings: Settings = app.config["SETTINGS"]
    with unit_of_work(app) as session:
        breaches.sweep_breaches(session, working_calendars(session, settings), now)
        responses.sweep_breaches(session, now)  # service requests' response
        due_soon(session, settings, now)
    with app.app_context():  # its end removes the session
        return deliver(db.session(), settings, now)

"""The incident report: written by vendor staff, delivered to the customer once
the ticket is resolved (every part present), read-only after."""

from __future__ import annotations

from datetime import UTC
from typing import Any

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
from upgrade_server.tickets.models import (
    IncidentReport,
)
from upgrade_server.tickets.service import _require, get_ticket

REPORT_PARTS = ("fault_started_at", "fault_ended_at", "symptoms", "cause", "solution", "follow_up")


def save_report(
    session: Session, actor: Principal, ticket_id: int, data: dict[str, Any]
) -> IncidentReport:
    _require(actor, Permission.SERVICE_MANAGE, "write incident reports")
    ticket = get_ticket(session, actor, ticket_id)
    report = session.get(IncidentReport, ticket.id) or IncidentReport(ticket_id=ticket.id)
    if report.delivered_at is not None:
        raise ConflictError("the report was delivered: it is read-only")
    for name in REPORT_PARTS:
        if name in data:
            setattr(report, name, data[name])
    if "recovery_steps" in data:  # times in UTC, so that their order is their text's
        report.recovery_steps = [
            {"at": s["at"].astimezone(UTC).isoformat(), "step": s["step"]}
            for s in data["recovery_steps"]
        ]
    session.add(report)
    session.flush()
    return report


def deliver_report(session: Session, actor: Principal, ticket_id: int) -> IncidentReport:
    """Deliver the report to the customer: every part present, the ticket resolved."""
    _require(actor, Permission.SERVICE_MANAGE, "deliver incident reports")
    ticket = get_ticket(session, actor, ticket_id)
    report = session.get(IncidentReport, ticket.id)
    if ticket.status != "resolved":
        raise ConflictError("the report is delivered once the ticket is resolved")
    missing = [
        name
        for name in (*REPORT_PARTS, "recovery_steps")
        if report is None or not getattr(report, name)
    ]
    if missing or report is None:
        raise InvalidInputError(
            "the report is incomplete",
            [{"field": name, "message": "required before delivery"} for name in missing],
        )
    steps = report.recovery_steps
    if any(not (s.get("at") and s.get("step")) for s in steps) or [
        s["at"] for s in steps
    ] != sorted(s["at"] for s in steps):
        raise InvalidInputError(
            "the report is incomplete",
            [{"field": "recovery_steps", "message": "each with its time, in time order"}],
        )
    now = utcnow()
    report.delivered_at, report.delivered_by = now, actor.label
    before = ticket.audit_view()
    ticket.report_delivered_at = now
    ticket.status = "report-delivered"
    session.flush()
    record_change(
        session,
        actor,
        "ticket.report-delivered",
        ticket,
        before,
        organisation_id=ticket.organisation_id,
    )
    return report


def report_of(session: Session, actor: Principal, ticket_id: int) -> IncidentReport:
    """The incident report: customers see it once delivered."""
    ticket = get_ticket(session, actor, ticket_id)
    report = session.get(IncidentReport, ticket.id)
    if report is None or (not actor.is_vendor and report.delivered_at is None):
        raise NotFoundError(f"no incident report for ticket {ticket_id}")
    return report

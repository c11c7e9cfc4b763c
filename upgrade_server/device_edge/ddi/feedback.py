"""DDI feedback as install events: one state machine for both protocols.

hawkBit clients report an action's execution (proceeding, downloaded,
closed, rejected, ...) and result (none, success, failure), sometimes with
progress, and retry a feedback they are not sure arrived. Each is mapped to
an install step and recorded by updates.service.record_event, with an
event id made from the action, the attempt and the step: a retried or
repeated feedback is counted once, a step that would go backwards is not
recorded, and a client always gets 200 (RAUC's client stalls on anything
else). A new attempt after a failure starts a new set of steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from upgrade_server.devices.models import Device
from upgrade_server.releases.models import Release
from upgrade_server.updates import service
from upgrade_server.updates.models import InstallEvent, InstallStatus

log = logging.getLogger(__name__)

EXECUTIONS = (
    "closed",
    "proceeding",
    "canceled",
    "scheduled",
    "rejected",
    "resumed",
    "downloaded",
    "download",
)
RESULTS = ("success", "failure", "none")
CANCELLED = "E_CANCELLED"


@dataclass(frozen=True)
class Feedback:
    execution: str
    finished: str = "none"
    code: int | None = None
    details: tuple[str, ...] = ()

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Feedback:
        status = body["status"]
        result = status.get("result") or {}
        return cls(
            status["execution"],
            result.get("finished") or "none",
            status.get("code"),
            # Enough lines to fill the error text; the rest of a long log is dropped.
            tuple(line[:2000] for line in (status.get("details") or ())[:200]),
        )

    @property
    def text(self) -> str | None:
        """The details as the install event's error text (at most 2,000 characters)."""
        return "\n".join(self.details)[:2000] or None


def step_for(feedback: Feedback, previous: InstallStatus | None) -> InstallStatus:
    """The install step a feedback reports, after `previous`."""
    if feedback.finished == "failure" or feedback.execution in ("rejected", "canceled"):
        return InstallStatus.FAILED
    if feedback.execution == "closed":
        return InstallStatus.INSTALLED if feedback.finished == "success" else InstallStatus.FAILED
    if feedback.execution == "downloaded":
        return InstallStatus.DOWNLOADED
    if feedback.execution == "download":
        return InstallStatus.DOWNLOADING
    # proceeding, scheduled, resumed: the first says the download starts,
    # the next ones report the install's progress.
    if previous is None or previous in service.OUTCOMES:
        return InstallStatus.DOWNLOADING
    return InstallStatus.INSTALLING


def error_code(feedback: Feedback) -> str:
    if feedback.execution == "rejected":
        return "E_REJECTED"
    if feedback.execution == "canceled":
        return CANCELLED
    return f"E_DDI_{feedback.code}" if feedback.code is not None else "E_DDI_FAILURE"


def _history(
    session: Session, device: Device, release: Release
) -> tuple[InstallStatus | None, int]:
    """The device's last step of the release, and how many attempts ended."""
    ended = session.execute(
        select(func.count())
        .select_from(InstallEvent)
        .where(
            InstallEvent.device_id == device.id,
            InstallEvent.release_id == release.id,
            InstallEvent.status.in_([s.value for s in service.OUTCOMES]),
        )
    ).scalar_one()
    return service.last_step(session, device.id, release.id), ended


def record_action_feedback(
    session: Session, device: Device, release: Release, feedback: Feedback
) -> InstallEvent | None:
    """Record a deploymentBase feedback; None when it adds no step (a
    repeat, or a step behind the last)."""
    previous, ended = _history(session, device, release)
    step = step_for(feedback, previous)
    if previous in service.OUTCOMES and step in service.OUTCOMES:
        return None  # the end of an attempt, told again (a new one starts with a step)
    if previous is not None and not service.allowed_after(previous, step):
        return None
    # Steps are numbered by the attempts that ended before this one.
    attempt = ended
    failed = step is InstallStatus.FAILED
    event, _ = service.record_event(
        session,
        device,
        service.EventReport(
            event_id=f"ddi-{release.id}-{attempt}-{step.value}",
            status=step.value,
            release_id=release.id,
            # A failure keeps the client's details; progress is not an error.
            error_code=error_code(feedback) if failed else None,
            error_text=feedback.text if failed else None,
        ),
    )
    return event


def record_cancel_feedback(
    session: Session, device: Device, release: Release, feedback: Feedback
) -> InstallEvent | None:
    """A cancel the device carried out ends its attempt (failed, E_CANCELLED);
    one it rejected leaves the action running (logged, nothing recorded)."""
    done = feedback.execution in ("closed", "canceled") and feedback.finished != "failure"
    if not done:
        log.info(
            "device %s answered the cancel of release %s: %s/%s",
            device.serial,
            release.version,
            feedback.execution,
            feedback.finished,
        )
        return None
    previous, ended = _history(session, device, release)
    if previous is None or previous in service.OUTCOMES:
        return None  # nothing running: already ended (a retried cancel feedback)
    event, _ = service.record_event(
        session,
        device,
        service.EventReport(
            event_id=f"ddi-{release.id}-{ended}-cancelled",
            status=InstallStatus.FAILED.value,
            release_id=release.id,
            error_code=CANCELLED,
            error_text=feedback.text or "cancelled by the server: the release is no longer offered",
        ),
    )
    return event

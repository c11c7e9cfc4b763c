"""What a stored code (a status, a kind, a mode) reads as on a page or in a
PDF, in the reader's language: `{{ ticket.status|label("ticket-status") }}`.

Every code a page shows goes through here, so that the Chinese pages never show
`on-site` or `signed-off`. A code the table does not know is shown as it is and
`unlabelled` lists it, so a test can name what is missing.
"""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _

LABELS: dict[str, dict[str, LazyString]] = {
    "ticket-status": {
        "new": _("new"),
        "acknowledged": _("acknowledged"),
        "on-the-way": _("engineer on the way"),
        "on-site": _("engineer on site"),
        "resolved": _("resolved"),
        "report-delivered": _("report delivered"),
        "closed": _("closed"),
    },
    "region": {
        "beijing": _("Beijing"),
        "other": _("other regions"),
    },
    "ticket-source": {
        "alarm": _("device alarm"),
        "portal": _("portal"),
        "phone": _("phone"),
        "api": _("API"),
    },
    "deadline": {
        "acknowledge": _("acknowledgement"),
        "on_site": _("on site"),
        "part_on_site": _("part on site"),
        "report": _("incident report"),
        "response": _("response to the request"),
    },
    "session-kind": {
        "installation": _("installation and commissioning"),
        "acceptance": _("acceptance"),
        "training": _("training"),
        "upgrade": _("upgrade installation"),
        "operation-guidance": _("operation guidance"),
        "maintenance-guidance": _("maintenance guidance"),
        "inspection": _("inspection"),
        "follow-up": _("follow-up visit"),
        "phone-consultation": _("phone consultation"),
    },
    "mode": {
        "on-site": _("on site"),
        "remote": _("remote"),
        "phone": _("by phone"),
    },
    "entry-state": {
        "planned": _("planned"),
        "started": _("started, waiting for the customer"),
        "start-confirmed": _("in progress"),
        "ended": _("ended, waiting for the customer"),
        "signed-off": _("signed off"),
        "cancelled": _("cancelled"),
    },
    "install-status": {
        "waiting": _("waiting for the operator's acknowledgement"),
        "downloading": _("downloading"),
        "downloaded": _("downloaded"),
        "verified": _("verified"),
        "installing": _("installing"),
        "installed": _("installed"),
        "failed": _("failed"),
        "rolled_back": _("rolled back"),
    },
    "release-status": {
        "pending-signatures": _("waiting for signatures"),
        "published": _("published"),
        "withdrawn": _("withdrawn"),
    },
    "coverage-kind": {
        "upgrades": _("Software upgrades"),
        "warranty": _("Warranty"),
        "support": _("Technical support"),
    },
    "coverage-status": {
        "covered": _("covered"),
        "trial": _("trial run"),
        "awaiting-acceptance": _("not started (trial run)"),
        "expired": _("expired"),
        "not-started": _("not started"),
        "undelivered": _("not delivered"),
    },
    "record-kind": {
        "install": _("software install"),
        "session": _("service session"),
        "request": _("service request"),
        "notice": _("pre-installation notice"),
        "warning": _("warning"),
    },
    "guidance": {
        "installation": _("Installation guidance"),
        "operation": _("Operation guidance"),
        "maintenance": _("Maintenance guidance"),
    },
    # The service record's promises: pre-installation notices, their warnings,
    # the hotline change notices.
    "notice-state": {
        "sent": _("sent, waiting for the customer"),
        "received": _("received"),
        "notice-none": _("delivered without a pre-installation notice"),
        "notice-late": _("notice sent on or after the delivery"),
    },
    "notice-via": {
        "email": _("e-mail"),
        "post": _("post"),
        "hand": _("by hand"),
        "portal": _("portal"),
        "fax": _("fax"),
    },
    # ISO weekdays, as maintenance windows keep them.
    "weekday": {
        "1": _("Monday"),
        "2": _("Tuesday"),
        "3": _("Wednesday"),
        "4": _("Thursday"),
        "5": _("Friday"),
        "6": _("Saturday"),
        "7": _("Sunday"),
    },
    "role": {
        "admin": _("administrator"),
        "publisher": _("publisher"),
        "support": _("support engineer"),
        "viewer": _("viewer"),
        "customer-admin": _("customer administrator"),
        "customer-viewer": _("customer viewer"),
    },
    "rollout-state": {
        "planned": _("planned"),
        "running": _("running"),
        "paused": _("paused"),
        "halted": _("halted by the gates"),
        "aborted": _("aborted"),
        "completed": _("completed"),
    },
    "hotline-status": {
        "told": _("told in time"),
        "told-late": _("told late"),
        "pending": _("not yet told"),
        "overdue": _("not told, overdue"),
    },
    # The console's tickets: what a notification of a ticket was about, and where it is.
    "notification-event": {
        "ticket-opened": _("urgent ticket opened"),
        "ticket-emergency": _("became an emergency"),
        "deadline-acknowledge": _("acknowledgement due soon"),
        "deadline-on_site": _("on site due soon"),
        "deadline-part_on_site": _("part on site due soon"),
        "deadline-report": _("incident report due soon"),
    },
    "notification-state": {
        "queued": _("queued"),
        "sent": _("sent"),
        "retrying": _("failed, retrying"),
        "cancelled": _("not sent: no longer so"),
    },
    # The console's service record: a session's steps, a request's response.
    "session-step": {
        "planned": _("planned"),
        "started": _("start recorded"),
        "start-confirmed": _("start confirmed by the customer"),
        "ended": _("end recorded"),
        "signed-off": _("end confirmed by the customer"),
        "cancelled": _("cancelled"),
    },
    "request-answer": {
        "waiting": _("waiting, not yet due"),
        "overdue": _("not answered, overdue"),
        "answered": _("answered"),
    },
}


def label(code: object, domain: str) -> str:
    """The reader's words for `code` of `domain`; the code itself if unknown."""
    text = LABELS[domain].get(str(code))
    return str(text) if text is not None else str(code)


def unlabelled(domain: str, codes: object) -> list[str]:
    """The codes of `codes` that `domain` has no words for."""
    return sorted(str(c) for c in codes if str(c) not in LABELS[domain])  # type: ignore[attr-defined]

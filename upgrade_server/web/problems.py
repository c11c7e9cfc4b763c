"""What an error page says, in the reader's language.

The services' errors carry an English `detail` for the API's clients and the
log; a page says the sentence of the error's stable problem type instead
(errors.PROBLEMS), so a Chinese page never shows "no device 12" or "the
contract is invalid". HTTP errors raised by the portal itself are worded by
status, unless the portal gave its own (already translated) reason.
"""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from upgrade_server.failures import answer_for

# A title per status: the page's heading.
TITLES: dict[int, LazyString] = {
    400: _("Bad request"),
    403: _("Not allowed"),
    404: _("Not found"),
    405: _("Not allowed"),
    409: _("Not possible now"),
    413: _("Too large"),
    422: _("Bad request"),
    500: _("Error"),
    503: _("Unavailable"),
}

# A sentence per problem type (errors.PROBLEMS' slugs).
SENTENCES: dict[str, LazyString] = {
    "bad-request": _("The request was malformed."),
    "invalid-input": _("Something entered breaks a rule. Check the fields and try again."),
    "unauthenticated": _("Log in first."),
    "forbidden": _("Your role does not allow this."),
    "not-entitled": _(
        "Your devices' upgrade coverage does not include this release. "
        "A contract that covers it brings it."
    ),
    "not-found": _("Nothing is here, or nothing you may see."),
    "conflict": _("This cannot be done in its current state. Reload the page to see it."),
    "payload-too-large": _("What was sent is too large."),
    "unsupported-media-type": _("The request was malformed."),
    "service-unavailable": _("The service is unavailable right now. Try again later."),
    "storage-unavailable": _("The service is unavailable right now. Try again later."),
    "signing-unavailable": _("The service is unavailable right now. Try again later."),
    "invalid-signature": _("Something entered breaks a rule. Check the fields and try again."),
}

# HTTP errors without a reason of the portal's, by status.
_BY_STATUS: dict[int, str] = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    503: "service-unavailable",
}


def title(status: int) -> str:
    return str(TITLES.get(status, TITLES[500]))


def for_error(error: Exception, where: str) -> tuple[int, str]:
    """The status and the sentence of any error but an HTTP one, mapped as on
    the API (errors.answer_for)."""
    problem = answer_for(error, where).problem
    sentence = SENTENCES.get(problem.slug)
    return problem.status, str(sentence) if sentence else str(_("Something went wrong."))


def for_http_error(error: HTTPException) -> str:
    """The portal's own reason (abort(403, reason)), else the status's sentence."""
    if isinstance(error, CSRFError):
        return str(_("The form expired. Reload the page and send it again."))
    if error.description and error.description != type(error).description:
        return str(error.description)
    slug = _BY_STATUS.get(error.code or 500)
    return str(SENTENCES[slug]) if slug else str(_("Something went wrong."))

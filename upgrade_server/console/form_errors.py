"""What a console form says when a service refuses what was entered: the
error's sentence in the reader's language and the fields to check, named as
the form names them (a Chinese page never shows `ends_on` or "before
starts_on")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import request
from flask_babel import LazyString, lazy_gettext
from flask_babel import gettext as _

from upgrade_server.errors import AppError, InvalidInputError
from upgrade_server.web import problems

# The services' field names, as the console's forms label them.
FIELDS: dict[str, LazyString] = {
    "kind": lazy_gettext("Kind"),
    "device_id": lazy_gettext("Device serial"),
    "organisation_id": lazy_gettext("Organisation"),
    "product_id": lazy_gettext("Product"),
    "starts_on": lazy_gettext("From"),
    "ends_on": lazy_gettext("Through"),
    "reference": lazy_gettext("Contract number"),
    "effect": lazy_gettext("Effect"),
    "reason": lazy_gettext("Reason"),
    "slug": lazy_gettext("Short name"),
    "name": lazy_gettext("Name"),
    "timezone": lazy_gettext("Time zone"),
    "region": lazy_gettext("Region"),
    "contact_email": lazy_gettext("Contact e-mail"),
    "email": lazy_gettext("E-mail"),
    "role": lazy_gettext("Role"),
    "password": lazy_gettext("Password"),
    "user_id": lazy_gettext("User"),
    "expires_in_days": lazy_gettext("Valid for (days)"),
    "windows": lazy_gettext("Maintenance windows"),
    "days": lazy_gettext("Days"),
    "start": lazy_gettext("Start (HH:MM)"),
    "cron": lazy_gettext("Cron expression"),
    "duration_minutes": lazy_gettext("Duration (minutes)"),
}
_WINDOW_FIELD = re.compile(r"^windows\[(\d+)\]\.(\w+)$")


@dataclass
class FormError:
    """A refusal as the form shows it: a sentence and the fields to check."""

    status: int
    sentence: str
    fields: list[str] = field(default_factory=list)


def _field_name(name: str) -> str | None:
    found = _WINDOW_FIELD.match(name)
    if found is not None:
        part = FIELDS.get(found.group(2))
        number = int(found.group(1)) + 1
        return _("Window %(number)s: %(field)s", number=number, field=part or "")
    known = FIELDS.get(name)
    return str(known) if known is not None else None


def form_error(error: AppError) -> FormError:
    """The sentence (problems.for_error) and the named fields of `error`."""
    status, sentence = problems.for_error(error, f"{request.method} {request.path}")
    names: list[str] = []
    if isinstance(error, InvalidInputError):
        for problem in error.extra.get("errors", []):
            name = _field_name(str(problem.get("field", "")))
            if name and name not in names:
                names.append(name)
    return FormError(status, sentence, names)


def parse_date(form: Any, name: str, *, required: bool = True) -> date | None:
    """The form's YYYY-MM-DD field `name`. Raises InvalidInputError naming it."""
    raw = str(form.get(name, "")).strip()
    if not raw and not required:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInputError("bad date", [{"field": name, "message": "YYYY-MM-DD"}]) from exc


def parse_int(form: Any, name: str, *, required: bool = True) -> int | None:
    """The form's whole-number field `name`. Raises InvalidInputError naming it."""
    raw = str(form.get(name, "")).strip()
    if not raw and not required:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInputError("bad number", [{"field": name, "message": "a number"}]) from exc

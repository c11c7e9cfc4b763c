"""What the service and ticket pages of the console share: reading their forms
(times typed in the organisation's or the ticket's zone, ids, texts), paging
newest first, the remaining time of a deadline in the reader's words, and a
service's refusal as a sentence on the form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import request
from flask_babel import gettext as _
from sqlalchemy import Select
from sqlalchemy.orm import Session

from upgrade_server.errors import AppError, InvalidInputError
from upgrade_server.extensions import session as db_session
from upgrade_server.routing import MAX_ID
from upgrade_server.web import problems

PER_PAGE = 25


def number(value: str | None) -> int | None:
    """An id typed or picked in a form or a query; None for anything else."""
    value = (value or "").strip()
    if value.isascii() and value.isdigit() and len(value) <= 10 and 0 < int(value) <= MAX_ID:
        return int(value)
    return None


def numbers(name: str) -> list[int]:
    """The ids ticked under `name` (checkboxes), ignoring anything else."""
    return [n for n in (number(v) for v in request.form.getlist(name)) if n is not None]


def text(name: str, limit: int) -> str:
    return request.form.get(name, "").strip()[:limit]


def local_input(at: datetime | None, zone: str) -> str:
    """A time as a datetime-local field shows it, in `zone`."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M") if at else ""


def parse_local(value: str | None, zone: str, field: str) -> datetime | None:
    """A datetime-local field's text ("2026-12-03T09:30"), read in `zone`; None
    when empty. Raises InvalidInputError naming `field` for anything else."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
        if local.tzinfo is None:
            local = local.replace(tzinfo=ZoneInfo(zone))
        return local.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one UTC cannot hold
        raise InvalidInputError(
            "the time is invalid", [{"field": field, "message": "YYYY-MM-DDTHH:MM"}]
        ) from None


def refusal(error: Exception) -> tuple[str, int, list[str]]:
    """A service's refusal as the form shows it: the translated sentence, the
    status the page answers with (so the request's unit rolls back) and the
    fields it names. The session is rolled back first, so that the page shows
    what is stored."""
    db_session().rollback()
    status, sentence = problems.for_error(error, f"{request.method} {request.path}")
    errors = error.extra.get("errors") if isinstance(error, AppError) else None
    fields = [str(e["field"]) for e in errors or [] if e.get("field")]
    return sentence, status, fields


@dataclass(frozen=True)
class NewestFirst:
    """One page of a list, newest first, by keyset on the id: `before` is the
    last id of the previous page (None: the first page)."""

    items: list[Any]
    before: int | None
    next_before: int | None


def newest_first(
    session: Session, stmt: Select[Any], id_column: Any, before: int | None
) -> NewestFirst:
    if before is not None:
        stmt = stmt.where(id_column < before)
    rows = list(session.scalars(stmt.order_by(id_column.desc()).limit(PER_PAGE + 1)))
    more = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    return NewestFirst(rows, before, rows[-1].id if more and rows else None)


def query_args(**changes: Any) -> dict[str, Any]:
    """The page's query with `changes` (None drops a key): a pager's or filter's link."""
    args: dict[str, Any] = {k: v for k, v in request.args.items() if v != ""}
    args.pop("lang", None)
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    return args


def remaining(due: datetime, now: datetime) -> str:
    """How long until `due` (or how long past it), in the words countdown.js
    writes each second: "2 h 05 min 09 s left", "1 d 3 h left", "overdue by 4 min 00 s"."""
    delta = due - now
    left = delta >= timedelta(0)
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = countdown_words()
    day, hour, minute, second = units["units"].split()
    if days:
        span = f"{days} {day} {hours} {hour}"
    elif hours:
        span = f"{hours} {hour} {minutes:02d} {minute} {secs:02d} {second}"
    else:
        span = f"{minutes} {minute} {secs:02d} {second}"
    return (units["left"] if left else units["overdue"]).replace("{time}", span)


def countdown_words() -> dict[str, str]:
    """What countdown.js reads from a `data-countdown-*` ancestor: the
    sentences around the time and the four unit words (day hour minute second)."""
    return {
        "left": _("{time} left"),
        "overdue": _("overdue by {time}"),
        "units": _("d h min s"),
    }

"""Schema pieces shared by every API: paging, the problem document, and the
one way a timestamp is read."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apiflask import Schema
from apiflask.fields import DateTime, Field, Integer, List, Nested, String
from apiflask.validators import Range
from marshmallow import ValidationError

from upgrade_server.clock import utcnow
from upgrade_server.errors import InvalidInputError
from upgrade_server.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page


class PageQuery(Schema):
    limit = Integer(load_default=DEFAULT_LIMIT, validate=Range(1, MAX_LIMIT))
    after = Integer(load_default=None, metadata={"description": "next_cursor of the page before"})


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    """A {items, next_cursor} envelope around one item schema."""
    return type(
        name,
        (Schema,),
        {
            "items": List(Nested(item), required=True),
            "next_cursor": Integer(
                allow_none=True, metadata={"description": "pass as `after` for the next page"}
            ),
        },
    )


def page_body(page: Page[Any]) -> dict[str, Any]:
    return {"items": page.items, "next_cursor": page.next_cursor}


class ProblemSchema(Schema):
    type = String(required=True)
    title = String(required=True)
    status = Integer(required=True)
    detail = String()
    instance = String()


# --- timestamps ------------------------------------------------------------------------------

# A step a person records "now" may come from a clock a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)

TIMESTAMP_HELP = "ISO 8601 with its UTC offset, e.g. 2026-12-01T09:30:00+08:00 or ...Z"


def parse_timestamp(text: object, field: str, *, not_future: bool = False) -> datetime:
    """An ISO 8601 date and time with its UTC offset, as an aware datetime in UTC.

    A time without an offset names no instant (the server cannot guess the
    zone it was read in), so it is refused rather than taken as UTC. With
    `not_future`, a time later than now (beyond CLOCK_SKEW) is refused: it
    would record a step as taken, or missed, before it happened.

    Raises InvalidInputError naming `field`.
    """
    found = _timestamp(text)
    if isinstance(found, str):
        raise InvalidInputError(
            f"{field} is not a valid time", [{"field": field, "message": found}]
        )
    if not_future and found > utcnow() + CLOCK_SKEW:
        raise InvalidInputError(
            f"{field} is in the future",
            [{"field": field, "message": "must not be later than now"}],
        )
    return found


def _timestamp(text: object) -> datetime | str:
    """The instant, or why there is none."""
    if not isinstance(text, str):
        return "must be a string"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return f"not an ISO 8601 time: {TIMESTAMP_HELP}"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return f"needs its UTC offset: {TIMESTAMP_HELP}"
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return "out of range"


# Where a day starts when no organisation says: the zone of the vendor's promise.
DEFAULT_ZONE = "Asia/Shanghai"


def instant(value: date | datetime, zone: str) -> datetime:
    """A DayOrTimestamp's value as an instant: a date is its first moment in `zone`."""
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)


class Timestamp(DateTime):
    """A date-time field that takes only times with a UTC offset (in UTC
    after loading); `not_future=True` refuses times later than now."""

    def __init__(self, *, not_future: bool = False, **kwargs: Any) -> None:
        metadata = dict(kwargs.pop("metadata", None) or {})
        notes = [TIMESTAMP_HELP] + (["not later than now"] if not_future else [])
        metadata.setdefault("description", "; ".join(notes))
        super().__init__(metadata=metadata, **kwargs)
        self.not_future = not_future

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        try:
            return parse_timestamp(value, attr or "", not_future=self.not_future)
        except InvalidInputError as error:
            raise ValidationError(error.extra["errors"][0]["message"]) from error


class DayOrTimestamp(Field):
    """A report bound: a date-time with its UTC offset, or a plain date
    (loaded as a `date`, for the view to start in the right time zone)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "type": "string",
            "description": "a date (that day's start in the organisation's time zone)"
            f" or a time, {TIMESTAMP_HELP}",
            "example": "2026-12-01",
            **dict(kwargs.pop("metadata", None) or {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.isoformat()

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and len(value) == 10:
            try:
                return date.fromisoformat(value)
            except ValueError as error:
                raise ValidationError("not a date (YYYY-MM-DD)") from error
        found = _timestamp(value)
        if isinstance(found, str):
            raise ValidationError(found)
        return found

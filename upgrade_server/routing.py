"""URL converters shared by every blueprint."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, ValidationError

# Ids are PostgreSQL `integer` columns (SQLite's are wider): a larger number
# names nothing, so its URL matches no route (404) instead of reaching a query
# the database refuses.
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: a non-negative integer up to MAX_ID."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)

    def to_python(self, value: str) -> Any:
        if len(value) > len(str(MAX_ID)):  # also spares int() a million digits
            raise ValidationError()
        return super().to_python(value)

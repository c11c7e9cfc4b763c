"""The app's JSON: dates and times in ISO 8601 out, strict JSON in.

Flask's default writes a date or datetime as an HTTP date ("Tue, 28 Apr 2026
00:00:00 GMT"): a date becomes a midnight and a datetime loses its offset.
Schemas already write ISO 8601; this covers the dicts views return as they are
(reminders, reports, coverage summaries) and anything added later.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time
from typing import Any

from flask.json.provider import DefaultJSONProvider

from upgrade_server import jsonbody


def _default(value: Any) -> Any:
    # datetime is a date: "2026-04-28T09:30:00+00:00" (the app's are aware, in UTC).
    if isinstance(value, date | time):
        return value.isoformat()
    return DefaultJSONProvider.default(value)


class IsoJSONProvider(DefaultJSONProvider):
    default: Callable[[Any], Any] = staticmethod(_default)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        # Request bodies: strict (no NaN, unstorable text or deep nesting).
        return jsonbody.loads(s)

"""How a page or a PDF shows an instant: always with its zone, so no reader
has to guess (`{{ entry.started_at|when(organisation.timezone) }}`).

Pages about an organisation (its devices, service record, tickets) show its
zone; pages about no organisation (a release) show UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

NONE = "—"


def when(at: datetime | str | None, zone: str | None = None) -> str:
    """'2026-12-02 14:00 (Asia/Shanghai)', '2026-12-02 06:00 UTC', or a dash for
    none. `at` may be an ISO 8601 text, as times kept in JSON columns are."""
    if at is None or at == "":
        return NONE
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            return str(at)
    if at.tzinfo is None:  # the database's times are UTC
        at = at.replace(tzinfo=UTC)
    if not zone or zone == "UTC":
        return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return f"{at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} ({zone})"

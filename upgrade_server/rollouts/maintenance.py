"""An organisation's maintenance windows: when its devices may install updates,
in its time zone. Outside every window a device is told to wait, and until
when; no window at all means any time. Flask-free.

Errors raised: InvalidInputError (a window that breaks a rule), NotFoundError
(an organisation the caller may not see), PermissionDeniedError.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

from croniter import croniter
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record
from upgrade_server.errors import InvalidInputError, PermissionDeniedError
from upgrade_server.organisations.models import Organisation
from upgrade_server.organisations.service import get_organisation
from upgrade_server.rollouts.settings_models import (
    MAX_DURATION_MINUTES,
    MIN_DURATION_MINUTES,
    MaintenanceWindowSetting,
    WindowKind,
)
from upgrade_server.rollouts.windows import (
    MaintenanceWindow,
    WindowState,
    cron_is_valid,
    window_state,
)

MAX_WINDOWS = 20
# A cron window starts at most this often: a window is a maintenance slot, and
# each start is work when the state is computed.
MAX_STARTS_PER_DAY = 24
_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def require_approver(actor: Principal, organisation_id: int) -> None:
    """Customer-admins of the organisation and vendor admins change its
    update settings; a customer-viewer reads them."""
    if not actor.may(Permission.UPDATES_APPROVE) or not actor.sees_organisation(organisation_id):
        raise PermissionDeniedError("you may not change this organisation's update settings")


def bump(organisation: Organisation) -> None:
    """A cache of the organisation's settings keyed by the old value is stale."""
    organisation.update_settings_generation += 1


def list_windows(
    session: Session, actor: Principal, organisation_id: int
) -> tuple[Organisation, list[MaintenanceWindowSetting]]:
    organisation = get_organisation(session, actor, organisation_id)
    return organisation, _rows(session, organisation.id)


def _rows(session: Session, organisation_id: int) -> list[MaintenanceWindowSetting]:
    return list(
        session.scalars(
            select(MaintenanceWindowSetting)
            .where(MaintenanceWindowSetting.organisation_id == organisation_id)
            .order_by(MaintenanceWindowSetting.id)
        )
    )


def set_windows(
    session: Session, actor: Principal, organisation_id: int, windows: Sequence[dict[str, Any]]
) -> tuple[Organisation, list[MaintenanceWindowSetting]]:
    """Replace the organisation's windows with `windows` (each {kind, days,
    start "HH:MM", cron, duration_minutes, label}); an empty list: any time."""
    organisation = get_organisation(session, actor, organisation_id)
    require_approver(actor, organisation.id)
    if len(windows) > MAX_WINDOWS:
        raise InvalidInputError(
            "too many windows", [{"field": "windows", "message": f"at most {MAX_WINDOWS}"}]
        )
    rows = [_row(organisation.id, i, data) for i, data in enumerate(windows)]
    old = _rows(session, organisation.id)
    before = [row.audit_view() for row in old]
    for row in old:
        session.delete(row)
    session.add_all(rows)
    bump(organisation)
    session.flush()
    record(
        session,
        actor,
        "organisation.maintenance-windows.set",
        "organisation",
        organisation.id,
        before={"windows": before},
        after={"windows": [row.audit_view() for row in rows]},
        organisation_id=organisation.id,
    )
    return organisation, rows


def _row(organisation_id: int, index: int, data: dict[str, Any]) -> MaintenanceWindowSetting:
    """One window as stored, after every rule was checked."""
    field = f"windows[{index}]"
    errors: list[dict[str, str]] = []
    kind = data.get("kind")
    duration = data.get("duration_minutes")
    if not isinstance(duration, int) or not (
        MIN_DURATION_MINUTES <= duration <= MAX_DURATION_MINUTES
    ):
        errors.append(
            {
                "field": f"{field}.duration_minutes",
                "message": f"from {MIN_DURATION_MINUTES} minutes to 24 hours",
            }
        )
    start: time | None = None
    days: list[int] = []
    cron: str | None = None
    if kind == WindowKind.WEEKLY:
        days = sorted(set(data.get("days") or []))
        if not days or any(not isinstance(d, int) or not 1 <= d <= 7 for d in days):
            errors.append(
                {"field": f"{field}.days", "message": "ISO weekdays, 1 (Monday) to 7 (Sunday)"}
            )
        found = _HH_MM.match(str(data.get("start") or ""))
        if found is None:
            errors.append({"field": f"{field}.start", "message": "a local time, HH:MM"})
        else:
            start = time(int(found.group(1)), int(found.group(2)))
        if data.get("cron"):
            errors.append({"field": f"{field}.cron", "message": "a weekly window has no cron"})
    elif kind == WindowKind.CRON:
        cron = " ".join(str(data.get("cron") or "").split())
        if not cron or len(cron) > 100 or not cron_is_valid(cron):
            errors.append(
                {
                    "field": f"{field}.cron",
                    "message": "a cron expression of 5 fields, e.g. '0 1 * * 0'",
                }
            )
        elif not _rare_enough(cron):
            errors.append(
                {
                    "field": f"{field}.cron",
                    "message": f"a window starts at most {MAX_STARTS_PER_DAY} times a day",
                }
            )
        if data.get("days") or data.get("start"):
            errors.append(
                {"field": f"{field}.start", "message": "a cron window has no days or start"}
            )
    else:
        errors.append({"field": f"{field}.kind", "message": "weekly or cron"})
    if errors:
        raise InvalidInputError("a maintenance window is invalid", errors)
    return MaintenanceWindowSetting(
        organisation_id=organisation_id,
        kind=str(kind),
        days=days,
        start=start,
        cron=cron,
        duration_minutes=duration,
        label=str(data.get("label") or "")[:100],
    )


def _rare_enough(cron: str) -> bool:
    """No more than MAX_STARTS_PER_DAY starts in any day (the starts after
    one that many later are at least a day on)."""
    # Every day the expression matches has the same starts (its minutes times
    # its hours), so the first such day tells.
    starts = croniter(cron, datetime(2025, 12, 31, 23, 59, 59))
    first = starts.get_next(datetime)
    for _ in range(MAX_STARTS_PER_DAY):
        last = starts.get_next(datetime)
    return bool(last - first >= timedelta(days=1))


def to_window(row: MaintenanceWindowSetting | Any) -> MaintenanceWindow:
    """A stored window (an ORM row or a row of `load_windows`) as plan data."""
    duration = timedelta(minutes=row.duration_minutes)
    if row.kind == WindowKind.CRON:
        return MaintenanceWindow(cron=row.cron, duration=duration)
    return MaintenanceWindow(days=frozenset(row.days), start=row.start, duration=duration)


def state_of(
    organisation: Organisation, rows: Sequence[MaintenanceWindowSetting], now: datetime
) -> WindowState:
    """Whether the organisation's window is open at `now`, and when it opens
    next or closes (UTC)."""
    return window_state([to_window(row) for row in rows], organisation.timezone, now)


def may_install_now(state: WindowState, emergency: bool) -> bool:
    """A device installs inside a window; an emergency security rollout
    (its override reason is in the audit log) ignores windows."""
    return state.open or emergency


_WINDOWS = (
    select(
        MaintenanceWindowSetting.kind,
        MaintenanceWindowSetting.days,
        MaintenanceWindowSetting.start,
        MaintenanceWindowSetting.cron,
        MaintenanceWindowSetting.duration_minutes,
    )
    .where(MaintenanceWindowSetting.organisation_id == bindparam("organisation_id"))
    .order_by(MaintenanceWindowSetting.id)
)


def load_windows(conn: Connection, organisation_id: int) -> tuple[MaintenanceWindow, ...]:
    """Every window of an organisation in one query, for a cache kept per
    organisation under its `update_settings_generation`."""
    rows = conn.execute(_WINDOWS, {"organisation_id": organisation_id})
    return tuple(to_window(row) for row in rows)

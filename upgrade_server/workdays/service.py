"""Exceptions to the working-day calendar (staff), and the calendars the
ticket deadlines are counted on.

An exception makes a day a working day or a day off, for one organisation or
for everyone. On the same day an organisation's exception wins over a global
one, which wins over the UPGRADE_SERVER_HOLIDAYS setting (days off for
everyone), which wins over the official calendar.

Errors raised: InvalidInputError, NotFoundError, ConflictError,
PermissionDeniedError.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Permission
from upgrade_server.audit.service import record_change
from upgrade_server.database import flush_unique
from upgrade_server.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from upgrade_server.organisations.models import Organisation
from upgrade_server.workdays.calendar import DayException, Kind, Scope, WorkingCalendar
from upgrade_server.workdays.models import WorkingDayException

if TYPE_CHECKING:
    from upgrade_server.config import Settings


def _require_manage(actor: Principal) -> None:
    if not actor.may(Permission.SERVICE_MANAGE):
        raise PermissionDeniedError("you may not change the working-day calendar")


def visible_exceptions(actor: Principal) -> Select[WorkingDayException]:
    """Staff see every exception; a customer the global ones and its own."""
    stmt = select(WorkingDayException)
    if not actor.is_vendor:
        stmt = stmt.where(
            or_(
                WorkingDayException.organisation_id.is_(None),
                WorkingDayException.organisation_id == actor.organisation_id,
            )
        )
    return stmt


def list_exceptions(
    actor: Principal,
    organisation_id: int | None = None,
    start: date | None = None,
    end: date | None = None,
) -> Select[WorkingDayException]:
    """Exceptions by day; with `organisation_id`, the ones that apply to it
    (its own and the global ones)."""
    stmt = visible_exceptions(actor)
    if organisation_id is not None:
        stmt = stmt.where(
            or_(
                WorkingDayException.organisation_id.is_(None),
                WorkingDayException.organisation_id == organisation_id,
            )
        )
    if start is not None:
        stmt = stmt.where(WorkingDayException.day >= start)
    if end is not None:
        stmt = stmt.where(WorkingDayException.day < end)
    return stmt


def get_exception(session: Session, actor: Principal, exception_id: int) -> WorkingDayException:
    found = session.scalars(
        visible_exceptions(actor).where(WorkingDayException.id == exception_id)
    ).first()
    if found is None:
        raise NotFoundError(f"no working-day exception {exception_id}")
    return found


def add_exception(session: Session, actor: Principal, data: dict[str, Any]) -> WorkingDayException:
    """Make `day` a working day (`working` true) or a day off, with a reason,
    for one organisation (`organisation_id`) or for everyone (None)."""
    _require_manage(actor)
    organisation_id = data.get("organisation_id")
    if organisation_id is not None and session.get(Organisation, organisation_id) is None:
        raise InvalidInputError(
            "the exception is invalid",
            [{"field": "organisation_id", "message": f"no organisation {organisation_id}"}],
        )
    reason = (data.get("reason") or "").strip()
    if not reason:
        raise InvalidInputError(
            "the exception is invalid", [{"field": "reason", "message": "required"}]
        )
    exception = WorkingDayException(
        organisation_id=organisation_id,
        day=data["day"],
        working=bool(data["working"]),
        reason=reason,
        created_by=actor.label,
    )
    session.add(exception)
    whose = f"organisation {organisation_id}" if organisation_id else "everyone"
    flush_unique(session, f"{data['day']} has an exception for {whose} already")
    record_change(
        session, actor, "working-day.create", exception, None, organisation_id=organisation_id
    )
    return exception


def remove_exception(session: Session, actor: Principal, exception_id: int) -> None:
    _require_manage(actor)
    exception = get_exception(session, actor, exception_id)
    before = exception.audit_view()
    session.delete(exception)
    session.flush()
    record_change(
        session,
        actor,
        "working-day.delete",
        exception,
        before,
        organisation_id=exception.organisation_id,
        deleted=True,
    )


class Calendars:
    """Each organisation's working-day calendar, the exceptions read once."""

    def __init__(
        self,
        session: Session | None,
        kind: Kind = Kind.CN_OFFICIAL,
        configured_holidays: tuple[date, ...] = (),
    ) -> None:
        self._session = session
        self.kind = kind
        self._configured = {
            day: DayException(day, False, "UPGRADE_SERVER_HOLIDAYS", Scope.SETTING)
            for day in configured_holidays
        }
        self._rows: list[WorkingDayException] | None = None
        self._by_organisation: dict[int | None, WorkingCalendar] = {}

    def _exceptions(self) -> list[WorkingDayException]:
        if self._rows is None:
            self._rows = (
                list(self._session.scalars(select(WorkingDayException)))
                if self._session is not None
                else []
            )
        return self._rows

    def of(self, organisation_id: int | None) -> WorkingCalendar:
        """The calendar of an organisation (None: the global one)."""
        if organisation_id not in self._by_organisation:
            days = dict(self._configured)
            rows = self._exceptions()
            # Global ones first, so the organisation's overwrite them.
            for row in sorted(rows, key=lambda r: r.organisation_id is not None):
                if row.organisation_id in (None, organisation_id):
                    scope = Scope.GLOBAL if row.organisation_id is None else Scope.ORGANISATION
                    days[row.day] = DayException(row.day, row.working, row.reason, scope)
            self._by_organisation[organisation_id] = WorkingCalendar(self.kind, days)
        return self._by_organisation[organisation_id]


def working_calendars(session: Session | None, settings: Settings) -> Calendars:
    """The calendars as the settings and the recorded exceptions say."""
    return Calendars(session, Kind(settings.working_calendar), settings.holiday_dates())

"""Which calendar counted a deadline's working days, in the reader's words
(the API gives the same in English: `CalendarUsed.summary`)."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import ngettext

from upgrade_server.workdays.calendar import LIBRARY, LIBRARY_VERSION, CalendarUsed, Scope


def calendar_words(used: CalendarUsed) -> str:
    missing = ", ".join(str(y) for y in used.weekends_only_years)
    if used.official is None:
        text = _("weekends only")
    elif not used.weekends_only_years:
        text = _("China's official calendar (%(library)s)", library=f"{LIBRARY} {LIBRARY_VERSION}")
    elif used.weekends_only_years == used.years:
        text = _("weekends only: no official calendar for %(years)s", years=missing)
    else:
        text = _(
            "China's official calendar (%(library)s); weekends only in %(years)s",
            library=f"{LIBRARY} {LIBRARY_VERSION}",
            years=missing,
        )
    staff = sum(1 for e in used.exceptions if e.scope is not Scope.SETTING)
    configured = len(used.exceptions) - staff
    if staff:
        text += " + " + ngettext("%(num)s staff exception", "%(num)s staff exceptions", staff)
    if configured:
        text += " + " + ngettext(
            "%(num)s configured holiday", "%(num)s configured holidays", configured
        )
    return text

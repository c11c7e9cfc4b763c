"""Vendor staff in the console, from a test client: a user of a role with a
password, logged in through the console's own form."""

from __future__ import annotations

from typing import Any

from tests.factories import Caller, Factory
from tests.helpers.portal import PASSWORD, csrf
from upgrade_server.accounts import service as accounts
from upgrade_server.extensions import db


def staff_member(factory: Factory, role: str, organisation: Any = None) -> Caller:
    """A user of `role` (an API token too) who can log in with PASSWORD."""
    caller = factory.caller(role, organisation)
    caller.user.password_hash = accounts.hash_password(PASSWORD)
    db.session.commit()
    return caller


def console_login(client: Any, email: str, lang: str = "en", password: str = PASSWORD) -> Any:
    """Log in through the console's form; the answer to the POST."""
    token = csrf(client.get(f"/console/login?lang={lang}").get_data(as_text=True))
    return client.post(
        "/console/login", data={"email": email, "password": password, "csrf_token": token}
    )


def as_staff(client: Any, factory: Factory, role: str = "admin", lang: str = "en") -> Caller:
    """A logged-in staff member of `role` (pages in `lang`)."""
    member = staff_member(factory, role)
    r = console_login(client, member.user.email, lang)
    assert r.status_code == 302, r.get_data(as_text=True)
    return member


def page(client: Any, path: str, status: int = 200) -> str:
    """GET a console page, expecting `status`; its HTML."""
    r = client.get(path)
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:2000])
    return str(r.get_data(as_text=True))


class Statements:
    """Counts the SQL statements run on the test's connection while in use:
    `with Statements() as sql: ...; assert sql.count <= 12`."""

    def __init__(self) -> None:
        self.count = 0
        self.seen: list[str] = []

    def _listener(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.count += 1
        self.seen.append(statement)

    def __enter__(self) -> Statements:
        from sqlalchemy import event

        self.connection = db.session.connection()
        event.listen(self.connection, "before_cursor_execute", self._listener)
        return self

    def __exit__(self, *exc: Any) -> None:
        from sqlalchemy import event

        event.remove(self.connection, "before_cursor_execute", self._listener)

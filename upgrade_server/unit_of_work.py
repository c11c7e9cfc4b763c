"""One unit of work for requests, CLI commands and background jobs.

A unit declares whether it writes (so SQLite takes the write lock up front,
see database.write_intent), commits once when its work succeeded and rolls
back when it failed. Work done outside the database (an artifact moved to its
final name) registers an undo with `on_failure`: it runs when the work or its
commit fails, so a failed publish leaves nothing behind.

Requests drive a unit through the app's hooks (transaction.py); everything
else uses `unit_of_work()` as a context manager. Units do not nest on one
session: an inner commit would commit the outer unit's work too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

from upgrade_server.database import write_intent
from upgrade_server.extensions import db

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_current: ContextVar[UnitOfWork | None] = ContextVar("unit_of_work", default=None)


class UnitOfWork:
    """The undo hooks and write intent of one unit; the session is handed to
    `commit` and `fail`, so that each caller keeps choosing it."""

    def __init__(self, writes: bool | None = True) -> None:
        # None: a request decides by its method (database._sqlite_on_begin).
        self.writes = writes
        self._undo: list[Callable[[], None]] = []
        self._tokens: tuple[Token[bool | None], Token[UnitOfWork | None]] | None = None

    def begin(self) -> None:
        """Declare the write intent and make this the unit `on_failure` adds to."""
        self._tokens = (write_intent.set(self.writes), _current.set(self))

    def on_failure(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def commit(self, session: Session) -> None:
        """Commit; when the commit fails, roll back and undo, then raise."""
        try:
            session.commit()
        except BaseException:
            self.fail(session)
            raise
        self._undo.clear()

    def fail(self, session: Session) -> None:
        """Roll back and undo what was done outside the database."""
        try:
            session.rollback()
        finally:
            self.undo()

    def discard(self) -> None:
        """Forget the undo hooks: nothing this unit did is to be undone."""
        self._undo.clear()

    def undo(self) -> None:
        pending, self._undo = self._undo, []
        for undo in reversed(pending):
            try:
                undo()
            except Exception:
                log.exception("undo after a failed unit of work failed")

    def end(self) -> None:
        """Restore the write intent; undo what is still registered (the work
        raised before it was committed or failed)."""
        if self._tokens is not None:
            intent, current = self._tokens
            self._tokens = None
            _current.reset(current)
            write_intent.reset(intent)
        if self._undo:
            self.undo()


def on_failure(undo: Callable[[], None]) -> None:
    """Run `undo` if the current unit of work (request, command, job) fails."""
    unit = _current.get()
    if unit is None:
        raise RuntimeError("on_failure called outside a unit of work")
    unit.on_failure(undo)


@contextmanager
def unit_of_work(
    app: Flask | None = None, *, session: Session | None = None, writes: bool = True
) -> Iterator[Session]:
    """One unit: yields the session; commits when the block ends, rolls back
    and runs the undo hooks when it raises or the commit fails.

    `app`: enter an app context for the unit, whose session is removed at
    the end (background jobs). `session`: work on this session (the caller owns
    it) instead of the app context's one. `writes=False`: the unit only reads
    (on SQLite it does not queue for the write lock)."""
    with ExitStack() as stack:
        if app is not None:
            # Its end removes the context's session (Flask-SQLAlchemy's teardown).
            stack.enter_context(app.app_context())
        used = session if session is not None else db.session()
        unit = UnitOfWork(writes)
        unit.begin()
        stack.callback(unit.end)
        try:
            yield used
        except BaseException:
            unit.fail(used)
            raise
        unit.commit(used)

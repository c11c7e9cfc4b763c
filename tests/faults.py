"""Faults the tests put the server's surroundings in, and waiting for it to recover."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url


@contextmanager
def read_only_database(url: str) -> Iterator[None]:
    """The database refuses writes on every connection opened inside the block,
    and those connections go on refusing them after it, as real ones do.

    SQLite: the file is opened in SQLite's read-only mode. That is what SQLite
    does by itself with a file the process may not write (chmod a-w; checked
    as an unprivileged user: the same SQLITE_READONLY on writes, reads fine),
    and what such a connection stays. The tests run as root, which chmod does
    not stop. PostgreSQL: default_transaction_read_only for the database (what
    a standby or a maintenance switch does), fixed when a session starts.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database

        def read_only(dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
            if dialect.name == "sqlite" and cargs and cargs[0] == path:
                cargs[0] = f"file:{path}?mode=ro"
                cparams["uri"] = True

        event.listen(Engine, "do_connect", read_only)
        try:
            yield
        finally:
            event.remove(Engine, "do_connect", read_only)
        return
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = parsed.database
    # Opened before the switch, so it may still turn it off.
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        try:
            yield
        finally:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    admin.dispose()


T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None],
    what: str,
    timeout: float = 20.0,
    explain: Callable[[], str] = lambda: "",
) -> T:
    """What `condition()` returns once it is truthy, polled every 20 ms; after
    `timeout` seconds an AssertionError naming `what`, with `explain()` (a
    process's log, say) attached."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}\n{explain()}")
        time.sleep(0.02)


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll `condition` until it returns something true (returned), or fail after `timeout`."""
    return wait_for(condition, what or str(condition), timeout)

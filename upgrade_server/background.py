"""Periodic work in a daemon thread of each process that serves the app.

gunicorn imports the app in each worker, but a thread started before a fork
would not survive it: the thread starts with the first request a process
serves (any request, the update check's fast path included).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from upgrade_server import metrics

log = logging.getLogger(__name__)


def every(
    app: Flask,
    interval: float,
    work: Callable[[Flask], Any],
    name: str,
    *,
    at_start: bool = False,
) -> None:
    """Run `work(app)` every `interval` seconds (`at_start`: and once as soon as
    the process serves); a failure is logged and retried."""
    work = metrics.watched(name, work)

    stop = threading.Event()
    app.extensions.setdefault("background_stops", []).append(stop)

    def run() -> None:
        try:
            work(app)
        except Exception:
            log.exception("%s failed; retrying in %ss", name, interval)

    def loop() -> None:
        if at_start:
            run()
        while not stop.wait(interval):
            run()

    started: dict[str, int] = {}
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if started.get("pid") != os.getpid():
            started["pid"] = os.getpid()
            threading.Thread(target=loop, name=name, daemon=True).start()
        return inner(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]


def stop(app: Flask) -> None:
    """Stop this app's background work (a server shutting down, a test ending)."""
    for event in app.extensions.get("background_stops", []):
        event.set()

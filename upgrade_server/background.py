"""Background work: every periodic or queue-draining job, run one way.

A job is registered while the app is built (`add`) and runs in a daemon
thread of each process that serves the app. gunicorn imports the app in each
worker, but a thread started before a fork would not survive it: the threads
start with the first request a process serves (any request, the update
check's fast path included), once per process.

A failing job is retried at its next interval; each job keeps its health
(runs, failures, the last success, the last error's type, the last duration),
which `jobs(app)` returns and /readyz shows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from flask import Flask

from upgrade_server import metrics, process
from upgrade_server.clock import utcnow

log = logging.getLogger(__name__)

# While a job fails at every run, its failure is logged at most this often (seconds).
LOG_EVERY = 60.0


class Job:
    """One job of one app: its schedule, its thread in this process, its health."""

    def __init__(
        self, app: Flask, name: str, interval: float, work: Callable[[Flask], Any], at_start: bool
    ) -> None:
        self.app, self.name, self.interval, self.work = app, name, interval, work
        self.at_start = at_start
        self.runs = 0
        self.failures = 0
        self.failing_since: datetime | None = None
        self.last_success_at: datetime | None = None
        self.last_error: str | None = None
        self.last_duration: float | None = None
        self._logged_at = 0.0
        # Health is written by the job's thread and read by requests: one consistent view.
        self._health_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._condition = threading.Condition()
        self._woken = False
        self._stopping = False

    def wake(self) -> None:
        """Run now instead of at the end of the interval (a queue filled up);
        ignored while the job fails, which then waits its interval out."""
        with self._condition:
            self._woken = True
            self._condition.notify_all()

    def start(self) -> None:
        # Fresh locks in each process: one held at the fork would stay held.
        self._condition = threading.Condition()
        self._health_lock = threading.Lock()
        self._woken = self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; False if it is still running a pass."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        if self.at_start:
            self.run_once()
        while True:
            with self._condition:
                self._condition.wait_for(
                    lambda: self._stopping or (self._woken and self.failing_since is None),
                    timeout=self.interval,
                )
                if self._stopping:
                    return
                self._woken = False
            self.run_once()

    def run_once(self) -> None:
        """One run of the work, counted; a failure is logged, never raised."""
        started = time.monotonic()
        try:
            self.work(self.app)
        except Exception as exc:
            self._failed(exc)
        else:
            if self.failing_since is not None:
                log.warning("%s succeeds again (failing since %s)", self.name, self.failing_since)
            with self._health_lock:
                self.failing_since = None
                self.last_success_at = utcnow()
        finally:
            with self._health_lock:
                self.runs += 1
                self.last_duration = time.monotonic() - started

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self.failing_since is None or now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            log.exception("%s failed; retried in %ss", self.name, self.interval)
        with self._health_lock:
            self.failures += 1
            # The type only: a message may carry a URL or a key's path; the log has the rest.
            self.last_error = type(exc).__name__
            if self.failing_since is None:
                self.failing_since = utcnow()

    def health(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 text."""
        with self._health_lock:
            return {
                "name": self.name,
                "interval_seconds": self.interval,
                "running": self._thread is not None and self._thread.is_alive(),
                "runs": self.runs,
                "failures": self.failures,
                "failing_since": _iso(self.failing_since),
                "last_success_at": _iso(self.last_success_at),
                "last_error": self.last_error,
                "last_duration_seconds": self.last_duration,
            }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


class _Runner:
    """The app's jobs, and the process their threads were started in."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.pid = 0
        self.lock = threading.Lock()
        self.wrapped = False

    def start_here(self) -> None:
        with self.lock:
            if self.pid == process.pid():
                return
            self.pid = process.pid()
            for job in self.jobs:
                job.start()


def _runner(app: Flask) -> _Runner:
    runner: _Runner = app.extensions.setdefault("background", _Runner())
    return runner


def add(
    app: Flask,
    name: str,
    interval: float,
    work: Callable[[Flask], Any],
    *,
    at_start: bool = False,
) -> Job:
    """Run `work(app)` every `interval` seconds (`at_start`: and once as soon
    as the process serves) in each process serving the app."""
    runner = _runner(app)
    job = Job(app, name, interval, metrics.watched(name, work), at_start)
    with runner.lock:
        runner.jobs.append(job)
        serving = runner.pid == process.pid()
    if serving:  # added after this process started its jobs
        job.start()
    if not runner.wrapped:
        _start_with_first_request(app, runner)
    return job


def _start_with_first_request(app: Flask, runner: _Runner) -> None:
    runner.wrapped = True
    inner = app.wsgi_app

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if runner.pid != process.pid():
            runner.start_here()
        return inner(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]


def jobs(app: Flask) -> list[dict[str, Any]]:
    """Each job's health in this process (a worker of several sees its own)."""
    return [job.health() for job in _runner(app).jobs]


def stop(app: Flask, timeout: float = 10.0) -> None:
    """Stop this app's background work (a server shutting down, a test
    ending) and wait up to `timeout` seconds for a pass under way to end."""
    runner = _runner(app)
    for job in runner.jobs:
        job.stop()
    deadline = time.monotonic() + timeout
    for job in runner.jobs:
        if not job.join(max(0.0, deadline - time.monotonic())):
            log.warning("%s still running a pass after stop", job.name)

"""The metrics themselves: names, help texts, labels, and how a fact becomes a sample.

Imported only once metrics are on (upgrade_server.metrics.enable): importing
prometheus_client fixes where its values live, in this process's memory or,
with PROMETHEUS_MULTIPROC_DIR set (gunicorn, see gunicorn_conf.py), in files
every worker's scrape adds up.

Every label has a bounded set of values: a route's template (never the path
itself), an HTTP method from a fixed list, a status code, an answer, a
storage backend, an install status, a job's name, a product's code and a
TUF role.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from upgrade_server.clock import utcnow
from upgrade_server.updates.models import InstallStatus

# Seconds: the update check takes well under a millisecond of the server's
# time, an upload of an artifact minutes.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

# The update check's answers (README, "Metrics").
OFFERED = "offered"  # a release to install now
NOT_COVERED = "not_covered"  # nothing to install: the newer release is not covered
UP_TO_DATE = "up_to_date"  # nothing to install (204)
NOT_MODIFIED = "not_modified"  # the answer the device has (304)
REFUSED = "refused"  # a problem of the request: token, body (4xx)
FAILED = "failed"  # the server's own: database unreachable, a bug (5xx)
ANSWERS = (OFFERED, NOT_COVERED, UP_TO_DATE, NOT_MODIFIED, REFUSED, FAILED)

# The hawkBit DDI base poll's answers.
DDI_ACTION = "action"  # an action to run (deploymentBase)
DDI_CANCEL = "cancel"  # an action to stop (cancelAction)
DDI_NOTHING = "nothing"  # nothing to do but ask again
DDI_ANSWERS = (DDI_ACTION, DDI_CANCEL, DDI_NOTHING, REFUSED, FAILED)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Instruments:
    """This process's metrics, in a registry of their own (the app's default
    registry is left alone), with the children of hot labels kept at hand."""

    def __init__(self) -> None:
        # A `_created` series beside every counter (single process only) says
        # nothing a scrape needs; one output in either mode.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http = Histogram(
            "upgrade_server_http_request_duration_seconds",
            "Requests by route template, method and status, and the time until the"
            " answer started (every app: management API, portal, device API with the"
            " update check's fast path, TUF).",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.update_checks = Counter(
            "upgrade_server_update_checks",
            "Update checks by answer: offered, not_covered, up_to_date, not_modified,"
            " refused (4xx), failed (5xx).",
            ["answer"],
            registry=r,
        )
        self.ddi_polls = Counter(
            "upgrade_server_ddi_polls",
            "hawkBit DDI base polls by answer: action, cancel, nothing, refused (4xx),"
            " failed (5xx).",
            ["answer"],
            registry=r,
        )
        self.downloads = Counter(
            "upgrade_server_downloads",
            "Artifact downloads answered (a file or a range of it, or a redirect to"
            " the store's presigned link), by storage backend.",
            ["backend"],
            registry=r,
        )
        self.download_bytes = Counter(
            "upgrade_server_download_bytes",
            "Bytes of artifact downloads: sent by this server (local), or the size"
            " behind each presigned link handed out (s3).",
            ["backend"],
            registry=r,
        )
        self.install_reports = Counter(
            "upgrade_server_install_reports",
            "Install steps devices reported, by status (a repeated event counts once).",
            ["status"],
            registry=r,
        )
        self.job_runs = Counter(
            "upgrade_server_background_job_runs",
            "Passes of each background job, in every worker.",
            ["job"],
            registry=r,
        )
        self.job_failures = Counter(
            "upgrade_server_background_job_failures",
            "Passes of each background job that raised (logged, retried at its interval).",
            ["job"],
            registry=r,
        )
        self.job_last_success = Gauge(
            "upgrade_server_background_job_last_success_timestamp_seconds",
            "When a pass of each background job last succeeded, in any worker (Unix time).",
            ["job"],
            multiprocess_mode="max",
            registry=r,
        )
        self.resigned = Counter(
            "upgrade_server_tuf_resigned_roles",
            "Online TUF metadata re-signed before it expired (upkeep, or a timestamp"
            " read that found it past half-life), by product and role.",
            ["product", "role"],
            registry=r,
        )
        self._answers = {answer: self.update_checks.labels(answer) for answer in ANSWERS}
        self._ddi_answers = {answer: self.ddi_polls.labels(answer) for answer in DDI_ANSWERS}
        for status in InstallStatus:
            self.install_reports.labels(status.value)
        self._requests: dict[tuple[str, str, str], Any] = {}

    def request_done(self, route: str, method: str, status: str, seconds: float) -> None:
        key = (route, method, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.http.labels(route, method, status)
        child.observe(seconds)

    def update_check(self, status: int, body: bytes) -> None:
        if status == 200:
            # An offer names its release; "nothing for you, but a newer one is
            # not covered" carries only the notice (hot.choose).
            answer = OFFERED if b'"release_id"' in body else NOT_COVERED
        elif status == 204:
            answer = UP_TO_DATE
        elif status == 304:
            answer = NOT_MODIFIED
        else:
            answer = REFUSED if status < 500 else FAILED
        self._answers[answer].inc()

    def ddi_poll(self, status: int, body: bytes) -> None:
        if status == 200:
            if b'"deploymentBase"' in body:
                answer = DDI_ACTION
            elif b'"cancelAction"' in body:
                answer = DDI_CANCEL
            else:
                answer = DDI_NOTHING
        else:
            answer = REFUSED if status < 500 else FAILED
        self._ddi_answers[answer].inc()

    def download(self, backend: str, status: int, sent: int | None, size: int) -> None:
        if status in _REDIRECTS:
            count = size
        elif 200 <= status < 300:
            count = sent or 0
        else:
            return  # 304, 416: nothing downloaded
        self.downloads.labels(backend).inc()
        self.download_bytes.labels(backend).inc(count)

    def job_done(self, job: str, *, succeeded: bool) -> None:
        self.job_runs.labels(job).inc()
        failures = self.job_failures.labels(job)  # 0 from the first run on
        if succeeded:
            self.job_last_success.labels(job).set(utcnow().timestamp())
        else:
            failures.inc()

"""Metrics for operators: what the server does, in the Prometheus text format.

Off unless UPGRADE_SERVER_METRICS_TOKEN is set (the README, "Metrics"). The
domains report through the functions below; while metrics are off each is a
test of one global and nothing else, so the update check pays nothing for
them. prometheus_client is imported only once metrics are on: in a gunicorn
worker that is after gunicorn_conf.py chose the multi-process folder, which
the library reads when it is first imported.

This module imports neither Flask nor prometheus_client: every layer
(services, storage, the device edge) may report through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from upgrade_server.metrics.instruments import Instruments

T = TypeVar("T")

# The instruments while metrics are on in this process; None while they are off.
_on: Instruments | None = None


def enable() -> Instruments:
    """Turn recording on in this process (idempotent); returns the instruments."""
    global _on
    if _on is None:
        from upgrade_server.metrics.instruments import Instruments

        _on = Instruments()
    return _on


def enabled() -> bool:
    return _on is not None


def count_update_check(status: int, body: bytes) -> None:
    """An update check answered with `status` and `body` (the device edge's)."""
    if _on is not None:
        _on.update_check(status, body)


def count_ddi_poll(status: int, body: bytes) -> None:
    """A hawkBit DDI base poll answered with `status` and `body` (the device edge's)."""
    if _on is not None:
        _on.ddi_poll(status, body)


def count_download(backend: str, status: int, sent: int | None, size: int) -> None:
    """An artifact download answered with `status`: `sent` bytes from this
    server, or a redirect to the store's link for the whole `size`."""
    if _on is not None:
        _on.download(backend, status, sent, size)


def count_install_report(status: str) -> None:
    """A device reported an install step (a new one, not a repeated event)."""
    if _on is not None:
        _on.install_reports.labels(status).inc()


def count_resigned(product: str, roles: Iterable[str]) -> None:
    """Online metadata of `roles` of `product` was re-signed before it expired."""
    if _on is not None:
        for role in roles:
            _on.resigned.labels(product, role).inc()


def watched(job: str, work: Callable[..., T]) -> Callable[..., T]:
    """`work` (a background job's pass) counted as a run of `job`: its failures,
    and when it last succeeded. Exceptions pass through unchanged."""

    def run(*args: Any, **kwargs: Any) -> T:
        instruments = _on
        if instruments is None:
            return work(*args, **kwargs)
        try:
            result = work(*args, **kwargs)
        except Exception:
            instruments.job_done(job, succeeded=False)
            raise
        instruments.job_done(job, succeeded=True)
        return result

    return run

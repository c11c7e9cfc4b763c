"""Metrics in the app: requests counted at one place, and the /metrics page.

`init_app` does nothing unless UPGRADE_SERVER_METRICS_TOKEN is set: no
wrapper, no route (/metrics is a 404 like any unknown path), no recording.
Set, it turns recording on, wraps the outermost WSGI callable in
RequestMetrics and serves /metrics to `Authorization: Bearer <token>` only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from flask import Response, request, request_started
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import and_, func, select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map

from upgrade_server import metrics
from upgrade_server.clock import utcnow
from upgrade_server.errors import PROBLEMS, AuthenticationError
from upgrade_server.extensions import session
from upgrade_server.http_errors import problem_response
from upgrade_server.metrics import multiprocess
from upgrade_server.metrics.instruments import Instruments
from upgrade_server.products.models import Product
from upgrade_server.signing.models import MetadataFile, Repository

if TYPE_CHECKING:
    from apiflask import APIFlask

    from upgrade_server.config import Settings

log = logging.getLogger(__name__)

PATH = "/metrics"
MIN_TOKEN_LENGTH = 16
# Where the app that answered puts the template of the route it matched.
ROUTE_KEY = "upgrade_server.route"
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TOP_ROLES = ("root", "targets", "snapshot", "timestamp")


def init_app(app: APIFlask, settings: Settings) -> None:
    """Serve metrics when a token is configured; call it last, so that the
    request metrics wrap every other WSGI layer (the device edge's included)."""
    token = settings.metrics_token
    if not token:
        return
    if len(token) < MIN_TOKEN_LENGTH:
        # The value itself is never logged.
        raise ValueError(
            f"UPGRADE_SERVER_METRICS_TOKEN is shorter than {MIN_TOKEN_LENGTH} characters;"
            " use a long random one (e.g. `openssl rand -hex 32`)"
        )
    instruments = metrics.enable()
    registry = scrape_registry(instruments)
    # Digests compared, so that not even the token's length shows in the time taken.
    expected = hashlib.sha256(f"Bearer {token}".encode()).digest()

    @app.get(PATH)
    @app.doc(hide=True)
    def metrics_page() -> Response:
        given = hashlib.sha256(request.headers.get("Authorization", "").encode()).digest()
        if not hmac.compare_digest(given, expected):
            return problem_response(
                PROBLEMS[AuthenticationError],
                "the metrics token is required",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = Response(encoder(registry), content_type=content_type)
        response.headers["Cache-Control"] = "no-store"
        return response

    request_started.connect(_note_route, app)
    app.wsgi_app = RequestMetrics(  # type: ignore[method-assign]
        app.wsgi_app, app.url_map, instruments
    )


def scrape_registry(instruments: Instruments) -> CollectorRegistry:
    """What a scrape shows: every worker's samples (from the multi-process
    folder when there is one, else this process's), and the signing state read
    from the database at the scrape."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(multiprocess.ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(instruments.registry)
    registry.register(TufExpiryCollector())
    return registry


def _note_route(sender: Any, **extra: Any) -> None:
    rule = request.url_rule
    request.environ[ROUTE_KEY] = rule.rule if rule is not None else UNMATCHED


class RequestMetrics:
    """Every request's route, method, status and time until its answer
    started, at the outermost WSGI layer. The time stops when the app returns
    its body's iterable: wrapping that would cost gunicorn its sendfile."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], url_map: Map, instruments: Instruments
    ) -> None:
        self.app = app
        self.url_map = url_map
        self.instruments = instruments
        # Requests Flask did not see (the update check, served without it) on
        # routes without arguments: their series by (method, path, status), so
        # that the update check costs one lookup. Bounded by the routes.
        self._static: dict[tuple[str, str, str], Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = perf_counter()
        status = "500"  # the app raised before it answered

        def answer(line: str, headers: Any, exc_info: Any = None) -> Any:
            nonlocal status
            status = line[:3]
            return start_response(line, headers, exc_info)

        try:
            return self.app(environ, answer)
        finally:
            elapsed = perf_counter() - started
            try:
                self.record(environ, status, elapsed)
            except Exception:  # never the request's failure
                log.exception("metrics: a request was not counted")

    def record(self, environ: dict[str, Any], status: str, elapsed: float) -> None:
        route = environ.get(ROUTE_KEY)
        if route is None:
            key = (environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), status)
            series = self._static.get(key)
            if series is None:
                series = self._unseen(environ, key)
            series.observe(elapsed)
            return
        method = environ.get("REQUEST_METHOD", "")
        self.instruments.request_done(
            route, method if method in _METHODS else "other", status, elapsed
        )

    def _unseen(self, environ: dict[str, Any], key: tuple[str, str, str]) -> Any:
        """The series of a request Flask did not see, by the route it would match."""
        method = key[0] if key[0] in _METHODS else "other"
        try:
            rule, arguments = self.url_map.bind_to_environ(environ).match(return_rule=True)
        except HTTPException:  # no such route, another method, a redirect
            return self.instruments.http.labels(UNMATCHED, method, key[2])
        series = self.instruments.http.labels(rule.rule, method, key[2])
        if not arguments:
            self._static[key] = series
        return series


class TufExpiryCollector:
    """Seconds until each online top-level role's newest metadata expires, per
    product: one query at each scrape (offline roles are re-signed by people,
    their expiry is a date in the signers' calendar)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "upgrade_server_tuf_metadata_expiry_seconds",
            "Seconds until the newest metadata of each online TUF role expires"
            " (negative: expired), by product.",
            labels=["product", "role"],
        )
        try:
            rows = session().execute(_NEWEST_TOP_LEVEL).all()
        except SQLAlchemyError as exc:
            log.warning("metrics: TUF metadata expiry not read: %s", type(exc).__name__)
            session().rollback()
            return
        now = utcnow()
        for code, role, expires, offline in rows:
            if role not in (offline or ()):
                family.add_metric([code, role], (expires - now).total_seconds())
        yield family


_newest = (
    select(
        MetadataFile.product_id,
        MetadataFile.role,
        func.max(MetadataFile.version).label("version"),
    )
    .where(MetadataFile.role.in_(_TOP_ROLES))
    .group_by(MetadataFile.product_id, MetadataFile.role)
    .subquery()
)
_NEWEST_TOP_LEVEL = (
    select(Product.code, MetadataFile.role, MetadataFile.expires, Repository.offline_roles)
    .join(
        _newest,
        and_(
            MetadataFile.product_id == _newest.c.product_id,
            MetadataFile.role == _newest.c.role,
            MetadataFile.version == _newest.c.version,
        ),
    )
    .join(Product, Product.id == MetadataFile.product_id)
    .join(Repository, Repository.product_id == MetadataFile.product_id)
    .order_by(Product.code, MetadataFile.role)
)

"""upgrade_server: signed firmware and software upgrade distribution."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apiflask import APIFlask

    from upgrade_server.config import Settings

__version__ = "0.1.0"

log = logging.getLogger(__name__)


def create_app(test_config: dict[str, Any] | None = None) -> APIFlask:
    """Build the app. Settings come from the environment; tests may override
    them with `test_config` ({"SETTINGS": Settings(...)} or Flask config keys)."""
    # Imported here, not at module level, so that light users of the package
    # (the storage layer in a bench, the device agent) do not pay for the web stack.
    from apiflask import APIFlask
    from flask import Response, g, request, send_from_directory
    from swagger_ui_bundle import swagger_ui_path

    from upgrade_server.config import Settings
    from upgrade_server.errors import PROBLEM_SCHEMA, VALIDATION_PROBLEM_SCHEMA
    from upgrade_server.http_errors import check_request

    settings = (test_config or {}).get("SETTINGS") or Settings()
    instance_path = settings.resolved_instance_path()
    instance_path.mkdir(parents=True, exist_ok=True)

    app = APIFlask(
        __name__,
        title="upgrade_server",
        version=__version__,
        instance_path=str(instance_path),
        spec_path="/api/openapi.json",
        docs_path="/api/docs",
        docs_ui="swagger-ui",
    )
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.resolved_secret_key(),
        SQLALCHEMY_DATABASE_URI=settings.resolved_database_url(),
        # A ping per checkout costs a round trip per request; SQLite needs none.
        SQLALCHEMY_ENGINE_OPTIONS={
            "pool_pre_ping": not settings.resolved_database_url().startswith("sqlite")
        },
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        JSON_SORT_KEYS=False,
        DESCRIPTION=(
            "Management API (`/api/v1`, staff and customer tokens) and device API "
            "(`/api/device/v1`, device tokens). Errors are `application/problem+json`."
        ),
        # Every asset of the docs page is served by the app itself: no CDN.
        SWAGGER_UI_CSS="/api/docs/assets/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS="/api/docs/assets/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS="/api/docs/assets/swagger-ui-standalone-preset.js",
        DOCS_FAVICON="/api/docs/assets/favicon-32x32.png",
        VALIDATION_ERROR_STATUS_CODE=422,
        HTTP_ERROR_SCHEMA=PROBLEM_SCHEMA,
        VALIDATION_ERROR_SCHEMA=VALIDATION_PROBLEM_SCHEMA,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    from upgrade_server.json_provider import IsoJSONProvider
    from upgrade_server.routing import IdConverter
    from upgrade_server.uploads import UploadRequest

    # Before any route is added: every <int:...> is a bounded id.
    app.url_map.converters["int"] = IdConverter

    app.json = IsoJSONProvider(app)
    app.request_class = UploadRequest
    if test_config:
        app.config.update({k: v for k, v in test_config.items() if k != "SETTINGS"})

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
    )
    _install_request_id_logging()

    from upgrade_server import http_errors, openapi, transaction
    from upgrade_server.extensions import db
    from upgrade_server.storage import make_store

    db.init_app(app)
    app.extensions["artifact_store"] = make_store(settings)
    with app.app_context():
        if settings.report_batch_seconds > 0:
            from upgrade_server.updates.reports import ReportWriter

            app.extensions["report_writer"] = ReportWriter(db.engine, settings.report_batch_seconds)
    http_errors.init_app(app)
    openapi.init_app(app)
    from upgrade_server.audit import hooks as audit_hooks

    audit_hooks.init_app(app)
    from upgrade_server import web

    web.init_app(app, settings.session_cookie_secure)
    from upgrade_server import console

    console.init_app(app)

    from upgrade_server import health
    from upgrade_server.accounts.api import tokens_bp, users_bp
    from upgrade_server.audit.api import bp as audit_bp
    from upgrade_server.devices.api import bp as devices_bp
    from upgrade_server.entitlements.api import bp as coverage_bp
    from upgrade_server.organisations.api import bp as organisations_bp
    from upgrade_server.products.api import bp as products_bp
    from upgrade_server.releases.api import bp as releases_bp
    from upgrade_server.releases.signing_api import bp as signing_bp
    from upgrade_server.rollouts.api import bp as rollouts_bp
    from upgrade_server.rollouts.settings_api import bp as update_settings_bp
    from upgrade_server.service.api import bp as service_bp
    from upgrade_server.sites.api import bp as sites_bp
    from upgrade_server.tickets.api import bp as tickets_bp
    from upgrade_server.updates.api import bp as updates_bp
    from upgrade_server.workdays.api import bp as working_days_bp

    for blueprint in (
        health.bp,
        organisations_bp,
        sites_bp,
        users_bp,
        tokens_bp,
        products_bp,
        devices_bp,
        coverage_bp,
        service_bp,
        tickets_bp,
        working_days_bp,
        audit_bp,
        releases_bp,
        signing_bp,
        rollouts_bp,
        updates_bp,
        update_settings_bp,
    ):
        app.register_blueprint(blueprint)
    from upgrade_server import device_edge

    device_edge.init_app(app, settings)

    @app.get("/api/docs/assets/<path:name>")
    @app.doc(hide=True)
    def docs_assets(name: str) -> Response:
        return send_from_directory(str(swagger_ui_path), name, max_age=86400)

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex

    @app.before_request
    def _check_request() -> None:
        check_request(app)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    transaction.init_app(app)

    device_edge.wrap(app)
    if settings.metrics_token:
        # Its request metrics wrap every layer that answers (the device edge
        # too); without a token, prometheus_client is not even imported.
        from upgrade_server.metrics import serving as metrics_serving

        metrics_serving.init_app(app, settings)

    _add_background_jobs(app, settings)

    from upgrade_server.cli.commands import register_commands

    register_commands(app)
    return app


def _add_background_jobs(app: APIFlask, settings: Settings) -> None:
    """Every job of the app, run by background.py in each serving process.
    Added after every wsgi_app wrapper: they start with any request."""
    from upgrade_server import background

    if "report_writer" in app.extensions:
        app.extensions["report_writer"].run_in_background(app)

    if settings.tuf_upkeep_seconds > 0 and not app.testing:
        from upgrade_server.signing import upkeep

        upkeep.start(app, settings.tuf_upkeep_seconds)

    if settings.staging_cleanup_seconds > 0 and not app.testing:
        # A worker killed mid-upload leaves staged bytes nothing finishes.
        max_age = timedelta(seconds=settings.staging_max_age_seconds)
        background.add(
            app,
            "staging-cleaner",
            settings.staging_cleanup_seconds,
            lambda app: app.extensions["artifact_store"].clean_staging(max_age),
            at_start=True,
        )

    if settings.notify_interval_seconds > 0 and not app.testing:
        # Ticket upkeep: missed deadlines recorded, notifications sent.
        from upgrade_server.tickets import notify

        background.add(app, "notifier", settings.notify_interval_seconds, notify.run_once)

    if settings.rollout_evaluate_seconds > 0 and not app.testing:
        # The gates: running rollouts advanced, completed or halted.
        from upgrade_server.rollouts import evaluation

        background.add(app, "rollouts", settings.rollout_evaluate_seconds, evaluation.run_once)


def _install_request_id_logging() -> None:
    from flask import g

    factory = logging.getLogRecordFactory()
    if getattr(factory, "_upgrade_server", False):
        return

    def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            record.request_id = g.get("request_id", "-")
        except RuntimeError:  # outside a request
            record.request_id = "-"
        return record

    record_factory._upgrade_server = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_factory)

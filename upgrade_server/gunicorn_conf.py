"""gunicorn settings, each from the environment (see the README).

In the package, so an installed server runs with them: `upgrade-server serve`
passes `--config python:upgrade_server.gunicorn_conf`; the repository's
gunicorn.conf.py is this module for `gunicorn --config gunicorn.conf.py`.
"""

import multiprocessing
import os

from upgrade_server.config import Settings
from upgrade_server.metrics import multiprocess as metrics_folder
from upgrade_server.migrate import quiet_alembic

# Before any worker imports alembic (they are forked from this process).
quiet_alembic()

_settings = Settings()
# With metrics on, where every worker keeps its samples (before any imports
# prometheus_client, which reads it then; a preloaded app included).
_metrics = metrics_folder.choose_folder(_settings)

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Tokens travel in the Authorization header, which the default access log
# format does not include; keep it that way.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# gunicornc's control socket: gunicorn's default is one path per user
# (~/.gunicorn/gunicorn.ctl), so a second server on the host took it over and
# stopping either removed it. Each server keeps its own in its instance folder;
# GUNICORN_CONTROL_SOCKET names another path, or `off`.
_control = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = _control == "off"
control_socket = (
    _control
    if _control and _control != "off"
    else str(_settings.resolved_instance_path() / "gunicorn.ctl")
)


def when_ready(server):
    """Once per start, in the master: where the database's schema stands."""
    from upgrade_server.migrate import log_schema_state

    log_schema_state(_settings.resolved_database_url(), server.log)


def on_starting(server):
    """Once per start, in the master: no samples of an earlier run are counted."""
    if _metrics is not None:
        metrics_folder.empty(_metrics)


def child_exit(server, worker):
    if _metrics is not None:
        metrics_folder.worker_exited(_metrics, worker.pid)

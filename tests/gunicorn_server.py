"""The app under gunicorn, as in production, on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.moto_server import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def gunicorn(database_url: str, instance: Path, workers: int = 2, **env: str) -> Iterator[str]:
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "UPGRADE_SERVER_INSTANCE_PATH": str(instance),
        "UPGRADE_SERVER_LOG_LEVEL": "WARNING",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_ACCESS_LOG": "/dev/null",
        **env,
    }
    log = (instance / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        urllib.request.urlopen(url + "/healthz").close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

"""Metrics under gunicorn: one folder where every worker keeps its samples.

prometheus_client's multi-process mode: each worker writes its values to
files of its own (by pid) in PROMETHEUS_MULTIPROC_DIR, and a scrape served by
any worker adds up all of them, those of workers since gone included (their
counts happened). The library reads the variable when it is first imported,
so gunicorn_conf.py sets it in the master, before any worker (or a preloaded
app) imports it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upgrade_server.config import Settings

ENV = "PROMETHEUS_MULTIPROC_DIR"


def choose_folder(settings: Settings) -> Path | None:
    """With metrics on, the folder for the workers' samples: the operator's
    PROMETHEUS_MULTIPROC_DIR, else `metrics/` in the instance folder (set in
    the environment the workers inherit). None with metrics off."""
    if not settings.metrics_token:
        return None
    given = os.environ.get(ENV)
    folder = Path(given) if given else settings.resolved_instance_path() / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(folder)
    return folder


def empty(folder: Path) -> None:
    """Forget the samples of an earlier run (once, when the master starts):
    only the library's own files, whatever else the folder holds."""
    for path in folder.glob("*.db"):
        path.unlink(missing_ok=True)


def worker_exited(folder: Path, pid: int) -> None:
    """Drop what only a live worker may report (live gauges); its counts stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(folder))

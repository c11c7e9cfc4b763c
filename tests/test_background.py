"""Background work starts in a process once it serves a request."""

from __future__ import annotations

import os
import queue
import threading
import urllib.request
from datetime import timedelta

import pytest

from tests.faults import wait_until
from tests.live import live_server
from upgrade_server.clock import utcnow
from upgrade_server.signing import upkeep
from upgrade_server.storage.local import LocalStore


@pytest.mark.own_app
def test_metadata_upkeep_runs_in_a_serving_process(scratch_url, tmp_path, monkeypatch):
    ran = threading.Event()
    real = upkeep.refresh_all

    def recorded(app):
        found = real(app)
        ran.set()
        return found

    monkeypatch.setattr(upkeep, "refresh_all", recorded)
    with live_server(scratch_url, tmp_path / "instance", tuf_upkeep_seconds=0.05) as live:
        assert not ran.is_set()  # nothing before the process serves
        urllib.request.urlopen(f"{live.url}/healthz").read()
        assert ran.wait(timeout=30), "the upkeep thread never ran"


def _staged(instance, name, age):
    """A file a put left in the artifact folder's .tmp, untouched for `age`."""
    folder = instance / "artifacts" / ".tmp"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"partial")
    at = (utcnow() - age).timestamp()
    os.utime(path, (at, at))
    return path


@pytest.fixture
def cleaning_passes(monkeypatch):
    """What each pass of the staging cleaner removed, in order."""
    passes: queue.Queue[int] = queue.Queue()
    real = LocalStore.clean_staging

    def recorded(self, older_than):
        removed = real(self, older_than)
        passes.put(removed)
        return removed

    monkeypatch.setattr(LocalStore, "clean_staging", recorded)
    return passes


@pytest.mark.own_app
def test_what_a_killed_upload_left_is_removed_when_a_process_starts_serving(
    scratch_url, tmp_path, cleaning_passes
):
    instance = tmp_path / "instance"
    killed = _staged(instance, "put-killed", timedelta(hours=2))
    going = _staged(instance, "put-in-progress", timedelta(minutes=1))
    # An interval no test waits out: only the pass at start can remove it.
    with live_server(scratch_url, instance, staging_cleanup_seconds=3600) as live:
        assert cleaning_passes.empty()  # nothing before the process serves
        urllib.request.urlopen(f"{live.url}/healthz").read()
        assert cleaning_passes.get(timeout=30) == 1
        assert not killed.exists()
        assert going.exists()


@pytest.mark.own_app
def test_what_a_killed_upload_left_is_removed_by_a_later_pass(
    scratch_url, tmp_path, cleaning_passes
):
    instance = tmp_path / "instance"
    going = _staged(instance, "put-in-progress", timedelta(minutes=1))
    with live_server(scratch_url, instance, staging_cleanup_seconds=0.05) as live:
        urllib.request.urlopen(f"{live.url}/healthz").read()
        assert cleaning_passes.get(timeout=30) == 0
        # Another worker is killed mid-upload while this one serves.
        killed = _staged(instance, "put-killed", timedelta(hours=2))
        wait_until(lambda: not killed.exists(), what="a later pass removes it")
        assert going.exists()

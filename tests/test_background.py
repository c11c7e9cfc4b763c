"""Background work starts in a process once it serves a request."""

from __future__ import annotations

import threading
import urllib.request

import pytest

from tests.live import live_server
from upgrade_server.signing import upkeep


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

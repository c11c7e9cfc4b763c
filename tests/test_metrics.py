"""Metrics for operators: /metrics in the Prometheus text format, off by default.

In process: what each fact becomes (the update check's answers, downloads,
install reports, background jobs, TUF upkeep), routes labelled by their
template, and the token. Through gunicorn with two workers: one scrape counts
what every worker served, and the token never reaches a log.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from tests.clock import NOW
from tests.faults import wait_until
from tests.gunicorn_server import gunicorn
from tests.helpers.databases import scratch_database
from upgrade_server import create_app, metrics
from upgrade_server.clock import utcnow
from upgrade_server.config import Settings
from upgrade_server.metrics.instruments import Instruments
from upgrade_server.metrics.serving import RequestMetrics

# Each test builds the app it needs (or none): no shared transaction.
pytestmark = pytest.mark.own_app

TOKEN = "metrics-" + "k3y" * 8
CHECK = "/api/device/v1/update-check"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in found.items() if n == name and wanted <= have)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- what each fact becomes ---------------------------------------------------


def _registry_samples(instruments: Instruments) -> dict[Any, float]:
    from prometheus_client import generate_latest

    return samples(generate_latest(instruments.registry).decode())


def test_update_check_answers_are_told_apart():
    instruments = Instruments()
    instruments.update_check(200, b'{"release_id":3,"version":"1.1.0"}')
    instruments.update_check(200, b'{"poll_seconds":1800,"newer_not_entitled":{}}')
    instruments.update_check(204, b"")
    instruments.update_check(304, b"")
    for refused in (400, 401, 413, 415, 422):
        instruments.update_check(refused, b"{}")
    instruments.update_check(503, b"{}")
    found = _registry_samples(instruments)
    name = "upgrade_server_update_checks_total"
    assert {a: value(found, name, answer=a) for a in ("offered", "not_covered")} == {
        "offered": 1,
        "not_covered": 1,
    }
    assert value(found, name, answer="up_to_date") == 1
    assert value(found, name, answer="not_modified") == 1
    assert value(found, name, answer="refused") == 5
    assert value(found, name, answer="failed") == 1


def test_ddi_poll_answers_are_told_apart():
    instruments = Instruments()
    links = '{{"config":{{"polling":{{"sleep":"00:30:00"}}}},"_links":{{{}}}}}'
    instruments.ddi_poll(200, links.format('"deploymentBase":{"href":"x"}').encode())
    instruments.ddi_poll(200, links.format('"cancelAction":{"href":"x"}').encode())
    instruments.ddi_poll(200, links.format("").encode())
    instruments.ddi_poll(200, links.format('"configData":{"href":"x"}').encode())
    instruments.ddi_poll(401, b"{}")
    instruments.ddi_poll(503, b"{}")
    found = _registry_samples(instruments)
    name = "upgrade_server_ddi_polls_total"
    assert {a: value(found, name, answer=a) for a in ("action", "cancel", "nothing")} == {
        "action": 1,
        "cancel": 1,
        "nothing": 2,
    }
    assert value(found, name, answer="refused") == 1
    assert value(found, name, answer="failed") == 1


def test_downloads_count_bytes_served_or_handed_to_the_store():
    instruments = Instruments()
    instruments.download("local", 200, 1000, 1000)
    instruments.download("local", 206, 100, 1000)  # a resumed range: its bytes
    instruments.download("local", 304, 0, 1000)  # the device has it: nothing
    instruments.download("s3", 302, 0, 5000)  # the presigned link's object
    found = _registry_samples(instruments)
    assert value(found, "upgrade_server_downloads_total", backend="local") == 2
    assert value(found, "upgrade_server_download_bytes_total", backend="local") == 1100
    assert value(found, "upgrade_server_downloads_total", backend="s3") == 1
    assert value(found, "upgrade_server_download_bytes_total", backend="s3") == 5000


def test_a_watched_job_counts_runs_failures_and_its_last_success(monkeypatch):
    instruments = Instruments()
    monkeypatch.setattr(metrics, "_on", instruments)
    calls: list[str] = []
    ok = metrics.watched("cleaner", lambda app: calls.append(app) or "done")
    assert ok("app") == "done" and calls == ["app"]

    def broken(app: Any) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        metrics.watched("cleaner", broken)("app")
    found = _registry_samples(instruments)
    assert value(found, "upgrade_server_background_job_runs_total", job="cleaner") == 2
    assert value(found, "upgrade_server_background_job_failures_total", job="cleaner") == 1
    last = value(found, "upgrade_server_background_job_last_success_timestamp_seconds")
    assert last == pytest.approx(utcnow().timestamp(), abs=5)


def test_with_metrics_off_nothing_is_recorded(monkeypatch):
    monkeypatch.setattr(metrics, "_on", None)
    metrics.count_update_check(200, b"{}")
    metrics.count_download("local", 200, 1, 1)
    metrics.count_install_report("installed")
    metrics.count_resigned("gw", ["timestamp"])
    assert metrics.watched("job", lambda: 7)() == 7
    assert not metrics.enabled()


def test_gunicorn_gets_a_samples_folder_only_with_metrics_on(tmp_path, monkeypatch):
    from upgrade_server.metrics import multiprocess

    # Set first, so that monkeypatch puts the environment back as it found it.
    monkeypatch.setenv(multiprocess.ENV, "")
    monkeypatch.delenv(multiprocess.ENV)
    off = Settings(instance_path=tmp_path)
    assert multiprocess.choose_folder(off) is None
    assert multiprocess.ENV not in os.environ
    on = Settings(instance_path=tmp_path, metrics_token=TOKEN)
    assert multiprocess.choose_folder(on) == tmp_path / "metrics"
    assert os.environ[multiprocess.ENV] == str(tmp_path / "metrics")  # for the workers
    given = tmp_path / "operator"
    monkeypatch.setenv(multiprocess.ENV, str(given))
    assert multiprocess.choose_folder(on) == given and given.is_dir()
    (given / "counter_12.db").write_bytes(b"old")
    (given / "notes.txt").write_text("the operator's")
    multiprocess.empty(given)
    assert [p.name for p in given.iterdir()] == ["notes.txt"]


# --- the app without a token ----------------------------------------------------


def test_without_a_token_there_is_no_metrics_page_and_no_wrapper(app, client):
    answer = client.get("/metrics", headers=_bearer(TOKEN))
    assert answer.status_code == 404
    assert not any(rule.rule == "/metrics" for rule in app.url_map.iter_rules())
    assert not isinstance(app.wsgi_app, RequestMetrics)


def test_a_short_token_stops_the_app_without_showing_it(settings):
    short = "tiny-secret"
    with pytest.raises(ValueError) as refused:
        create_app({"SETTINGS": settings.model_copy(update={"metrics_token": short})})
    assert "16 characters" in str(refused.value)
    assert short not in str(refused.value)
    assert short not in repr(settings.model_copy(update={"metrics_token": short}))


# --- the app with a token, on a database of its own -----------------------------


class Served:
    def __init__(self, app: Any, tokens: dict[str, str], release: int) -> None:
        self.app = app
        self.client = app.test_client()
        self.tokens = tokens
        self.release = release

    def scrape(self) -> dict[Any, float]:
        answer = self.client.get("/metrics", headers=_bearer(TOKEN))
        assert answer.status_code == 200, answer.data
        return samples(answer.get_data(as_text=True))

    def check(self, device: str, version: str = "0.9.0", **headers: str) -> Any:
        return self.client.post(
            CHECK, json={"current_version": version}, headers={**_bearer(device), **headers}
        )


def _demo(database_url: str, instance: Path, **settings: Any) -> tuple[Any, dict[str, str], int]:
    from upgrade_server.cli.demo import load_demo
    from upgrade_server.extensions import db
    from upgrade_server.migrate import upgrade
    from upgrade_server.releases.models import Release

    upgrade(database_url)
    app = create_app(
        {
            "SETTINGS": Settings(
                instance_path=instance,
                database_url=database_url,
                log_level="WARNING",
                tuf_bin_bits=4,
                report_batch_seconds=0,
                **settings,
            )
        }
    )
    with app.app_context():
        shown = load_demo()
        release = db.session.scalars(db.select(Release)).one().id
    return app, shown, release


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("metrics")
    with (
        scratch_database(database_url, folder) as url,
        time_machine.travel(NOW, tick=True),
        # Recording goes off again after this module, as in the apps of other tests.
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(metrics, "_on", metrics._on)
        app, shown, release = _demo(url, folder / "instance", metrics_token=TOKEN)
        yield Served(app, shown, release)
        from upgrade_server.extensions import db

        with app.app_context():
            db.engine.dispose()
        app.extensions["hot_connection"].engine.dispose()


def test_the_page_answers_the_token_only(served):
    for headers in ({}, _bearer("wrong-token-wrong-token"), _bearer(TOKEN + "x"), {"X": TOKEN}):
        refused = served.client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.content_type == "application/problem+json"
        assert refused.json["type"] == "/problems/unauthenticated"
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert TOKEN not in refused.get_data(as_text=True)
    page = served.client.get("/metrics", headers=_bearer(TOKEN))
    assert page.status_code == 200
    assert page.mimetype == "text/plain"
    assert page.headers["Cache-Control"] == "no-store"


def test_requests_are_counted_by_route_template_never_by_path(served):
    before = served.scrape()
    served.client.get("/api/v1/devices/424242")  # 401: counted all the same
    served.client.get("/api/v1/devices/424243")
    served.client.get("/no/such/page/8f2c1e")
    served.client.open("/healthz", method="BREW")
    after = served.scrape()
    name = "upgrade_server_http_request_duration_seconds_count"

    def added(**labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert added(route="/api/v1/devices/<int:device_id>", method="GET", status="401") == 2
    assert added(route="unmatched", method="GET", status="404") == 1
    assert added(route="unmatched", method="other") == 1
    page = served.client.get("/metrics", headers=_bearer(TOKEN)).get_data(as_text=True)
    assert "424242" not in page and "8f2c1e" not in page and "BREW" not in page


def test_update_checks_downloads_and_install_reports(served):
    before = served.scrape()
    offered = served.check(served.tokens["device DEMO-0001"])
    assert offered.status_code == 200 and offered.json["release_id"] == served.release
    etag = {"If-None-Match": offered.headers["ETag"]}
    again = served.check(served.tokens["device DEMO-0001"], **etag)
    assert again.status_code == 304
    assert served.check(served.tokens["device DEMO-0001"], version="1.0.0").status_code == 204
    assert served.check(served.tokens["device DEMO-0003"]).json.keys() == {
        "poll_seconds",
        "newer_not_entitled",
    }
    assert served.check("usd_" + "x" * 40).status_code == 401
    device = _bearer(served.tokens["device DEMO-0001"])
    artifact = f"/api/device/v1/releases/{served.release}/artifact"
    downloaded = served.client.get(artifact, headers=device)
    assert downloaded.status_code == 200
    size = len(downloaded.data)
    event = {"event_id": uuid.uuid4().hex, "status": "downloading", "release_id": served.release}
    assert (
        served.client.post("/api/device/v1/installs", json=event, headers=device).status_code == 201
    )
    # The same event again is counted once.
    assert (
        served.client.post("/api/device/v1/installs", json=event, headers=device).status_code == 200
    )
    after = served.scrape()

    def added(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    checks = "upgrade_server_update_checks_total"
    for answer in ("offered", "not_modified", "up_to_date", "not_covered", "refused"):
        assert added(checks, answer=answer) == 1, answer
    assert added(checks, answer="failed") == 0
    latency = "upgrade_server_http_request_duration_seconds_count"
    assert added(latency, route=CHECK, method="POST") == 5
    assert added(latency, route=CHECK, status="304") == 1
    assert added("upgrade_server_downloads_total", backend="local") == 1
    assert added("upgrade_server_download_bytes_total", backend="local") == size
    assert added("upgrade_server_install_reports_total", status="downloading") == 1
    assert added("upgrade_server_install_reports_total") == 1


def test_tuf_upkeep_and_the_time_left_to_each_online_role(served, clock):
    found = served.scrape()
    expiry = "upgrade_server_tuf_metadata_expiry_seconds"
    day = timedelta(days=1).total_seconds()
    assert value(found, expiry, product="edge-gw", role="timestamp") == pytest.approx(day, abs=600)
    assert value(found, expiry, product="edge-gw", role="snapshot") > day
    clock.shift(timedelta(hours=13))  # the timestamp is past half its life
    left = value(served.scrape(), expiry, product="edge-gw", role="timestamp")
    assert left == pytest.approx(day - 13 * 3600, abs=600)
    served.client.get("/tuf/edge-gw/metadata/timestamp.json")  # re-signs it
    after = served.scrape()
    resigned = "upgrade_server_tuf_resigned_roles_total"
    assert (
        value(after, resigned, product="edge-gw", role="timestamp")
        - value(found, resigned, product="edge-gw", role="timestamp")
        == 1
    )
    assert value(after, expiry, product="edge-gw", role="timestamp") == pytest.approx(day, abs=600)


# --- through gunicorn, two workers ----------------------------------------------


def _send(url: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={**({"Content-Type": "application/json"} if data else {}), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as error:
        error.read()
        return int(error.code)


def _server_now(url: str) -> float:
    with urllib.request.urlopen(url + "/healthz", timeout=30) as answer:
        return parsedate_to_datetime(answer.headers["Date"]).timestamp()


def _scrape(url: str) -> dict[Any, float]:
    request = urllib.request.Request(url + "/metrics", headers=_bearer(TOKEN))
    with urllib.request.urlopen(request, timeout=30) as answer:
        return samples(answer.read().decode())


def _stale_count(folder: Path, answer: str, count: float) -> None:
    """Update checks counted by a worker of an earlier run, as its file keeps them."""
    stale = MmapedDict(str(folder / "counter_999999.db"))
    name = "upgrade_server_update_checks"
    key = mmap_key(name, f"{name}_total", ["answer"], [answer], "an earlier run")
    stale.write_value(key, count, 0.0)
    stale.close()


def checks_per_worker(folder: Path) -> list[float]:
    """Update checks each worker counted, from its own file in the
    multi-process folder (histogram_<pid>.db; a bucket each)."""
    found = []
    for path in sorted(folder.glob("histogram_*.db")):
        counted = 0.0
        for key, count, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample.endswith("_bucket") and labels.get("route") == CHECK:
                counted += count
        found.append(counted)
    return found


@pytest.fixture(scope="module")
def demo_database(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str], int, dict[str, str]]]:
    """The demo's database, its device tokens and release, and the settings
    that name its artifacts and online keys (each server has its own instance folder)."""
    folder = tmp_path_factory.mktemp("metrics-e2e")
    with scratch_database(database_url, folder) as url:
        app, shown, release = _demo(url, folder / "seed")
        from upgrade_server.extensions import db

        with app.app_context():
            db.engine.dispose()
        files = {
            "UPGRADE_SERVER_STORAGE_PATH": str(folder / "seed" / "artifacts"),
            "UPGRADE_SERVER_KEYS_PATH": str(folder / "seed" / "keys"),
        }
        yield url, shown, release, files


@pytest.mark.slow
def test_one_scrape_counts_every_worker(demo_database, tmp_path):
    url, shown, release, files = demo_database
    instance = tmp_path / "instance"
    (instance / "metrics").mkdir(parents=True)
    _stale_count(instance / "metrics", "offered", 1000)  # an earlier run's
    device = shown["device DEMO-0001"]
    sent = {"checks": 0}
    lock = threading.Lock()
    env = {
        **files,
        "UPGRADE_SERVER_METRICS_TOKEN": TOKEN,
        "UPGRADE_SERVER_LOG_LEVEL": "DEBUG",
        "GUNICORN_ACCESS_LOG": str(instance / "access.log"),
        # Once in each worker as it starts serving: tells how many served.
        "UPGRADE_SERVER_STAGING_CLEANUP_SECONDS": "600",
        "UPGRADE_SERVER_TUF_UPKEEP_SECONDS": "1",
    }
    with gunicorn(url, instance, workers=2, **env) as server:

        def check(_: int) -> None:
            status = _send(server, CHECK, {"current_version": "0.9.0"}, _bearer(device))
            assert status == 200
            with lock:
                sent["checks"] += 1

        def both_workers_served() -> bool:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(check, range(8)))
            counted = checks_per_worker(instance / "metrics")
            return len(counted) == 2 and all(counted)

        wait_until(both_workers_served, timeout=60, what="both workers served update checks")
        assert _send(server, CHECK, {"current_version": "0.9.0"}, _bearer("usd_" + "x" * 40)) == 401
        artifact = f"/api/device/v1/releases/{release}/artifact"
        assert _send(server, artifact, headers=_bearer(device)) == 200
        event = {"event_id": uuid.uuid4().hex, "status": "downloading", "release_id": release}
        assert _send(server, "/api/device/v1/installs", event, _bearer(device)) == 201
        assert _send(server, "/metrics") == 401
        assert _send(server, "/metrics", headers=_bearer("not-the-token-at-all")) == 401
        upkeep = "upgrade_server_background_job_runs_total"
        wait_until(lambda: value(_scrape(server), upkeep, job="tuf-upkeep") >= 2, timeout=30)
        # A worker killed (gunicorn starts another): what it counted still counts.
        folder = instance / "metrics"
        pids = {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("histogram_*.db")}
        os.kill(min(pids), signal.SIGKILL)
        wait_until(
            lambda: (
                _send(server, "/healthz") == 200
                and len(list(folder.glob("histogram_*.db"))) > len(pids)
            ),
            timeout=60,
            what="a new worker served",
        )
        found = _scrape(server)
        server_now = _server_now(server)

    latency = "upgrade_server_http_request_duration_seconds_count"
    assert value(found, latency, route=CHECK, status="200") == sent["checks"]
    assert value(found, latency, route=CHECK, status="401") == 1
    assert value(found, "upgrade_server_update_checks_total", answer="offered") == sent["checks"]
    assert value(found, "upgrade_server_update_checks_total", answer="refused") == 1
    assert value(found, latency, route="/metrics", status="401") == 2
    assert value(found, "upgrade_server_downloads_total", backend="local") == 1
    assert value(found, "upgrade_server_download_bytes_total", backend="local") > 0
    assert value(found, "upgrade_server_install_reports_total", status="downloading") == 1
    job = {"job": "staging-cleaner"}
    # Once in each worker as it started: the two, and the one that replaced the killed one.
    assert value(found, "upgrade_server_background_job_runs_total", **job) == 3
    assert value(found, "upgrade_server_background_job_failures_total", **job) == 0
    last = value(found, "upgrade_server_background_job_last_success_timestamp_seconds", **job)
    # By the server's clock (the test's own is pinned): its answer's Date.
    assert last == pytest.approx(server_now, abs=120)
    assert value(found, "upgrade_server_tuf_metadata_expiry_seconds", role="timestamp") > 0
    # The multi-process folder gunicorn_conf.py chose, in the instance folder,
    # emptied of the earlier run's samples when gunicorn started.
    assert not (instance / "metrics" / "counter_999999.db").exists()
    logs = (instance / "gunicorn.log").read_text() + (instance / "access.log").read_text()
    assert "/metrics" in logs  # the scrapes were logged...
    assert TOKEN not in logs  # ...never with the token


@pytest.mark.slow
def test_without_a_token_gunicorn_serves_no_metrics(demo_database, tmp_path):
    url, _, _, files = demo_database
    instance = tmp_path / "instance"
    instance.mkdir()
    with gunicorn(url, instance, workers=2, **files) as server:
        assert _send(server, "/metrics") == 404
        assert _send(server, "/metrics", headers=_bearer(TOKEN)) == 404
    assert not (instance / "metrics").exists()

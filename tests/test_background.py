"""Background work: started in a process once it serves a request, retried
when it fails, its health visible, stopped on demand."""

from __future__ import annotations

import os
import queue
import threading
import urllib.request
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from tests.faults import wait_until
from tests.helpers.tuf import publish_file
from tests.live import add_product, live_server
from upgrade_server import background, create_app
from upgrade_server.clock import utcnow
from upgrade_server.config import Settings
from upgrade_server.extensions import db
from upgrade_server.migrate import upgrade
from upgrade_server.signing import upkeep
from upgrade_server.signing.models import MetadataFile
from upgrade_server.signing.repository import TufRepository
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


# --- the runner: every job registered, started, retried and stopped one way --------------


@pytest.fixture
def jobs_app():
    """A bare app for jobs; its background work is stopped at the end."""
    app = Flask(__name__)
    yield app
    background.stop(app, timeout=5)


def _health(app, name):
    return next(job for job in background.jobs(app) if job["name"] == name)


def test_a_failing_job_is_retried_counted_and_visible_until_it_succeeds(jobs_app, caplog):
    failures = queue.Queue()
    for _ in range(3):
        failures.put(ConnectionError("postgresql://user:hunter2@db/x unreachable"))
    recover = threading.Event()

    def work(app):
        if not failures.empty():
            raise failures.get()
        assert recover.wait(timeout=30)  # the test looks at the failing job first

    background.add(jobs_app, "flaky", 0.01, work)
    assert _health(jobs_app, "flaky")["running"] is False  # nothing before the process serves
    jobs_app.test_client().get("/")
    failing = wait_until(
        lambda: (job := _health(jobs_app, "flaky"))["failures"] == 3 and job,
        what="three failed runs",
    )
    assert failing["last_error"] == "ConnectionError"
    assert failing["failing_since"] is not None and failing["last_success_at"] is None
    recover.set()
    done = wait_until(
        lambda: (job := _health(jobs_app, "flaky"))["last_success_at"] and job,
        what="a run after the failures succeeds",
    )
    assert done["failures"] == 3 and done["runs"] >= 4
    assert done["failing_since"] is None and done["running"] is True
    assert done["last_duration_seconds"] >= 0
    assert "hunter2" not in str(background.jobs(jobs_app))
    # A failure is logged with its cause; one a run after another, not each time.
    assert caplog.text.count("flaky failed") == 1


def test_stop_ends_a_job_waiting_for_its_next_run(jobs_app):
    ran = threading.Event()
    background.add(jobs_app, "hourly", 3600, lambda app: ran.set(), at_start=True)
    jobs_app.test_client().get("/")
    assert ran.wait(timeout=30)
    assert _health(jobs_app, "hourly")["running"] is True
    background.stop(jobs_app, timeout=10)  # an hour left to wait: stop wakes it
    stopped = _health(jobs_app, "hourly")
    assert stopped["running"] is False
    assert (stopped["runs"], stopped["failures"], stopped["last_error"]) == (1, 0, None)


def test_a_woken_job_runs_at_once_unless_it_is_failing(jobs_app):
    runs = queue.Queue()
    fail = threading.Event()

    def drain(app):
        failing = fail.is_set()
        runs.put(failing)
        if failing:
            raise OSError("database locked")

    job = background.add(jobs_app, "drain", 3600, drain)
    jobs_app.test_client().get("/")
    job.wake()
    assert runs.get(timeout=30) is False
    fail.set()
    job.wake()
    assert runs.get(timeout=30) is True
    wait_until(lambda: _health(jobs_app, "drain")["failures"] == 1, what="the failure counted")
    job.wake()  # failing: it waits its interval out instead of hammering the database
    with pytest.raises(queue.Empty):  # a woken run comes within milliseconds
        runs.get(timeout=0.3)


@pytest.mark.own_app
def test_readyz_shows_the_health_of_the_processs_jobs(scratch_url, tmp_path, cleaning_passes):
    upgrade(scratch_url)
    settings = Settings(
        instance_path=tmp_path,
        database_url=scratch_url,
        log_level="CRITICAL",
        staging_cleanup_seconds=3600,
        report_batch_seconds=0,
    )
    app = create_app({"SETTINGS": settings})
    try:
        client = app.test_client()
        before = client.get("/readyz").get_json()["background"]
        assert [job["name"] for job in before] == ["staging-cleaner"]
        assert cleaning_passes.get(timeout=30) == 0
        wait_until(lambda: _health(app, "staging-cleaner")["runs"] == 1, what="a counted run")
        (after,) = client.get("/readyz").get_json()["background"]
        assert after["runs"] == 1 and after["failures"] == 0 and after["last_success_at"]
    finally:
        background.stop(app)
        with app.app_context():
            db.engine.dispose()


@pytest.mark.own_app
def test_upkeep_signs_each_product_in_its_own_unit(scratch_url, tmp_path, monkeypatch):
    """One product's conflict (another worker signed it first) rolls back that
    product only: the others' re-signing is kept, and the loser is signed at
    the next pass."""
    with live_server(scratch_url, tmp_path / "instance") as live:
        artifact = tmp_path / "fw.bin"
        artifact.write_bytes(b"fw")
        for code in ("gw", "hub"):
            add_product(live, code)
            publish_file(live, code, "1.0.0", artifact)
        with live.app.app_context():
            db.session.execute(
                update(MetadataFile)
                .where(MetadataFile.role == "timestamp")
                .values(expires=utcnow() + timedelta(hours=1))
            )
            db.session.commit()
        real = TufRepository.refresh_expiring

        def racing(self, now=None):
            renewed = real(self, now)
            if self.product.code == "gw":
                raise IntegrityError("INSERT INTO metadata_files", {}, Exception("duplicate"))
            return renewed

        monkeypatch.setattr(TufRepository, "refresh_expiring", racing)
        assert upkeep.refresh_all(live.app) == {"hub": ["timestamp"]}
        monkeypatch.undo()
        assert upkeep.refresh_all(live.app) == {"gw": ["timestamp"]}


def test_the_process_id_kept_is_the_forked_childs_own():
    """Kept connections and jobs belong to the process that made them; the id
    they are checked against follows a fork (gunicorn's workers)."""
    from upgrade_server import process

    parent = process.pid()
    assert parent == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, f"{process.pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write)
    seen, real = os.read(read, 64).decode().split()
    os.waitpid(child, 0)
    os.close(read)
    assert seen == real and int(seen) != parent

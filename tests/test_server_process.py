"""The server as an operator runs it: gunicorn's control socket and the startup log."""

from __future__ import annotations

import logging
import socket
import stat

import pytest

from tests.gunicorn_server import gunicorn
from upgrade_server.migrate import (
    alembic_config,
    log_schema_state,
    schema_state,
    upgrade,
)

pytestmark = pytest.mark.own_app


def _is_listening_socket(path) -> bool:
    if not path.exists() or not stat.S_ISSOCK(path.stat().st_mode):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@pytest.mark.slow
def test_two_servers_on_one_host_keep_their_own_control_socket(scratch_url, tmp_path):
    upgrade(scratch_url)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with gunicorn(scratch_url, second, workers=1):
        with gunicorn(scratch_url, first, workers=1):
            assert _is_listening_socket(first / "gunicorn.ctl")
            assert _is_listening_socket(second / "gunicorn.ctl")
        # Stopping the first removed its own socket, not the second's.
        assert not (first / "gunicorn.ctl").exists()
        assert _is_listening_socket(second / "gunicorn.ctl")


@pytest.mark.slow
def test_startup_logs_the_database_revision_once_and_no_alembic_plugins(scratch_url, tmp_path):
    upgrade(scratch_url)
    instance = tmp_path / "instance"
    instance.mkdir()
    with gunicorn(scratch_url, instance, workers=2, UPGRADE_SERVER_LOG_LEVEL="INFO"):
        pass
    log = (instance / "gunicorn.log").read_text()
    assert "Booting worker" in log
    assert "alembic" not in log
    heads = ", ".join(schema_state(scratch_url).heads)
    said = [line for line in log.splitlines() if "database " in line]
    assert len(said) == 1, log
    assert f"at revision {heads}, the newest" in said[0]
    assert "[INFO]" in said[0]


def test_a_database_behind_the_code_is_a_warning_that_says_what_to_run(scratch_url, caplog):
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(scratch_url))
    head = script.get_current_head()
    previous = script.get_revision(head).down_revision
    upgrade(scratch_url, previous)
    with caplog.at_level(logging.INFO, logger="upgrade_server.migrate"):
        state = log_schema_state(scratch_url)
    assert state is not None and not state.up_to_date
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"at revision {previous}, this code needs {head}" in record.getMessage()
    assert "upgrade-server db upgrade" in record.getMessage()


def test_migrating_says_from_which_revision_to_which(scratch_url, caplog):
    with caplog.at_level(logging.INFO):
        upgrade(scratch_url)
        upgrade(scratch_url)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("upgrade_server")]
    head = ", ".join(schema_state(scratch_url).heads)
    assert lines[0].endswith(f"migrated from revision none to {head}")
    assert lines[1].endswith(f"already at revision {head}")
    # Alembic's own step-by-step lines stay below INFO.
    assert not [r for r in caplog.records if r.name.startswith("alembic")]


def test_an_unreachable_database_is_one_warning_without_its_password(caplog):
    url = "postgresql+psycopg://user:s3cret@127.0.0.1:1/none"
    with caplog.at_level(logging.INFO, logger="upgrade_server.migrate"):
        assert log_schema_state(url) is None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "cannot be read" in record.getMessage()
    assert "s3cret" not in record.getMessage()

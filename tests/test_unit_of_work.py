"""One unit of work for requests, CLI commands and background jobs: what it
did is committed together, or rolled back with what it did outside the
database undone."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from upgrade_server import transaction
from upgrade_server.cli import transaction as cli_transaction
from upgrade_server.extensions import db
from upgrade_server.organisations.models import Organisation
from upgrade_server.unit_of_work import on_failure, unit_of_work


def _stored(slug):
    return db.session.scalars(select(Organisation.slug).where(Organisation.slug == slug)).first()


def _add(session, slug):
    session.add(Organisation(slug=slug, name=slug))
    session.flush()


@pytest.fixture
def undone():
    """What undo hooks ran, in order."""
    return []


@pytest.fixture
def requests_app(undone):
    """An app with nothing but the request's unit of work and three views."""
    mini = Flask(__name__)
    mini.config["PROPAGATE_EXCEPTIONS"] = False
    transaction.init_app(mini)
    mini.teardown_appcontext(lambda _exc: db.session.remove())

    def work(slug):
        _add(db.session(), slug)
        on_failure(lambda: undone.append(f"first {slug}"))
        on_failure(lambda: undone.append(f"second {slug}"))

    @mini.post("/<slug>/ok")
    def ok(slug):
        work(slug)
        return {"slug": slug}, 201

    @mini.post("/<slug>/refused")
    def refused(slug):
        work(slug)
        return {"type": "/problems/conflict"}, 409

    @mini.post("/<slug>/raises")
    def raises(slug):
        work(slug)
        raise RuntimeError("the view broke")

    return mini


def test_a_request_that_succeeds_commits_and_undoes_nothing(requests_app, undone):
    assert requests_app.test_client().post("/kept/ok").status_code == 201
    assert _stored("kept") == "kept"
    assert undone == []


@pytest.mark.parametrize("ending", ["refused", "raises"])
def test_a_request_that_fails_rolls_back_and_undoes_newest_first(requests_app, undone, ending):
    r = requests_app.test_client().post(f"/gone/{ending}")
    assert r.status_code == (409 if ending == "refused" else 500)
    assert _stored("gone") is None
    assert undone == ["second gone", "first gone"]


def test_a_request_whose_commit_fails_rolls_back_and_undoes(
    requests_app, undone, monkeypatch, factory
):
    factory.organisation(slug="taken")
    db.session.commit()
    # Another writer took the slug meanwhile: the commit's flush is refused.
    original = transaction.session

    def clashing():
        found = original()
        found.add(Organisation(slug="taken", name="again"))
        return found

    monkeypatch.setattr(transaction, "session", clashing)
    assert requests_app.test_client().post("/lost/ok").status_code == 500
    monkeypatch.undo()
    assert _stored("lost") is None
    assert undone == ["second lost", "first lost"]


def test_a_cli_command_commits_or_rolls_back_and_undoes(undone):
    with cli_transaction() as session:
        _add(session, "by-cli")
        on_failure(lambda: undone.append("by-cli"))
    assert _stored("by-cli") == "by-cli" and undone == []

    with pytest.raises(LookupError), cli_transaction() as session:
        _add(session, "cli-failed")
        on_failure(lambda: undone.append("cli-failed"))
        raise LookupError("no such device")
    assert _stored("cli-failed") is None
    assert undone == ["cli-failed"]


def test_a_cli_command_whose_commit_fails_undoes(undone, factory):
    factory.organisation(slug="cli-taken")
    db.session.commit()
    with pytest.raises(IntegrityError), cli_transaction() as session:
        session.add(Organisation(slug="cli-new", name="new"))
        session.add(Organisation(slug="cli-taken", name="again"))  # refused at the commit
        on_failure(lambda: undone.append("cli-new"))
    assert _stored("cli-new") is None
    assert undone == ["cli-new"]


def test_a_background_unit_has_its_own_app_context_and_session(app, undone):
    callers = db.session()
    with unit_of_work(app) as session:
        assert session is not callers
        _add(session, "by-job")
        kept = session.scalars(select(Organisation).where(Organisation.slug == "by-job")).one()
    assert _stored("by-job") == "by-job"
    assert inspect(kept).detached  # its session was removed with its context

    with pytest.raises(TimeoutError), unit_of_work(app) as session:
        _add(session, "job-failed")
        on_failure(lambda: undone.append("job-failed"))
        raise TimeoutError("the receiver hangs")
    assert _stored("job-failed") is None
    assert undone == ["job-failed"]


def test_undo_hooks_go_to_the_innermost_unit_and_outside_one_are_refused(app, undone):
    with pytest.raises(RuntimeError, match="outside a unit of work"):
        on_failure(lambda: undone.append("nowhere"))
    with unit_of_work(app):
        on_failure(lambda: undone.append("outer"))
        with pytest.raises(KeyError), unit_of_work(app):
            on_failure(lambda: undone.append("inner"))
            raise KeyError("inner")
        assert undone == ["inner"]
    assert undone == ["inner"]  # the outer unit committed

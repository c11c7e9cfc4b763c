"""The fixtures isolate tests: what one test commits, the next does not see."""

from sqlalchemy import func, select

from upgrade_server.extensions import db
from upgrade_server.organisations.models import Organisation

_SLUG = "isolation-probe"


def _probe_count() -> int:
    return db.session.execute(
        select(func.count()).select_from(Organisation).where(Organisation.slug == _SLUG)
    ).scalar_one()


def test_a_commits(factory, client):
    factory.organisation(slug=_SLUG)
    db.session.commit()
    assert _probe_count() == 1


def test_b_sees_nothing_of_it():
    assert _probe_count() == 0

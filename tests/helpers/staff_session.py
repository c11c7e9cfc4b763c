"""A staff member logged in to the console without the login form: the
session the form would start (the form itself is tested in test_console.py;
argon2 makes each real login take a second on a busy machine)."""

from __future__ import annotations

from typing import Any

from tests.factories import Factory
from upgrade_server.accounts.models import User
from upgrade_server.extensions import db


def as_staff(client: Any, factory: Factory, role: str = "admin", lang: str = "en") -> User:
    """A new user of `role`, logged in on `client` (pages in `lang`)."""
    user = factory.user(role)
    db.session.commit()
    with client.session_transaction() as kept:
        kept.clear()
        kept.update(user_id=user.id, generation=user.session_generation, lang=lang)
    return user
